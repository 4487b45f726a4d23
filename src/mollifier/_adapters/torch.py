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
and sign save their output instead, like ``torch.sigmoid``).

In eager mode on the CPU, formulas of several operations are evaluated in cache-sized
blocks (:func:`_in_blocks`): a poor man's fusion that makes them 3-5x faster on large
tensors. torch.compile fuses them properly and takes the plain formulas.

Imported only when a torch tensor arrives.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .._backend import Backend, backend_of, torch_ndtr
from .._engine import lse
from .._engine.formula import Combination, Formula, Reduction, Transform
from .._engine.piecewise import ABS, RELU, SIGN, STEP
from .._kernels import Gaussian, Logistic

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
    Compiled graphs (Inductor fuses them anyway), functorch transforms, tensor subclasses
    (DTensor), graphs recorded for double backward, GPUs and small or strided inputs take
    the plain call.
    """
    return _in_row_blocks(lambda v, _: fn(v), x, ())  # rows of no axes: single elements


# a private torch API: where a torch version lacks it, blocks are never used
_is_functorch_wrapped: Callable[[Tensor], bool] = getattr(
    torch._C._functorch, "is_functorch_wrapped_tensor", lambda tensor: True
)


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
            return torch.exp(-0.5 * t * t) * scale

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


_FUSED_WIDTHS = (1e-30, 1e30)
"""Widths for which ``1/w`` is a finite float32 (the fused forms scale by it); others
take the generic formula, in the same node."""


def _fused(formula: Formula) -> Fused | None:
    fused = FUSED.get(formula.fusion)
    if fused is None or not _FUSED_WIDTHS[0] < formula.width < _FUSED_WIDTHS[1]:
        return None
    return fused


class SmoothElementwise(torch.autograd.Function):
    """``g(x)`` of a :class:`Formula` with a backward that recomputes ``g'`` from ``x``
    alone (or from the output, for the :class:`Fused` forms marked ``from_output``).

    Written in the ``setup_context`` style with a generated vmap rule, so that
    ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``) work as well.
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
        ctx.save_for_backward(output if ctx.fused and ctx.fused.from_output else x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (saved,) = ctx.saved_tensors  # x, or the output for from_output forms
        if ctx.fused is not None:
            return ctx.fused.backward(grad, saved, ctx.formula.width), None, None
        slope = _in_blocks(lambda v: ctx.formula.slope(ctx.be, v), saved)
        return _times(grad, slope), None, None


def _times(grad: Tensor, slope: Tensor) -> Tensor:
    # in place into the fresh slope unless a graph is being recorded (double backward)
    return grad * slope if torch.is_grad_enabled() else slope.mul_(grad)


def elementwise(be: Backend, formula: Formula, x: Tensor) -> Tensor:
    """The adapter's entry point for elementwise formulas (``x`` in its compute dtype)."""
    out: Tensor = SmoothElementwise.apply(x, formula, be)
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
        _RowNode._setup(ctx, inputs, output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        p, width = ctx.saved_tensors
        formula = _formula_of(ctx, width)
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
        partial = torch.stack(torch.broadcast_tensors(*(xp._xp.sum(a, axes, True) for a in arrays)))
        return tuple(_AllReduceSum.apply(partial, xp.groups(axes)).unbind(0))

    @property
    def combines_shards(self) -> bool:
        return True

    def positions(self, x: Tensor, axis: int) -> Tensor:
        start = self.xp.offsets.get(axis, 0)
        return super().positions(x, axis) + float(start)


def _not_compiled(reduced: dict[int, Any]) -> None:
    """Refuse a reduction along a DTensor's sharded axis inside ``torch.compile``:
    traced there, its combined partial sums came out with wrong gradients (a compiled
    elementwise op, or a reduction along an unsharded axis, is right), and without
    ``fullgraph`` DTensor refused the compiled graph's ``as_strided``."""
    if reduced and torch.compiler.is_compiling():
        raise NotImplementedError(
            "a mollifier reduction along a sharded axis of a DTensor is not supported "
            "inside torch.compile yet (its gradient came out wrong); reduce an unsharded "
            "axis there, or call it outside the compiled function"
        )


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
    _not_compiled(reduced)
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
        hard = dt.DTensor.to_local(
            be.adopt(hard, x).redistribute(mesh, out_placements), grad_placements=None
        )
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
    torch.empty(_ALLOCATOR_HINT_BYTES, dtype=torch.uint8)  # see _ALLOCATOR_HINT_BYTES
    flat = tuple(v.view(-1) if isinstance(v, Tensor) else v for v in inputs)

    def block(start: int) -> Any:
        return fn(tuple(v[start : start + step] if isinstance(v, Tensor) else v for v in flat))

    first = block(0)
    single = isinstance(first, Tensor)

    def parts(result: Any) -> tuple[Any, ...]:
        return (result,) if single else tuple(result)

    outs = [None if p is None else p.new_empty(size) for p in parts(first)]
    for start in range(0, size, step):
        for out, part in zip(outs, parts(first if start == 0 else block(start))):
            if out is not None:
                out[start : start + step] = part
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
    itself differentiable (the score-function form needs no derivative of ``f``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, engine: Any, order: int, be: Backend) -> Tensor:
        # the next derivative comes from the same evaluations of f: compute it now
        ahead = bool(ctx.needs_input_grad[0]) and order < engine.max_order
        orders = (order, order + 1) if ahead else (order,)
        results = engine.derivatives(be, x, orders)
        ctx.engine, ctx.order, ctx.be = engine, order, be
        ctx.save_for_backward(x, results[1] if ahead else None)
        out: Tensor = results[0]
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        x, ahead = ctx.saved_tensors
        ctx.engine.check_order(ctx.order + 1)
        if torch.is_grad_enabled() or ahead is None:  # create_graph: differentiable
            ahead = ScoreDerivative.apply(x, ctx.engine, ctx.order + 1, ctx.be)
        return grad * ahead, None, None, None


def numerical(be: Backend, engine: Any, x: Tensor) -> Tensor:
    """The numerical engine's ``g(x)`` with score-function derivatives."""
    out: Tensor = ScoreDerivative.apply(x, engine, 0, be)
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
    adjacent violators) without a graph and saves its residuals (the permutation and
    the blocks: integers, plus one float tensor); backward is the formula's
    vector-Jacobian rule."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, formula: Transform, be: Backend) -> Tensor:
        if formula.stepwise and isinstance(formula.data.width, float) and _on_host(x):
            # a loop of small steps: NumPy's per-operation cost is a fraction of eager
            # torch's (batch 256 x 4096 entries: 0.47 s against 0.79 s of CPU time)
            host, values = formula.forward(backend_of(x.numpy()), x.numpy())
            out = torch.from_numpy(host)
            residuals = tuple(torch.from_numpy(np.ascontiguousarray(r)) for r in values)
        else:
            out, residuals = formula.forward(be, x)
        ctx.formula, ctx.be = formula, be
        ctx.save_for_backward(*residuals)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        residuals = ctx.saved_tensors
        return ctx.formula.vjp(ctx.be, residuals, grad), None, None


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
    out: Tensor = SmoothTransform.apply(x, formula, be)
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
    _not_compiled(dict(enumerate(groups)))
    local = be.xp.prod(x.to_local(), axis=axes, keepdims=True)
    if groups:
        local = _AllReduceProduct.apply(local, groups)
    shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))
    out_placements = [dt.Replicate() if p.is_shard() and p.dim in axes else p for p in placements]
    stride = torch.empty(shape, device="meta").stride()
    return dt.DTensor.from_local(local, mesh, out_placements, shape=shape, stride=stride)
