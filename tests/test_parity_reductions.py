"""Reductions at parity with scipy and jax.nn (#15, item 5): ``log_softmax``,
``logmeanexp``, ``logsumexp(b=, return_sign=)`` against scipy to round-off, their
gradients against finite differences in float64, edge values, and ``standardize=``."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sc
import torch

import mollifier as mol
from conftest import to_backend, to_numpy
from test_sparse_argmax import _finite_difference as _fd

RNG = np.random.default_rng(1515)
WIDTHS = (1e-3, 0.3, 1.0, 7.0)


@pytest.mark.parametrize("width", WIDTHS)
def test_log_softmax_against_scipy(backend, width):
    x = RNG.normal(size=(3, 7)) * 5
    for axis in (-1, 0, (0, 1)):
        want = sc.log_softmax(x / width, axis=axis)
        got = to_numpy(mol.log_softmax(to_backend(backend, x), axis=axis, width=width))
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13 * np.max(np.abs(want)))
    # far below the max: every digit kept (log(softmax) underflows to -inf)
    got = to_numpy(mol.log_softmax(to_backend(backend, [1000.0, 1.0, -5e3]), width=1.0))
    np.testing.assert_array_equal(got, [0.0, -999.0, -6000.0])


def test_log_softmax_edges():
    inf, nan = math.inf, math.nan
    x = np.array([[0.0, -inf, 1.0], [inf, 2.0, inf], [-inf, -inf, -inf], [1.0, nan, 0.0]])
    y = mol.log_softmax(x, width=0.5)
    np.testing.assert_allclose(y[0], sc.log_softmax(np.array([0.0, -inf, 2.0])))
    np.testing.assert_array_equal(y[1], [-math.log(2), -inf, -math.log(2)])
    np.testing.assert_array_equal(y[2], [-inf, -inf, -inf])
    assert np.all(np.isnan(y[3]))
    assert mol.log_softmax(np.zeros((2, 0)), width=1.0).shape == (2, 0)
    np.testing.assert_array_equal(
        mol.log_softmax(np.array([1.0, 3.0, 3.0]), width=0.1, straight_through=True),
        [-inf, -math.log(2), -math.log(2)],
    )
    f32 = mol.log_softmax(np.array([1.0, 2.0], dtype=np.float32), width=1.0)
    assert f32.dtype == np.float32


def test_log_softmax_gradients_and_nodes():
    x = RNG.normal(size=(2, 5))
    g = RNG.normal(size=x.shape)
    w = 0.7
    numeric = _fd(lambda v: float(np.sum(mol.log_softmax(v, width=w) * g)), x)
    xt = torch.tensor(x, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = mol.log_softmax(xt, width=w)
    assert len(saved) == 1 and saved[0].shape == x.shape  # the output alone
    (y * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), numeric, atol=1e-8)
    jg = jax.grad(lambda v: jnp.sum(mol.log_softmax(v, width=w) * g))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(jg), numeric, atol=1e-8)
    # forward mode (the tangent rule), jit and vmap
    _, tangent = jax.jvp(lambda v: mol.log_softmax(v, width=w), (jnp.asarray(x),),
                         (jnp.asarray(g),))  # fmt: skip
    numeric_t = mol.log_softmax(x + 1e-6 * g, width=w) - mol.log_softmax(x - 1e-6 * g, width=w)
    np.testing.assert_allclose(np.asarray(tangent), numeric_t / 2e-6, atol=1e-8)
    jitted = jax.jit(jax.vmap(lambda v: mol.log_softmax(v, width=w)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(jitted), mol.log_softmax(x, width=w), atol=1e-15)
    # a learnable width: d/dw against finite differences
    wt = torch.tensor([[w], [w]], dtype=torch.float64, requires_grad=True)
    (mol.log_softmax(torch.tensor(x), width=wt) * torch.tensor(g)).sum().backward()
    fw = _fd(lambda v: float(np.sum(mol.log_softmax(x, width=float(v[0])) * g)), np.array([w]))
    assert float(wt.grad.sum()) == pytest.approx(float(fw[0]), abs=1e-7)
    # -inf entries: finite gradients, 0 in the width
    xi = torch.tensor([0.0, -math.inf, 1.0], dtype=torch.float64, requires_grad=True)
    wi = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    mol.log_softmax(xi, width=wi)[2].backward()
    assert torch.isfinite(xi.grad).all() and torch.isfinite(wi.grad)


def test_log_softmax_compiles():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(lambda v: mol.log_softmax(v, width=0.5), fullgraph=True)
    out = compiled(x)
    out[:, 0].sum().backward()
    expected = torch.log_softmax(x.detach() / 0.5, dim=-1)
    torch.testing.assert_close(out.detach(), expected)
    assert torch.isfinite(x.grad).all()


def _weights_cases():
    x = RNG.normal(size=(4, 6)) * 3
    yield x, np.abs(RNG.normal(size=(4, 6)))  # positive
    yield x, RNG.normal(size=(4, 6))  # mixed signs
    b = RNG.normal(size=(4, 6))
    b[:, ::2] = 0.0
    yield x, b  # zeros
    yield x, RNG.normal(size=(1, 6))  # broadcast
    yield RNG.normal(size=(3, 1, 5)), RNG.normal(size=(2, 1))  # both broadcast


@pytest.mark.parametrize("width", (0.05, 3.0))
def test_logsumexp_weights_against_scipy(backend, width):
    # eager JAX compiles each primitive once per shape: one axis there (the others are
    # the same formula, checked on NumPy and torch)
    for x, b in _weights_cases():
        for axis in (-1, None, 0) if backend != "jax" else (-1,):
            lse = functools.partial(mol.logsumexp, axis=axis, width=width)
            want, want_sign = sc.logsumexp(x / width, axis=axis, b=b, return_sign=True)
            got, sign = lse(to_backend(backend, x), b=to_backend(backend, b), return_sign=True)
            np.testing.assert_allclose(to_numpy(got), width * want, rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(to_numpy(sign), want_sign)
            plain = to_numpy(lse(to_backend(backend, x), b=to_backend(backend, b)))
            np.testing.assert_allclose(plain, width * sc.logsumexp(x / width, axis=axis, b=b),
                                       rtol=1e-12, atol=1e-12)  # fmt: skip


def test_logsumexp_weights_edges():
    inf, nan = math.inf, math.nan
    # b = 0 silences its entry whatever it is
    assert float(mol.logsumexp(np.array([1.0, inf, nan]), b=np.array([1.0, 0.0, 0.0]),
                               width=1.0)) == 1.0  # fmt: skip
    value, sign = mol.logsumexp(np.array([inf, 1.0]), b=np.array([-2.0, 1.0]), width=1.0,
                                return_sign=True)  # fmt: skip
    assert value == inf and sign == -1.0
    value, sign = mol.logsumexp(np.array([2.0, 2.0]), b=np.array([1.0, -1.0]), width=1.0,
                                return_sign=True)  # fmt: skip
    assert value == -inf and sign == 0.0
    assert np.isnan(mol.logsumexp(np.array([2.0, 1.0]), b=np.array([-1.0, 0.5]), width=1.0))
    assert np.isnan(mol.logsumexp(np.array([2.0, 1.0]), b=np.array([nan, 0.5]), width=1.0))
    value, sign = mol.logsumexp(np.array([-inf, -inf]), b=np.array([1.0, 2.0]), width=1.0,
                                return_sign=True)  # fmt: skip
    assert value == -inf and sign == 0.0
    value, sign = mol.logsumexp(np.zeros((2, 0)), b=1.0, width=1.0, return_sign=True)
    assert value.shape == (2,) and np.all(value == -inf) and np.all(sign == 0)
    # masked entries are zero weights; a number b broadcasts
    np.testing.assert_allclose(
        mol.logsumexp(
            np.array([0.0, 5.0, 1.0]), b=2.0, where=np.array([True, False, True]), width=0.5
        ),
        0.5 * sc.logsumexp(np.array([0.0, 2.0]), b=2.0),
    )
    # the unweighted return_sign
    value, sign = mol.logsumexp(np.array([[1.0, 2.0], [-inf, -inf]]), width=1.0, return_sign=True)
    np.testing.assert_array_equal(sign, [1.0, 0.0])
    for bad in ({"tol": 0.1}, {"width": 1.0, "straight_through": True}):
        with pytest.raises(ValueError, match="b="):
            mol.logsumexp(np.ones(3), b=np.ones(3), **bad)
    with pytest.raises(TypeError, match="return_sign must be True or False"):
        mol.logsumexp(np.ones(3), width=1.0, return_sign="yes")


def test_logsumexp_weights_gradients():
    x, b = RNG.normal(size=(2, 5)), RNG.normal(size=(2, 5)) + 2.0
    b[0, 1] = 0.0  # the gradient in a zero weight is still w e^{x/w} / S
    w = 0.8

    def f(xv, bv):
        return float(np.sum(mol.logsumexp(xv, b=bv, width=w)))

    gx, gb = _fd(lambda v: f(v, b), x), _fd(lambda v: f(x, v), b)
    xt, bt = (torch.tensor(v, requires_grad=True) for v in (x, b))
    mol.logsumexp(xt, b=bt, width=w).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), gx, atol=1e-8)
    np.testing.assert_allclose(bt.grad.numpy(), gb, atol=1e-8)
    jx, jb = jax.grad(lambda u, v: jnp.sum(mol.logsumexp(u, b=v, width=w)), argnums=(0, 1))(
        jnp.asarray(x), jnp.asarray(b)
    )
    np.testing.assert_allclose(np.asarray(jx), gx, atol=1e-8)
    np.testing.assert_allclose(np.asarray(jb), gb, atol=1e-8)
    jitted = jax.jit(lambda u, v: mol.logsumexp(u, b=v, width=w))(jnp.asarray(x), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(jitted), mol.logsumexp(x, b=b, width=w), rtol=1e-15)


def test_logmeanexp(backend):
    x = RNG.normal(size=(3, 8)) * 4
    for w in WIDTHS:
        want = w * (sc.logsumexp(x / w, axis=-1) - math.log(8))
        got = to_numpy(mol.logmeanexp(to_backend(backend, x), width=w))
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
        assert np.all(got <= np.max(x, axis=-1) + 1e-12)
        assert np.all(got >= np.mean(x, axis=-1) - 1e-12)
    mask = RNG.random(size=(3, 8)) < 0.6
    mask[:, 0] = True
    where = mask if backend == "numpy" else _bool(backend, mask)
    got = to_numpy(mol.logmeanexp(to_backend(backend, x), width=1.0, where=where))
    want = [np.log(np.mean(np.exp(r[m]))) for r, m in zip(x, mask)]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert float(mol.logmeanexp(np.array([2.5, 2.5, 2.5]), width=3.0)) == 2.5
    assert np.isnan(mol.logmeanexp(np.zeros(0), width=1.0))
    assert float(mol.logmeanexp(x[0], tol=1e-3)) >= np.max(x[0]) - 1e-3


def test_logmeanexp_counts_a_broadcast_mask_at_x_shape(backend):
    # a mask that broadcasts (one flag per row, one per column, a scalar) is counted
    # over the slice as broadcast, as jax.nn.logmeanexp; it once counted each flag once
    x = np.array([[1.0, 2.0, 100.0], [1.0, 2.0, 3.0]])
    for mask, axis in (
        (np.array([[True], [True]]), -1),
        (np.array([True, True, False]), -1),
        (np.array(True), -1),
        (np.array([True, False, True]), 0),
    ):
        where = mask if backend == "numpy" else _bool(backend, mask)
        got = to_numpy(mol.logmeanexp(to_backend(backend, x), axis=axis, width=1.0, where=where))
        full = np.broadcast_to(mask, x.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            lse = sc.logsumexp(np.where(full, x, -np.inf), axis=axis)
            want = lse - np.log(np.sum(full, axis=axis))  # all masked out: -inf - -inf, NaN
        np.testing.assert_allclose(got, want, rtol=1e-13)


def _bool(backend, mask):
    return torch.tensor(mask) if backend == "torch" else jnp.asarray(mask)


def test_logmeanexp_gradient():
    x, w = RNG.normal(size=6), 0.4
    numeric = _fd(lambda v: float(mol.logmeanexp(v, width=w)), x)
    xt = torch.tensor(x, requires_grad=True)
    mol.logmeanexp(xt, width=w).backward()
    np.testing.assert_allclose(xt.grad.numpy(), numeric, atol=1e-9)
    np.testing.assert_allclose(xt.grad.numpy(), sc.softmax(x / w), atol=1e-15)


@pytest.mark.parametrize(
    "op", ["max", "min", "logsumexp", "logmeanexp", "softmax", "argmax", "log_softmax"]
)
def test_standardize_is_scale_and_shift_equivariant(op):
    x = RNG.normal(size=(3, 7))
    f = getattr(mol, op)
    base = f(x, width=0.5, standardize=True)
    scaled = f(3.7 * x - 11.0, width=0.5, standardize=True)
    if op in ("max", "min", "logsumexp", "logmeanexp"):
        np.testing.assert_allclose(scaled, 3.7 * base - 11.0, rtol=1e-13)
    else:  # invariant
        np.testing.assert_allclose(scaled, base, rtol=1e-12, atol=1e-14)
    # the width is width * std of the slice (finite entries)
    std = np.std(x, axis=-1, keepdims=True)
    if op not in ("max", "min"):
        by_hand = np.stack([f(row, width=0.5 * float(s[0])) for row, s in zip(x, std)])
        np.testing.assert_allclose(base, by_hand, rtol=1e-13)


def test_standardize_gradient_flows_through_the_std():
    x = RNG.normal(size=(2, 6))
    g = RNG.normal(size=x.shape)
    for op in ("softmax", "max"):
        f = getattr(mol, op)

        def total(v, f=f, op=op):
            out = f(v, width=0.6, standardize=True)
            return float(np.sum(out * (g if op == "softmax" else g[:, 0])))

        numeric = _fd(total, x)
        xt = torch.tensor(x, requires_grad=True)
        out = f(xt, width=0.6, standardize=True)
        (out * torch.tensor(g if op == "softmax" else g[:, 0])).sum().backward()
        np.testing.assert_allclose(xt.grad.numpy(), numeric, atol=1e-8)
        jg = jax.grad(lambda v, f=f, op=op: jnp.sum(
            f(v, width=0.6, standardize=True) * (g if op == "softmax" else g[:, 0])
        ))(jnp.asarray(x))  # fmt: skip
        np.testing.assert_allclose(np.asarray(jg), numeric, atol=1e-8)


def test_standardize_edges():
    inf = math.inf
    # a constant slice: the hard value, finite gradients
    xt = torch.tensor([[2.0, 2.0, 2.0], [0.0, 1.0, -inf]], dtype=torch.float64,
                      requires_grad=True)  # fmt: skip
    out = mol.max(xt, width=0.5, standardize=True)
    assert out[0].item() == 2.0
    assert out[1].item() == pytest.approx(float(mol.max(np.array([0.0, 1.0]), width=0.25)))
    out.sum().backward()
    assert torch.isfinite(xt.grad).all()
    with pytest.raises(ValueError, match="standardize"):
        mol.max(np.ones(3), tol=0.1, standardize=True)
    with pytest.raises(ValueError, match="standardize"):
        mol.max(np.ones(3), width=0.1, method="power", standardize=True)
    with pytest.raises(TypeError, match="standardize must be True or False"):
        mol.softmax(np.ones(3), width=0.1, standardize=1)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_logmeanexp_at_widths_far_above_the_spread(backend):
    """``logsumexp - w log n`` cancelled to ``eps w log n``: float16 [0, 0, 0] at
    w = 3e6 gave 0.25 (the long fuzz profile), float32 [0.1, 0.2, 0.3] at w = 1e6 gave
    0.25 (the hostile review), float64 [1, 3] at w = 1e20 gave 3, above the max's
    neighbourhood of the mean. Against mpmath at 50 digits."""
    import mpmath

    def reference(values, width):
        with mpmath.workdps(50):
            terms = [mpmath.exp(mpmath.mpf(float(v)) / width) for v in values]
            return float(width * mpmath.log(mpmath.fsum(terms) / len(values)))

    cases = [([0.0, 0.0, 0.0], 3.16e6, "float16"), ([0.1, 0.2, 0.3], 1e6, "float32"),
             ([1.0, 3.0], 1e20, "float64"), ([-2.0, 0.5, 7.0], 1e3, "float64"),
             ([0.0, -1e4], 1.0, "float64")]  # fmt: skip
    for values, width, dtype in cases:
        x = np.asarray(values, dtype=dtype)
        x = {"numpy": x, "torch": torch.tensor(x), "jax": jnp.asarray(x)}[backend]
        got = float(mol.logmeanexp(x, width=width))
        tolerance = 4 * float(np.finfo(dtype).eps) * max(abs(v) for v in values) + 1e-300
        assert abs(got - reference(values, width)) <= tolerance, (values, width, dtype, got)
