"""Soft booleans and ``isclose`` (#15, item 6): the product t-norm against the
probabilities of events of independent Bernoulli variables (enumerated here), the
min/max t-norm against the hard ``min``/``max`` within its bound, ``isclose`` against
NumPy's test down to widths of 1e-12, gradients and the frameworks."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import to_backend, to_numpy

RNG = np.random.default_rng(6)


def _event_probability(ps: np.ndarray, event) -> float:
    """P(event(b_1, ..., b_n)) for independent b_i ~ Bernoulli(p_i), by enumeration."""
    total = 0.0
    for bits in itertools.product((0, 1), repeat=len(ps)):
        weight = math.prod(p if b else 1.0 - p for p, b in zip(ps, bits))
        total += weight * bool(event(*bits))
    return total


PAIRS = {
    "logical_and": lambda a, b: a and b,
    "logical_or": lambda a, b: a or b,
    "logical_xor": lambda a, b: a != b,
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_product_tnorm_is_the_probability_of_the_event(backend, name):
    p, q = RNG.random(20), RNG.random(20)
    got = to_numpy(getattr(mol, name)(to_backend(backend, p), to_backend(backend, q)))
    want = [_event_probability(np.array([a, b]), PAIRS[name]) for a, b in zip(p, q)]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    # exact on {0, 1}: the hard truth table
    for a, b in itertools.product((0.0, 1.0), repeat=2):
        assert float(getattr(mol, name)(np.array(a), b)) == float(PAIRS[name](a, b))
    np.testing.assert_array_equal(mol.logical_not(np.array([0.0, 1.0, 0.25])), [1.0, 0.0, 0.75])


def test_all_any_are_the_probabilities_of_the_events(backend):
    p = RNG.random((3, 5))
    got_all = to_numpy(mol.all(to_backend(backend, p)))
    got_any = to_numpy(mol.any(to_backend(backend, p), axis=-1, keepdims=True))
    np.testing.assert_allclose(got_all, [_event_probability(r, lambda *b: all(b)) for r in p],
                               rtol=1e-13)  # fmt: skip
    np.testing.assert_allclose(got_any[:, 0], [_event_probability(r, lambda *b: any(b)) for r in p],
                               rtol=1e-13)  # fmt: skip
    both = to_numpy(mol.all(to_backend(backend, p), axis=(0, 1)))
    assert float(both) == pytest.approx(float(np.prod(p)), rel=1e-13)
    assert float(mol.all(np.zeros(0))) == 1.0 and float(mol.any(np.zeros(0))) == 0.0


def test_any_keeps_small_probabilities(backend):
    """``1 - prod(1 - p)`` cancelled to 0 for small p; against the inclusion-exclusion
    sum in mpmath, and a gradient that stays finite at p = 1."""
    import mpmath

    for dtype, values in (("float64", [1e-20, 3e-20, 1e-300]), ("float32", [1e-9, 2e-9, 1e-30])):
        want = 1 - mpmath.fprod(1 - mpmath.mpf(float(v)) for v in values)
        got = float(to_numpy(mol.any(to_backend(backend, values, dtype))))
        assert got == pytest.approx(float(want), rel=4 * float(np.finfo(dtype).eps)), (dtype, got)
    assert float(to_numpy(mol.any(to_backend(backend, [1.0, 0.3])))) == 1.0
    if backend == "torch":
        p = torch.tensor([1.0, 0.3, 1e-3], dtype=torch.float64, requires_grad=True)
        mol.any(p).backward()
        np.testing.assert_allclose(p.grad.numpy(), [0.7 * 0.999, 0.0, 0.0], atol=1e-15)


@pytest.mark.parametrize("kernel", ["logistic", "gaussian"])
def test_minmax_tnorm_within_its_bound(kernel):
    p, q = RNG.random(50), RNG.random(50)
    w = 0.05
    gap = w * mol.kernels[kernel].mean_abs / 2
    a = mol.logical_and(p, q, tnorm="minmax", width=w, kernel=kernel)
    o = mol.logical_or(p, q, tnorm="minmax", width=w, kernel=kernel)
    assert np.all(a <= np.minimum(p, q) + 1e-15) and np.all(a >= np.minimum(p, q) - gap)
    assert np.all(o >= np.maximum(p, q) - 1e-15) and np.all(o <= np.maximum(p, q) + gap)
    x = mol.logical_xor(p, q, tnorm="minmax", width=w, kernel=kernel)
    hard = np.maximum(np.minimum(p, 1 - q), np.minimum(1 - p, q))
    assert np.all(np.abs(x - hard) <= 2 * gap + 1e-15)
    np.testing.assert_array_equal(
        mol.logical_and(p, q, tnorm="minmax", width=w, straight_through=True), np.minimum(p, q)
    )
    p2 = RNG.random((4, 6))
    low, high = mol.all(p2, tnorm="minmax", width=w), mol.any(p2, tnorm="minmax", width=w)
    assert np.all((low >= p2.min(-1) - 1e-15) & (low <= 1.0))
    assert np.all((high <= p2.max(-1) + 1e-15) & (high >= 0.0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="tnorm"):
        mol.logical_and(np.ones(2), np.ones(2), tnorm="lukasiewicz")
    with pytest.raises(ValueError, match="takes no width"):
        mol.logical_or(np.ones(2), np.ones(2), width=0.1)
    with pytest.raises(ValueError, match="width"):
        mol.all(np.ones(2), tnorm="minmax")
    with pytest.raises(TypeError, match="p must"):
        mol.logical_and("a", np.ones(2))
    with pytest.raises(TypeError, match="straight_through must be True or False"):
        mol.logical_not(np.ones(2), straight_through="no")
    with pytest.raises(ValueError, match="rtol"):
        mol.isclose(np.ones(2), 1.0, rtol=-1.0, width=0.1)
    with pytest.raises(TypeError, match="atol"):
        mol.isclose(np.ones(2), 1.0, atol="1", width=0.1)


def test_boolean_gradients():
    p, q = RNG.random(4), RNG.random(4)
    pt, qt = (torch.tensor(v, requires_grad=True) for v in (p, q))
    mol.logical_xor(pt, qt).sum().backward()
    np.testing.assert_allclose(pt.grad.numpy(), 1 - 2 * q, rtol=1e-15)
    np.testing.assert_allclose(qt.grad.numpy(), 1 - 2 * p, rtol=1e-15)
    grad = jax.grad(lambda v: mol.all(v))(jnp.asarray(p))
    np.testing.assert_allclose(np.asarray(grad), [np.prod(np.delete(p, i)) for i in range(4)])
    p[1] = 1.0  # any: d/dp_i = prod_{j != i} (1 - p_j), finite at p = 1
    grad = jax.grad(lambda v: mol.any(v))(jnp.asarray(p))
    np.testing.assert_allclose(np.asarray(grad), [np.prod(np.delete(1 - p, i)) for i in range(4)])
    jitted = jax.jit(jax.vmap(lambda a, b: mol.logical_or(a, b, tnorm="minmax", width=0.1)))
    np.testing.assert_allclose(
        np.asarray(jitted(jnp.asarray(p), jnp.asarray(q))),
        mol.logical_or(p, q, tnorm="minmax", width=0.1),
    )


@pytest.mark.parametrize("width", [1e-12, 1e-9, 1e-6])
def test_isclose_against_numpy_down_to_tiny_widths(backend, width):
    b = RNG.normal(size=200) * 10
    tolerance = 1e-3 + 1e-5 * np.abs(b)  # atol=1e-3: margins of 60 widths fit inside
    # margins (tolerance - distance) of 60 widths or more, on both sides of the boundary
    side = np.where(RNG.random(200) < 0.5, -1.0, 1.0)
    margin = side * (60 * width + RNG.random(200) * tolerance / 2)
    distance = np.maximum(tolerance - margin, 0.0)
    a = b + np.where(RNG.random(200) < 0.5, -1.0, 1.0) * distance
    hard = np.isclose(a, b, atol=1e-3).astype(float)
    got = to_numpy(
        mol.isclose(to_backend(backend, a), to_backend(backend, b), atol=1e-3, width=width)
    )
    np.testing.assert_allclose(got, hard, rtol=0, atol=1e-25)  # the logistic tail e^-60
    st = to_numpy(mol.isclose(to_backend(backend, a), to_backend(backend, b), atol=1e-3,
                              width=width, straight_through=True))  # fmt: skip
    np.testing.assert_array_equal(st, hard)


def test_isclose_gradient_at_equality_is_zero_on_every_framework():
    # a = b is the smooth test's maximum: xp.abs's derivative at 0 (0 on torch, 1 on JAX)
    # once made JAX's gradient there -k(margin/w)/w instead of 0; b = 0 likewise in b
    a, b = np.array([1.0, 0.0, 1.001]), np.array([1.0, 0.0, 1.0])
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    mol.isclose(at, bt, width=0.1).sum().backward()
    grads = jax.grad(lambda u, v: mol.isclose(u, v, width=0.1).sum(), (0, 1))(
        jnp.asarray(a), jnp.asarray(b)
    )
    for got in (at.grad.numpy(), np.asarray(grads[0])):
        np.testing.assert_allclose(got[:2], 0.0, atol=0)
        assert got[2] < -1.0  # off equality: -k/w, a is pulled back towards b
    np.testing.assert_allclose(np.asarray(grads[1]), bt.grad.numpy(), rtol=1e-6, atol=0)
    # NumPy scalars of any float type are tolerances
    np.testing.assert_allclose(mol.isclose(a, b, width=0.1, atol=np.float32(1e-3)),
                               mol.isclose(a, b, width=0.1, atol=float(np.float32(1e-3))))  # fmt: skip


def test_isclose_on_the_boundary_and_edges():
    # exactly on the boundary: 1/2; a width-scale offset: the kernel's CDF (an mpmath-free
    # closed form for the logistic and gaussian kernels)
    b = 1.0
    edge = b + (1e-8 + 1e-5 * b)
    w = 1e-12
    for d in (-3.0, -1.0, 0.0, 1.0, 3.0):
        margin = (1e-8 + 1e-5) - ((edge + d * w) - b)  # as computed in float64
        got = float(mol.isclose(np.array(edge + d * w), b, width=w))
        assert got == pytest.approx(1 / (1 + math.exp(-margin / w)), abs=1e-6)
        got = float(mol.isclose(np.array(edge + d * w), b, width=w, kernel="gaussian"))
        assert got == pytest.approx(0.5 * math.erfc(-margin / w / math.sqrt(2)), abs=1e-6)
    inf, nan = math.inf, math.nan
    got = mol.isclose(np.array([inf, -inf, inf, nan, 1.0]), np.array([inf, -inf, -inf, 1.0, inf]),
                      width=1e-3)  # fmt: skip
    np.testing.assert_array_equal(got[:3], [1.0, 1.0, 0.0])
    assert np.isnan(got[3]) and got[4] == 0.0
    f32 = mol.isclose(np.array([1.0, 1.5], dtype=np.float32), np.float32(1.0), width=1e-7)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32, [1.0, 0.0])
    # the gradient in a: -K'(margin)/w sign(a - b), from autodiff of the margin
    at = torch.tensor([edge], dtype=torch.float64, requires_grad=True)
    mol.isclose(at, b, width=1e-9).backward()
    assert at.grad.item() == pytest.approx(-0.25 / 1e-9, rel=1e-3)
