"""The PyTorch fast path for piecewise ops: one autograd node that saves only ``x``.

The generic array-API path builds its value from a handful of elementwise operations,
and autograd keeps each intermediate for backward. Here forward runs without autograd
and backward evaluates the closed-form derivative

    g'(x) = (f' * k_w)(x) + sum_i h_i k_w(x - c_i)

(the smoothed derivative plus one kernel bump per jump ``h_i`` at ``c_i``) from the
saved input, like ``F.gelu``. Backward is built from differentiable torch operations,
so double backward works. For the logistic and Gaussian step, sign, ReLU and abs the
value and derivative are fused into the one or two native kernels they reduce to
(the logistic step and sign save their output instead, like ``torch.sigmoid``).

Imported only when a torch tensor arrives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ._backend import Backend
from ._elementwise import _ABS, _RELU, _SIGN, _STEP
from ._kernels import Kernel
from ._piecewise import Piecewise, convolve

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)

Tensor = torch.Tensor
Value = Callable[[Tensor, float], Tensor]
Backward = Callable[[Tensor, Tensor, float], Tensor]  # (grad, saved, w) -> grad * g'(x)


def _softplus_threshold(x: Tensor) -> float:
    # F.softplus returns t itself beyond the threshold; log1p(e^-t) must be below the
    # dtype's resolution of t there: e^-20 = 2e-9 for float32, e^-40 = 4e-18 for float64
    return 40.0 if x.dtype == torch.float64 else 20.0


def _logistic_relu(x: Tensor, w: float) -> Tensor:
    return F.softplus(x, beta=1.0 / w, threshold=_softplus_threshold(x))  # w sp(x / w)


def _logistic_relu_backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
    # sigmoid(x / w), in softplus's own fused backward kernel (itself differentiable)
    return torch.ops.aten.softplus_backward(grad, x, 1.0 / w, _softplus_threshold(x))


def _logistic_abs(x: Tensor, w: float) -> Tensor:
    # w (sp(t) + sp(-t)) = 2 w sp(t) - x, as 2 (s - x/2) so that nothing overflows at
    # |x| near the dtype's max; +inf would give inf - inf there, so it is put back.
    # In place on a fresh buffer: forward runs without autograd, and in eager mode each
    # 64 MB allocation costs about as much as a pass over the data.
    smooth = F.softplus(x, beta=1.0 / w, threshold=_softplus_threshold(x))
    smooth.sub_(x, alpha=0.5).mul_(2.0)
    return smooth.masked_fill_(x == math.inf, math.inf)


def _logistic_abs_backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
    # 2 sigmoid(t) - 1 = tanh(t / 2): softplus's backward kernel, then 2 (g s - g/2)
    return _logistic_relu_backward(grad, x, w).sub_(grad, alpha=0.5).mul_(2.0)


def _gaussian_density(grad: Tensor, x: Tensor, scale: float, w: float) -> Tensor:
    t = x * (1.0 / w)
    return grad * torch.exp(-0.5 * t * t) * (scale * _INV_SQRT_2PI / w)


class Fused(NamedTuple):
    """A closed form in one or two native kernels each way.

    ``backward(grad, saved, w)`` gets ``x``, or the output ``y`` when ``from_output``:
    for the logistic step and sign ``g'`` is a function of ``y``, as for
    ``torch.sigmoid`` and ``torch.tanh``; saving ``y`` (the same bytes) makes backward
    one native kernel, and double backward flows through ``y``'s own graph to ``x``.
    """

    value: Value
    backward: Backward
    from_output: bool = False


FUSED: dict[tuple[Piecewise, str], Fused] = {
    (_STEP, "logistic"): Fused(
        lambda x, w: torch.mul(x, 1.0 / w).sigmoid_(),
        lambda grad, y, w: torch.ops.aten.sigmoid_backward(grad, y).mul_(1.0 / w),
        from_output=True,
    ),
    (_SIGN, "logistic"): Fused(  # 2 sigmoid(t) - 1 = tanh(t / 2)
        lambda x, w: torch.mul(x, 0.5 / w).tanh_(),
        lambda grad, y, w: torch.ops.aten.tanh_backward(grad, y).mul_(0.5 / w),
        from_output=True,
    ),
    (_RELU, "logistic"): Fused(_logistic_relu, _logistic_relu_backward),
    (_ABS, "logistic"): Fused(_logistic_abs, _logistic_abs_backward),
    (_STEP, "gaussian"): Fused(
        lambda x, w: torch.special.ndtr(x * (1.0 / w)),
        lambda grad, x, w: _gaussian_density(grad, x, 1.0, w),
    ),
    (_SIGN, "gaussian"): Fused(
        lambda x, w: torch.special.erf(x * (_INV_SQRT_2 / w)),
        lambda grad, x, w: _gaussian_density(grad, x, 2.0, w),
    ),
}


class SmoothPiecewise(torch.autograd.Function):
    """``(f * k_w)(x)`` with a backward that recomputes ``g'`` from ``x`` alone
    (or from the output, for the :class:`Fused` forms marked ``from_output``).

    Written in the ``setup_context`` style with a generated vmap rule, so that
    ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``) work as well.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, f: Piecewise, width: float, kernel: Kernel, be: Backend) -> Tensor:
        fused = FUSED.get((f, kernel.name))
        return fused.value(x, width) if fused else convolve(be, f, x, width, kernel)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.f, ctx.width, ctx.kernel, ctx.be = inputs
        ctx.fused = FUSED.get((ctx.f, ctx.kernel.name))
        ctx.save_for_backward(output if ctx.fused and ctx.fused.from_output else x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        (saved,) = ctx.saved_tensors  # x, or the output for from_output forms
        if ctx.fused is not None:
            return ctx.fused.backward(grad, saved, ctx.width), None, None, None, None
        slope = derivative(ctx.be, ctx.f, saved, ctx.width, ctx.kernel)
        return grad * slope, None, None, None, None


def derivative(be: Backend, f: Piecewise, x: Tensor, width: float, kernel: Kernel) -> Tensor:
    """``g'(x) = (f' * k_w)(x) + sum_i h_i k_w(x - c_i)`` as differentiable torch ops."""
    out = convolve(be, f.derivative(), x, width, kernel)
    for c, (height, _, _) in f.jumps():
        if height != 0.0:
            out = out + (height / width) * kernel._pdf(be, (x - c) / width)
    return torch.where(torch.isnan(x), x, out)


def smooth_piecewise(be: Backend, f: Piecewise, x: Tensor, width: float, kernel: Kernel) -> Tensor:
    """The fast path's entry point: ``x`` is a float tensor in its compute dtype."""
    out: Tensor = SmoothPiecewise.apply(x, f, width, kernel, be)
    return out


class SmoothStaircase(torch.autograd.Function):
    """A smooth staircase (floor, ceil, round, trunc, frac) that saves only ``x``.

    Backward is the closed-form slope, the kernel wrapped on the circle
    (``floor_w'(x) = sum_n k_w(x - n)``), built from differentiable torch operations.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, op: str, width: float, kernel: Kernel, be: Backend) -> Tensor:
        from ._staircase import STAIRCASES

        return STAIRCASES[op][0](be, x, width, kernel)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.op, ctx.width, ctx.kernel, ctx.be = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        from ._staircase import STAIRCASES

        (x,) = ctx.saved_tensors
        slope = STAIRCASES[ctx.op][1](ctx.be, x, ctx.width, ctx.kernel)
        return grad * torch.where(torch.isnan(x), x, slope), None, None, None, None


def smooth_staircase(be: Backend, op: str, x: Tensor, width: float, kernel: Kernel) -> Tensor:
    """The staircases' fast-path entry point: ``x`` is a float tensor."""
    out: Tensor = SmoothStaircase.apply(x, op, width, kernel, be)
    return out


class SmoothSoftmax(torch.autograd.Function):
    """Softmax with temperature ``w`` that saves only its output, like ``torch.softmax``.

    Backward: ``p (g - sum(g p)) / w``, through torch's own softmax backward kernel
    for a single axis.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, axes: tuple[int, ...], width: float, be: Backend) -> Tensor:
        from ._reductions import softmax_values

        return softmax_values(be, x, axes, width)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _, ctx.axes, ctx.width, _ = inputs
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (p,) = ctx.saved_tensors
        if len(ctx.axes) == 1 and not torch.is_grad_enabled():
            native = torch._softmax_backward_data(grad, p, ctx.axes[0], p.dtype)
            return native * (1.0 / ctx.width), None, None, None
        inner = torch.sum(grad * p, dim=ctx.axes, keepdim=True)
        return p * (grad - inner) * (1.0 / ctx.width), None, None, None


def softmax(be: Backend, x: Tensor, axes: tuple[int, ...], width: float) -> Tensor:
    """Softmax over ``axes`` at temperature ``width`` through :class:`SmoothSoftmax`."""
    out: Tensor = SmoothSoftmax.apply(x, axes, width, be)
    return out
