"""The PyTorch fast path for piecewise ops: one autograd node that saves only ``x``.

The generic array-API path builds its value from a handful of elementwise operations,
and autograd keeps each intermediate for backward. Here forward runs without autograd
and backward evaluates the closed-form derivative

    g'(x) = (f' * k_w)(x) + sum_i h_i k_w(x - c_i)

(the smoothed derivative plus one kernel bump per jump ``h_i`` at ``c_i``) from the
saved input, like ``F.gelu``; staircases (floor, round, ...) likewise, with the kernel
wrapped on the circle as their derivative. Backward is built from differentiable torch
operations, so double backward works. For the logistic step, sign, ReLU and abs the
value and derivative are fused into the one or two native kernels they reduce to
(the logistic step and sign save their output instead, like ``torch.sigmoid``).

In eager mode on the CPU, formulas of several operations are evaluated in cache-sized
blocks (:func:`_in_blocks`): a poor man's fusion that makes them 3-5x faster on large
tensors. torch.compile fuses them properly and takes the plain formulas.

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


_BLOCK_BYTES = 1 << 20
# glibc's malloc serves blocks of this size with mmap, and returns them to the system on
# free, so every temporary of every block would fault its pages in afresh (measured:
# forward time swinging 2-4x from run to run). Freeing one untouched mapping of
# _ALLOCATOR_HINT_BYTES raises glibc's dynamic mmap threshold above the block size, as
# any program that frees a mid-sized buffer does; other allocators ignore it.
_ALLOCATOR_HINT_BYTES = 16 << 20


def _in_blocks(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` for an elementwise ``fn``, evaluated in blocks of 1 MB on the CPU in
    eager mode.

    Eager torch runs each operation of a formula over the whole tensor, so a formula of
    20 operations streams 20 times through main memory; block by block its
    intermediates stay in cache (the generic round at 16M float32 elements: 1.0 s ->
    0.19 s forward on 2 cores; 1 MB blocks were the fastest of 64 KB..4 MB).
    Compiled graphs (Inductor fuses them anyway), functorch transforms, graphs recorded
    for double backward, GPUs and small or strided inputs take the plain call.
    """
    return _in_row_blocks(lambda v, _: fn(v), x, ())  # rows of no axes: single elements


# a private torch API: where a torch version lacks it, blocks are never used
_is_functorch_wrapped: Callable[[Tensor], bool] = getattr(
    torch._C._functorch, "is_functorch_wrapped_tensor", lambda tensor: True
)


def _blockable(x: Tensor) -> bool:
    return not (
        x.device.type != "cpu"
        or not x.is_contiguous()
        or torch.is_grad_enabled()
        or torch.compiler.is_compiling()
        or _is_functorch_wrapped(x)
    )


