"""The torch adapter's fused kink forms (ReLU, abs, leaky ReLU, hinge, clip under the
Gaussian, logistic, Laplace and compact polynomial kernels) against the generic formula they replace: the same values and
slopes bit for bit over extreme inputs, every width and dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mollifier as mol
from mollifier._adapters import torch as adapter

COMPACT = ["uniform", "epanechnikov", "biweight", "triweight"]
CONCAVE = mol.Piecewise([1.0], [[0.0, 1.0], [1.0]])  # min(x, 1)
FALLING = mol.Piecewise([0.0, 0.5], [[1.0], [1.0, -4.0], [-1.0]])
OPS = {
    "relu": lambda v, **k: mol.relu(v, **k),
    "abs": lambda v, **k: mol.abs(v, **k),
    "leaky_relu": lambda v, **k: mol.leaky_relu(v, negative_slope=0.3, **k),
    "hinge": lambda v, **k: mol.hinge(v, **k),
    "hinge at 0": lambda v, **k: mol.hinge(v, margin=0.0, **k),
    "concave": lambda v, **k: mol.smooth(CONCAVE, **k)(v),
    "clip": lambda v, **k: mol.clip(v, -1.0, 2.0, **k),
    "clip decreasing": lambda v, **k: mol.smooth(FALLING, **k)(v),
}


def _extreme(dtype: torch.dtype) -> torch.Tensor:
    top = 300 if dtype == torch.float64 else 38
    magnitudes = np.logspace(-top, top, 120)
    values = np.concatenate(
        [-magnitudes, magnitudes, np.linspace(-60, 60, 241), [0.0, -0.0, np.inf, -np.inf, np.nan]]
    )
    return torch.tensor(values, dtype=dtype)


def _value_and_slope(op, x, **knobs):
    xg = x.clone().requires_grad_(True)
    y = op(xg, **knobs)
    (slope,) = torch.autograd.grad(y.sum(), xg)
    return y.detach(), slope


WIDTHS = (1e-8, 1e-3, 0.1, 1.0, 1e3, 1e8)


def _assert_fused_is_generic(monkeypatch, table, ops, kernel, x, widths=WIDTHS, slope_atol=0.0):
    """Each op's value and slope with the adapter's ``table`` of fused forms, and with
    that table emptied (the generic formula): equal bit for bit (the slope to
    ``slope_atol``)."""
    for name, op in ops.items():
        for width in widths:
            fused = _value_and_slope(op, x, width=width, kernel=kernel)
            with monkeypatch.context() as patch:
                patch.setattr(adapter, table, {})
                generic = _value_and_slope(op, x, width=width, kernel=kernel)
            for got, want, atol in zip(fused, generic, (0.0, slope_atol), strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=atol, equal_nan=True,
                                           msg=f"{name}, w={width}")  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "laplace", *COMPACT])
def test_fused_kinks_equal_the_generic_formula(monkeypatch, kernel, dtype):
    _assert_fused_is_generic(monkeypatch, "KINKS", OPS, kernel, _extreme(dtype))


def test_the_fused_kink_is_taken_and_saves_only_x():
    formula = mol._engine.piecewise.formula(
        mol._engine.piecewise.RELU, 0.1, mol.kernels["gaussian"]
    )
    assert adapter._fused(formula) is not None
    x = torch.randn(100, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        mol.hinge(x, width=0.1, kernel="gaussian")
    assert len(saved) == 1 and saved[0] is x


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "laplace", *COMPACT])
def test_fused_kinks_under_vmap_and_double_backward(kernel):
    x = torch.linspace(-40.0, 40.0, 9, dtype=torch.float64).reshape(3, 3)
    op = OPS["hinge"]
    batched = torch.func.vmap(lambda row: op(row, width=0.5, kernel=kernel))(x)
    torch.testing.assert_close(batched, op(x, width=0.5, kernel=kernel), rtol=0, atol=0)
    xg = torch.linspace(-2.0, 2.0, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda v: op(v, width=0.5, kernel=kernel), (xg,))


def test_exp_of_negative_is_exp_in_the_subnormal_range():
    """Equal to torch.exp, but for one subnormal unit where both round a subnormal."""
    for dtype in (torch.float32, torch.float64):
        finfo = torch.finfo(dtype)
        a = -torch.logspace(-3, 3.2, 4001, dtype=dtype)
        a = torch.cat([a, torch.tensor([0.0, -0.0, -np.inf, np.nan], dtype=dtype)])
        torch.testing.assert_close(adapter._exp_of_negative(a.clone()), torch.exp(a),
                                   rtol=0, atol=finfo.smallest_normal * finfo.eps,
                                   equal_nan=True)  # fmt: skip


LEVELS = mol.Piecewise([-1.0, 0.5, 2.0], [[0.25], [-0.75], [1.5], [0.1]])  # a user's levels
JUMP_OPS = {
    "step": lambda v, **k: mol.step(v, **k),
    "sign": lambda v, **k: mol.sign(v, **k),
    "levels": lambda v, **k: mol.smooth(LEVELS, **k)(v),
}
JUMP_KERNELS = ["laplace", "cauchy", "sqrt", *COMPACT]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kernel", [*JUMP_KERNELS, "gaussian", "logistic"])
def test_fused_jumps_equal_the_generic_formula(monkeypatch, kernel, dtype):
    """Piecewise-constant shapes (step, sign, a user's levels): the fused jump form's
    values and slopes are the generic formula's bit for bit (the Gaussian and logistic
    step and sign keep their own native forms; their levels take the jump form)."""
    native = kernel in ("gaussian", "logistic")  # their step and sign: FUSED, not generic
    ops = {name: op for name, op in JUMP_OPS.items() if not native or name == "levels"}
    _assert_fused_is_generic(monkeypatch, "JUMPS", ops, kernel, _extreme(dtype))


@pytest.mark.parametrize("kernel", JUMP_KERNELS)
def test_the_fused_jump_is_taken_and_survives_vmap_and_double_backward(kernel):
    shape = mol._engine.piecewise.STEP
    formula = mol._engine.piecewise.formula(shape, 0.1, mol.kernels[kernel])
    assert adapter._fused(formula) is not None
    x = torch.linspace(-40.0, 40.0, 9, dtype=torch.float64).reshape(3, 3)
    for op in JUMP_OPS.values():
        batched = torch.func.vmap(lambda row, op=op: op(row, width=0.5, kernel=kernel))(x)
        torch.testing.assert_close(batched, op(x, width=0.5, kernel=kernel), rtol=0, atol=0)
    # not at 0, where the Laplace density has its kink
    xg = torch.linspace(-2.0, 2.0, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda v: mol.sign(v, width=0.5, kernel=kernel), (xg,))


STAIRS = {
    "floor": lambda v, **k: mol.floor(v, **k),
    "ceil": lambda v, **k: mol.ceil(v, **k),
    "round": lambda v, **k: mol.round(v, **k),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kernel", ["gaussian", "logistic", *JUMP_KERNELS])
def test_fused_staircases_equal_the_generic_formula(monkeypatch, kernel, dtype):
    """floor, ceil and round, in the kernel's direct sum or its own form: the generic
    formula's values and slopes bit for bit (the Gaussian density's subnormal values
    to one subnormal unit: exp is evaluated without its scalar slow path)."""
    finfo = torch.finfo(dtype)
    tiny = finfo.smallest_normal * finfo.eps if kernel == "gaussian" else 0.0
    widths = (1e-8, 1e-3, 0.1, 0.3, 0.7, 1.0, 2.0, 1e3, 1e8)
    _assert_fused_is_generic(monkeypatch, "JUMPS", STAIRS, kernel, _extreme(dtype), widths, tiny)
