"""The dispatcher: every decision about a call is made here, once.

A public op validates its own parameters, then hands its catalogue entry, a formula
factory and the knobs to :func:`elementwise` (or the reduction helpers). Here:

1. the kernel is looked up and admitted, the width validated or found from ``tol``
   through the op's :class:`~mollifier._engine.bound.Bound`;
2. ``x`` becomes an array of its framework in the compute dtype;
3. :func:`evaluate` chooses the adapter: a Python-float width on torch or JAX takes the
   framework's custom derivative (one saved tensor), anything else the plain
   array-API formula (NumPy, or array widths that may be learnable);
4. :func:`finish` casts back to the caller's dtype and, for ``straight_through``,
   forwards the framework's own hard op bit for bit.

This module is the only one that imports an adapter, lazily, once an array of that
framework has arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from . import _backend
from ._backend import Array, Backend, as_float_array
from ._catalogue import Op
from ._engine import piecewise, staircase
from ._engine.bound import Bound
from ._engine.formula import Combination, Formula, Reduction, Transform
from ._kernels import Kernel, get_kernel
from ._params import flag, width_or_tol


def width_from_tol(name: str, bound: Bound, tol: float, kernel: Kernel) -> float:
    """The largest width whose bound is at most ``tol``, or ``ValueError`` saying why
    no width is."""
    width = bound.width_for(tol)
    if width is not None:
        return width
    if bound.constant > 0.0:
        if bound.constant <= tol and bound.slope == 0.0:
            raise ValueError(
                f"tol={tol:g} does not fix a width for {name}: {bound.description}, so its "
                f"sup error is {bound.constant:g} at every width; pass width= instead"
            )
        raise ValueError(
            f"no width meets tol={tol:g} for {name}: {bound.description}, so the sup error "
            f"is at least {bound.constant:g} at every width; pass width= instead (away from "
            "a jump at distance d the error decays like the kernel tail K(-d/w))"
        )
    if bound.slope == 0.0 and bound.curvature == 0.0:
        raise ValueError(
            f"tol={tol:g} does not fix a width for {name}: it has no jump, kink or curvature, "
            "so every width smooths it exactly; pass width= instead"
        )
    raise ValueError(
        f"no finite error bound for {name} with kernel='{kernel.name}' (E|U| = inf); pass "
        "width= instead"
    )


def resolve_width(
    op: Op,
    width: Any,
    tol: Any,
    kernel: Kernel,
    params: dict[str, Any] | None = None,
    ranged: bool = False,
) -> Any:
    """The width: ``width`` validated (a float or an array), or the one that meets ``tol``;
    ``ranged``: an op whose term count is fixed by a declared width range takes arrays."""
    w, t = width_or_tol(width, tol)
    if w is not None:
        if not op.array_width and not ranged and not isinstance(w, float):
            raise TypeError(
                f"{op.name} needs width= as a Python number: its number of terms is chosen "
                "from the width's value"
            )
        return w
    assert t is not None  # width_or_tol returns exactly one of the two
    return width_from_tol(op.name, op.bound_for(kernel, params or {}), t, kernel)


def width_like(be: Backend, width: Any, x: Array, axes: tuple[int, ...] | None = None) -> Any:
    """A float width as is; an array width in ``x``'s compute dtype (no silent upcast).

    An array width must broadcast against ``x``; for a reduction over ``axes`` it is one
    width per slice, so it must also have size 1 along the reduced axes.
    """
    if isinstance(width, float):
        return width
    if _backend.backend_of(width) is not be:
        raise TypeError(
            f"an array width must be an array of the same framework as x ({be.name}); got "
            f"{type(width).__name__}"
        )
    w_shape, x_shape = tuple(width.shape), tuple(x.shape)
    if not _broadcasts(w_shape, x_shape):
        raise ValueError(
            f"width of shape {w_shape} does not broadcast against x of shape {x_shape}"
        )
    if axes is not None:
        offset = x.ndim - width.ndim  # width's dimensions align with x's trailing ones
        if any(a >= offset and w_shape[a - offset] != 1 for a in axes):
            raise ValueError(
                f"a width array for a reduction is one width per slice: it needs size 1 along "
                f"the reduced axes {axes} of x of shape {x_shape}; got shape {w_shape}"
            )
    width = be.adopt(width, x)  # a plain tensor width with a DTensor x: replicated
    return be.xp.astype(width, x.dtype) if width.dtype != x.dtype else width


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(m == n or m == 1 or n == 1 for m, n in zip(reversed(a), reversed(b)))


def _adapter(be: Backend, width: Any) -> Any:
    """The framework adapter for this call, or None for the plain array-API formulas.

    Every Python-float width takes the adapter (its slopes are the closed forms, exact
    at every width); array widths, which may be learnable, take the generic formulas.
    """
    if not isinstance(width, float):
        return None
    return _framework_adapter(be)


def _framework_adapter(be: Backend) -> Any:
    if be.name == "torch":
        from ._adapters import torch as torch_adapter

        return torch_adapter
    if be.name == "jax":
        from ._adapters import jax as jax_adapter

        return jax_adapter
    return None


def evaluate(be: Backend, formula: Formula, x: Array) -> Array:
    """``g(x)`` through the framework's adapter where there is one (see module doc); an
    array width through the adapter's recomputing wrapper (autodiff in ``x`` and the
    width, keeping only the inputs for backward)."""
    adapter = _adapter(be, formula.width)
    with be.quiet():
        if adapter is not None:
            return adapter.elementwise(be, formula, x)
        framework = _framework_adapter(be)
        if framework is None:
            return formula.value(be, x)
        return framework.recomputed(
            lambda v, w: replace(formula, width=w).value(be, v), x, formula.width
        )


def evaluate_reduction(
    be: Backend, formula: Reduction, x: Array, axes: tuple[int, ...], hard: Array | None = None
) -> Array:
    """A reduction over ``axes`` (kept) through the framework's adapter where there is
    one; an array width (maybe learnable) too, differentiated by its closed-form slope.

    ``hard`` (straight-through; kept dimensions for a value, ``x``'s shape for weights;
    the caller's dtype): the value is ``hard`` (in ``x``'s dtype, exactly) and the
    derivative the formula's, in one node that never computes the smooth value (no
    work, and no collective, for a result that straight-through throws away; weights
    are recomputed from ``x`` in backward, with their cotangent)."""
    adapter = _adapter(be, formula.width)
    if adapter is None and not isinstance(formula.width, float):
        adapter = _framework_adapter(be)
    if hard is not None:
        hard = be.stop_gradient(hard)  # no graph: the node's derivative is the formula's
        hard = be.xp.astype(hard, x.dtype) if hard.dtype != x.dtype else hard
    with be.quiet():
        if adapter is None:
            return formula.value(be, x, axes) if hard is None else hard
        return adapter.reduction(be, formula, x, axes, hard)


def evaluate_combination(be: Backend, formula: Combination, inputs: tuple[Any, ...]) -> Array:
    """A function of several inputs through the framework's adapter where there is one."""
    adapter = _adapter(be, formula.width)
    with be.quiet():
        if adapter is not None:
            return adapter.combination(be, formula, inputs)
        framework = _framework_adapter(be)
        if framework is None:
            return formula.value(be, inputs)
        inner = formula.inner

        def value(width: Array, *values: Any) -> Array:
            return replace(formula, inner=replace(inner, width=width)).value(be, values)

        return framework.recomputed(value, formula.width, *inputs)


