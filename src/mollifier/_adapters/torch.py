"""The PyTorch adapter: one autograd node per op that saves only ``x``.

It is handed :class:`~mollifier._engine.formula.Formula` objects (an elementwise value
and its slope) and :class:`~mollifier._engine.formula.Reduction` objects, and never looks
anything up by an op's name. The generic array-API path builds its value from a handful
of elementwise operations, and autograd keeps each intermediate for backward. Here
forward runs without autograd and backward evaluates the formula's closed-form slope
from the saved input, like ``F.gelu``. Backward is built from differentiable torch
operations, so double backward works. For the logistic step, sign, ReLU and abs and the
Gaussian step and sign the value and derivative are fused into the one or two native
kernels they reduce to (keyed by the formula's shape and kernel class; the logistic step
and sign save their output instead, like ``torch.sigmoid``). Every continuous
piecewise-linear shape with its kinks apart (ReLU, abs, leaky ReLU, hinge, clip) has a
fused kink form under the Gaussian, logistic, Laplace and compact polynomial kernels
(:data:`KINKS`), every piecewise-constant shape (step, sign, a user's levels) a fused
jump form, and floor, ceil and round a fused staircase (:data:`JUMPS`): the generic
formula's operations in its order, bit for bit, less its ``where`` (unvectorized on
the CPU: 0/1 float masks instead) and with no subnormal result inside ``exp`` or
``erfc`` (scalar slow paths).

In eager mode on the CPU, formulas of several operations are evaluated in cache-sized
blocks (:func:`_in_blocks`): a poor man's fusion that makes them 3-5x faster on large
tensors. torch.compile fuses them properly and takes the plain formulas.

Imported only when a torch tensor arrives.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .._backend import (
    Backend,
    backend_of,
    is_functorch_wrapped,
    is_transformed,
    torch_differentiates,
    torch_ndtr,
)
from .._engine import lse
from .._engine.formula import Combination, Formula, Reduction, Transform, nan_where_nan
from .._engine.piecewise import _CLUSTER_SPAN, ABS, RELU, SIGN, STEP, Piecewise
from .._engine.staircase import CEIL, FLOOR, ROUND, _truncation
from .._kernels import (
    _GAUSSIAN_TAIL_CLAMP,
    Cauchy,
    Gaussian,
    Laplace,
    Logistic,
    PolynomialKernel,
    Sqrt,
    _gaussian_far_tails,
)
from .._polynomials import horner

_SQRT_2PI = math.sqrt(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / _SQRT_2PI
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
_hinted = False


def _in_blocks(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` for an elementwise ``fn``, evaluated in blocks of 1 MB on the CPU in
    eager mode.

    Eager torch runs each operation of a formula over the whole tensor, so a formula of
    20 operations streams 20 times through main memory; block by block its
    intermediates stay in cache (the generic round at 16M float32 elements: 1.0 s ->
    0.19 s forward on 2 cores; 1 MB blocks were the fastest of 64 KB..4 MB).
    Compiled graphs (Inductor fuses them anyway), functorch transforms, tensor subclasses
    (DTensor), graphs recorded for double backward, GPUs and small or strided inputs take
    the plain call.
    """
    return _in_row_blocks(lambda v, _: fn(v), x, ())  # rows of no axes: single elements


def _is_functorch_wrapped(x: Tensor) -> bool:
    return is_functorch_wrapped(torch, x)


