"""Hostile review of the fused staircases (floor, ceil, round) in eager torch (commit
98e7337): regression tests for the bugs found around them, each marked with the number
of its finding in the review (float32 widths whose reciprocal overflows, the uniform
kernel's slope where two support edges meet, NaN slopes under a declared width range,
forward-mode AD). The fused form itself held up: it agrees bit for bit with the generic
formula in every case tried."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.func import jvp

import mollifier as mol
from mollifier._adapters import torch as adapter

TINY_F32 = [1e-39, 1e-100, 1e-300]  # 1/w beyond float32's max, above the engine's 1e-300 cut
HUGE_F32 = [1e39, 1e100, 1e199]  # beyond float32's max, below the engine's 1e200 cut


@pytest.mark.parametrize("width", TINY_F32)
@pytest.mark.parametrize("op", ["floor", "ceil", "round", "trunc", "frac"])
def test_float32_tiny_width_is_finite(op, width):  # finding 1
    x = torch.tensor([0.3, 0.0, 2.0, 0.5, -1.0], requires_grad=True)
    y = getattr(mol, op)(x, width=width)
    (grad,) = torch.autograd.grad(y.sum(), x)
    # float64 gives the hard staircase's midpoints at the jumps, finite
    want = getattr(mol, op)(x.detach().double(), width=width).float()
    assert not y.isnan().any(), y
    torch.testing.assert_close(y.detach(), want)
    assert not grad.isnan().any(), grad


@pytest.mark.parametrize("width", HUGE_F32)
def test_float32_huge_width_compact_kernel_is_its_limit(width):  # finding 1
    x = np.array([0.3, 0.0, 2.0], dtype=np.float32)
    for array in (torch.from_numpy(x), x, jnp.asarray(x)):
        y = np.asarray(mol.floor(array, width=width, kernel="uniform"))
        np.testing.assert_allclose(y, x - 0.5, rtol=1e-6)


@pytest.mark.parametrize(
    ("op", "width", "points"),
    [
        ("round", 0.5, [0.0, 1.0, -3.0]),  # round_w(x) = x exactly
        ("floor", 0.5, [0.5, -1.5]),  # floor_w(x) = x - 1/2 exactly
        ("floor", 1.0, [0.0, 2.0]),
        ("round", 1.0, [0.5, -2.5]),
        ("floor", 1.5, [0.5, 3.5]),
    ],
)
def test_uniform_staircase_of_integer_box_has_slope_one(op, width, points):  # finding 2
    # a box of integer length 2w convolved with a unit staircase is a straight line of
    # slope 1: the derivative is 1 everywhere, the points where support edges meet too
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    y = getattr(mol, op)(x, width=width, kernel="uniform")
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.ones_like(grad))
    gj = jax.vmap(jax.grad(lambda v: getattr(mol, op)(v, width=width, kernel="uniform")))(
        jnp.asarray(points, dtype=jnp.float32)
    )
    np.testing.assert_allclose(np.asarray(gj), 1.0, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["gaussian", "uniform"])
def test_width_range_slope_is_nan_at_nan(kernel):  # finding 3
    x = torch.tensor([math.nan, 0.3], dtype=torch.float64, requires_grad=True)
    width = torch.tensor(0.2, dtype=torch.float64)
    y = mol.floor(x, width=width, kernel=kernel, width_range=(0.05, 1.0))
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert math.isnan(grad[0].item()), grad  # as with a float width: NaN in, NaN out


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_forward_mode_jvp_of_a_staircase():  # finding 4
    x = torch.tensor([0.3, 1.2, -0.7], dtype=torch.float64)

    def f(v):
        return mol.floor(v, width=0.2)

    _, tangent = jvp(f, (x,), (torch.ones_like(x),))
    xr = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(f(xr).sum(), xr)
    torch.testing.assert_close(tangent, grad)


def test_fused_staircase_is_bitwise_generic_at_specials():  # guard for the fused form
    specials = [0.0, -0.0, 5e-324, math.inf, -math.inf, math.nan, 1e308, 2**52 + 0.5, 0.5, -2.5]
    x = torch.tensor(specials, dtype=torch.float64)
    for op in ("floor", "ceil", "round"):
        for kernel in ("gaussian", "uniform", "laplace", "cauchy"):
            for width in (0.1, 0.7, 1.5):
                got = []
                for table in (adapter.JUMPS, {}):
                    saved = adapter.JUMPS
                    adapter.JUMPS = table
                    try:
                        xr = x.clone().requires_grad_()
                        y = getattr(mol, op)(xr, width=width, kernel=kernel)
                        (grad,) = torch.autograd.grad(y.sum(), xr)
                    finally:
                        adapter.JUMPS = saved
                    got.append((y.detach().view(torch.int64), grad.view(torch.int64)))
                assert torch.equal(got[0][0], got[1][0]), (op, kernel, width)
                assert torch.equal(got[0][1], got[1][1]), (op, kernel, width)
