"""No overflow, NaN or inf where the true value is finite; limits at ±inf; dtypes kept."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mollifier as mol
from conftest import OPS, op_kernel_pairs, to_backend, to_numpy

PAIRS = op_kernel_pairs()
WIDTHS = (1e-8, 1e-3, 1.0, 1e8)
DTYPES = {
    "numpy": ("float16", "float32", "float64"),
    "torch": ("float16", "bfloat16", "float32", "float64"),
    "jax": ("float16", "bfloat16", "float32", "float64"),
}
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
MAX = {"float16": 65504.0, "bfloat16": 3.3895e38, "float32": 3.4028e38, "float64": 1.7976e308}


def extreme_points(dtype):
    big = MAX[dtype]
    return [-big, -1e4, -2.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 1.0, 1e4, big]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
def test_finite_and_accurate_in_every_dtype(backend, op, kernel):
    fn = OPS[op]
    for dtype in DTYPES[backend]:
        xs = extreme_points(dtype)
        x = to_backend(backend, xs, dtype)
        x_exact = to_numpy(x)  # the inputs as the dtype holds them, in float64
        for width in WIDTHS:
            out = fn(x, width=width, kernel=kernel)
            assert str(out.dtype).endswith(dtype), (dtype, out.dtype)
            got = to_numpy(out)
            expected = to_numpy(fn(x_exact, width=width, kernel=kernel))
            representable = np.isfinite(expected) & (np.abs(expected) <= MAX[dtype])
            assert np.all(np.isfinite(got[representable])), (dtype, width, got, expected)
            # computed in float32 (or float64) and rounded once: a few ulps of the output,
            # and for staircases of x (their reduction is exact, the rounding of x is not)
            scale = np.maximum(
                np.maximum(1.0, np.abs(expected)), np.abs(x_exact) * (op == "quantize")
            )
            tolerance = 8 * EPS[dtype] * scale
            if op in ("clip", "quantize"):
                # several kernel tails of size w E|U| cancel when w is much wider than
                # the breakpoint spacing: documented error eps_compute * w * E|U| per kink
                compute_eps = EPS["float64" if dtype == "float64" else "float32"]
                tolerance = tolerance + 4 * compute_eps * width * min(
                    mol.kernels[kernel].mean_abs, 1e300
                )
            error = np.abs(got - expected)[representable]
            assert np.all(error <= tolerance[representable]), (dtype, width, got, expected)


@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
def test_nan_in_nan_out_and_infinite_limits(op, kernel):
    fn = OPS[op]
    x = np.array([np.nan, np.inf, -np.inf])
    out = fn(x, width=0.5, kernel=kernel)
    assert np.isnan(out[0])
    hard = {
        "step": (1, 0), "sign": (1, -1), "relu": (np.inf, 0), "leaky_relu": (np.inf, -np.inf),
        "abs": (np.inf, np.inf), "clip": (2, -1), "hinge": (0, np.inf), "floor": (np.inf, -np.inf),
        "ceil": (np.inf, -np.inf), "round": (np.inf, -np.inf), "trunc": (np.inf, -np.inf),
        "frac": (np.nan, np.nan), "quantize": (np.inf, -np.inf), "gelu": (np.inf, 0),
        "swish": (np.inf, 0),
    }[op]  # fmt: skip
    if kernel == "cauchy" and op in ("gelu", "swish"):
        hard = (np.inf, -0.5 / np.pi)  # x K(x/w) -> -w/pi: the Cauchy tail is 1/(pi |t|)
    np.testing.assert_array_equal(out[1:], np.array(hard, dtype=float))


@pytest.mark.parametrize(("op", "kernel"), PAIRS, ids=[f"{o}-{k}" for o, k in PAIRS])
def test_gradients_finite_everywhere(op, kernel):
    fn = OPS[op]
    for dtype in (torch.float32, torch.float64):
        big = torch.finfo(dtype).max
        x = torch.tensor([-big, -1e4, -1.0, 0.0, 1e-30, 0.5, 1.0, 1e4, big], dtype=dtype)
        for width in WIDTHS:
            xg = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(fn(xg, width=width, kernel=kernel).sum(), xg)
            assert torch.all(torch.isfinite(grad)), (dtype, width, grad)
    xj = jnp.array([-1e300, -1e4, -1.0, 0.0, 1e-30, 0.5, 1.0, 1e4, 1e300])
    for width in WIDTHS:
        grad = jax.vmap(jax.grad(lambda v, w=width: fn(v, width=w, kernel=kernel)))(xj)
        assert np.all(np.isfinite(np.asarray(grad))), (width, grad)


def test_integers_become_the_default_float():
    assert mol.relu(np.arange(3), width=1.0).dtype == np.float64
    assert mol.floor(torch.arange(3), width=0.1).dtype == torch.get_default_dtype()
    assert mol.step(jnp.arange(3), width=1.0).dtype == jnp.asarray(0.0).dtype
    assert isinstance(mol.relu(2, width=1.0), np.ndarray)
    assert math.isclose(float(mol.relu(0, width=1.0)), math.log(2.0))