def _blockable(x: Tensor) -> bool:
    # a plain tensor only: a subclass (DTensor, ...) dispatches each operation itself, and
    # its blocks could not be written into a plain output (nor would they be local data)
    return not (
        type(x) not in (torch.Tensor, torch.nn.Parameter)
        or x.device.type != "cpu"
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
    if not trailing or inner == x.ndim or x.numel() == 0 or not _blockable(x):
        return fn(x, axes)
    row_shape = x.shape[x.ndim - inner :]
    row_size = max(1, math.prod(row_shape))
    rows = max(1, _BLOCK_BYTES // (x.element_size() * row_size))
    flat = x.view(-1, *row_shape)
    if flat.shape[0] < 4 * rows:
        return fn(x, axes)
    block_axes = tuple(range(1, inner + 1))
    (out,) = _assembled(lambda start: (fn(flat[start : start + rows], block_axes),),
                        int(flat.shape[0]), rows)  # fmt: skip
    assert out is not None
    return out.view(*x.shape[: x.ndim - inner], *out.shape[1:])


def _assembled(
    block: Callable[[int], tuple[Tensor | None, ...]], size: int, step: int
) -> tuple[Tensor | None, ...]:
    """The outputs of ``block(start)`` for ``start = 0, step, 2 step, ...`` below
    ``size``, written block by block into whole tensors of ``size`` rows (``None``
    outputs stay ``None``): the one block loop of :func:`_in_row_blocks` and
    :func:`_in_blocks_of_inputs`."""
    global _hinted
    if not _hinted:  # once: glibc keeps the raised threshold (see _ALLOCATOR_HINT_BYTES)
        torch.empty(_ALLOCATOR_HINT_BYTES, dtype=torch.uint8)
        _hinted = True
    first = block(0)
    outs = [None if p is None else p.new_empty((size, *p.shape[1:])) for p in first]
    for start in range(0, size, step):
        for out, part in zip(outs, first if start == 0 else block(start)):
            if out is not None and part is not None:
                out[start : start + step] = part
    return tuple(outs)


def _softplus_threshold(x: Tensor) -> float:
    # F.softplus returns t itself beyond the threshold; log1p(e^-t) must be below the
    # dtype's resolution of t there: e^-20 = 2e-9 for float32, e^-40 = 4e-18 for float64
    return 40.0 if x.dtype == torch.float64 else 20.0


def _logistic_relu(x: Tensor, w: float) -> Tensor:
    # w sp(x / w), never below x: below the threshold softplus rounds (x / w) w, which
    # can be an ulp under x, and a smooth ReLU lies above ReLU (Jensen)
    smooth = F.softplus(x, beta=1.0 / w, threshold=_softplus_threshold(x))
    if torch.compiler.is_compiling() or _is_functorch_wrapped(x):  # no out= in vmap
        return torch.maximum(smooth, x)
    return torch.maximum(smooth, x, out=smooth)


def _logistic_relu_backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
    # sigmoid(x / w), in softplus's own fused backward kernel (itself differentiable)
    return torch.ops.aten.softplus_backward(grad, x, 1.0 / w, _softplus_threshold(x))


def _logistic_abs(x: Tensor, w: float) -> Tensor:
    # w (sp(t) + sp(-t)) = 2 w sp(t) - x, as 2 (s - x/2) so that nothing overflows at
    # |x| near the dtype's max; +inf would give inf - inf there, so it is put back.
    # In place on a fresh buffer: forward runs without autograd, and in eager mode each
    # 64 MB allocation costs about as much as a pass over the data.
    smooth = _logistic_relu(x, w)  # >= x, so that 2 (s - x/2) >= |x| (Jensen)
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
            scale = height * _INV_SQRT_2PI / w
            if torch.is_grad_enabled():  # recorded for double backward: its derivative
                # -t phi(t) would be -inf * 0 at t = ±inf, hence a double where
                infinite = torch.isinf(t)
                t = torch.where(infinite, 0.0, t)
                return torch.where(infinite, 0.0, torch.exp(-0.5 * t * t)) * scale
            return _exp_of_negative(torch.mul(t, -0.5).mul_(t)).mul_(scale)

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


FUSED: dict[Any, Fused] = {
    (STEP, Logistic): Fused(
        lambda x, w: torch.mul(x, 1.0 / w).sigmoid_(),
        lambda grad, y, w: torch.ops.aten.sigmoid_backward(grad, y).mul_(1.0 / w),
        from_output=True,
    ),
    (SIGN, Logistic): Fused(  # 2 sigmoid(t) - 1 = tanh(t / 2)
        lambda x, w: torch.mul(x, 0.5 / w).tanh_(),
        lambda grad, y, w: torch.ops.aten.tanh_backward(grad, y).mul_(0.5 / w),
        from_output=True,
    ),
    (RELU, Logistic): Fused(_logistic_relu, _logistic_relu_backward),
    (ABS, Logistic): Fused(_logistic_abs, _logistic_abs_backward),
    (STEP, Gaussian): Fused(_gaussian_value(torch_ndtr, 1.0), _gaussian_backward(1.0)),
    (SIGN, Gaussian): Fused(
        _gaussian_value(torch.special.erf, _INV_SQRT_2), _gaussian_backward(2.0)
    ),
}
"""Fused forms keyed by ``Formula.fusion``, ``(shape, kernel class)``: the exact class,
so a user's kernel (a subclass, or one that reuses a built-in name) takes the generic
formula."""


_EXP_SHIFT = 64.0


def _select(m: Tensor, yes: Tensor, no: Tensor | float) -> Tensor:
    """``where(m, yes, no)`` for finite values and a 0/1 float mask ``m`` (overwritten),
    as ``yes m + no (1 - m)`` (exact: each product is the value or 0). torch's CPU
    ``where`` is not vectorized: 1 ms per 256K entries of a random mask, 30x a
    multiplication (the generic formulas' dozens of ``where`` are most of their time)."""
    return yes.mul_(m).add_(m.neg_().add_(1.0).mul_(no))


def _in_place(t: Tensor) -> bool:
    """Whether operations on a fresh tensor computed from ``t`` may overwrite it (in
    eager mode each allocation of a block costs about as much as a pass over it)."""
    return not torch_differentiates(torch, t)


def _horner(coefficients: tuple[float, ...], t: Tensor) -> Tensor | float:
    """:func:`horner`'s operations in its order, in place on a fresh accumulator where
    it may be (the same values bit for bit)."""
    if not _in_place(t):
        out: Tensor | float = horner(coefficients, t)
        return out
    c = list(coefficients)
    while len(c) > 1 and c[-1] == 0:
        c.pop()
    if len(c) == 1:
        return float(c[0])
    acc = torch.mul(t, float(c[-1]))
    for coefficient in reversed(c[1:-1]):
        acc = acc.add_(float(coefficient)).mul_(t) if coefficient else acc.mul_(t)
    return acc.add_(float(c[0])) if c[0] else acc


def _exp_of_negative(a: Tensor) -> Tensor:
    """``exp(a)`` for ``a <= 0`` (``a`` is overwritten), at full speed where it underflows.

    torch's vectorized exp falls back to a scalar loop wherever its result is subnormal
    or 0 (``a`` below ``log(tiny)``: -87 in float32, -708 in float64), 10-60x slower per
    entry; the Gaussian tails at ``|x| > 13 w`` (float32) sit there. There
    ``exp(a) = exp(a + 64) e^-64``, with ``a`` first clamped to ``log(tiny) - 40``
    (where ``exp`` is 0 in either dtype: the least subnormal is ``tiny e^-36.04``):
    ``a + 64`` is exact (``|a| >= 64``, an integer shift), ``exp`` of it normal, and
    the product rounds once onto the subnormal grid (``exp(a)`` to one subnormal unit)."""
    floor = math.log(torch.finfo(a.dtype).tiny)
    low = _mask(torch.lt, a, floor)  # a float mask: mixed-dtype arithmetic is 10x slower
    a = a.clamp(min=floor - 40.0).add_(low, alpha=_EXP_SHIFT).exp_()
    # times e^-64 where low, else 1 (each sum has one nonzero term)
    return a.mul_(low.mul(math.exp(-_EXP_SHIFT)).add_(low.neg_().add_(1.0)))


def _gaussian_tail(s: Tensor) -> Tensor:
    """``P_1(s) = phi(s) + s Phi(s)`` for ``s <= 0`` (a fresh tensor): the Gaussian
    kernel's ``_tail(s, 1)`` with the same clamp, near form and far series, its values
    bit for bit, with no subnormal result inside exp or erfc (their scalar slow paths)
    and no ``where``.

    The near form takes ``Phi`` at ``max(s, -start)``: beyond ``-start`` the far series
    replaces it, and ``erfc`` there (argument above 9 in float32) would underflow."""
    s = s.clamp(min=-_GAUSSIAN_TAIL_CLAMP)
    finfo = torch.finfo(s.dtype)
    start, series = _gaussian_far_tails(float(finfo.smallest_normal), float(finfo.eps))
    # the kernel's own order of operations: exp's argument, up to 800, is ill-conditioned
    density = _exp_of_negative(torch.mul(s, -0.5).mul_(s)).div_(_SQRT_2PI)
    near = torch_ndtr(s.clamp(min=-start)).mul_(s).add_(density)
    u = s.clamp(max=-start).reciprocal_()  # -1/a on the far entries, never 1/0
    u.mul_(u)
    return _select(_mask(torch.lt, s, -start), density.mul_(u.mul(_horner(series[0], u))), near)


def _logistic_tail(s: Tensor) -> Tensor:
    # P_1(s) = softplus(s) = logaddexp(s, 0), as the kernel's _tail (no clamp is needed
    # for a value: it is 0 below s = -746 in every dtype). For s <= 0 torch's softplus
    # kernel computes the same log1p(exp(s)) bit for bit (tests/test_fused_forms.py) in
    # half logaddexp's time (210 us against 435 us per 256K float32 entries)
    return F.softplus(s)


def _laplace_tail(s: Tensor) -> Tensor:
    # P_1(s) = P_0(s) = e^s / 2 for s <= 0, as the kernel's _tail (degrees 0 and 1);
    # out of place while a graph is recorded (double backward: exp saves its output)
    e = torch.exp(s)
    return e * 0.5 if torch.is_grad_enabled() else e.mul_(0.5)


def _linear(v: Tensor, a0: float, a1: float) -> Tensor | float:
    # a0 + a1 x; the constant alone where a1 = 0 (0 * inf would be NaN at x = ±inf)
    return a0 if a1 == 0.0 else torch.mul(v, a1).add_(a0)


def _larger(a: Tensor | float, b: Tensor | float) -> Tensor:
    if isinstance(a, Tensor):
        return a.clamp(min=b) if isinstance(b, float) else torch.maximum(a, b)
    assert isinstance(b, Tensor)  # a kink has a slope on one side at least
    return b.clamp(min=a)


def _smaller(a: Tensor | float, b: Tensor | float) -> Tensor:
    if isinstance(a, Tensor):
        return a.clamp(max=b) if isinstance(b, float) else torch.minimum(a, b)
    assert isinstance(b, Tensor)
    return b.clamp(max=a)


class _Kink(NamedTuple):
    """A kernel's parts of the fused kink form (see :meth:`Piecewise.kink`): its tail
    ``P_1(s)`` and its CDF ``K(s)``, both for ``s <= 0``, as functions of the kernel
    instance and ``s``."""

    tail: Callable[[Any, Tensor], Tensor]
    cdf: Callable[[Any, Tensor], Tensor]


def _clamped(out: Tensor, bounds: tuple[float, float]) -> Tensor:
    """``out`` within ``f``'s range, as the generic formula's ``_within_range`` (clip
    within its bounds, step within [0, 1]); in place where it may be: functorch has no
    batching rule for ``clamp_`` (a warning, an error in the tests)."""
    if torch.compiler.is_compiling() or _is_functorch_wrapped(out):
        return torch.clamp(out, *bounds)
    return out.clamp_(*bounds)


def _mask(compare: Callable[..., Tensor], t: Tensor, c: float) -> Tensor:
    """The 0/1 mask ``compare(t, c)`` (``torch.ge``, ``torch.lt``, ...) in ``t``'s dtype,
    0 at NaN. A comparison written into a float tensor takes one vectorized pass; a
    bool mask converted to float takes two slow ones (10x: 20 us against 200 us per
    256K float32 entries). ``out=`` is refused under ``torch.func`` and in a trace."""
    if t.requires_grad or is_transformed(torch, t):
        return compare(t, c).to(t.dtype)
    return compare(t, c, out=torch.empty_like(t))


def _at_or_right(t: Tensor) -> Tensor:
    """The 0/1 mask ``t >= 0``: 1 at and right of a breakpoint (right-continuous)."""
    return _mask(torch.ge, t, 0.0)


def _indicators(sides: list[Tensor]) -> list[Tensor]:
    """Each piece's 0/1 indicator from the masks ``side_i`` (1 at and right of
    breakpoint ``c_i``): ``1 - side_0``, ``side_i - side_(i+1)``, ``side_last``."""
    middle = [a - b for a, b in itertools.pairwise(sides)]
    return [1.0 - sides[0], *middle, sides[-1]]


def _polynomial(degree: int) -> Callable[[Any, Tensor], Tensor]:
    """A compact polynomial kernel's ``P_degree(s)`` for ``s <= 0``, as its ``_tail``:
    Horner in ``v = max(s + 1, 0)`` (NaN stays NaN), no ``where``.

    ``max(v, 0)`` times the 0/1 mask ``v > 0``, as the kernel's ``where(v <= 0, 0, v)``:
    the derivative at the support's edge ``v = 0`` is 0 (the clamp alone passes 1 there,
    which made the second derivative at ``x = ±w`` the density's inside value), and
    ``v = -inf`` is 0 (the mask alone would make ``-inf * 0``)."""

    def tail(kernel: Any, s: Tensor) -> Tensor:
        v = torch.add(s, 1.0)
        v = torch.clamp(v, min=0.0) * _mask(torch.gt, v, 0.0)
        out = _horner(kernel._tail_coefficients[degree], v)
        assert isinstance(out, Tensor)  # a tail has at least a linear term
        return out

    return tail


_polynomial_cdf = _polynomial(0)

KINKS: dict[Any, _Kink] = {
    Gaussian: _Kink(lambda _, s: _gaussian_tail(s), lambda _, s: torch_ndtr(s)),
    Logistic: _Kink(lambda _, s: _logistic_tail(s), lambda _, s: torch.sigmoid(s)),
    Laplace: _Kink(lambda _, s: _laplace_tail(s), lambda _, s: _laplace_tail(s)),  # K = P_1
    PolynomialKernel: _Kink(_polynomial(1), _polynomial_cdf),
}
"""Kernels with a fused form of every kink shape, keyed by the exact class."""


def _hard_kinks(shape: Piecewise) -> Callable[[Tensor], Tensor] | None:
    """``f(x)`` of a continuous piecewise-linear ``f`` with no ``where`` (NaN kept): a
    convex kink is the larger of its pieces, a concave one the smaller (ReLU
    ``max(0, x)``, hinge ``max(m - x, 0)``), a ramp between constants a clamp (clip);
    ``None`` for other shapes."""
    pieces = [(a0, a1) for a0, a1, _ in shape.pieces]
    if len(pieces) == 2:
        (left, right), convex = pieces, pieces[1][1] > pieces[0][1]
        return lambda v: (_larger if convex else _smaller)(_linear(v, *left), _linear(v, *right))
    if len(pieces) == 3 and pieces[0][1] == pieces[2][1] == 0.0:
        low, high = sorted((pieces[0][0], pieces[2][0]))
        return lambda v: torch.clamp(_linear(v, *pieces[1]), low, high)  # type: ignore[arg-type]
    return None


def _kinks_fused(shape: Piecewise, parts: _Kink, kernel: Any) -> Fused | None:
    """``f(x) + sum_i b_i w P_1(-|x - c_i| / w)`` with slope ``a_1 + sum_i b_i K((x -
    c_i) / w)`` (:meth:`Piecewise.kinks`), in blocks, with the generic formula's
    operations in its order (the same values bit for bit) less its ``where``: about a
    dozen passes per kink where the generic formula takes three dozen."""
    kinks, hard = shape.kinks(), _hard_kinks(shape)
    if kinks is None or hard is None or not any(b for _, b in kinks[2]):
        return None  # not a kink shape, or a line (no kink: the generic formula)
    _, _, terms = kinks
    bounds = shape.bounds()
    slopes = shape.derivative().bounds()

    def value(x: Tensor, w: float) -> Tensor:
        def block(v: Tensor) -> Tensor:
            out = hard(v)
            for c, b in terms:
                t = torch.sub(v, c).div_(w)  # (x - c) / w, as the generic's scaled()
                out = out.add_(parts.tail(kernel, t.abs_().neg_()).mul_(b * w))
            return out if bounds is None else _clamped(out, bounds)

        return _in_blocks(block, x)

    def backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
        def slope(v: Tensor) -> Tensor:
            # in the tail form, as the generic slope: a_1 + sum b_i (side_i - (2 side_i
            # - 1) K(-|t_i|)), never 1 - K(t) (which would cancel), in its roundings
            recorded = torch.is_grad_enabled()  # double backward: out of place
            sides, ks = [], []
            for c, _ in terms:
                t = (v - c) / w
                sides.append(_at_or_right(t))  # 1 right of c_i (before t is overwritten)
                # -|t| with the derivative -1 at t = 0 (abs has 0), as generic
                ks.append(
                    parts.cdf(kernel, torch.where(t >= 0, -t, t) if recorded else t.abs_().neg_())
                )
            # the hard slope: each piece's own slope times its 0/1 indicator (exact)
            out: Any = 0.0
            for piece, indicator in zip(shape.pieces, _indicators(sides)):
                out = indicator * piece[1] + out
            for (_, b), side, k in zip(terms, sides, ks):
                coefficient = side * (-2.0 * b) + b
                out = out + coefficient * k if recorded else out.add_(k.mul_(coefficient))
            if slopes is not None:
                out = out.clamp(*slopes) if recorded else out.clamp_(*slopes)
            return out

        return _times(grad, _in_blocks(slope, x))

    return Fused(value, backward)


class _Jump(NamedTuple):
    """A kernel's parts of the fused jump and staircase forms: its CDF ``K(s)`` for
    ``s <= 0`` and its density ``k(t)`` for every ``t``, as functions of the kernel
    instance, the backend and their argument, evaluated without a graph (double
    backward takes the kernel's own differentiable functions). ``reflected``: the
    kernel's CDF on the whole line is the reflection of its lower tail, ``1 - K(-t)``
    right of 0 (the generic ``Kernel._cdf``); otherwise its own ``_cdf`` serves."""

    cdf: Callable[[Any, Backend, Tensor], Tensor]
    density: Callable[[Any, Backend, Tensor], Tensor]
    reflected: bool = True


def _polynomial_density(kernel: Any, be: Backend, t: Tensor) -> Tensor:
    """``c (1 - t^2)^n`` inside the support, as the kernel's ``_pdf``: the clamp makes
    it 0 outside and at the edge for ``n >= 1`` (±inf too). For the uniform kernel
    (``n = 0``) the window is ``(1 + clamp(2^64 v, -1, 1)) / 2`` with ``v = 1 - t^2``:
    1 inside (the least positive ``v`` is an ulp of 1, 2^-53), 1/2 at the edge (the
    kernel's convention), 0 outside, NaN at NaN, with no ``where``."""
    v = torch.mul(t, t).neg_().add_(1.0)
    c = float(kernel.density[0])
    if kernel.power == 0:  # (1 + sign) (c / 2): c, c / 2 and 0 exactly
        return v.mul_(2.0**64).clamp_(-1.0, 1.0).add_(1.0).mul_(0.5 * c)
    return v.clamp_(min=0.0).pow_(kernel.power).mul_(c)


def _gaussian_density(kernel: Any, be: Backend, t: Tensor) -> Tensor:
    # e^(-t^2/2) / sqrt(2 pi), as the kernel's _pdf, with no subnormal result inside exp
    # (to one subnormal unit there, see _exp_of_negative)
    return _exp_of_negative(torch.mul(t, -0.5).mul_(t)).div_(_SQRT_2PI)


def _laplace_density(kernel: Any, be: Backend, t: Tensor) -> Tensor:
    # 0.5 exp(-|t|), as the kernel's _pdf
    return torch.abs(t).neg_().exp_().mul_(0.5)


def _kernel_cdf(kernel: Any, be: Backend, s: Tensor) -> Tensor:
    out: Tensor = kernel._tail(be, s, 0)
    return out


def _kernel_density(kernel: Any, be: Backend, t: Tensor) -> Tensor:
    out: Tensor = kernel._density(be, t)
    return out


JUMPS: dict[Any, _Jump] = {
    Laplace: _Jump(lambda _, be, s: _laplace_tail(s), _laplace_density),
    PolynomialKernel: _Jump(lambda kernel, be, s: _polynomial_cdf(kernel, s), _polynomial_density),
    Cauchy: _Jump(_kernel_cdf, _kernel_density),
    Sqrt: _Jump(_kernel_cdf, _kernel_density),
    Gaussian: _Jump(_kernel_cdf, _gaussian_density, reflected=False),
    Logistic: _Jump(_kernel_cdf, _kernel_density, reflected=False),
}
"""Kernels with a fused form of every piecewise-constant shape (step, sign, a user's
levels), keyed by the exact class; the kernel's own functions where they have no
``where`` to save (their ``where`` are bit selections on the CPU, see
``_TorchNamespace.where``)."""


def _jumps_fused(shape: Piecewise, parts: _Jump, kernel: Any) -> Fused:
    """``f(x) + sum_i h_i sigma_i K(-|t_i|)`` with ``sigma_i = -1`` right of ``c_i`` and
    slope ``sum_i (h_i / w) k(t_i)``, ``t_i = (x - c_i) / w``: the generic breakpoint form
    of a piecewise-constant ``f`` (:func:`~mollifier._engine.piecewise.convolve`) in its
    order of operations, the same values and slopes bit for bit, in blocks, with 0/1
    masks for its ``where``. The hard value is each level times its 0/1 indicator."""
    jumps = shape.jumps()
    heights = [(c, b[0]) for c, b in jumps if b[0] != 0.0]
    levels = [piece[0] for piece in shape.pieces]
    bounds = shape.bounds()
    assert bounds is not None  # constant outer pieces

    def value(x: Tensor, w: float) -> Tensor:
        be = backend_of(x)

        def block(v: Tensor) -> Tensor:
            sides, lowers = [], []
            for c, _ in jumps:
                t = torch.sub(v, c).div_(w)
                sides.append(_at_or_right(t))
                lowers.append(parts.cdf(kernel, be, t.abs_().neg_()))
            out: Any = 0.0
            for level, indicator in zip(levels, _indicators(sides)):
                out = indicator * level + out
            for (_, (b0, _, _)), side, lower in zip(jumps, sides, lowers):
                if b0 != 0.0:  # b0 sigma_i K, sigma_i = 1 - 2 side_i (exact: +-b0)
                    out = out.add_(lower.mul_(side * (-2.0 * b0) + b0))
            return _clamped(out, bounds)

        return _in_blocks(block, x)

    def backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
        be = backend_of(x)

        def slope(v: Tensor) -> Tensor:
            recorded = torch.is_grad_enabled()  # double backward: the kernel's own density
            density = _kernel_density if recorded else parts.density
            largest = torch.finfo(v.dtype).max
            out: Any = 0.0
            for c, height in heights:
                term = density(kernel, be, (v - c) / w)
                if not abs(height / w) <= largest:  # as convolve_slope: h k, then / w
                    term = term * height / w if recorded else term.mul_(height).div_(w)
                else:
                    term = term * (height / w) if recorded else term.mul_(height / w)
                out = out + term if recorded else term.add_(out)
            return out

        return _times(grad, _in_blocks(slope, x))

    return Fused(value, backward)


def _staircase_fused(formula: Formula, parts: _Jump) -> Fused | None:
    """floor, ceil and round: ``m + S(r)`` with ``m = round(x)``, ``r = x - m``, as the
    generic formula (:mod:`~mollifier._engine.staircase`) bit for bit, less its
    reductions' ``where`` (non-finite ``x`` is restored once at the end: ``r`` is NaN
    there), with the direct sum over the nearest steps in 0/1 masks where the kernel
    takes it (:meth:`Kernel._staircase_direct_terms`), else the kernel's own form."""
    key: Any = formula.fusion
    rules, kernel = key[0], formula.kernel
    if rules not in (FLOOR, CEIL, ROUND):
        return None
    rounding, lift = rules is ROUND, 1.0 if rules is CEIL else None

    def cdf(t: Tensor, left: bool) -> Tensor:  # K(t); ``left``: t <= 0 known
        if not parts.reflected:
            out: Tensor = kernel._cdf(backend_of(t), t)
            return out
        if left:
            return parts.cdf(kernel, backend_of(t), t)
        side = _at_or_right(t)  # 1 - K(-|t|) right of 0, as the generic reflection
        lower = parts.cdf(kernel, backend_of(t), t.abs_().neg_())
        return lower.mul_(side * -2.0 + 1.0).add_(side)

    def direct_offset(r: Tensor, w: float, terms: int) -> Tensor:
        # -K(-r/w) + sum_n [K((r - n)/w) - K(-(r + n)/w)], as _floor_offset_direct
        inv_w = 1.0 / w
        total = cdf(torch.neg(r).mul_(inv_w), left=False).neg_()
        for n in range(1, terms + 1):
            below = cdf(torch.sub(r, n).mul_(inv_w), left=True)
            total = total.add_(below.sub_(cdf(torch.add(r, n).neg_().mul_(inv_w), left=True)))
        return total

    def direct_slope(r: Tensor, w: float, terms: int) -> Tensor:
        # (k(-r/w) + sum_n [k((r - n)/w) + k(-(r + n)/w)]) / w, as _floor_slope_direct
        be, inv_w = backend_of(r), 1.0 / w
        total = parts.density(kernel, be, torch.neg(r).mul_(inv_w))
        for n in range(1, terms + 1):
            near = parts.density(kernel, be, torch.sub(r, n).mul_(inv_w))
            far = parts.density(kernel, be, torch.add(r, n).neg_().mul_(inv_w))
            total = total.add_(near.add_(far))
        return total.mul_(inv_w)

    def reduced(v: Tensor) -> tuple[Tensor, Tensor, float]:
        m = torch.round(v)
        r = v - m
        return m, r, _truncation(r, backend_of(v))

    def value(x: Tensor, w: float) -> Tensor:
        be = backend_of(x)

        def block(v: Tensor) -> Tensor:
            m, r, eps = reduced(v)
            terms = kernel._staircase_direct_terms(w, eps)
            if rounding:
                if terms is None:
                    offset = kernel._round_offset(be, r, w, eps)
                else:  # round_w(m + r) - m = floor_w(m + r + 1/2) - m, as Kernel._round_offset
                    shifted = r.add_(0.5)
                    nearest = torch.round(shifted)
                    offset = direct_offset(shifted.sub_(nearest), w, terms).add_(nearest)
            elif terms is None:
                offset = kernel._floor_offset(be, r, w, eps)
            else:
                offset = direct_offset(r, w, terms)
            out = m.add_(offset if lift is None else offset.add_(lift))
            return be.xp.where(be.xp.isfinite(v), out, v)

        return _in_blocks(block, x)

    def backward(grad: Tensor, x: Tensor, w: float) -> Tensor:
        be = backend_of(x)

        def slope(v: Tensor) -> Tensor:
            if torch.is_grad_enabled():  # double backward: the generic, differentiable slope
                return formula.slope(be, v)
            _, r, eps = reduced(v)
            terms = kernel._staircase_direct_terms(w, eps)
            if terms is None:
                own = kernel._round_slope if rounding else kernel._floor_slope
                wrapped = own(be, r, w, eps)
            else:
                if rounding:  # the wrapped density at r + 1/2, as Kernel._round_slope
                    shifted = r.add_(0.5)
                    r = shifted.sub_(torch.round(shifted))
                wrapped = direct_slope(r, w, terms)
            # the mean slope 1 at ±inf, NaN at NaN, as the generic slope
            return nan_where_nan(be, v, be.xp.where(be.xp.isfinite(v), wrapped, 1.0))

        return _times(grad, _in_blocks(slope, x))

    return Fused(value, backward)


_FUSED_WIDTHS = (1e-30, 1e30)
"""Widths for which ``1/w`` is a finite float32 (the fused forms scale by it); others
take the generic formula, in the same node."""


def _fused(formula: Formula) -> Fused | None:
    if formula.fusion is None or not _FUSED_WIDTHS[0] < formula.width < _FUSED_WIDTHS[1]:
        return None
    fused = FUSED.get(formula.fusion)
    key: Any = formula.fusion
    if fused is None and isinstance(key, tuple) and isinstance(key[0], Piecewise):
        parts = KINKS.get(key[1])  # a kink shape (ReLU's family) under this kernel class
        points = key[0].breakpoints
        apart = len(points) == 1 or points[-1] - points[0] > _CLUSTER_SPAN * formula.width
        if parts is not None and apart:
            fused = _kinks_fused(key[0], parts, formula.kernel)  # convolve()'s breakpoint form
        jump = JUMPS.get(key[1])
        jumps = any(b[0] for _, b in key[0].jumps())  # a constant takes the generic formula
        if fused is None and jump is not None and apart and key[0].degree == 0 and jumps:
            fused = _jumps_fused(key[0], jump, formula.kernel)
    elif fused is None and isinstance(key, tuple) and key[1] in JUMPS:
        # floor, ceil, round in eager mode (a compiled graph fuses the generic formula,
        # whose term counts it reads from the formula's constant width)
        if not torch.compiler.is_compiling():
            fused = _staircase_fused(formula, JUMPS[key[1]])
    return fused


class SmoothElementwise(torch.autograd.Function):
    """``g(x)`` of a :class:`Formula` with a backward that recomputes ``g'`` from ``x``
    alone (or from the output, for the :class:`Fused` forms marked ``from_output``).

    Written in the ``setup_context`` style with a generated vmap rule, so that
    ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``) work as well; forward mode
    (``torch.func.jvp``, ``jacfwd``, ``hessian``, dual tensors) takes the same slope
    times the tangent (:class:`ForwardModeElementwise`).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, formula: Formula, be: Backend) -> Tensor:
        fused = _fused(formula)
        if fused:
            return fused.value(x, formula.width)
        return _in_blocks(lambda v: formula.value(be, v), x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.formula, ctx.be = inputs
        ctx.fused = _fused(ctx.formula)
        saved = output if ctx.fused and ctx.fused.from_output else x
        ctx.save_for_backward(saved)
        ctx.save_for_forward(saved)  # for ForwardModeElementwise.jvp

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        return SmoothElementwise._times_slope(ctx, grad), None, None

    @staticmethod
    def _times_slope(ctx: Any, v: Tensor) -> Tensor:
        (saved,) = ctx.saved_tensors  # x, or the output for from_output forms
        if ctx.fused is not None:
            out: Tensor = ctx.fused.backward(v, saved, ctx.formula.width)
            return out
        slope = _in_blocks(lambda u: ctx.formula.slope(ctx.be, u), saved)
        return _times(v, slope)


class ForwardModeElementwise(SmoothElementwise):
    """:class:`SmoothElementwise` with a forward-mode rule, taken where forward mode may
    run (an open dual level, ``torch.func``); dynamo refuses to trace a node that
    defines ``jvp``, so compiled graphs and plain eager calls take the parent."""

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor, *_: Any) -> Tensor:
        # elementwise: the Jacobian is diagonal, so the tangent times the same slope
        return SmoothElementwise._times_slope(ctx, tangent)


def _times(grad: Tensor, slope: Tensor) -> Tensor:
    # in place into the fresh slope unless a graph is being recorded (double backward)
    return grad * slope if torch.is_grad_enabled() else slope.mul_(grad)


def elementwise(be: Backend, formula: Formula, x: Tensor) -> Tensor:
    """The adapter's entry point for elementwise formulas (``x`` in its compute dtype)."""
    forward_mode = not torch.compiler.is_compiling() and is_transformed(torch, x)
    node = ForwardModeElementwise if forward_mode else SmoothElementwise
    out: Tensor = node.apply(x, formula, be)
    return out


def _fused_logsumexp(be: Backend, x: Tensor, axes: tuple[int, ...], w: float) -> Tensor:
    # lse.logsumexp_values in place on fresh buffers (in eager mode an allocation costs
    # about as much as an arithmetic pass over a block, a `where` three), without the
    # two passes of lse.exponents that change nothing at a finite max (a +inf max gives
    # +inf all the same), and with frac(e) for e - floor(e) (exact for e in [0, 1])
    m, shift, _ = lse.shifts(be, x, axes)
    e = torch.sub(x, shift).div_(w).exp_()
    total = torch.sum(e, dim=axes, keepdim=True)
    return lse.logsumexp_of(be, m, total, torch.sum(e.frac_(), dim=axes, keepdim=True), w)


def _fused_softmax(be: Backend, x: Tensor, axes: tuple[int, ...], w: float) -> Tensor:
    # lse.softmax_values in place on one fresh buffer
    _, shift, beyond = lse.shifts(be, x, axes)
    e = torch.sub(x, shift).sub_(beyond).clamp_(max=0.0).div_(w).exp_()
    s = torch.sum(e, dim=axes, keepdim=True)
    return e.div_(torch.where(s == 0, 1.0, s))


ROW_FUSED: dict[Any, Callable[[Backend, Tensor, tuple[int, ...], float], Tensor]] = {
    lse.logsumexp_values: _fused_logsumexp,
    lse.softmax_values: _fused_softmax,
}
"""The engine's row rules (keyed by the rule itself) written in place, for Python-float
widths: the same values bit for bit."""


def _rows(be: Backend, rule: Any, x: Tensor, axes: tuple[int, ...], width: Any) -> Tensor:
    """A row rule over ``axes``: fused and in blocks at a float width; at a tensor width
    (which broadcasts against the whole ``x``, not a block), while a graph is recorded
    (double backward: no in-place operations) or over axes sharded across processes
    (:class:`_Sharded`: a block would combine its partial sums on its own) the engine's
    formula."""
    if isinstance(width, Tensor) or isinstance(be, _Sharded):
        return rule(be, x, axes, width)
    fused = None if torch.is_grad_enabled() else ROW_FUSED.get(rule)
    if fused is None:
        return _in_row_blocks(lambda v, a: rule(be, v, a, width), x, axes)
    return _in_row_blocks(lambda v, a: fused(be, v, a, width), x, axes)


class _RowNode(torch.autograd.Function):
    """A :class:`Reduction`'s value over ``axes``, evaluated in blocks of whole rows;
    the subclasses choose what to save and how to backpropagate.

    ``width`` is the formula's width when it is a tensor (which may be learnable: its
    gradient is the formula's closed-form width slope, finite for every input), or
    ``None`` for a Python-float width.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: Tensor,
        width: Tensor | None,
        axes: tuple[int, ...],
        formula: Reduction,
        be: Backend,
        hard: Tensor | None,
    ) -> Tensor:
        if hard is not None:  # straight-through: the hard value, the smooth derivative
            return hard.clone()
        return _rows(be, formula.value_rule, x, axes, formula.width)

    @staticmethod
    def _setup(ctx: Any, inputs: tuple[Any, ...], saved: Tensor) -> None:
        _, width, ctx.axes, ctx.formula, ctx.be, _ = inputs
        ctx.save_for_backward(saved, width)

    @staticmethod
    def _width_grad(
        ctx: Any, grad: Tensor, p: Tensor, formula: Reduction, x: Tensor | None = None
    ) -> Tensor | None:
        """The width's gradient, ``grad * d value / d w`` summed to the width's shape."""
        width = formula.width
        if not isinstance(width, Tensor) or not ctx.needs_input_grad[1]:
            return None
        return (grad * formula.width_slope(ctx.be, p, ctx.axes, x)).sum_to_size(width.shape)


def _formula_of(ctx: Any, width: Tensor | None) -> Reduction:
    # the saved width tensor, so that double backward reaches it
    return ctx.formula if width is None else replace(ctx.formula, width=width)


class SmoothSoftmax(_RowNode):
    """Softmax with temperature ``w`` that saves only its output, like ``torch.softmax``
    (and a tensor width).

    Backward: ``p (g - sum(g p)) / w``, through torch's own softmax backward kernel
    for a single axis.
    """

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        # straight-through forwards the hard value: the input is saved instead, and
        # backward recomputes the output with its cotangent (Reduction.input_cotangent)
        ctx.from_input = inputs[5] is not None
        _RowNode._setup(ctx, inputs, inputs[0] if ctx.from_input else output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved, width = ctx.saved_tensors
        formula = _formula_of(ctx, width)
        if ctx.from_input:
            p, cotangent = formula.input_cotangent(ctx.be, saved, grad, ctx.axes)
            w_grad = _RowNode._width_grad(ctx, grad, p, formula)
            return cotangent, w_grad, None, None, None, None
        p = saved
        w_grad = _RowNode._width_grad(ctx, grad, p, formula)
        if formula.tangent_rule is not None:  # sparsemax, entmax, log-softmax
            cotangent = formula.output_cotangent(ctx.be, p, grad, ctx.axes)
            return cotangent, w_grad, None, None, None, None
        whole = not isinstance(ctx.be, _Sharded)  # the native kernel would see one shard
        if whole and width is None and len(ctx.axes) == 1 and not torch.is_grad_enabled():
            native = torch._softmax_backward_data(grad, p, ctx.axes[0], p.dtype)
            return native.mul_(1.0 / formula.width), None, None, None, None, None
        inner = ctx.be.xp.sum(grad * p, axis=ctx.axes, keepdims=True)  # across shards too
        return p * (grad - inner) / formula.width, w_grad, None, None, None, None


class SmoothReduction(_RowNode):
    """A reduction over ``axes`` (kept as size-1 dimensions), e.g. ``w log sum exp(x/w)``,
    that saves ``x``, as ``torch.logsumexp`` does (and a tensor width); backward is
    ``grad`` times the formula's weights (the softmax for logsumexp)."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _RowNode._setup(ctx, inputs, inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, width = ctx.saved_tensors
        formula = _formula_of(ctx, width)
        p = _rows(ctx.be, formula.weights_rule, x, ctx.axes, formula.width)
        w_grad = _RowNode._width_grad(ctx, grad, p, formula, x)
        return _times(grad, p), w_grad, None, None, None, None


def reduction(
    be: Backend, formula: Reduction, x: Tensor, axes: tuple[int, ...], hard: Tensor | None = None
) -> Tensor:
    """The adapter's entry point for reductions over ``axes`` (kept), at a Python-float
    or a tensor width; a DTensor is reduced shard by shard (:func:`_sharded_reduction`).
    ``hard``: straight-through, the node's value (see the dispatcher)."""
    if _dtensor_of(x) is not None:
        sharded = _sharded_reduction(be, formula, x, axes, hard)
        if sharded is not None:
            return sharded
    node = SmoothSoftmax if formula.output_is_weights else SmoothReduction
    width = formula.width if isinstance(formula.width, Tensor) else None
    out: Tensor = node.apply(x, width, axes, formula, be, hard)
    return out


def _dtensor_of(x: Any) -> Any:
    """The ``torch.distributed.tensor`` module if ``x`` is a DTensor, else ``None``
    (without importing torch.distributed for plain tensors)."""
    if type(x) in (Tensor, torch.nn.Parameter):
        return None
    module = sys.modules.get("torch.distributed.tensor")
    return module if module is not None and isinstance(x, module.DTensor) else None


class _AllReduceSum(torch.autograd.Function):
    """The sum of every shard's ``partial`` (a replicated result); backward is the
    identity, as each shard uses the replicated sum for its own entries only."""

    @staticmethod
    def forward(partial: Tensor, groups: tuple[Any, ...]) -> Tensor:
        return _all_reduce(partial, "sum", groups)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def _all_reduce(t: Tensor, op: str, groups: tuple[Any, ...]) -> Tensor:
    from torch.distributed import _functional_collectives as funcol

    for group in groups:
        t = funcol.wait_tensor(funcol.all_reduce(t, op, group))
    return t


class _ShardedNamespace:
    """``xp`` of a shard of a DTensor: ``max``, ``min`` and ``sum`` over axes that are
    sharded combine the shards' partial results with one all-reduce per mesh dimension
    (the max is never differentiated: the engine takes it through a stop-gradient);
    everything else is the plain namespace."""

    def __init__(self, xp: Any, sharded: dict[int, Any], offsets: dict[int, int]) -> None:
        self._xp = xp
        self._sharded = sharded  # tensor axis -> process group of the mesh dimension
        self.offsets = offsets  # tensor axis -> where this shard starts along it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xp, name)

    def groups(self, axis: Any) -> tuple[Any, ...]:
        axes = range(1 << 30) if axis is None else axis if isinstance(axis, tuple) else (axis,)
        return tuple(g for a, g in self._sharded.items() if a in axes)

    def max(self, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _all_reduce(self._xp.max(x, axis, keepdims).detach(), "max", self.groups(axis))

    def min(self, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _all_reduce(self._xp.min(x, axis, keepdims).detach(), "min", self.groups(axis))

    def sum(self, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        groups = self.groups(axis)
        partial = self._xp.sum(x, axis, keepdims)
        return _AllReduceSum.apply(partial, groups) if groups else partial


class _Sharded(Backend):
    """The torch backend of one shard of a DTensor reduced over sharded axes: its
    reductions combine the shards (:class:`_ShardedNamespace`), and :meth:`sums` stacks
    several partial sums into one all-reduce."""

    def sums(self, arrays: tuple[Tensor, ...], axes: tuple[int, ...]) -> tuple[Tensor, ...]:
        xp = self.xp
        if torch.compiler.is_compiling():
            # one all-reduce each: inductor (torch 2.13) fused a later local sum equal to a
            # row of the stack into the stack's buffer, which its in-place all-reduce had
            # already summed, and all-reduced it again (a gradient half the true one)
            groups = xp.groups(axes)
            return tuple(_AllReduceSum.apply(xp._xp.sum(a, axes, True), groups) for a in arrays)
        partial = torch.stack(torch.broadcast_tensors(*(xp._xp.sum(a, axes, True) for a in arrays)))
        return tuple(_AllReduceSum.apply(partial, xp.groups(axes)).unbind(0))

    @property
    def combines_shards(self) -> bool:
        return True

    def positions(self, x: Tensor, axis: int) -> Tensor:
        start = self.xp.offsets.get(axis, 0)
        return super().positions(x, axis) + float(start)


def _sharded_reduction(
    be: Backend, formula: Reduction, x: Any, axes: tuple[int, ...], hard: Any
) -> Tensor | None:
    """A reduction of a DTensor computed on its local shard: over axes that are not
    sharded with no communication, over sharded ones with the engine's sums and max
    combined by all-reduces (two forward, two backward for logsumexp, one backward for
    softmax), the result a DTensor replicated along the reduced sharded axes and sharded
    as ``x`` elsewhere. ``None`` (the DTensor's own dispatch) for a width tensor that
    varies along a sharded axis."""
    dt = _dtensor_of(x)
    mesh = x.device_mesh
    if any(p.is_partial() for p in x.placements):  # a pending sum: resolve it first
        x = x.redistribute(mesh, [dt.Replicate() if p.is_partial() else p for p in x.placements])
    given = x.placements
    if formula.whole_slice and any(p.is_shard() and p.dim in axes for p in given):
        # a sort needs the whole slice: gathered along the reduced axes (the one gather)
        x = x.redistribute(mesh, [dt.Replicate() if p.is_shard() and p.dim in axes else p
                                  for p in given])  # fmt: skip
    placements = x.placements
    sharded = {p.dim: mesh.get_group(i) for i, p in enumerate(placements) if p.is_shard()}
    if len(sharded) != sum(p.is_shard() for p in placements):  # one axis on two mesh dims
        return None
    kept = {a: g for a, g in sharded.items() if a not in axes}
    width: Any = formula.width
    local_width = None
    if isinstance(width, Tensor):
        offset = x.ndim - width.ndim
        if any(a >= offset and width.shape[a - offset] != 1 for a in kept):
            return None
        if _dtensor_of(width) is not None:
            replicate = [dt.Replicate()] * mesh.ndim
            # each shard's width gradient sums over its own entries of the output: a
            # partial sum along the sharded axes the output keeps sharded (the softmax's
            # reduced ones too; a reduced value is replicated along them)
            sharded_out = [
                p.is_shard() and (formula.output_is_weights or p.dim not in axes)
                for p in placements
            ]
            grads = [dt.Partial() if s else dt.Replicate() for s in sharded_out]
            whole: Any = width  # a DTensor
            width = whole.redistribute(mesh, replicate).to_local(grad_placements=grads)
        local_width = width
    reduced = {a: g for a, g in sharded.items() if a in axes}
    local_be = be
    if reduced:
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        _, starts = compute_local_shape_and_global_offset(x.shape, mesh, placements)
        offsets = {a: int(starts[a]) for a in reduced}
        local_be = _Sharded(**{**vars(be), "xp": _ShardedNamespace(be.xp, reduced, offsets)})
    local = replace(formula, width=width)
    node = SmoothSoftmax if formula.output_is_weights else SmoothReduction
    shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))
    out_placements = [dt.Replicate() if p.is_shard() and p.dim in axes else p for p in placements]
    if hard is not None:  # the hard value laid out as the result (its own collective)
        layout = placements if formula.output_is_weights else out_placements
        # the bound method: torch.compile cannot trace DTensor.to_local(...) unbound
        hard = be.adopt(hard, x).redistribute(mesh, layout).to_local()
    out = node.apply(x.to_local(), local_width, axes, local, local_be, hard)
    if formula.output_is_weights:
        whole = dt.DTensor.from_local(out, mesh, placements, shape=x.shape, stride=x.stride())
        return whole if tuple(placements) == tuple(given) else whole.redistribute(mesh, given)
    stride = torch.empty(shape, device="meta").stride()
    return dt.DTensor.from_local(out, mesh, out_placements, shape=shape, stride=stride)


class _FusedInner(NamedTuple):
    """A combination's inner formula as this adapter evaluates it: the fused form where
    there is one (``F.softplus`` and its backward kernel for the logistic ReLU, ...)."""

    formula: Formula

    @property
    def width(self) -> Any:
        return self.formula.width

    def value(self, be: Backend, x: Tensor) -> Tensor:
        fused = _fused(self.formula)
        return fused.value(x, self.formula.width) if fused else self.formula.value(be, x)

    def slope(self, be: Backend, x: Tensor) -> Tensor:
        fused = _fused(self.formula)
        if fused is None or torch.is_grad_enabled():  # double backward: the plain slope
            return self.formula.slope(be, x)
        w = self.formula.width
        saved = fused.value(x, w) if fused.from_output else x
        return fused.backward(torch.ones_like(x), saved, w)  # NaN at NaN, as the kernels are


def _in_blocks_of_inputs(fn: Callable[[tuple[Any, ...]], Any], inputs: tuple[Any, ...]) -> Any:
    """``fn(inputs)`` for an elementwise ``fn`` of several inputs returning a tensor or a
    tuple of tensors (or ``None``), in blocks of 1 MB as :func:`_in_blocks` where every
    tensor input has one shape (Python floats are constants); the plain call otherwise."""
    tensors = [v for v in inputs if isinstance(v, Tensor)]
    shape = tensors[0].shape
    if any(t.shape != shape or not _blockable(t) for t in tensors):
        return fn(inputs)
    size, step = tensors[0].numel(), _BLOCK_BYTES // tensors[0].element_size()
    if size < 4 * step:
        return fn(inputs)
    flat = tuple(v.view(-1) if isinstance(v, Tensor) else v for v in inputs)
    single = False

    def block(start: int) -> tuple[Any, ...]:
        nonlocal single
        result = fn(tuple(v[start : start + step] if isinstance(v, Tensor) else v for v in flat))
        single = isinstance(result, Tensor)
        return (result,) if single else tuple(result)

    outs = _assembled(block, size, step)
    shaped = tuple(None if out is None else out.view(shape) for out in outs)
    return shaped[0] if single else shaped


class SmoothCombination(torch.autograd.Function):
    """A :class:`Combination` of two or three inputs (tensors, or Python floats that need
    no gradient; ``None`` pads two to three) that saves its tensor inputs, as
    ``torch.maximum`` and ``torch.where`` do: no new memory, and a Python-float input
    costs nothing. Evaluated in blocks with the inner formula's fused form; backward is
    the formula's partials from the saved inputs, built from differentiable operations
    (double backward works). The inputs come first and the arity is fixed: what
    torch.compile traces without a graph break."""

    generate_vmap_rule = True

    @staticmethod
    def forward(first: Any, second: Any, third: Any, formula: Combination, be: Backend) -> Tensor:
        values = (first, second) if third is None else (first, second, third)
        inner = _FusedInner(formula.inner)
        out: Tensor = _in_blocks_of_inputs(lambda v: formula.value(be, v, inner), values)
        return out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        *values, ctx.formula, ctx.be = inputs
        if values[2] is None:
            values.pop()
        ctx.numbers = [None if isinstance(v, Tensor) else v for v in values]
        ctx.save_for_backward(*(v for v in values if isinstance(v, Tensor)))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        tensors = iter(ctx.saved_tensors)
        values = tuple(next(tensors) if v is None else v for v in ctx.numbers)
        wanted = tuple(ctx.needs_input_grad[: len(values)])
        inner = _FusedInner(ctx.formula.inner)
        partials = _in_blocks_of_inputs(
            lambda v: ctx.formula.partials(ctx.be, v, wanted, inner), values
        )
        grads = [
            None if p is None else (grad * p).sum_to_size(v.shape) for p, v in zip(partials, values)
        ]
        grads += [None] * (5 - len(grads))
        return tuple(grads)


def combination(be: Backend, formula: Combination, inputs: tuple[Any, ...]) -> Tensor:
    """The adapter's entry point for a function of two or three inputs."""
    padded = (*inputs, None) if len(inputs) == 2 else inputs
    out: Tensor = SmoothCombination.apply(*padded, formula, be)
    return out


class ScoreDerivative(torch.autograd.Function):
    """``g^(n)(x)`` of the numerical engine; backward multiplies by ``g^(n+1)(x)``,
    itself differentiable (the score-function form needs no derivative of ``f``).

    With ``ahead``, forward computes ``g^(n+1)`` too, from the same evaluations of
    ``f``, and returns it beside the value for backward. In the ``setup_context`` style
    with a vmap rule (the engine is elementwise in ``x``: a vmapped dimension is one
    more batch dimension), so that ``torch.func`` transforms work.
    """

    @staticmethod
    def forward(x: Tensor, engine: Any, order: int, be: Backend, ahead: bool) -> tuple[Tensor, ...]:
        return tuple(engine.derivatives(be, x, (order, order + 1) if ahead else (order,)))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        x, ctx.engine, ctx.order, ctx.be, ahead = inputs
        if ahead:
            ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(x, output[1] if ahead else None)

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *_: Any) -> tuple[Tensor, None, None, None, None]:
        x, ahead = ctx.saved_tensors
        ctx.engine.check_order(ctx.order + 1)
        if torch.is_grad_enabled() or ahead is None:  # create_graph: differentiable
            ahead = _score_derivative(ctx.be, ctx.engine, x, ctx.order + 1)
        return grad * ahead, None, None, None, None

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[Any, ...], x: Tensor, engine: Any, order: int, be: Backend,
        ahead: bool,
    ) -> tuple[tuple[Tensor, ...], tuple[Any, ...]]:  # fmt: skip
        outputs = ScoreDerivative.apply(x, engine, order, be, ahead)
        return outputs, (in_dims[0],) * len(outputs)


def _score_derivative(be: Backend, engine: Any, x: Tensor, order: int) -> Tensor:
    # the next derivative is computed along only where a gradient will ask for it
    ahead = torch.is_grad_enabled() and x.requires_grad and order < engine.max_order
    out: Tensor = ScoreDerivative.apply(x, engine, order, be, ahead)[0]
    return out


def numerical(be: Backend, engine: Any, x: Tensor) -> Tensor:
    """The numerical engine's ``g(x)`` with score-function derivatives."""
    return _score_derivative(be, engine, x, 0)


class Perturbed(torch.autograd.Function):
    """``g(x) = E[f(x - wU)]`` of a function of vectors. Where the Jacobian is small
    (:meth:`Engine.keeps_jacobian`), forward computes it from the same evaluations of
    ``f`` and saves it alone, and backward contracts it with the incoming gradient;
    otherwise forward saves ``x`` and the draws, and backward evaluates ``f`` again for
    the vector-Jacobian product alone (memory ``O(batch x n)``, twice the calls of
    ``f``). Once differentiable: the second derivative would need the second-order
    score."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, p: Tensor, engine: Any, be: Backend) -> Tensor:
        needed = bool(ctx.needs_input_grad[0])
        ctx.engine, ctx.be = engine, be
        # one call of f on x itself sizes the Jacobian (one more beside the samples)
        if needed and engine.keeps_jacobian(x, engine.hard(be, x.detach())):
            value, jacobian, _ = engine.perturbed(be, x, p, jacobian=True)
            ctx.save_for_backward(jacobian, None, None)
        else:
            value, _, _ = engine.perturbed(be, x, p, jacobian=False)
            if needed:
                engine.check_event_gradient()  # now, not in backward
            ctx.save_for_backward(None, x if needed else None, p if needed else None)
        out: Tensor = value
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        jacobian, x, p = ctx.saved_tensors
        if jacobian is None:
            return ctx.engine.perturbed_vjp(ctx.be, x, p, grad), None, None, None
        grad = grad.reshape(jacobian.shape[:-1])  # (..., m)
        return (grad.unsqueeze(-1) * jacobian).sum(-2), None, None, None


def perturbed(be: Backend, engine: Any, x: Tensor, p: Tensor) -> Tensor:
    """A function of vectors smoothed by Monte Carlo, with its score-function Jacobian."""
    out: Tensor = Perturbed.apply(x, p, engine, be)
    return out


class FenchelYoung(torch.autograd.Function):
    """The Fenchel-Young loss of a perturbed maximizer; saves ``theta`` and the gradient
    ``E[y*(theta - wU)] - y_true`` (once differentiable, like :class:`Perturbed`)."""

    @staticmethod
    def forward(
        ctx: Any, theta: Tensor, y_true: Tensor, p: Tensor, engine: Any, be: Backend
    ) -> Tensor:
        loss, solution = engine.perturbed_max(be, theta, p, y_true)
        ctx.save_for_backward(theta, solution - y_true)
        out: Tensor = loss
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None, None]:
        theta, slope = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        return grad * slope, -grad * theta, None, None, None


def fenchel_young(be: Backend, engine: Any, theta: Tensor, y_true: Tensor, p: Tensor) -> Tensor:
    """The Fenchel-Young loss, differentiated through the perturbed maximizer."""
    out: Tensor = FenchelYoung.apply(theta, y_true, p, engine, be)
    return out


class StraightThrough(torch.autograd.Function):
    """``hard`` forward, the gradient of ``smooth`` backward; it saves nothing.

    The forward value is a copy of ``hard``, no arithmetic (every value kept bit for
    bit, ``-0.0`` and subnormals included); backward hands ``grad`` to ``smooth``, whose own
    node (one saved tensor on the fast path) gives the smooth gradient, NaN where the
    input was NaN. (``hard - (s.detach() - s)`` kept ``s``'s whole graph plus a mask.)
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(hard: Tensor, smooth: Tensor) -> Tensor:
        # a copy: an input returned as is would be a view that no in-place op may touch
        return hard.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        return None, grad


def recomputed(fn: Callable[..., Tensor], *inputs: Any) -> Tensor:
    """``fn(*inputs)`` differentiated by autograd but recomputed in backward: what an
    array width (maybe learnable) takes, whose generic formula keeps tens to hundreds of
    intermediate tensors (clip's cluster form: 650) that only the inputs need replace.

    Plain where no gradient is recorded, and inside torch.func transforms (their own
    autograd levels) and compiled graphs (the compiler decides what to keep)."""
    tensors = [v for v in inputs if isinstance(v, Tensor)]
    if (
        not torch.is_grad_enabled()
        or not any(t.requires_grad for t in tensors)
        or torch.compiler.is_compiling()
        or any(_is_functorch_wrapped(t) for t in tensors)
    ):
        return fn(*inputs)
    out: Tensor = torch.utils.checkpoint.checkpoint(fn, *inputs, use_reentrant=False)
    return out


def straight_through(hard: Tensor, smooth: Tensor) -> Tensor:
    """``hard`` forward (computed without a graph), the gradient of ``smooth`` backward."""
    out: Tensor = StraightThrough.apply(hard.detach(), smooth)
    return out


class SmoothTransform(torch.autograd.Function):
    """A map of rows (a soft rank or sort): forward runs the algorithm (a sort, pool
    adjacent violators) without a graph and returns its residuals beside the output
    (the permutation and the blocks: integers, plus one float tensor), which backward
    hands to the formula's vector-Jacobian rule.

    In the ``setup_context`` style with a vmap rule of its own, so that ``torch.func``
    transforms work: rows are independent, so a vmapped dimension joins the rows (the
    algorithm itself, with its data-dependent loop, could not be vmapped).
    """

    @staticmethod
    def forward(x: Tensor, formula: Transform, be: Backend) -> tuple[Tensor, ...]:
        if formula.stepwise and isinstance(formula.data.width, float) and _on_host(x):
            # a loop of small steps: NumPy's per-operation cost is a fraction of eager
            # torch's (batch 256 x 4096 entries: 0.47 s against 0.79 s of CPU time)
            host, values = formula.forward(backend_of(x.numpy()), x.numpy())
            out = torch.from_numpy(host)
            residuals = tuple(torch.from_numpy(np.ascontiguousarray(r)) for r in values)
        else:
            out, residuals = formula.forward(be, x)
        # an input returned as a residual (the pairwise rank keeps x) goes out as a view
        return (out, *(r.view_as(r) if r is x else r for r in residuals))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        _, ctx.formula, ctx.be = inputs
        residuals = output[1:]
        ctx.mark_non_differentiable(*residuals)
        ctx.save_for_backward(*residuals)

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *_: Any) -> tuple[Tensor, None, None]:
        return ctx.formula.vjp(ctx.be, ctx.saved_tensors, grad), None, None

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[Any, ...], x: Tensor, formula: Transform, be: Backend
    ) -> tuple[tuple[Tensor, ...], tuple[int, ...]]:
        # every output and residual has the rows first: (size * rows, ...) -> (size, rows, ...)
        x = x.movedim(in_dims[0], 0)
        size = int(x.shape[0])
        outputs = SmoothTransform.apply(x.reshape(-1, *x.shape[2:]), formula, be)
        unfolded = tuple(o.reshape(size, -1, *o.shape[1:]) for o in outputs)
        return unfolded, (0,) * len(unfolded)