def _in_row_blocks(
    fn: Callable[[Tensor, tuple[int, ...]], Tensor], x: Tensor, axes: tuple[int, ...]
) -> Tensor:
    """``fn(x, axes)`` for a reduction or normalization over the trailing ``axes``
    (keeping them as size-1 or full dimensions), evaluated over blocks of about 1 MB of
    whole rows (see :func:`_in_blocks`; there ``axes`` is empty)."""
    inner = len(axes)
    trailing = axes == tuple(range(x.ndim - inner, x.ndim))
    if not trailing or inner == x.ndim or not _blockable(x):
        return fn(x, axes)
    row_shape = x.shape[x.ndim - inner :]
    row_size = max(1, math.prod(row_shape))
    rows = max(1, _BLOCK_BYTES // (x.element_size() * row_size))
    flat = x.view(-1, *row_shape)
    if flat.shape[0] < 4 * rows:
        return fn(x, axes)
    torch.empty(_ALLOCATOR_HINT_BYTES, dtype=torch.uint8)  # see _ALLOCATOR_HINT_BYTES
    block_axes = tuple(range(1, inner + 1))
    first = fn(flat[:rows], block_axes)
    out = torch.empty((flat.shape[0], *first.shape[1:]), dtype=first.dtype, device=x.device)
    out[:rows] = first
    for start in range(rows, flat.shape[0], rows):
        out[start : start + rows] = fn(flat[start : start + rows], block_axes)
    return out.view(*x.shape[: x.ndim - inner], *first.shape[1:])


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


def _gaussian_value(special: Callable[[Tensor], Tensor], scale: float) -> Value:
    # ndtr(x / w) or erf(x / (w sqrt 2)): two kernels, so evaluated in cache-sized blocks
    return lambda x, w: _in_blocks(lambda v: special(v * (scale / w)), x)


def _gaussian_backward(height: float) -> Backward:
    # grad * height * phi(x / w) / w, the density evaluated in blocks
    def backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
        def density(v: Tensor) -> Tensor:
            t = v * (1.0 / w)
            return torch.exp(-0.5 * t * t) * (height * _INV_SQRT_2PI / w)

        return _times(grad, _in_blocks(density, x))

    return backward


class Fused(NamedTuple):
    """A closed form cheaper than the generic formula: one or two native kernels each
    way (logistic), or a short formula evaluated in cache-sized blocks (Gaussian).

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
    (_STEP, "gaussian"): Fused(_gaussian_value(torch.special.ndtr, 1.0), _gaussian_backward(1.0)),
    (_SIGN, "gaussian"): Fused(
        _gaussian_value(torch.special.erf, _INV_SQRT_2), _gaussian_backward(2.0)
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
        if fused:
            return fused.value(x, width)
        return _in_blocks(lambda v: convolve(be, f, v, width, kernel), x)

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
        slope = _in_blocks(lambda v: derivative(ctx.be, ctx.f, v, ctx.width, ctx.kernel), saved)
        return _times(grad, slope), None, None, None, None


def _times(grad: Tensor, slope: Tensor) -> Tensor:
    # in place into the fresh slope unless a graph is being recorded (double backward)
    return grad * slope if torch.is_grad_enabled() else slope.mul_(grad)


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


Formula = Callable[[Backend, Tensor, float, Kernel], Tensor]


def _formulas(op: str) -> tuple[Formula, Formula]:
    """``(value, slope)`` of the ops with a closed-form slope: staircases and ``"gate"``."""
    from ._elementwise import GATE
    from ._staircase import STAIRCASES

    return GATE if op == "gate" else STAIRCASES[op]


class SmoothFormula(torch.autograd.Function):
    """An elementwise op with a closed-form slope that saves only ``x``: the staircases
    (floor, ceil, round, trunc, frac: the slope is the kernel wrapped on the circle,
    ``floor_w'(x) = sum_n k_w(x - n)``) and the gates ``x K(x/w)`` (GELU, swish).

    Backward is built from differentiable torch operations (double backward works).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, op: str, width: float, kernel: Kernel, be: Backend) -> Tensor:
        value = _formulas(op)[0]
        return _in_blocks(lambda v: value(be, v, width, kernel), x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.op, ctx.width, ctx.kernel, ctx.be = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        (x,) = ctx.saved_tensors
        formula = _formulas(ctx.op)[1]

        def slope(v: Tensor) -> Tensor:
            return torch.where(torch.isnan(v), v, formula(ctx.be, v, ctx.width, ctx.kernel))

        return _times(grad, _in_blocks(slope, x)), None, None, None, None


def smooth_formula(be: Backend, op: str, x: Tensor, width: float, kernel: Kernel) -> Tensor:
    """Entry point for the staircases and gates: ``x`` is a float tensor."""
    out: Tensor = SmoothFormula.apply(x, op, width, kernel, be)
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

        return _in_row_blocks(lambda v, a: softmax_values(be, v, a, width), x, axes)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _, ctx.axes, ctx.width, _ = inputs
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (p,) = ctx.saved_tensors
        if len(ctx.axes) == 1 and not torch.is_grad_enabled():
            native = torch._softmax_backward_data(grad, p, ctx.axes[0], p.dtype)
            return native.mul_(1.0 / ctx.width), None, None, None
        inner = torch.sum(grad * p, dim=ctx.axes, keepdim=True)
        return p * (grad - inner) * (1.0 / ctx.width), None, None, None


def softmax(be: Backend, x: Tensor, axes: tuple[int, ...], width: float) -> Tensor:
    """Softmax over ``axes`` at temperature ``width`` through :class:`SmoothSoftmax`."""
    out: Tensor = SmoothSoftmax.apply(x, axes, width, be)
    return out


class SmoothLogsumexp(torch.autograd.Function):
    """``w log sum exp(x / w)`` over ``axes`` (kept as size-1 dimensions) that saves
    ``x``, as ``torch.logsumexp`` does; backward is ``grad * softmax(x / w)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, axes: tuple[int, ...], width: float, be: Backend) -> Tensor:
        from ._reductions import logsumexp_values

        return _in_row_blocks(lambda v, a: logsumexp_values(be, v, a, width), x, axes)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.axes, ctx.width, ctx.be = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        from ._reductions import softmax_values

        (x,) = ctx.saved_tensors
        p = _in_row_blocks(lambda v, a: softmax_values(ctx.be, v, a, ctx.width), x, ctx.axes)
        return _times(grad, p), None, None, None


def logsumexp(be: Backend, x: Tensor, axes: tuple[int, ...], width: float) -> Tensor:
    """Smooth max over ``axes`` (kept) through :class:`SmoothLogsumexp`."""
    out: Tensor = SmoothLogsumexp.apply(x, axes, width, be)
    return out