def evaluate_transform(be: Backend, formula: Transform, x: Array) -> Array:
    """A map of rows (soft ranks and sorts) through the framework's adapter, whose
    derivative is the formula's own Jacobian rule; the plain forward on NumPy."""
    adapter = _framework_adapter(be)
    with be.quiet():
        if adapter is None:
            return formula.value(be, x)
        return adapter.transform(be, formula, x)


def slicewise(
    fn: Callable[[Any], Array], x: Any, axis: int, dims: Callable[[int], int | None] | None = None
) -> Array:
    """``fn(x)`` for an op on whole slices along ``axis`` (the sorting family): a torch
    DTensor's local tensor, gathered first along ``axis`` if it is sharded there (a sort
    needs every entry of its slice), the result laid out as ``x`` with each of ``x``'s
    dimensions ``d`` at ``dims(d)`` (``None``: reduced away; identity by default).
    Anything else: ``fn(x)``."""
    try:
        be = _backend.backend_of(x)
    except TypeError:
        return fn(x)
    if be.name != "torch":
        return fn(x)
    return _framework_adapter(be).slicewise(fn, x, axis, dims)


def product(be: Backend, x: Array, axes: tuple[int, ...]) -> Array:
    """``prod x`` over ``axes`` (kept): along a DTensor's sharded axes each shard's
    product combined by one all-reduce (the soft ``all``/``any``), no gather."""
    if be.name == "torch":
        return _framework_adapter(be).product(be, x, axes)
    return be.xp.prod(x, axis=axes, keepdims=True)


def evaluate_numerical(be: Backend, engine: Any, x: Array, score: bool) -> Array:
    """``g(x)`` of the numerical engine; with ``score``, differentiated by the score
    function through the framework's custom derivative, otherwise by autodiff of ``f``."""
    with be.quiet():
        if not score or be.name == "numpy":
            return engine.derivatives(be, x, (0,))[0]
        adapter = _framework_adapter(be)
        return adapter.numerical(be, engine, x)