def _on_host(x: Tensor) -> bool:
    """Whether ``x``'s values can go through NumPy: a plain CPU tensor, outside
    ``torch.compile`` and functorch transforms."""
    return (
        x.device.type == "cpu"
        and type(x) is torch.Tensor
        and not torch.compiler.is_compiling()
        and not _is_functorch_wrapped(x)
    )


def transform(be: Backend, formula: Transform, x: Tensor) -> Tensor:
    """The adapter's entry point for maps of rows."""
    out: Tensor = SmoothTransform.apply(x, formula, be)[0]
    return out


def _resolved(x: Any) -> Any:
    """A DTensor with its pending sums (``Partial`` placements) resolved."""
    dt = _dtensor_of(x)
    if any(p.is_partial() for p in x.placements):
        x = x.redistribute(
            x.device_mesh, [dt.Replicate() if p.is_partial() else p for p in x.placements]
        )
    return x


def slicewise(
    fn: Callable[[Any], Tensor], x: Any, axis: int, dims: Callable[[int], int | None] | None
) -> Tensor:
    """``fn`` on whole slices along ``axis`` (see the dispatcher's ``slicewise``)."""
    dt = _dtensor_of(x)
    if dt is None:
        return fn(x)
    x = _resolved(x)
    mesh, given = x.device_mesh, tuple(x.placements)
    ax = axis % x.ndim if x.ndim else 0
    whole = tuple(dt.Replicate() if p.is_shard() and p.dim == ax else p for p in given)
    if whole != given:  # a sort needs the whole slice: the one gather
        x = x.redistribute(mesh, whole)
    local_shape = tuple(x.to_local().shape)
    out = fn(x.to_local())
    layout = dims or (lambda d: d)
    placements = []
    for p in whole:
        if p.is_shard():
            d = layout(p.dim)
            assert d is not None, "a sharded dimension reduced away"
            placements.append(dt.Shard(d))
        else:
            placements.append(p)

    def laid_out(part: Tensor) -> Any:
        shape = list(part.shape)
        for p, q in zip(whole, placements):  # the sharded dimensions' global sizes
            if p.is_shard():
                shape[q.dim] = int(x.shape[p.dim])
        stride = torch.empty(shape, device="meta").stride()
        result = dt.DTensor.from_local(part, mesh, placements, shape=tuple(shape), stride=stride)
        if whole != given and dims is None and tuple(part.shape) == local_shape:
            result = result.redistribute(mesh, given)  # back to x's layout: no communication
        return result

    if isinstance(out, tuple):  # topk's (values, mask)
        return type(out)(*(laid_out(part) for part in out))
    return laid_out(out)


