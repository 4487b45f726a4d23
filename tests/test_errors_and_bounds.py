"""Bad input raises clear errors naming the argument; bounds and tol= are consistent."""

import math

import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import OPS, finite_mean_kernels

X = np.linspace(-3, 3, 7)


@pytest.mark.parametrize("name", sorted(OPS))
def test_bad_width_and_tol(name):
    fn = OPS[name]
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="width"):
            fn(X, width=bad)
    with pytest.raises(TypeError, match="width"):
        fn(X, width="wide")
    with pytest.raises(TypeError, match="width"):
        fn(X, width=True)
    with pytest.raises(ValueError, match="not both"):
        fn(X, width=1.0, tol=0.1)
    with pytest.raises(ValueError, match="kernel must be one of .*gaussian"):
        fn(X, width=1.0, kernel="gauss")
    with pytest.raises(TypeError, match="dtype"):
        fn(np.array([True, False]), width=1.0)
    with pytest.raises(TypeError, match="dtype"):
        fn(np.array([1 + 1j]), width=1.0)
    with pytest.raises(TypeError, match="x must be"):
        fn("text", width=1.0)


def test_width_is_required():
    with pytest.raises(ValueError, match="give width="):
        mol.relu(X)


@pytest.mark.parametrize("name", ["relu", "abs", "hinge", "leaky_relu"])
def test_cauchy_with_a_growing_function_says_why(name):
    with pytest.raises(ValueError, match="cauchy.*diverges.*E\\|U\\| = inf"):
        OPS[name](X, width=1.0, kernel="cauchy")


def test_jumps_have_no_tolerance_width():
    for name in ("step", "sign", "floor", "ceil", "round", "trunc", "frac", "quantize"):
        with pytest.raises(ValueError, match="jumps.*pass width="):
            OPS[name](X, tol=1e-3)
    with pytest.raises(ValueError, match="no sup-norm error bound"):
        mol.error_bound("delta", width=1.0)


def test_op_parameters_are_validated():
    with pytest.raises(ValueError, match="lower < upper"):
        mol.clip(X, 1.0, -1.0, width=0.1)
    with pytest.raises(ValueError, match="step"):
        mol.quantize(X, 0.0, width=0.1)
    with pytest.raises(TypeError, match="negative_slope"):
        mol.leaky_relu(X, "a", width=0.1)
    with pytest.raises(ValueError, match="margin"):
        mol.hinge(X, math.nan, width=0.1)


def test_piecewise_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        mol.Piecewise([1.0, 0.0], [[0], [1], [2]])
    with pytest.raises(ValueError, match="len\\(breakpoints\\) \\+ 1"):
        mol.Piecewise([0.0], [[0]])
    with pytest.raises(ValueError, match="degree <= 2"):
        mol.Piecewise([0.0], [[0], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="finite"):
        mol.Piecewise([math.inf], [[0], [1]])
    with pytest.raises(TypeError, match="Piecewise or a callable"):
        mol.smooth("floor", width=1.0)


@pytest.mark.parametrize("kernel", finite_mean_kernels())
@pytest.mark.parametrize("name", ["relu", "abs", "hinge", "leaky_relu", "clip", "gelu", "swish"])
def test_tol_picks_a_width_whose_measured_error_is_within_tol(name, kernel):
    params = {"negative_slope": 0.1} if name == "leaky_relu" else {}
    tol = 1e-3
    width = mol.width_for(name, kernel=kernel, tol=tol, **params)
    assert mol.error_bound(name, kernel=kernel, width=width, **params) == pytest.approx(tol)
    x = np.linspace(-0.05, 0.05, 20001) + (1.0 if name == "hinge" else 0.0)
    hard = {
        "relu": np.maximum(x, 0), "abs": np.abs(x), "hinge": np.maximum(1 - x, 0),
        "leaky_relu": np.where(x >= 0, x, 0.1 * x), "clip": np.clip(x, -1.0, 2.0),
        "gelu": np.maximum(x, 0), "swish": np.maximum(x, 0),
    }[name]  # fmt: skip
    smooth = OPS[name](x, tol=tol, kernel=kernel)
    np.testing.assert_allclose(smooth, OPS[name](x, width=width, kernel=kernel), rtol=0, atol=0)
    assert np.max(np.abs(smooth - hard)) <= tol * (1 + 1e-9)


def test_bound_values():
    assert mol.error_bound("relu", kernel="gaussian", width=2.0) == pytest.approx(
        2.0 * math.sqrt(2 / math.pi) / 2
    )
    assert mol.error_bound(mol.abs, kernel="laplace", width=3.0) == pytest.approx(3.0)
    assert mol.error_bound("floor", width=1e-3) == 0.5
    assert mol.error_bound("quantize", width=1e-3, step=0.25) == 0.125
    assert mol.error_bound("swish", kernel="logistic", width=1.0) == pytest.approx(
        0.27846, abs=1e-5
    )
    assert mol.error_bound("gelu", kernel="gaussian", width=1.0) == pytest.approx(0.16997, abs=1e-5)
    assert math.isinf(mol.error_bound("clip", kernel="cauchy", width=1.0))
    f = mol.Piecewise([0.0, 1.0], [[0], [0, 3], [2]])  # slope 3, jump -1 at 1
    assert mol.error_bound(f, kernel="uniform", width=0.1) == pytest.approx(0.5 + 3 * 0.1 * 0.5)


def test_torch_device_and_requires_grad_preserved():
    x = torch.linspace(-2, 2, 5, dtype=torch.float32, requires_grad=True)
    y = mol.floor(x, width=0.2)
    assert y.device == x.device and y.dtype == torch.float32 and y.requires_grad