def evaluate_perturbed(be: Backend, engine: Any, x: Array, p: Array, score: bool) -> Array:
    """``g(x) = E[f(x - wU)]`` of a function of vectors (the engine's ``event_ndim=1``)
    from the draws ``p``; with ``score``, differentiated through its score-function
    Jacobian by the framework's custom derivative, otherwise by autodiff of ``f``."""
    with be.quiet():
        if not score or be.name == "numpy":
            return engine.perturbed(be, x, p, jacobian=False)[0]
        return _framework_adapter(be).perturbed(be, engine, x, p)


def evaluate_fenchel_young(
    be: Backend, engine: Any, theta: Array, y_true: Array, p: Array
) -> Array:
    """The Fenchel-Young loss ``F(theta) - <y_true, theta>`` of the perturbed maximizer
    ``engine.f``, differentiated through its gradient ``E[y*(theta - wU)] - y_true``
    (and ``-theta`` in ``y_true``) by the framework's custom derivative."""
    with be.quiet():
        adapter = _framework_adapter(be)
        if adapter is None:
            loss, _ = engine.perturbed_max(be, theta, p, y_true)
            return loss
        return adapter.fenchel_young(be, engine, theta, y_true, p)


def caller_dtype(be: Backend, x: Array, dtype: Any) -> Array:
    """``x`` (in the compute dtype) in the caller's dtype: exact, since ``x`` was widened
    from it, or converted from integers into it."""
    if x.dtype == dtype:
        return x
    return be.xp.astype(x, dtype)


def finish(be: Backend, smooth: Array, dtype: Any, hard: Array | None = None) -> Array:
    """Cast back to the caller's ``dtype``; with ``hard``, forward it bit for bit and
    backpropagate the smooth gradient (straight-through).

    ``hard`` is computed by the framework in the caller's dtype, so the forward value
    is the framework's own hard op, ``-0.0``, ``±inf`` and NaN included.
    """
    smooth = _backend.finish(be, smooth, dtype)
    if hard is None:
        return smooth
    adapter = _framework_adapter(be)
    if adapter is None:  # NumPy: no gradients, the hard value is the value
        return _backend.finish(be, hard, dtype)
    return _backend.finish(be, adapter.straight_through(hard, smooth), dtype)


def elementwise(
    op: Op,
    build: Callable[[Any, Kernel], Formula] | None,
    x: Any,
    *,
    width: Any,
    tol: Any,
    kernel: Any,
    straight_through: Any,
    params: dict[str, Any] | None = None,
    widest: float | None = None,
) -> Array:
    """The whole call of an elementwise op: ``build(width, kernel)`` gives its formula;
    ``None`` for a piecewise op, whose formula is its shape's convolution. ``widest``
    (a staircase's declared range, in the formula's units): the staircase sums take
    the term count of that width, and the width may be an array."""
    straight_through = flag(straight_through, "straight_through")
    k = get_kernel(kernel)
    params = params or {}
    shape = None
    if op.shape is not None:
        shape = op.shape(**params)
        shape.check_kernel(k)
    w = resolve_width(op, width, tol, k, params, ranged=widest is not None)
    be, x_c, dtype = as_float_array(x)
    if shape is not None:
        shape.check_range(float(be.xp.finfo(x_c.dtype).max), x_c.dtype)
    w = width_like(be, w, x_c)
    if build is None:
        assert shape is not None, f"{op.name} has no shape to build its formula from"
        formula = piecewise.formula(shape, w, k)
    else:
        sums: Any = k if widest is None else staircase.InRange(k, widest)  # a kernel's view
        formula = build(w, sums)
    smooth = evaluate(be, formula, x_c)
    hard = None
    if straight_through:
        with be.quiet():
            # from x without a graph: nothing of the hard op is kept for backward
            hard = op.hard_value(be.stop_gradient(caller_dtype(be, x_c, dtype)), params, be)
    return finish(be, smooth, dtype, hard)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def operands(values: tuple[Any, ...], names: tuple[str, ...]) -> tuple[Backend, list[Any], Any]:
    """The inputs of an op with several (``maximum``'s ``a`` and ``b``, ``where``'s
    ``x``, ``a``, ``b``, named by ``names``): ``(backend, inputs, caller dtype)``.

    Arrays become floats of one framework in one compute dtype, converted before any
    arithmetic (so integers cannot wrap and float16 differences cannot overflow); Python
    numbers stay Python floats (a constant costs autograd nothing). The caller dtype is
    the framework's promotion of the inputs' own.
    """
    arrays = {i: v for i, v in enumerate(values) if not _is_number(v)}
    if not arrays:  # numbers only: a NumPy computation
        arrays = {0: values[0]}
    converted = {i: as_float_array(v, names[i]) for i, v in arrays.items()}
    be = next(iter(converted.values()))[0]
    if any(b is not be for b, _, _ in converted.values()):
        raise TypeError(f"{', '.join(names)} must be numbers or arrays of one framework")
    compute = be.result_type(*(c.dtype for _, c, _ in converted.values()))
    dtype = be.result_type(*(d for _, _, d in converted.values()))
    out: list[Any] = []
    for i, value in enumerate(values):
        if i in converted:
            array = converted[i][1]
            out.append(array if array.dtype == compute else be.xp.astype(array, compute))
        else:
            out.append(float(value))
    return be, out, dtype


