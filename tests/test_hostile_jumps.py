"""Hostile review of the torch namespace's bit-form ``where``/``isfinite`` and the fused
jump form (commit 14dec79): regression tests for its findings, each marked with its
finding number (forward-mode AD and jit.trace above the bit forms' size, overflowing
levels refused by name, constant levels, h / w overflowing, signed zeros, layouts and
scalars of ``where``)."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwad

import mollifier as mol
from mollifier import _backend
from mollifier._adapters import torch as adapter

N = 1 << 15  # above _FAST_SELECT_MIN
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit


def _namespace() -> _backend._TorchNamespace:
    return _backend._TorchNamespace(torch)


def test_where_keeps_forward_mode_tangents():  # finding 1
    ns = _namespace()
    condition = torch.arange(N) % 2 == 0
    x = torch.linspace(-1.0, 1.0, N)
    with fwad.dual_level():
        dual = fwad.make_dual(x, torch.ones(N))
        got = fwad.unpack_dual(ns.where(condition, dual, torch.zeros(N))).tangent
        want = fwad.unpack_dual(torch.where(condition, dual, torch.zeros(N))).tangent
    assert got is not None
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_isclose_under_forward_ad_does_not_drop_the_tangent():  # finding 1
    x = torch.linspace(-2.0, 2.0, N, dtype=torch.float64)
    with fwad.dual_level():
        dual = fwad.make_dual(x, torch.ones_like(x))
        try:
            out = mol.isclose(dual, 0.1, width=0.3)
        except NotImplementedError:
            return  # what it does below the size threshold: an honest refusal
        tangent = fwad.unpack_dual(out).tangent
    assert tangent is not None and bool((tangent != 0).any())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace_works_above_the_bit_form_threshold():  # finding 2
    x = torch.linspace(-2.0, 2.0, N)
    traced = torch.jit.trace(lambda v: mol.step(v, width=0.3, kernel="cauchy"), (x,))
    torch.testing.assert_close(traced(x), mol.step(x, width=0.3, kernel="cauchy"), rtol=0, atol=0)


def test_overflowing_jump_is_refused_by_name():  # finding 3
    """A jump from -1e308 to 1.7e308 is inf in float64: refused, never NaN or swapped
    levels (the smoothing of f / s times s is the user's way out, tested here)."""
    shape = mol.Piecewise([0.0], [[-1e308], [1.7e308]])
    for kernel in ("laplace", "cauchy", "gaussian", "uniform"):
        g = mol.smooth(shape, width=1.0, kernel=kernel)
        for x in (torch.tensor([-2.0, 2.0], dtype=torch.float64), np.array([-2.0, 2.0])):
            with pytest.raises(ValueError, match="beyond the largest"):
                g(x)
    scaled = mol.smooth(mol.Piecewise([0.0], [[-1e308 / 4], [1.7e308 / 4]]), width=1.0,
                        kernel="laplace")  # fmt: skip
    x = [-2.0, 2.0]
    got = (scaled(torch.tensor(x, dtype=torch.float64)) * 4).tolist()
    for xi, gi in zip(x, got, strict=True):
        truth = mp.mpf(-1e308) + (mp.mpf(1.7e308) + mp.mpf(1e308)) * (
            mp.exp(xi) / 2 if xi < 0 else 1 - mp.exp(-xi) / 2
        )
        assert math.isfinite(gi) and abs(gi - truth) <= 1e-12 * abs(truth), (xi, gi, truth)


def test_constant_levels_backward_under_cauchy():  # finding 4
    for kernel in ("cauchy", "sqrt"):
        g = mol.smooth(mol.Piecewise([0.0], [[2.0], [2.0]]), width=0.5, kernel=kernel)
        x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
        g(x).sum().backward()
        assert x.grad is not None
        assert torch.equal(x.grad, torch.zeros(3))


def test_constant_levels_under_laplace():  # finding 4 (pre-existing, kink path)
    g = mol.smooth(mol.Piecewise([0.0], [[2.0], [2.0]]), width=0.5, kernel="laplace")
    x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    y = g(x)
    y.sum().backward()
    assert torch.equal(y.detach(), torch.full((3,), 2.0))


def test_level_beyond_float32_range_is_refused_by_name():  # finding 5
    g = mol.smooth(mol.Piecewise([0.0], [[0.0], [1e39]]), width=1.0, kernel="laplace")
    with pytest.raises(ValueError, match="beyond the largest torch.float32"):
        g(torch.tensor([-100.0, 0.0, 100.0]))  # was a RuntimeError, and [inf, nan] generic
    out = g(torch.tensor([-100.0, 0.0, 100.0], dtype=torch.float64))  # fits float64
    assert abs(out[0].item() - 1e39 * 0.5 * math.exp(-100.0)) <= 1e-12 * out[0].item()


def test_gradient_is_not_nan_far_from_a_jump():  # finding 6
    g = mol.smooth(mol.Piecewise([0.0], [[0.0], [1e10]]), width=1e-29, kernel="laplace")
    x = torch.tensor([-1.0, 1.0], requires_grad=True)
    g(x).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.zeros(2))  # the truth underflows to 0, not NaN
    for kernel in ("laplace", "cauchy", "uniform", "gaussian"):  # fused and generic alike
        for jumps in (adapter.JUMPS, {}):
            g = mol.smooth(mol.Piecewise([0.0], [[0.0], [1e10]]), width=1e-29, kernel=kernel)
            saved, adapter.JUMPS = adapter.JUMPS, jumps
            try:
                x = torch.tensor([-1.0, 1.0], requires_grad=True)
                g(x).sum().backward()
            finally:
                adapter.JUMPS = saved
            assert not torch.isnan(x.grad).any(), (kernel, x.grad)


def test_double_backward_signed_zero_is_the_truths(monkeypatch):  # finding 7
    def second(v):
        v = v.clone().requires_grad_()
        (g,) = torch.autograd.grad(mol.step(v, width=1e8, kernel="cauchy").sum(), v,
                                   create_graph=True)  # fmt: skip
        (h,) = torch.autograd.grad(g.sum(), v)
        return h

    # the truth, -x k''(0) / w^3 ~ -1e-324, underflows to -0: the fused form keeps the
    # sign; the generic form adds the derivative of its zero smoothed-derivative term
    # (+0) and gives +0. Equal as numbers, as the first derivatives and values are bits.
    x = torch.tensor([1e-300], dtype=torch.float64)
    fused = second(x)
    monkeypatch.setattr(adapter, "JUMPS", {})
    generic = second(x)
    assert fused.item() == generic.item() == 0.0
    assert bool(torch.signbit(fused)), "the true second derivative's sign"


def test_where_layout_matches_torch():  # finding 8
    ns = _namespace()
    condition = torch.rand(256, 256) < 0.5
    yes = torch.randn(256, 256).t()
    no = torch.randn(256, 256)
    assert ns.where(condition, yes, no).stride() == torch.where(condition, yes, no).stride()


def test_where_scalar_types_match_torch():  # finding 9
    ns = _namespace()
    condition = torch.arange(N) % 2 == 0
    x = torch.randn(N)
    out = torch.where(condition, x, 1j)
    assert ns.where(condition, x, 1j).dtype == out.dtype
    for bad in (np.zeros(N, dtype=np.float32), 1e40):
        torch_raised = ns_raised = False
        try:
            torch.where(condition, x, bad)
        except (TypeError, RuntimeError):
            torch_raised = True
        try:
            ns.where(condition, x, bad)
        except (TypeError, RuntimeError):
            ns_raised = True
        assert torch_raised == ns_raised, type(bad)
