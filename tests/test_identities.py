"""Identities between ops and agreement with the frameworks' own functions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sc
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import mollifier as mol

KERNELS = sorted(mol.kernels)
FINITE_MEAN = [k for k in KERNELS if math.isfinite(mol.kernels[k].mean_abs)]
x_values = st.floats(-1e3, 1e3, allow_nan=False)
widths = st.floats(1e-3, 1e2)


@pytest.mark.parametrize("kernel", FINITE_MEAN)
@given(x=x_values, w=widths)
@settings(max_examples=60, deadline=None)
def test_abs_is_two_relu_minus_x(kernel, x, w):
    a = mol.abs(np.array(x), width=w, kernel=kernel)
    r = mol.relu(np.array(x), width=w, kernel=kernel)
    assert a == pytest.approx(2 * r - x, rel=1e-12, abs=1e-12 * max(1, abs(x), w))
    assert a >= abs(x) - 1e-12 * max(1, abs(x))  # Jensen: the convex op is approximated from above
    assert r >= max(x, 0.0) - 1e-12 * max(1, abs(x))


@pytest.mark.parametrize("kernel", KERNELS)
@given(x=x_values, w=widths)
@settings(max_examples=60, deadline=None)
def test_step_sign_and_staircase_identities(kernel, x, w):
    xa = np.array(x)
    s, g = mol.step(xa, width=w, kernel=kernel), mol.sign(xa, width=w, kernel=kernel)
    assert g == pytest.approx(2 * s - 1, abs=2e-15)
    assert 0.0 <= s <= 1.0
    fl = mol.floor(xa, width=w, kernel=kernel)
    assert fl + mol.frac(xa, width=w, kernel=kernel) == pytest.approx(x, abs=1e-12 * max(1, abs(x)))
    assert mol.ceil(xa, width=w, kernel=kernel) == pytest.approx(fl + 1, abs=1e-12 * max(1, abs(x)))
    # periodicity and odd symmetry: floor_w(x + 1) = floor_w(x) + 1, floor_w(x) + floor_w(-x) = -1
    assert mol.floor(xa + 1, width=w, kernel=kernel) == pytest.approx(
        fl + 1, abs=1e-11 * max(1, abs(x))
    )
    assert fl + mol.floor(-xa, width=w, kernel=kernel) == pytest.approx(
        -1, abs=1e-11 * max(1, abs(x))
    )
    assert mol.round(-xa, width=w, kernel=kernel) == pytest.approx(
        -mol.round(xa, width=w, kernel=kernel), abs=1e-11 * max(1, abs(x))
    )


@pytest.mark.parametrize("kernel", KERNELS)
def test_monotone_and_limits(kernel):
    x = np.linspace(-5, 5, 2001)
    for op in (mol.step, mol.floor, mol.round, mol.trunc, mol.quantize):
        y = op(x, width=0.3, kernel=kernel)
        assert np.all(np.diff(y) >= -1e-14), op.__name__
    # width -> 0: the hard op at every continuity point
    xs = np.array([-2.7, -0.4, 0.3, 1.6, 9.2])
    np.testing.assert_allclose(mol.floor(xs, width=1e-6, kernel=kernel), np.floor(xs), atol=1e-5)
    np.testing.assert_allclose(mol.step(xs, width=1e-9, kernel=kernel), (xs > 0) * 1.0, atol=1e-8)
    np.testing.assert_allclose(
        mol.clip(xs, -1, 1, width=1e-9, kernel=kernel), np.clip(xs, -1, 1), atol=1e-8
    )


def test_logistic_is_softplus_sigmoid_and_two_term_logsumexp():
    x = np.linspace(-30, 30, 601)
    xt = torch.tensor(x)
    # (torch.nn.functional.softplus switches to x above 20 and is off by 2e-9 there)
    np.testing.assert_allclose(
        mol.relu(x, width=1.0), np.logaddexp(x, 0.0), rtol=1e-15, atol=1e-300
    )
    np.testing.assert_allclose(mol.step(x, width=1.0), torch.sigmoid(xt).numpy(), rtol=1e-15)
    np.testing.assert_allclose(mol.sign(x, width=0.5), np.tanh(x), atol=1e-15)
    # max(a, b) smoothed by the logistic kernel is w logsumexp([a, b] / w)
    a, b, w = 1.3, x, 0.7
    np.testing.assert_allclose(
        b + mol.relu(a - b, width=w), w * np.logaddexp(a / w, b / w), rtol=1e-14
    )
    np.testing.assert_allclose(
        mol.abs(x, width=0.5), 2 * 0.5 * np.log(2 * np.cosh(x / (2 * 0.5))), rtol=1e-13
    )


def test_gaussian_forms():
    x = np.linspace(-8, 8, 321)
    xt = torch.tensor(x)
    # torch's gelu uses 1 + erf, which loses relative precision in the left tail
    np.testing.assert_allclose(mol.gelu(x), F.gelu(xt).numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(mol.gelu(x), x * sc.ndtr(x), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(
        np.asarray(mol.gelu(jnp.array(x))),
        np.asarray(jax.nn.gelu(jnp.array(x), approximate=False)),
        rtol=1e-14,
        atol=1e-300,
    )
    np.testing.assert_allclose(mol.swish(x), F.silu(xt).numpy(), rtol=1e-14, atol=1e-300)
    sigma = 0.8
    relu = x * sc.ndtr(x / sigma) + sigma * np.exp(-x * x / (2 * sigma**2)) / math.sqrt(2 * math.pi)
    # the textbook form cancels in the left tail; compare absolutely there
    np.testing.assert_allclose(
        mol.relu(x, kernel="gaussian", width=sigma), relu, rtol=1e-13, atol=1e-16
    )
    np.testing.assert_allclose(
        mol.sign(x, kernel="gaussian", width=sigma), sc.erf(x / (math.sqrt(2) * sigma)), atol=1e-15
    )
    # SAU: leaky ReLU convolved with a Gaussian
    a = 0.2
    sau = (1 + a) / 2 * x + (1 - a) / 2 * (
        x * sc.erf(x / (math.sqrt(2) * sigma))
        + math.sqrt(2 / math.pi) * sigma * np.exp(-x * x / (2 * sigma**2))
    )
    np.testing.assert_allclose(
        mol.leaky_relu(x, a, kernel="gaussian", width=sigma), sau, rtol=1e-13, atol=1e-14
    )


def test_uniform_relu_is_sparse_plus():
    x = np.linspace(-3, 3, 121)
    np.testing.assert_allclose(
        mol.relu(x, kernel="uniform", width=1.0),
        np.asarray(jax.nn.sparse_plus(jnp.array(x))),
        atol=1e-15,
    )


def test_where_greater_less_equal_delta():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(mol.greater(x, 0.5, width=0.2), mol.step(x - 0.5, width=0.2))
    np.testing.assert_allclose(mol.less(x, 0.5, width=0.2), mol.step(0.5 - x, width=0.2))
    np.testing.assert_allclose(mol.where(x, 3.0, -1.0, width=0.2), -1 + 4 * mol.step(x, width=0.2))
    assert mol.equal(np.array(2.0), 2.0, width=0.1) == 1.0
    for kernel in KERNELS:
        grid = np.linspace(-40, 40, 400001)
        mass = np.trapezoid(mol.delta(grid, width=0.5, kernel=kernel), grid)
        inside = mol.kernels[kernel].cdf(np.array(80.0)) - mol.kernels[kernel].cdf(np.array(-80.0))
        # the uniform density jumps at +-w: the trapezoid rule errs by h * jump / 2 there
        assert mass == pytest.approx(inside, abs=3e-4 if kernel == "uniform" else 1e-6)