def as_caller_array(be: Backend, value: Any, like: Array, dtype: Any) -> Array:
    """An input of :func:`operands` (array or Python float) as an array in ``dtype``,
    for the hard op that straight-through forwards."""
    if isinstance(value, float):
        return be.const(value, caller_dtype(be, like, dtype))
    return be.stop_gradient(caller_dtype(be, value, dtype))  # no graph for the hard op


def axes_of(axis: Any, ndim: int) -> tuple[int, ...]:
    """Normalize ``axis`` (int, tuple of ints or None) to sorted non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"axis must be an int, a tuple of ints or None; got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an array with {ndim} dimensions")
        out.append(int(a) % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"axis contains repeated entries: {axis!r}")
    return tuple(sorted(out))


def reduction_finish(
    be: Backend,
    out: Array,
    axes: tuple[int, ...],
    keepdims: bool,
    dtype: Any,
    hard: Array | None = None,
) -> Array:
    """Drop the reduced axes unless ``keepdims``, then :func:`finish`; ``hard`` is kept
    like ``out``."""
    if not flag(keepdims, "keepdims"):
        out = be.xp.squeeze(out, axis=axes)
        if hard is not None:
            hard = be.xp.squeeze(hard, axis=axes)
    return finish(be, out, dtype, hard)


def slice_std(be: Backend, x: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """Each slice's standard deviation over ``axes`` (kept) and where it is positive.

    The std is that of the slice's finite entries (``±inf`` and masked-out entries,
    which are ``-inf``, do not set the scale); gradients flow through it. A slice whose
    finite entries are all equal (std 0) reads 1, with no gradient, and ``False`` in
    the mask: the caller decides what no spread means for it.
    """
    xp = be.xp
    finite = xp.isfinite(x)
    zero, one = be.const(0.0, x), be.const(1.0, x)
    count = xp.sum(xp.astype(finite, x.dtype), axis=axes, keepdims=True)
    count = xp.where(count > 0, count, be.const(1.0, count))
    # std(x) = s std(x / s) with s the largest |x|: the sum of x and the squares of the
    # deviations neither overflow (|x| near 1e308, or 1e154 for the squares) nor underflow
    # (|x| below 1e-154, subnormals), so the std is scale-equivariant over all floats
    scale = xp.max(xp.where(finite, xp.abs(x), zero), axis=axes, keepdims=True)
    scale = xp.where(scale > 0, scale, one)  # double where: no 0 / 0
    x_s = xp.where(finite, x, zero) / scale
    mean = xp.sum(x_s, axis=axes, keepdims=True) / count
    deviation = xp.where(finite, x_s - mean, zero)
    var = xp.sum(deviation * deviation, axis=axes, keepdims=True) / count
    spread = var > 0
    std = scale * xp.sqrt(xp.where(spread, var, one))  # double where: no 1/sqrt(0)
    return std, spread


def standardized_width(be: Backend, x: Array, width: Any, axes: tuple[int, ...]) -> Array:
    """``width`` in units of each slice's standard deviation (``standardize=True``, the
    scale-free softness of SoftTorch): ``width * std(x)`` over ``axes`` (kept), an array
    width for the reduction (one per slice), with the std of :func:`slice_std`.

    Gradients flow through it: the op is then the function ``f(x) = g_{c std(x)}(x)``
    itself, scale- and shift-equivariant (``f(a x + b) = a f(x) + b`` for ``a > 0`` for
    the max family) and differentiated as that function. A slice whose finite entries
    are all equal (std 0) takes the dtype's smallest normal width, the hard limit, with
    no gradient through its std.
    """
    std, spread = slice_std(be, x, axes)
    tiny = be.const(float(be.xp.finfo(x.dtype).tiny), std)
    return be.xp.where(spread, width * std, tiny)