class _AllReduceProduct(torch.autograd.Function):
    """The product of every shard's ``partial``; backward ``grad`` times the product of
    the other shards' (two all-reduces: the product of their non-zero partials, and the
    count of zeros, so that a zero elsewhere gives 0 and one here does not divide)."""

    @staticmethod
    def forward(partial: Tensor, groups: tuple[Any, ...]) -> Tensor:
        return _all_reduce(partial, "product", groups)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.groups = inputs[1]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (partial,) = ctx.saved_tensors
        zero = partial == 0
        nonzero = torch.where(zero, 1.0, partial)
        everyone = _all_reduce(nonzero, "product", ctx.groups)
        zeros = _all_reduce(zero.to(partial.dtype), "sum", ctx.groups) - zero.to(partial.dtype)
        others = torch.where(zeros > 0, 0.0, everyone / nonzero)
        return grad * others, None


def product(be: Backend, x: Any, axes: tuple[int, ...]) -> Tensor:
    """``prod x`` over ``axes`` (kept); a DTensor's shards combined by one all-reduce
    along the sharded ones (see the dispatcher's ``product``)."""
    dt = _dtensor_of(x)
    if dt is None:
        out: Tensor = be.xp.prod(x, axis=axes, keepdims=True)
        return out
    x = _resolved(x)
    mesh, placements = x.device_mesh, x.placements
    groups = tuple(mesh.get_group(i) for i, p in enumerate(placements)
                   if p.is_shard() and p.dim in axes)  # fmt: skip
    local = be.xp.prod(x.to_local(), axis=axes, keepdims=True)
    if groups:
        local = _AllReduceProduct.apply(local, groups)
    shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))
    out_placements = [dt.Replicate() if p.is_shard() and p.dim in axes else p for p in placements]
    stride = torch.empty(shape, device="meta").stride()
    return dt.DTensor.from_local(local, mesh, out_placements, shape=shape, stride=stride)
