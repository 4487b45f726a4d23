"""The smooth max family: accuracy, bounds, masks, numerics, transforms, bad input."""

import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import scipy.special as sc
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mollifier as mol
from conftest import to_backend, to_numpy

# XLA on CPU flushes subnormals to zero (jnp.max([1e-308] * 2) is 0), so the bounds below,
# stated against NumPy's max, hold for normal numbers; subnormals are tested in test_fuzz
vectors = hnp.arrays(
    np.float64, st.integers(1, 12), elements=st.floats(-1e3, 1e3, allow_subnormal=False)
)
widths = st.floats(1e-3, 1e3)


def mp_logsumexp(x, w):
    with mp.workdps(40):
        return w * mp.log(mp.fsum(mp.exp(mp.mpf(v) / w) for v in x))


def test_logsumexp_against_mpmath_and_scipy():
    rng = np.random.default_rng(0)
    for w in (1e-4, 0.1, 1.0, 37.0, 1e3):
        x = rng.normal(scale=50.0, size=17)
        got = float(mol.logsumexp(x, width=w))
        assert got == pytest.approx(float(mp_logsumexp(x, w)), rel=1e-13)
    x = rng.normal(size=(4, 9))
    np.testing.assert_allclose(mol.logsumexp(x, width=1.0), sc.logsumexp(x, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(mol.softmax(x, width=1.0), sc.softmax(x, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(mol.logsumexp(x, width=1.0, axis=None), sc.logsumexp(x), rtol=1e-14)
    np.testing.assert_allclose(
        mol.logsumexp(x, width=1.0, axis=(0,)), sc.logsumexp(x, axis=0), rtol=1e-14
    )


def test_softmax_mean_and_power_against_mpmath():
    x = np.array([0.3, -1.2, 2.5, 2.4, 0.0])
    for w in (0.05, 0.7, 20.0):
        with mp.workdps(40):
            weights = [mp.exp(mp.mpf(v) / w) for v in x]
            mean = mp.fsum(wt * mp.mpf(v) for wt, v in zip(weights, x)) / mp.fsum(weights)
            power = mp.fsum(mp.mpf(abs(v)) ** (1 / mp.mpf(w)) for v in x) ** mp.mpf(w)
        assert float(mol.max(x, width=w, method="softmax")) == pytest.approx(float(mean), rel=1e-13)
        assert float(mol.max(np.abs(x), width=w, method="power")) == pytest.approx(
            float(power), rel=1e-13
        )


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@given(x=vectors, w=widths)
@settings(max_examples=60, deadline=None)
def test_bounds_and_properties(backend, x, w):
    n, top = x.size, x.max()
    xb = to_backend(backend, x)
    lse = float(mol.logsumexp(xb, width=w))
    slack = 1e-12 * max(1.0, abs(top), w)
    assert top - slack <= lse <= top + w * math.log(n) + slack
    mean = float(mol.max(xb, width=w, method="softmax"))
    gap = float(sc.lambertw((n - 1) / math.e).real) if n > 1 else 0.0
    assert max(x.mean(), top - gap * w) - slack <= mean <= top + slack
    p = to_numpy(mol.softmax(xb, width=w))
    assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
    assert float(mol.min(xb, width=w)) == pytest.approx(-float(mol.max(-xb, width=w)), abs=slack)
    # monotone in the width (the derivative in w is the softmax entropy)
    assert float(mol.logsumexp(xb, width=2 * w)) >= lse - slack
    power = float(mol.max(to_backend(backend, np.abs(x)), width=w / 1e3, method="power"))
    m = np.abs(x).max()
    assert m * (1 - 1e-12) <= power <= m * n ** (w / 1e3) * (1 + 1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_width_to_zero_and_infinity(backend):
    x = to_backend(backend, [1.0, 4.0, -2.0, 3.5])
    assert float(mol.max(x, width=1e-8)) == 4.0
    assert float(mol.max(x, width=1e-8, method="softmax")) == 4.0
    assert float(mol.max(x, width=1e8, method="softmax")) == pytest.approx(1.625, abs=1e-6)
    np.testing.assert_allclose(to_numpy(mol.argmax(x, width=1e-8)), [0, 1, 0, 0])
    np.testing.assert_allclose(to_numpy(mol.softmax(x, width=1e8)), [0.25] * 4, atol=1e-7)


@pytest.mark.parametrize(
    ("backend", "dtype"),
    [
        (b, d)
        for b in ("numpy", "torch", "jax")
        for d in ("float16", "bfloat16", "float32", "float64")
        if not (b == "numpy" and d == "bfloat16")
    ],  # NumPy has no bfloat16
)
def test_no_overflow_at_extremes(backend, dtype):
    big = {"float16": 65504.0, "bfloat16": 3.38e38, "float32": 3.4e38, "float64": 1.7e308}[dtype]
    x = to_backend(backend, [[-big, big, 0.0], [1.0, 2.0, 3.0], [-big, -big, -big]], dtype)
    # lse <= max + w log n: with w = 1e8 the true value exceeds float16's range
    for w in (1e-8, 1.0) if dtype == "float16" else (1e-8, 1.0, 1e8):
        for out in (
            mol.logsumexp(x, width=w),
            mol.max(x, width=w, method="softmax"),
            mol.softmax(x, width=w),
        ):
            assert str(out.dtype).endswith(dtype)
            assert np.all(np.isfinite(to_numpy(out))), (w, out)
        assert to_numpy(mol.logsumexp(x, width=w))[0] == pytest.approx(big, rel=1e-2)


def test_gradient_is_softmax_and_finite():
    x = torch.tensor(
        [[1e30, -1e30, 0.0], [1.0, 2.0, 3.0], [-math.inf, 0.5, -math.inf]],
        dtype=torch.float64,
        requires_grad=True,
    )
    for w in (1e-8, 0.3, 1e8):
        (g,) = torch.autograd.grad(mol.logsumexp(x, width=w).sum(), x)
        np.testing.assert_allclose(g.numpy(), mol.softmax(x.detach().numpy(), width=w), atol=1e-15)
        for method in ("softmax",):
            (g2,) = torch.autograd.grad(mol.max(x, width=w, method=method).sum(), x)
            assert torch.all(torch.isfinite(g2))
    gj = jax.grad(lambda v: mol.logsumexp(v, width=0.5).sum())(
        jnp.array([[-jnp.inf, -jnp.inf], [1.0, 2.0]])
    )
    assert np.all(np.isfinite(np.asarray(gj)))


def test_masks_and_non_finite():
    x = np.array(
        [[1.0, -np.inf, 2.0], [-np.inf, -np.inf, -np.inf], [1.0, np.inf, 0.0], [1.0, np.nan, 0.0]]
    )
    lse = mol.logsumexp(x, width=1.0)
    assert lse[0] == pytest.approx(np.logaddexp(1.0, 2.0))
    assert lse[1] == -np.inf and lse[2] == np.inf and np.isnan(lse[3])
    p = mol.softmax(x, width=1.0)
    np.testing.assert_array_equal(p[1], [0.0, 0.0, 0.0])
    assert p[0, 1] == 0.0
    mask = np.array([True, False, True])
    y = np.array([1.0, 100.0, 2.0])
    assert mol.logsumexp(y, width=1.0, where=mask) == pytest.approx(np.logaddexp(1.0, 2.0))
    assert mol.softmax(y, width=1.0, where=mask)[1] == 0.0
    assert float(mol.min(y, width=1e-6, where=mask)) == pytest.approx(1.0)
    assert mol.max(x[:1], width=1.0, method="softmax")[0] == pytest.approx(
        (np.e * 1 + np.e**2 * 2) / (np.e + np.e**2)
    )


def test_tol_picks_the_width():
    x = np.array([0.0, 0.0, 0.0, 0.0])  # equality: the logsumexp bound is attained
    assert float(mol.logsumexp(x, tol=1e-3)) == pytest.approx(1e-3)
    gap = float(mol.max(np.array([0.0, -1.2785 * 0.01]), tol=0.01 * 0.27846, method="softmax"))
    assert -gap <= 0.01 * 0.27846 + 1e-9


def test_straight_through_reductions():
    x = torch.tensor([1.0, 3.0, 3.0, -2.0], dtype=torch.float64, requires_grad=True)
    out = mol.max(x, width=0.5, straight_through=True)
    assert out.item() == 3.0
    (g,) = torch.autograd.grad(out, x)
    np.testing.assert_allclose(g.numpy(), mol.softmax(x.detach().numpy(), width=0.5), atol=1e-15)
    hard = mol.argmax(x, width=0.5, straight_through=True)
    np.testing.assert_array_equal(hard.detach().numpy(), [0, 0.5, 0.5, 0])


def test_argmax_index_and_pairwise():
    x = np.array([[0.0, 5.0, 1.0], [9.0, 0.0, 0.0]])
    np.testing.assert_allclose(mol.argmax(x, width=1e-3, index=True), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(mol.argmin(x, width=1e-3, index=True), [0.0, 1.5], atol=1e-12)
    a, b = np.linspace(-3, 3, 13), 0.7
    np.testing.assert_allclose(
        mol.maximum(a, b, width=0.4), 0.4 * np.logaddexp(a / 0.4, b / 0.4), rtol=1e-14
    )
    np.testing.assert_allclose(
        mol.minimum(a, b, width=0.4), -0.4 * np.logaddexp(-a / 0.4, -b / 0.4), rtol=1e-14
    )
    # two-input logsumexp is the logistic-smoothed relu
    stacked = np.stack([a, np.full_like(a, b)], axis=-1)
    np.testing.assert_allclose(
        mol.logsumexp(stacked, width=0.4), mol.maximum(a, b, width=0.4), rtol=1e-14
    )
    for kernel in ("gaussian", "epanechnikov"):
        assert np.all(mol.maximum(a, b, width=0.4, kernel=kernel) >= np.maximum(a, b) - 1e-15)


def test_norms():
    v = np.array([3.0, -4.0, 0.0, 1e-9])
    assert float(mol.norm(v, width=1e-6)) == pytest.approx(5.0, abs=1e-5)
    assert float(mol.norm(v, ord=1, width=1e-6)) == pytest.approx(7.0, abs=1e-5)
    assert float(mol.norm(v, ord=np.inf, width=1e-6)) == pytest.approx(4.0, abs=1e-5)
    assert float(mol.norm(v, ord=0, width=1e-3, kernel="gaussian")) == pytest.approx(2.0, abs=1e-6)
    a, b = np.array([1.0, 5.0]), np.array([4.0, 1.0])
    assert float(mol.norm(a - b, ord=np.inf, width=1e-6)) == pytest.approx(
        4.0, abs=1e-5
    )  # Chebyshev
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for order in (0, 1, 2, math.inf):
        (g,) = torch.autograd.grad(mol.norm(x, ord=order, width=0.1), x)
        assert torch.all(torch.isfinite(g))
    w = 0.05
    bound = 4**0.5 * w * mol.kernels["logistic"].mean_abs
    assert 5.0 <= float(mol.norm(v, width=w)) <= 5.0 + bound


def test_transforms():
    x = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 4.0]])
    expected = mol.logsumexp(x, width=0.3)
    np.testing.assert_allclose(
        np.asarray(jax.jit(lambda v: mol.logsumexp(v, width=0.3))(jnp.array(x))),
        expected,
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        np.asarray(jax.vmap(lambda v: mol.max(v, width=0.3, method="softmax"))(jnp.array(x))),
        mol.max(x, width=0.3, method="softmax"),
        rtol=1e-14,
    )

    def many(v):
        return torch.stack(
            [
                mol.logsumexp(v, width=0.3),
                mol.max(v, width=0.3, method="softmax"),
                mol.max(v.abs(), width=0.3, method="power"),
                mol.norm(v, width=0.3),
            ]
        )

    torch._dynamo.reset()
    compiled = torch.compile(many, fullgraph=True)
    np.testing.assert_allclose(
        compiled(torch.tensor(x)).numpy(), many(torch.tensor(x)).numpy(), rtol=1e-12
    )


def test_bad_input():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        mol.logsumexp(x, axis=2, width=1.0)
    with pytest.raises(TypeError, match="axis"):
        mol.logsumexp(x, axis=1.5, width=1.0)
    with pytest.raises(ValueError, match="repeated"):
        mol.logsumexp(x, axis=(0, -2), width=1.0)
    with pytest.raises(ValueError, match="width"):
        mol.max(x, width=0.0)
    with pytest.raises(ValueError, match="method"):
        mol.max(x, width=1.0, method="median")
    with pytest.raises(ValueError, match="empty"):
        mol.max(np.ones((2, 0)), width=1.0, method="softmax")
    assert mol.logsumexp(np.ones((2, 0)), width=1.0).tolist() == [-np.inf, -np.inf]
    assert np.isnan(mol.max(np.array([1.0, -2.0]), width=0.1, method="power"))
    with pytest.raises(ValueError, match="ord"):
        mol.norm(x, ord=-1, width=1.0)
    with pytest.raises(ValueError, match="single int axis"):
        mol.argmax(x, axis=None, width=1.0, index=True)


def test_a_nan_entry_makes_its_softmax_slice_nan(backend):
    x = to_backend(backend, [[np.nan, 1.0, 3.0], [0.0, 1.0, 2.0]])
    p = to_numpy(mol.softmax(x, width=0.01))
    assert np.all(np.isnan(p[0])) and np.allclose(p[1].sum(), 1.0)


def test_power_max_ignores_masked_entries():
    x = np.array([1.0, 2.0, 3.0])
    got = mol.max(x, width=0.1, method="power", where=np.array([True, True, False]))
    assert got == pytest.approx(mol.max(x[:2], width=0.1, method="power"), rel=1e-15)


def test_argmin_keeps_low_precision_dtypes():
    assert mol.argmin(np.float16([0.0, 5.0, 1.0]), width=0.1).dtype == np.float16
    x = torch.tensor([0.0, 5.0, 1.0], dtype=torch.bfloat16)
    assert mol.argmin(x, width=0.1).dtype == torch.bfloat16 == mol.argmax(x, width=0.1).dtype
