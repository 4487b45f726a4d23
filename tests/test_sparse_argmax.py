"""Sparse argmax (#15, item 4): ``softmax``/``argmax``/``max`` with ``method="sparsemax"``
and ``method="entmax15"``, against their definitions solved by bisection here (not the
library's sort), their bounds, gradients against finite differences, edge values and
the frameworks' transforms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import to_backend, to_numpy
from test_fast_path import saved_for_backward

METHODS = ("sparsemax", "entmax15")


def _bisect_tau(z: np.ndarray, power: float, scale: float) -> float:
    """tau with sum_i max(scale z_i - tau, 0)^power = 1, by bisection (200 halvings)."""
    y = scale * z[np.isfinite(z)]
    lo, hi = float(np.max(y)) - 1.0, float(np.max(y))  # the sum is >= 1 at lo, 0 at hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.sum(np.maximum(y - mid, 0.0) ** power) >= 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def reference(z: np.ndarray, method: str) -> tuple[np.ndarray, float]:
    """``(p, max_Omega(z))`` by the definitions: p the simplex maximizer of
    <p, z> + H(p) (Tsallis 2: [z - tau]_+; Tsallis 3/2: [z/2 - tau]_+^2)."""
    power, scale = (1.0, 1.0) if method == "sparsemax" else (2.0, 0.5)
    tau = _bisect_tau(z, power, scale)
    p = np.where(np.isfinite(z), np.maximum(scale * np.where(np.isfinite(z), z, 0) - tau, 0), 0)
    p = p**power
    zf = np.where(p > 0, z, 0.0)
    if method == "sparsemax":
        entropy = 0.5 * (1.0 - np.sum(p**2))
    else:
        entropy = 4.0 / 3.0 * (1.0 - np.sum(p**1.5))
    return p, float(np.dot(p, zf) + entropy)


RNG = np.random.default_rng(15)
CASES = [RNG.normal(size=n) * s for n in (1, 2, 5, 17) for s in (0.3, 3.0)]
CASES += [np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.5, 2.0]), np.array([2.0, -np.inf, 1.8])]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("width", [0.25, 1.0, 4.0])
def test_against_bisection(method, width):
    for x in CASES:
        p_ref, value = reference(x / width, method)
        p = mol.softmax(x, width=width, method=method)
        np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(
            mol.max(x, width=width, method=method), width * value, rtol=1e-12, atol=1e-13
        )
        assert np.sum(p) == pytest.approx(1.0, abs=1e-14)
        assert np.all(p >= 0)


@pytest.mark.parametrize("method", METHODS)
def test_bounds_and_exact_zeros(method):
    bound = {"sparsemax": lambda n: 0.5 * (1 - 1 / n), "entmax15": lambda n: 4 / 3 * (1 - n**-0.5)}
    for x in CASES:
        n, w = x.size, 0.7
        top = np.max(x)
        value = float(mol.max(x, width=w, method=method))
        assert top - 1e-12 <= value <= top + w * bound[method](n) + 1e-12
        # min is the mirror image
        assert float(mol.min(x, width=w, method=method)) == pytest.approx(
            -float(mol.max(-x, width=w, method=method)), abs=0.0
        )
    # the bound is attained at n equal entries
    x = np.zeros(9)
    assert float(mol.max(x, width=2.0, method=method)) == pytest.approx(2.0 * bound[method](9))
    # exact zeros beyond the support, and the exact one-hot past a gap of w (2w)
    reach = 1.0 if method == "sparsemax" else 2.0
    p = mol.softmax(
        np.array([0.0, -reach * 1.01, 5.0 - reach * 0.5, 5.0]), width=1.0, method=method
    )
    assert p[0] == 0.0 and p[1] == 0.0 and p[2] > 0
    p = mol.argmax(np.array([3.0, 3.0 - reach, 1.0]), width=1.0, method=method)
    np.testing.assert_array_equal(p, [1.0, 0.0, 0.0])
    assert float(mol.max(np.array([3.0, 3.0 - reach]), width=1.0, method=method)) == 3.0
    # tol picks the width from the bound
    x = RNG.normal(size=6)
    assert float(mol.max(x, tol=1e-3, method=method)) - np.max(x) <= 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_edge_values(method):
    inf, nan = math.inf, math.nan
    x = np.array([[1.0, inf, 0.0, inf], [-inf, -inf, -inf, -inf], [1.0, nan, 0.0, 2.0]])
    p = mol.softmax(x, width=1.0, method=method)
    np.testing.assert_allclose(p[0], [0.0, 0.5, 0.0, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(p[1], [0.0, 0.0, 0.0, 0.0])
    assert np.all(np.isnan(p[2]))
    m = mol.max(x, width=1.0, method=method)
    assert m[0] == inf and m[1] == -inf and np.isnan(m[2])
    # -inf entries and masked entries carry no weight
    y = np.array([0.3, -inf, 0.1, 7.0])
    masked = mol.softmax(y, width=1.0, method=method, where=np.array([True, True, True, False]))
    np.testing.assert_allclose(masked[[0, 2]], mol.softmax(y[[0, 2]], width=1.0, method=method))
    assert masked[1] == masked[3] == 0.0
    # huge and tiny magnitudes: no overflow in the sort's sums
    big = np.array([1e300, -1e300, 1e300 - 1e285])
    assert np.all(np.isfinite(mol.softmax(big, width=1e284, method=method)))
    assert float(mol.max(big, width=1e284, method=method)) >= 1e300
    # empty axis: an empty one-hot, -inf for the max
    assert mol.softmax(np.zeros((2, 0)), width=1.0, method=method).shape == (2, 0)
    assert np.all(mol.max(np.zeros((2, 0)), width=1.0, method=method) == -inf)
    assert mol.softmax(np.zeros((0, 3, 4)), axis=(1, 2), width=1.0, method=method).shape == (
        0, 3, 4,
    )  # fmt: skip
    assert mol.max(torch.zeros(0, 3, 4), axis=(1, 2), width=1.0, method=method).shape == (0,)
    # width -> 0: the hard one-hot (ties share the mass) and the hard max, exactly
    x = np.array([[0.3, 2.0, 1.9999, -1.0], [1.0, 1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(
        mol.softmax(x, width=1e-9, method=method), [[0, 1, 0, 0], [1 / 3, 1 / 3, 0, 1 / 3]]
    )
    np.testing.assert_allclose(mol.max(x, width=1e-9, method=method), [2.0, 1.0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtypes_and_axes(backend, method, dtype):
    if backend == "jax" and dtype == "float16":
        return  # computed in float32 like torch's float16 (covered there); saves a compile
    x64 = RNG.normal(size=(3, 4, 5))
    x = to_backend(backend, x64, dtype)
    p = mol.softmax(x, axis=(0, 2), width=0.5, method=method)
    assert str(p.dtype).endswith(dtype)
    ref = np.stack(
        [reference(x64[:, j, :].ravel() / 0.5, method)[0].reshape(3, 5) for j in range(4)], axis=1
    )
    tol = {"float16": 3e-3, "float32": 2e-6, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(to_numpy(p), ref, atol=tol)
    m = mol.max(x, axis=1, width=0.5, method=method, keepdims=True)
    assert tuple(m.shape) == (3, 1, 5)


def _finite_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("target", ["softmax", "max"])
def test_gradients_match_finite_differences(method, target):
    x = np.array([[0.3, -0.2, 0.25, 1.1, -2.0], [0.0, 0.4, 0.1, -0.3, 0.35]])
    g = RNG.normal(size=x.shape if target == "softmax" else x.shape[:1])
    w = 0.6

    def f(v):
        out = getattr(mol, target)(v, width=w, method=method)
        return float(np.sum(np.asarray(out) * g))

    numeric = _finite_difference(f, x)
    xt = torch.tensor(x, requires_grad=True)
    (getattr(mol, target)(xt, width=w, method=method) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), numeric, atol=1e-8)
    jg = jax.grad(lambda v: jnp.sum(getattr(mol, target)(v, width=w, method=method) * g))
    np.testing.assert_allclose(np.asarray(jg(jnp.asarray(x))), numeric, atol=1e-8)
    # a tensor width (learnable): its gradient too, through the closed-form width slope
    wt = torch.tensor([[w], [w]], dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    (getattr(mol, target)(xt, width=wt, method=method) * torch.tensor(g)).sum().backward()

    def f_width(width):
        out = getattr(mol, target)(x, width=float(width), method=method)
        return float(np.sum(np.asarray(out) * g))

    fw = _finite_difference(lambda v: f_width(v[0, 0]), np.array([[w]]))
    assert float(wt.grad.sum()) == pytest.approx(float(fw[0, 0]), abs=1e-7)
    np.testing.assert_allclose(xt.grad.numpy(), numeric, atol=1e-8)
    jw = jax.grad(
        lambda v: jnp.sum(getattr(mol, target)(jnp.asarray(x), width=v, method=method) * g)
    )(jnp.full((2, 1), w))
    assert float(jnp.sum(jw)) == pytest.approx(float(fw[0, 0]), abs=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_torch_nodes_save_little(method):
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    saved, p = saved_for_backward(lambda: mol.softmax(x, width=0.5, method=method))
    assert len(saved) == 1 and saved[0].shape == p.shape  # the output alone
    saved, _ = saved_for_backward(lambda: mol.max(x, width=0.5, method=method))
    assert len(saved) == 1 and saved[0].shape == x.shape  # the input alone
    # double backward (the Jacobian is built from differentiable operations; sparsemax's
    # is piecewise constant: no graph, its second derivative is 0)
    p = mol.softmax(x, width=0.5, method=method)
    (g,) = torch.autograd.grad((p * torch.arange(6.0, dtype=torch.float64)).sum(), x,
                               create_graph=True)  # fmt: skip
    if method == "entmax15":
        assert torch.isfinite(torch.autograd.grad(g.square().sum(), x)[0]).all()


@pytest.mark.parametrize("method", METHODS)
def test_jit_vmap_and_compile(method):
    x = jnp.asarray(RNG.normal(size=(3, 5)))
    direct = mol.softmax(x, width=0.4, method=method)
    jitted = jax.jit(lambda v: mol.softmax(v, width=0.4, method=method))(x)
    mapped = jax.vmap(lambda v: mol.softmax(v, width=0.4, method=method))(x)
    np.testing.assert_allclose(jitted, direct, atol=1e-15)
    np.testing.assert_allclose(mapped, direct, atol=1e-15)
    grad = jax.jit(jax.grad(lambda v: mol.max(v, width=0.4, method=method).sum()))(x)
    np.testing.assert_allclose(grad, direct, atol=1e-15)  # the gradient of max is p
    if method == "sparsemax":
        return  # one torch.compile smoke (entmax's graph holds sparsemax's operations)
    xt = torch.tensor(np.asarray(x), requires_grad=True)
    compiled = torch.compile(lambda v: mol.max(v, width=0.4, method=method), fullgraph=True)
    out = compiled(xt)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), mol.max(np.asarray(x), width=0.4,
                                                              method=method), atol=1e-14)  # fmt: skip
    np.testing.assert_allclose(xt.grad.numpy(), np.asarray(direct), atol=1e-14)


def test_argmax_index_argmin_and_bad_methods():
    x = np.array([0.0, 5.0, 4.6])
    assert float(mol.argmax(x, width=1.0, method="sparsemax", index=True)) == pytest.approx(1.3)
    np.testing.assert_allclose(
        mol.argmin(-x, width=1.0, method="entmax15"), mol.argmax(x, width=1.0, method="entmax15")
    )
    for op in (mol.softmax, mol.argmax):
        with pytest.raises(ValueError, match="method must be one of"):
            op(x, width=1.0, method="logsumexp")
    with pytest.raises(ValueError, match="method must be one of"):
        mol.max(x, width=1.0, method="sparse")
