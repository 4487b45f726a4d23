r"""The smooth max family: logsumexp, softmax, smooth max/min/argmax, pairwise max, norms.

With width ``w`` (units of ``x``; the inverse temperature is ``1/w``):

* ``logsumexp``: :math:`w \log\sum_i e^{x_i/w}`, with
  :math:`\max \le \mathrm{lse}_w \le \max + w\log n`;
* softmax-weighted mean :math:`\sum_i x_i\,\mathrm{softmax}(x/w)_i`, between the mean
  (``w -> inf``) and the max, :math:`0 \le \max - S_w \le W((n-1)/e)\,w`;
* power form :math:`(\sum_i x_i^p)^{1/p}` with ``p = 1/w`` for ``x >= 0``, in
  :math:`[\max, n^{1/p}\max]`.

Every reduction shifts by the (masked) maximum, so nothing overflows at any width, and
entries equal to ``-inf`` (or masked out with ``where=``) carry no weight.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _dispatch
from ._backend import Array, Backend, as_float_array, backend_of, finish
from ._catalogue import Op, register
from ._engine import gate as gates
from ._engine import lse, select, sparse
from ._engine import piecewise as shapes
from ._kernels import Kernel, get_kernel
from ._params import flag, width_or_tol

KernelLike = str | Kernel
_METHODS = ("logsumexp", "softmax", "power", "sparsemax", "entmax15")
_SPARSE = ("sparsemax", "entmax15")
_ARGMAX_METHODS = ("softmax", "sparsemax", "entmax15")


def _reduction_op(name: str, module: str = "") -> Op:
    return Op(name, no_bound="the bounds of reductions are documented per method", module=module)


def _prepare(
    x: Any, axis: Any, where: Any, axis_name: Any = None
) -> tuple[Backend, Array, Any, tuple[int, ...]]:
    be, x_c, dtype = as_float_array(x)
    be = be.along(axis_name)  # inside jax.shard_map: the shards combined over axis_name
    axes = _dispatch.axes_of(axis, x_c.ndim)
    if where is not None:
        x_c = be.xp.where(_mask(be, where, x_c), x_c, be.const(-math.inf, x_c))
    return be, x_c, dtype, axes


def _mask(be: Backend, where: Any, x: Array) -> Array:
    """``where=`` as a boolean array of ``x``'s framework that broadcasts to ``x``'s shape:
    a bool, a list of bools, a NumPy bool array or a bool array of ``x``'s framework."""
    if isinstance(where, (bool, np.bool_, list, tuple)):
        where = np.asarray(where)
    if not isinstance(where, np.ndarray):
        try:
            same = backend_of(where) is be
        except TypeError:
            same = False
        if not same:
            raise TypeError(
                f"where must be a boolean array (NumPy or of x's framework, {be.name}); got "
                f"{type(where).__name__}"
            )
    if str(where.dtype) not in ("bool", "torch.bool"):  # NumPy and JAX, torch
        raise TypeError(f"where must be a boolean mask; got dtype {where.dtype}")
    m_shape, x_shape = tuple(where.shape), tuple(x.shape)
    if len(m_shape) > len(x_shape) or not all(
        m == n or m == 1 for m, n in zip(reversed(m_shape), reversed(x_shape))
    ):
        raise ValueError(f"where of shape {m_shape} does not broadcast to x's shape {x_shape}")
    if isinstance(where, np.ndarray) and be.name != "numpy":
        where = be.xp.asarray(where, device=x.device if be.name == "torch" else None)
    return where


def _reduced_size(x: Array, axes: tuple[int, ...]) -> int:
    size = 1
    for a in axes:  # a loop, not math.prod(generator): torch.compile traces it
        size *= int(x.shape[a])
    return size


def _width(width: Any, tol: Any, n: int, gap_per_width: float, method: str = "logsumexp") -> float:
    w, t = width_or_tol(width, tol)
    if w is not None:
        return w
    assert t is not None
    if gap_per_width == 0.0:  # n = 1: every width is exact
        return 1.0
    if method == "power":  # tol is relative: n^(1/p) - 1 <= tol with p = 1/w
        return math.log1p(t) / math.log(n)
    return t / gap_per_width


def _held(be: Backend, x: Array, dtype: Any) -> Array:
    """``x`` in the caller's dtype without a graph: what a straight-through value is
    computed from (it carries no derivative, and so saves nothing for backward)."""
    return be.stop_gradient(_dispatch.caller_dtype(be, x, dtype))


def _hard_max(be: Backend, x: Array, axes: tuple[int, ...], dtype: Any) -> Array:
    return be.xp.max(_held(be, x, dtype), axis=axes, keepdims=True)


HardOf = Callable[[Backend, Array, tuple[int, ...], Any], Array]
"""``hard_of(be, x, axes, dtype)``: the straight-through value of a max-family reduction
(kept dimensions, the caller's dtype), handed to the reduction's one node so that the
smooth value is never computed: :func:`_hard_max`, or :func:`min`'s ``-min(x)``."""


def _check_method(method: str, allowed: tuple[str, ...] = _METHODS) -> None:
    if not isinstance(method, str) or method not in allowed:
        raise ValueError(f"method must be one of {list(allowed)}; got {method!r}")


def _standardized(
    be: Backend, w: Any, x: Array, axes: tuple[int, ...], standardize: Any, tol: Any = None
) -> Any:
    """The width, times each slice's std with ``standardize=True``
    (:func:`mollifier._dispatch.standardized_width`)."""
    if not flag(standardize, "standardize"):
        return w
    if tol is not None:
        raise ValueError("standardize=True takes width= (in units of the std), not tol=")
    return _dispatch.standardized_width(be, x, w, axes)


def _norm_order(ord: Any) -> float:
    """``ord`` of :func:`norm` as a float: 0, a positive number or inf (any real number
    type, NumPy scalars included; not a bool)."""
    if isinstance(ord, (bool, np.bool_)) or not isinstance(ord, numbers.Real):
        raise TypeError(f"ord must be 0, a positive number or inf; got {type(ord).__name__}")
    value = float(ord)
    if not (value == 0.0 or value > 0.0):  # NaN and negative numbers
        raise ValueError(f"ord must be 0, a positive number or inf; got {ord!r}")
    return value


_LOGSUMEXP = _reduction_op("logsumexp", "SmoothLogSumExp")


@register(_LOGSUMEXP)
def logsumexp(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    tol: float | None = None,
    keepdims: bool = False,
    where: Array | None = None,
    b: Array | float | None = None,
    return_sign: bool = False,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array | tuple[Array, Array]:
    r"""Smooth maximum :math:`w \log \sum_i e^{x_i / w}` over ``axis``.

    Parameters
    ----------
    x : array
        NumPy, PyTorch or JAX array.
    axis : int, tuple of ints or None, default -1
        Axes to reduce (None: all).
    width : float, optional
        Temperature in units of ``x``. Exactly one of ``width`` and ``tol``.
    tol : float, optional
        Largest error allowed: ``width = tol / log n`` with ``n`` the reduced size.
    keepdims : bool, default False
    where : boolean array, optional
        Entries where it is False are left out (as if ``-inf``).
    b : array or number, optional
        Weights, scipy's ``b``: :math:`w \log \sum_i b_i e^{x_i / w}`, ``b`` broadcast
        against ``x`` (the result has the broadcast shape less the reduced axes). They
        may be negative (subtraction) or zero (the entry adds nothing, even at
        ``x = inf`` or NaN). Needs ``width=``; not with ``straight_through``.
    return_sign : bool, default False
        Return ``(value, sign)``: the log of the sum's absolute value and its sign (+1,
        0 or -1; 0 with value ``-inf`` for a zero sum). Without it a negative sum gives
        NaN (as scipy).
    standardize : bool, default False
        ``width`` in units of each slice's standard deviation (scale-free; see
        :func:`max`).
    straight_through : bool, default False
        Forward the hard max, backpropagate ``softmax(x / w)``.
    axis_name : hashable, optional
        Inside ``jax.shard_map``: the mesh axis over which the reduced axes are split.
        Each device reduces its own shard and the partial maxima and sums are combined
        with ``pmax`` and ``psum`` (no gather): the result is the unsharded one, on every
        device. Every reduction of the smooth max family takes it (not the sparse
        methods, which sort each slice).

    Returns
    -------
    array, or (array, array) with ``return_sign``
        ``m + w log sum exp((x - m) / w)`` with ``m`` the max, computed as scipy does,
        ``m + w log1p(sum of the other terms)``, so that it is exact to round-off also
        where those terms are below the resolution of 1; ``-inf`` for an empty or all
        ``-inf`` slice (the log of an empty sum, as scipy and ``jax.nn``); ``+inf`` if
        any entry is ``+inf``; NaN if any is NaN. Its gradient is then the softmax's
        limit (see :func:`softmax`), finite, and so is the gradient in a tensor width.

    Notes
    -----
    :math:`\max x \le \mathrm{lse}_w(x) \le \max x + w \log n`, and more precisely
    ``<= max + (n - 1) w exp(-gap / w)``. The gradient is ``softmax(x / w)``. Equals the
    expected max under Gumbel noise of scale ``w`` minus ``gamma w``; for two inputs it is
    ReLU smoothed by the logistic kernel: ``b + relu(a - b, width=w)``.

    With ``b``: ``m + w (log|M| + log1p(R/M))`` with ``m`` the max over non-zero
    weights, ``M`` the sum of the weights at ``m`` and ``R`` the rest (scipy's form, to
    round-off against ``scipy.special.logsumexp(x / w, b=b) * w``); its gradients are
    ``b e^{x/w} / S`` in ``x`` and ``w e^{x/w} / S`` in ``b`` (framework autodiff).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.logsumexp(np.array([0.0, 1.0, 2.0]), width=1.0)
    array(2.40760596)
    >>> mol.logsumexp(np.array([0.0, 1.0, 2.0]), width=1e-3)
    array(2.)
    >>> mol.logsumexp(np.array([1.0, 2.0]), b=np.array([1.0, -1.0]), width=1.0,
    ...               return_sign=True)
    (array(1.54132485), array(-1.))
    """
    straight_through = flag(straight_through, "straight_through")
    return_sign = flag(return_sign, "return_sign")
    if b is not None:
        return _weighted_logsumexp(x, b, axis, width, tol, keepdims, where, return_sign,
                                   standardize, straight_through, axis_name)  # fmt: skip
    hard_of = _hard_max if straight_through else None
    return _logsumexp(x, axis, width, tol, keepdims, where, return_sign, standardize,
                      axis_name, hard_of)  # fmt: skip


def _logsumexp(
    x: Array,
    axis: Any,
    width: Any,
    tol: Any,
    keepdims: Any,
    where: Any,
    return_sign: bool,
    standardize: Any,
    axis_name: Any,
    hard_of: HardOf | None,
) -> Array | tuple[Array, Array]:
    """:func:`logsumexp` without ``b``; straight-through where ``hard_of`` is given."""
    be, x_c, dtype, axes = _prepare(x, axis, where, axis_name)
    n = _reduced_size(x_c, axes) * be.shard_count()
    # log n only for tol: a traced size (torch.compile, dynamic=True) is not specialized
    w = _width(width, tol, n, math.log(n) if tol is not None and n > 1 else 0.0)
    w = _dispatch.width_like(be, w, x_c, axes)
    xp = be.xp
    if n == 0:  # log of an empty sum
        out = xp.sum(x_c, axis=axes, keepdims=True) + be.const(-math.inf, x_c)
        value = _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
        return (value, xp.zeros_like(value)) if return_sign else value  # the sign of 0
    w = _standardized(be, w, x_c, axes, standardize, tol)
    hard = None if hard_of is None else hard_of(be, x_c, axes, dtype)
    out = _dispatch.evaluate_reduction(be, lse.logsumexp(w), x_c, axes, hard)
    value = _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
    if not return_sign:
        return value
    # the sum of e^{x/w} is positive, 0 for an all -inf slice
    sign = xp.where(value == -math.inf, be.const(0.0, value), be.const(1.0, value))
    return value, be.stop_gradient(xp.where(xp.isnan(value), value, sign))


def _weighted_logsumexp(
    x: Any,
    b: Any,
    axis: Any,
    width: Any,
    tol: Any,
    keepdims: Any,
    where: Any,
    return_sign: bool,
    standardize: Any,
    straight_through: bool,
    axis_name: Any,
) -> Array | tuple[Array, Array]:
    """:func:`logsumexp` with weights ``b`` (scipy's semantics; see
    :func:`mollifier._engine.lse.weighted_logsumexp`); inside ``shard_map`` its maxima
    and sums combined over ``axis_name`` (differentiated by the framework)."""
    if straight_through:
        raise ValueError("straight_through does not combine with b= (no hard value for signs)")
    if tol is not None:
        raise ValueError("logsumexp with b= needs width= (tol= bounds the unweighted sum)")
    w, _ = width_or_tol(width, None)
    be, (x_c, b_c), dtype = _dispatch.operands((x, b), ("x", "b"))
    be = be.along(axis_name)
    xp = be.xp
    if isinstance(x_c, float):  # x a number, b an array
        x_c = be.const(x_c, b_c)
    if isinstance(b_c, float):
        b_c = be.const(b_c, x_c)
    shape = tuple(np.broadcast_shapes(tuple(x_c.shape), tuple(b_c.shape)))
    x_c, b_c = xp.broadcast_to(x_c, shape), xp.broadcast_to(b_c, shape)
    axes = _dispatch.axes_of(axis, len(shape))
    if where is not None:  # masked out: weight 0
        b_c = xp.where(_mask(be, where, x_c), b_c, be.const(0.0, b_c))
    w = _dispatch.width_like(be, w, x_c, axes)
    if _reduced_size(x_c, axes) == 0:  # log of an empty sum
        out = xp.sum(x_c, axis=axes, keepdims=True) + be.const(-math.inf, x_c)
        sign = xp.zeros_like(out)
    else:
        w = _standardized(be, w, x_c, axes, standardize)
        with be.quiet():
            out, sign = lse.weighted_logsumexp(be, x_c, b_c, axes, w)
        if not return_sign:  # the log of a negative number
            out = xp.where(sign < 0, be.const(math.nan, out), out)
    value = _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
    if not return_sign:
        return value
    return value, be.stop_gradient(_dispatch.reduction_finish(be, sign, axes, keepdims, dtype))


_SOFTMAX = _reduction_op("softmax", "SmoothSoftmax")


@register(_SOFTMAX)
def softmax(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    method: str = "softmax",
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Softmax with temperature ``width``: :math:`e^{x_i/w} / \sum_j e^{x_j/w}`, or a
    sparse argmax of ``x / w``.

    The smooth one-hot of ``argmax``; the gradient of :func:`logsumexp` (of
    ``max(method=...)`` for the sparse methods).

    * ``"softmax"``: every entry positive;
    * ``"sparsemax"`` (Martins & Astudillo, 2016): the Euclidean projection of ``x / w``
      onto the simplex, :math:`p = [x/w - \tau]_+` with ``tau`` such that ``p`` sums to
      1: exact zeros for entries more than ``w`` below the max; exactly one-hot once the
      gap to the runner-up reaches ``w``;
    * ``"entmax15"`` (Peters et al., 2019): :math:`p = [x/(2w) - \tau]_+^2`, sparse as
      sparsemax and smooth inside its support (zeros beyond ``2w`` below the max).

    Both are exact (sort-based, ``O(n log n)``); their Jacobian is the centring
    ``(diag(s) - s s^T / sum s) / w`` restricted to the support (``s = 1[p > 0]``,
    ``s = sqrt(p)``), and the torch node saves only ``p``.

    ``standardize=True`` reads ``width`` in units of each slice's standard deviation
    (see :func:`max`).

    Notes
    -----
    Non-negative and sums to 1 over ``axis``; entries equal to ``-inf`` or masked out get
    exactly 0, and a slice of only ``-inf`` entries gives all zeros (not NaN). ``+inf``
    entries share the mass equally and the others get 0 (the limit as an entry grows;
    scipy gives NaN); a NaN entry makes its slice NaN. An empty axis gives an empty
    array (as ``jax.nn.softmax``). Distance to
    the one-hot of the argmax: ``||p - e||_1 <= 2 (n-1) e^{-gap/w} / (1 + (n-1) e^{-gap/w})``;
    no uniform bound (the target jumps). ``straight_through`` forwards the hard one-hot
    (ties share the mass equally; NaN for a slice with a NaN, as the smooth value) and
    backpropagates the softmax's derivative, recomputed from ``x`` in backward.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.softmax(np.array([1.0, 2.0, -np.inf]), width=1.0)
    array([0.26894142, 0.73105858, 0.        ])
    >>> mol.softmax(np.array([0.0, 0.5, 2.0]), width=1.0, method="sparsemax")
    array([0., 0., 1.])
    >>> mol.softmax(np.array([0.0, 1.5, 2.0]), width=1.0, method="sparsemax")
    array([0.  , 0.25, 0.75])
    """
    straight_through = flag(straight_through, "straight_through")
    _check_method(method, _ARGMAX_METHODS)
    if method != "softmax":
        _unsharded(axis_name, f"method={method!r}", _SORTS)
    be, x_c, dtype, axes = _prepare(x, axis, where, axis_name)
    w, _ = width_or_tol(width, None)
    w = _dispatch.width_like(be, w, x_c, axes)
    if _reduced_size(x_c, axes) == 0:  # nothing to normalize: an empty array, as jax.nn
        return _dispatch.finish(be, x_c * 0.0, dtype)
    w = _standardized(be, w, x_c, axes, standardize)
    formula = lse.softmax(w) if method == "softmax" else sparse.argmax(w, method)
    hard = None
    if straight_through:
        hard = lse.hard_one_hot(be, _held(be, x_c, dtype), axes)
    p = _dispatch.evaluate_reduction(be, formula, x_c, axes, hard)
    return _dispatch.finish(be, p, dtype)


_LOG_SOFTMAX = _reduction_op("log_softmax")


@register(_LOG_SOFTMAX)
def log_softmax(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Log of the softmax with temperature ``width``:
    :math:`\log \mathrm{softmax}(x/w)_i = (x_i - \mathrm{lse}_w(x)) / w`.

    Computed as scipy's ``log_softmax`` of ``x / w``, ``z - log sum e^z`` with
    ``z = (x - max)/w``, the log of the sum as ``log1p`` of the terms off the max, so an
    entry far below the max keeps every digit: ``log_softmax([1000, 1])`` is
    ``[0, -999]`` exactly (``log(softmax)`` gives ``-inf``).

    Parameters
    ----------
    x : array
    axis : int, tuple of ints or None, default -1
    width : float or array
        Temperature in units of ``x`` (in units of the std with ``standardize``).
    where : boolean array, optional
        Entries where it is False are left out: ``-inf`` (as ``jax.nn.log_softmax``).
    standardize : bool, default False
        See :func:`max`.
    straight_through : bool, default False
        Forward the log of the hard one-hot (``0`` at the argmax, ``-log count`` for
        ties, ``-inf`` elsewhere), backpropagate the smooth Jacobian.
    axis_name : hashable, optional
        Inside ``jax.shard_map``: the mesh axis over which the reduced axes are split
        (see :func:`logsumexp`); each device gets its own block of the result.

    Notes
    -----
    The gradient of ``sum_i g_i y_i`` is ``(g - softmax(x/w) sum g) / w``; the torch node
    saves only its output (as ``torch.log_softmax``), the JAX rule keeps it. ``-inf``
    entries and an all ``-inf`` slice give ``-inf``, ``+inf`` entries share the mass
    (``-log count``; the others ``-inf``; scipy gives NaN), NaN makes its slice NaN, an
    empty axis gives an empty array. Against the hard ``log(onehot)`` there is no
    uniform bound (it is ``-inf`` off the argmax); at the argmax the error is
    ``log(1 + sum_{j != i} e^{-(x_i - x_j)/w}) <= (n - 1) e^{-gap/w}``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.log_softmax(np.array([1000.0, 1.0]), width=1.0)
    array([   0., -999.])
    >>> mol.log_softmax(np.array([0.0, 1.0]), width=0.5)
    array([-2.12692801, -0.12692801])
    """
    straight_through = flag(straight_through, "straight_through")
    be, x_c, dtype, axes = _prepare(x, axis, where, axis_name)
    w, _ = width_or_tol(width, None)
    w = _dispatch.width_like(be, w, x_c, axes)
    if _reduced_size(x_c, axes) == 0:  # an empty array, as jax.nn
        return _dispatch.finish(be, x_c * 0.0, dtype)
    w = _standardized(be, w, x_c, axes, standardize)
    hard = None
    if straight_through:
        with be.quiet():
            hard = be.xp.log(lse.hard_one_hot(be, _held(be, x_c, dtype), axes))
    y = _dispatch.evaluate_reduction(be, lse.log_softmax(w), x_c, axes, hard)
    return _dispatch.finish(be, y, dtype)


_LOGMEANEXP = _reduction_op("logmeanexp")


@register(_LOGMEANEXP)
def logmeanexp(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    tol: float | None = None,
    keepdims: bool = False,
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Smooth log-mean-exp :math:`w \log \frac1n \sum_i e^{x_i / w}` over ``axis``.

    ``logsumexp(x) - w log n``, with ``n`` the number of entries (of those ``where``
    keeps, per slice; as ``jax.nn.logmeanexp``). Below the max and above both the mean
    (Jensen) and ``max - w log n``; ``tol`` picks ``w = tol / log n``. Its
    gradient is ``softmax(x / w)``. An empty slice (or all masked out) gives NaN, the
    mean of nothing. Parameters are those of :func:`logsumexp`.

    Computed as ``m + w log1p(((c - n) + r)/n)`` (``m`` the max, ``c`` the count of
    entries at it, ``r`` the sum of ``exp((x - m)/w)`` off it), which does not cancel
    where every entry is near the max: ``logsumexp - w log n`` would carry an absolute
    error ``eps w log n``, more than the distance to the mean at widths far above the
    spread. With ``where=`` (a count per slice) it is still ``logsumexp - w log n``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.logmeanexp(np.array([0.0, 1.0, 2.0]), width=1.0)
    array(1.30899368)
    >>> mol.logmeanexp(np.array([3.0, 3.0]), width=1.0)
    array(3.)
    """
    straight_through = flag(straight_through, "straight_through")
    be, x_c, dtype, axes = _prepare(x, axis, where, axis_name)
    xp = be.xp
    n = _reduced_size(x_c, axes) * be.shard_count()  # along the whole axis in shard_map
    w = _width(width, tol, n, math.log(n) if n > 1 else 0.0)
    w = _dispatch.width_like(be, w, x_c, axes)
    if n == 0:  # the mean of nothing
        out = xp.sum(x_c, axis=axes, keepdims=True) + be.const(math.nan, x_c)
        return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
    w = _standardized(be, w, x_c, axes, standardize, tol)
    hard = _hard_max(be, x_c, axes, dtype) if straight_through else None
    if where is None:  # n per slice: the form without cancellation
        out = _dispatch.evaluate_reduction(be, lse.logmeanexp(w, n), x_c, axes, hard)
        return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
    out = _dispatch.evaluate_reduction(be, lse.logsumexp(w), x_c, axes)
    # the count per slice needs the mask at x's shape: a mask of shape (n, 1) or (k,)
    # broadcast over the reduced axes would otherwise be counted once, not k times
    kept = xp.astype(_mask(be, where, x_c), x_c.dtype) + xp.zeros_like(x_c)
    with be.quiet():
        out = out - w * xp.log(xp.sum(kept, axis=axes, keepdims=True))
    return _dispatch.reduction_finish(be, out, axes, keepdims, dtype, hard)


_MAX = _reduction_op("max", "SmoothMax")


@register(_MAX)
def max(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    tol: float | None = None,
    method: str = "logsumexp",
    keepdims: bool = False,
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Smooth maximum over ``axis`` by one of five methods.

    * ``"logsumexp"``: :math:`w \log\sum e^{x_i/w}`, an upper bound,
      ``max <= . <= max + w log n`` (convex, gradient softmax);
    * ``"softmax"``: the softmax-weighted mean :math:`\sum x_i p_i`, a lower bound,
      ``max - W((n-1)/e) w <= . <= max`` (mean as ``w -> inf``; not convex);
    * ``"power"``: :math:`(\sum x_i^p)^{1/p}` with ``p = 1/w``, for ``x >= 0`` only,
      ``max <= . <= n^{1/p} max`` (relative error; ``tol`` is relative here). Negative
      entries give NaN, like NumPy's domain errors (no data-dependent exception, so it
      traces under ``jax.jit``);
    * ``"sparsemax"``: :math:`w\,\max_{p\in\Delta} \langle p, x/w\rangle +
      \tfrac12(1 - \|p\|^2)`, an upper bound, ``max <= . <= max + w (1 - 1/n)/2``,
      convex, its gradient ``softmax(x, method="sparsemax")`` (exact zeros); it equals
      the max exactly once the gap to the runner-up is at least ``w``;
    * ``"entmax15"``: the same with the Tsallis 3/2 entropy
      :math:`\tfrac43(1 - \sum p_i^{3/2})`, ``max <= . <= max + (4/3)(1 - n^{-1/2}) w``,
      gradient entmax-1.5, exact beyond a gap of ``2w``.

    Parameters are those of :func:`logsumexp`; ``tol`` picks the width from the bound
    of the chosen method. Over an empty axis ``"logsumexp"`` and the sparse methods
    give ``-inf`` (the sup of nothing, as :func:`logsumexp`) and the other two methods
    raise ``ValueError`` (the mean of nothing).

    ``standardize=True`` reads ``width`` in units of each slice's standard deviation
    of its finite entries (SoftTorch's scale-free softness; not with ``tol``): the op is
    then scale- and shift-equivariant, ``max(a x + c) = a max(x) + c`` for ``a > 0``,
    and gradients flow through the std (it is differentiated as that function). A
    slice of equal entries (std 0) gives the hard value.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> mol.max(x, width=0.1), mol.max(x, width=0.1, method="softmax")
    (array(3.00000454), array(2.9999546))
    >>> mol.max(x, width=0.01, method="power")  # p = 100
    array(3.)
    >>> mol.max(x, width=1.0, method="sparsemax")  # the gap 1 >= w: exact
    array(3.)
    """
    _check_method(method)
    straight_through = flag(straight_through, "straight_through")
    hard_of = _hard_max if straight_through else None
    return _max(x, axis, width, tol, method, keepdims, where, standardize, axis_name, hard_of)


def _max(
    x: Array,
    axis: Any,
    width: Any,
    tol: Any,
    method: str,
    keepdims: Any,
    where: Any,
    standardize: Any,
    axis_name: Any,
    hard_of: HardOf | None,
) -> Array:
    """:func:`max` (``method`` checked); straight-through where ``hard_of`` is given."""
    if method == "logsumexp":
        out = _logsumexp(x, axis, width, tol, keepdims, where, False, standardize, axis_name,
                         hard_of)  # fmt: skip
        return out
    if method in _SPARSE:
        _unsharded(axis_name, f"method={method!r}", _SORTS)
        return _sparse_max(x, axis, width, tol, method, keepdims, where, standardize, hard_of)
    # masked-out entries weigh nothing: -inf in a softmax, 0 in a p-norm of x >= 0
    be, x_c, dtype, axes = _prepare(x, axis, where if method == "softmax" else None, axis_name)
    if where is not None and method == "power":
        x_c = be.xp.where(_mask(be, where, x_c), x_c, be.const(0.0, x_c))
    n = _reduced_size(x_c, axes) * be.shard_count()
    if n == 0:
        raise ValueError("max of an empty axis is undefined")
    hard = None if hard_of is None else hard_of(be, x_c, axes, dtype)
    with be.quiet():
        if method == "softmax":
            gap = lse.boltzmann_gap(n) if tol is not None else 0.0  # n traced: not read
            w = _dispatch.width_like(be, _width(width, tol, n, gap), x_c, axes)
            w = _standardized(be, w, x_c, axes, standardize, tol)
            out = _dispatch.evaluate_reduction(be, lse.softmax_mean(w), x_c, axes, hard)
        else:
            w = _dispatch.width_like(
                be, _width(width, tol, n, 1.0 if n > 1 else 0.0, method="power"), x_c, axes
            )
            if flag(standardize, "standardize"):
                raise ValueError("standardize=True has no meaning for the relative power method")
            # the p-norm with p = 1/w; negative entries are outside its domain: NaN
            out = _dispatch.evaluate_reduction(be, lse.p_norm(w), x_c, axes, hard)
    return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)


def _sparse_max(
    x: Any,
    axis: Any,
    width: Any,
    tol: Any,
    method: str,
    keepdims: Any,
    where: Any,
    standardize: Any,
    hard_of: HardOf | None,
) -> Array:
    """``max(method="sparsemax" | "entmax15")``: ``w max_Omega(x / w)``, one reduction
    node (the torch node saves ``x``), gradient the sparse probabilities."""
    be, x_c, dtype, axes = _prepare(x, axis, where)
    n = _reduced_size(x_c, axes)
    w = _dispatch.width_like(be, _width(width, tol, n, sparse.regularizer_range(method, n)),
                             x_c, axes)  # fmt: skip
    if n == 0:  # the sup of nothing
        out = be.xp.sum(x_c, axis=axes, keepdims=True) + be.const(-math.inf, x_c)
        return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
    w = _standardized(be, w, x_c, axes, standardize, tol)
    hard = None if hard_of is None else hard_of(be, x_c, axes, dtype)
    out = _dispatch.evaluate_reduction(be, sparse.smooth_max(w, method), x_c, axes, hard)
    return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)


_MIN = _reduction_op("min", "SmoothMin")


@register(_MIN)
def min(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    tol: float | None = None,
    method: str = "logsumexp",
    keepdims: bool = False,
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Smooth minimum, ``-max(-x)`` (see :func:`max`; the power method is not offered).

    Notes
    -----
    ``"logsumexp"`` is a lower bound, ``min - w log n <= . <= min``; ``"softmax"`` an
    upper bound, ``min <= . <= min + W((n-1)/e) w``; ``"sparsemax"`` and ``"entmax15"``
    lower bounds within ``w (1 - 1/n)/2`` and ``(4/3)(1 - n^{-1/2}) w``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.min(np.array([1.0, 2.0, 3.0]), width=1e-3)
    array(1.)
    """
    _check_method(method)
    if method == "power":
        raise ValueError(
            "method='power' needs x >= 0 and has no min form; use 'logsumexp' or 'softmax'"
        )
    be, x_c, dtype = as_float_array(x)
    be = be.along(axis_name)
    if where is not None:
        x_c = be.xp.where(_mask(be, where, x_c), x_c, be.const(math.inf, x_c))
    straight_through = flag(straight_through, "straight_through")
    hard_of = None
    if straight_through:

        def hard_of(be_: Backend, _: Array, axes: tuple[int, ...], dtype_: Any) -> Array:
            # the framework's own min (-max(-x) differs on signed zeros), negated for
            # the max of -x: negation is exact, so the result is min(x) bit for bit;
            # computed in the max's one node (no smooth value, no collective of its own)
            minimum = be.xp.min(_held(be, x_c, dtype), axis=axes, keepdims=True)
            return -minimum

    out = _max(-x_c, axis, width, tol, method, keepdims, None, standardize, axis_name, hard_of)
    return _dispatch.finish(be, -out, dtype)


_ARGMAX = _reduction_op("argmax", "SmoothArgmax")


@register(_ARGMAX)
def argmax(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    method: str = "softmax",
    index: bool = False,
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Soft argmax: the smooth one-hot ``softmax(x / w)``, or the expected index.

    Parameters
    ----------
    method : {"softmax", "sparsemax", "entmax15"}, default "softmax"
        The one-hot's smoothing (see :func:`softmax`): the sparse methods give exact
        zeros, and the exact one-hot once the gap to the runner-up reaches ``w``
        (sparsemax) or ``2w`` (entmax-1.5).
    standardize : bool, default False
        ``width`` in units of each slice's standard deviation (see :func:`max`).
    index : bool, default False
        Return :math:`\sum_i i\,p_i` (a number per slice, along an int ``axis``) instead
        of the one-hot; ``|E[i] - argmax| <= (n - 1)(1 - p_max)``. An empty axis raises
        ``ValueError`` (as ``np.argmax``); the one-hot is then an empty array. With
        ``straight_through`` it forwards the mean position of the maxima (the hard
        one-hot's expected index) and backpropagates that of the softmax.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.argmax(np.array([0.0, 5.0, 1.0]), width=0.1, index=True)
    array(1.)
    >>> mol.argmax(np.array([0.0, 5.0, 4.5]), width=1.0, method="sparsemax")
    array([0.  , 0.75, 0.25])
    """
    index = flag(index, "index")
    straight_through = flag(straight_through, "straight_through")
    if index and method == "softmax":
        return _expected_index(x, axis, width, where, standardize, axis_name, straight_through)
    p = softmax(x, axis=axis, width=width, method=method, where=where, standardize=standardize,
                straight_through=straight_through, axis_name=axis_name)  # fmt: skip
    if not index:
        return p
    be = backend_of(p).along(axis_name)  # positions along the whole axis
    xp = be.xp
    ax = _index_axis(axis, p)
    return finish(be, xp.sum(p * be.positions(p, ax), axis=(ax,)), p.dtype)


def _index_axis(axis: Any, x: Array) -> int:
    """The one axis of ``argmax(index=True)``, which has entries."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ValueError("index=True needs a single int axis")
    (ax,) = _dispatch.axes_of(axis, x.ndim)
    if int(x.shape[ax]) == 0:
        raise ValueError("the expected index over an empty axis is undefined (as np.argmax)")
    return ax


def _expected_index(
    x: Any,
    axis: Any,
    width: Any,
    where: Any,
    standardize: Any,
    axis_name: Any,
    straight_through: bool,
) -> Array:
    """``argmax(index=True)`` by the softmax: ``sum_i i softmax(x / w)_i``, one reduction
    (along a sharded axis one collective for the max and one for the sums).

    Straight-through forwards the mean position of the maxima (the hard one-hot's
    expected index, ties sharing the mass) through the same node: the smooth value is
    not computed."""
    be, x_c, dtype, _ = _prepare(x, None, where, axis_name)
    axes = (_index_axis(axis, x_c),)
    w, _ = width_or_tol(width, None)
    w = _dispatch.width_like(be, w, x_c, axes)
    w = _standardized(be, w, x_c, axes, standardize)
    hard = None
    if straight_through:  # in the caller's dtype, as the one-hot's
        hard = lse.hard_index(be, _held(be, x_c, dtype), axes[0])
    out = _dispatch.evaluate_reduction(be, lse.expected_index(w), x_c, axes, hard)
    return _dispatch.reduction_finish(be, out, axes, False, dtype)


_ARGMIN = _reduction_op("argmin")


@register(_ARGMIN)
def argmin(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    method: str = "softmax",
    index: bool = False,
    where: Array | None = None,
    standardize: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Soft argmin: ``argmax(-x)`` (see :func:`argmax`).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.argmin(np.array([0.0, 5.0, 1.0]), width=0.1)
    array([9.99954602e-01, 1.92866229e-22, 4.53978687e-05])
    """
    be, x_c, dtype = as_float_array(x)
    negated = -_dispatch.caller_dtype(be, x_c, dtype)  # exact, and keeps float16 float16
    return argmax(negated, axis=axis, width=width, method=method, index=index, where=where,
                  standardize=standardize, straight_through=straight_through,
                  axis_name=axis_name)  # fmt: skip


def _unsharded(axis_name: Any, what: str, why: str = "no sharded form yet") -> None:
    """``ValueError`` for an option whose reduction has no ``shard_map`` combination."""
    if axis_name is not None:
        raise ValueError(f"{what} is not combined with axis_name= ({why})")


_SORTS = (
    "it sorts each slice, which needs all of its entries: no per-shard partial results "
    "combine into it; reduce an unsplit axis, or use method='softmax'"
)


def _pairwise(
    op: Op, a: Any, b: Any, sign: float, width: Any, tol: Any, kernel: Any, straight_through: Any
) -> Array:
    """``maximum`` (``sign = 1``) or ``minimum`` (``-1``): ``max(a, b) + relu_w(-|a - b|)``
    (see :mod:`mollifier._engine.select`), one node of the inputs."""
    straight_through = flag(straight_through, "straight_through")
    k = get_kernel(kernel)
    shapes.RELU.check_kernel(k)
    w = _dispatch.resolve_width(op, width, tol, k)
    be, (a_c, b_c), dtype = _dispatch.operands((a, b), ("a", "b"))
    like = b_c if isinstance(a_c, float) else a_c
    w = _dispatch.width_like(be, w, like)
    formula = select.maximum(shapes.formula(shapes.RELU, w, k), sign)
    smooth = _dispatch.evaluate_combination(be, formula, (a_c, b_c))
    hard = None
    if straight_through:
        a_h = _dispatch.as_caller_array(be, a_c, like, dtype)
        b_h = _dispatch.as_caller_array(be, b_c, like, dtype)
        hard = be.xp.maximum(a_h, b_h) if sign > 0 else be.xp.minimum(a_h, b_h)
    return _dispatch.finish(be, smooth, dtype, hard)


_MAXIMUM = Op("maximum", shape=lambda: shapes.RELU)  # b + relu_w(a - b): ReLU's bound


@register(_MAXIMUM)
def maximum(
    a: Array,
    b: Array | float,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Elementwise smooth ``max(a, b) = b + relu_w(a - b)`` with any kernel.

    With the logistic kernel this is the two-input logsumexp ``w logaddexp(a/w, b/w)``;
    with the gaussian kernel and ``w = sqrt(2) sigma`` it is ``E max(a + sigma Z1, b + sigma Z2)``.

    Notes
    -----
    Sup error ``w E|U| / 2`` where ``a = b``; always ``>= max(a, b)`` (Jensen).
    Computed as ``max(a, b) + relu_w(-|a - b|)``: exact to round-off where the
    correction is tiny (``maximum(0, -40 w) = w log1p(e^-40)`` with the logistic
    kernel), and no ``a - b`` overflows or is ``inf - inf`` (``maximum(1e308, -1e308)``
    is ``1e308``, ``maximum(inf, inf)`` is ``inf``). The gradient is ``K((a - b)/w)`` in
    ``a`` and ``K((b - a)/w)`` in ``b``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.maximum(np.array([0.0, 3.0]), 1.0, width=1e-3)
    array([1., 3.])
    """
    return _pairwise(_MAXIMUM, a, b, 1.0, width, tol, kernel, straight_through)


_MINIMUM = Op("minimum", shape=lambda: shapes.RELU)


@register(_MINIMUM)
def minimum(
    a: Array,
    b: Array | float,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Elementwise smooth ``min(a, b) = -maximum(-a, -b)``; never above ``min(a, b)``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.minimum(np.array([0.0, 3.0]), 1.0, width=1e-3)
    array([0., 1.])
    """
    return _pairwise(_MINIMUM, a, b, -1.0, width, tol, kernel, straight_through)


_NORM = _reduction_op("norm", "SmoothNorm")


@register(_NORM)
def norm(
    x: Array,
    /,
    *,
    ord: float = 2,
    axis: int | tuple[int, ...] | None = -1,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    keepdims: bool = False,
    straight_through: bool = False,
    axis_name: Any = None,
) -> Array:
    r"""Smooth vector norms, differentiable everywhere (also at ``x = 0``).

    * ``ord = p`` (``0 < p < inf``): :math:`(\sum_i |x_i|_w^p)^{1/p}` with the smooth
      ``abs``; by Minkowski within ``n^{1/p} w E|U|`` of the norm, from above.
    * ``ord = inf``: ``logsumexp`` of the smooth abs, within ``w (E|U| + log n)`` above.
      The Chebyshev distance of two points is ``norm(a - b, ord=inf, width=w)``.
    * ``ord = 0``: the count of non-zeros, smoothed as :math:`\sum_i (1 - k(x_i/w)/k(0))`:
      each entry counts 0 at exactly 0 and tends to 1 once ``|x_i| >> w`` (gaussian:
      ``1 - exp(-x^2 / 2w^2)``).

    Every ``ord`` gives 0 over an empty axis (as ``np.linalg.norm``).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> v = np.array([3.0, -4.0, 0.0])
    >>> mol.norm(v, width=1e-3), mol.norm(v, ord=np.inf, width=1e-3)
    (array(5.), array(4.))
    >>> mol.norm(v, ord=0, width=1e-3, kernel="gaussian")
    array(2.)
    """
    straight_through = flag(straight_through, "straight_through")
    ord = _norm_order(ord)
    k = get_kernel(kernel)
    if width is None:
        raise ValueError("norm needs width= (units of x)")
    w, _ = width_or_tol(width, None)
    be, x_c, dtype = as_float_array(x)
    be = be.along(axis_name)
    axes = _dispatch.axes_of(axis, x_c.ndim)
    w = _dispatch.width_like(be, w, x_c, axes)
    xp = be.xp
    if ord != 0:
        shapes.ABS.check_kernel(k)
    if _reduced_size(x_c, axes) == 0:  # the norm of an empty vector is 0 (NumPy, JAX)
        out = xp.sum(x_c, axis=axes, keepdims=True)
        return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
    hard = None
    if straight_through:
        hard = be.vector_norm(_held(be, x_c, dtype), ord, axes)
    with be.quiet():
        if ord == 0:
            bump = _dispatch.evaluate(be, gates.bump(w, k), x_c)
            out = xp.sum(1.0 - bump, axis=axes, keepdims=True)
            return _dispatch.reduction_finish(be, out, axes, keepdims, dtype, hard)
        magnitude = _dispatch.evaluate(be, shapes.formula(shapes.ABS, w, k), x_c)
        # the p-norm of the smooth magnitudes; ord = inf their logsumexp
        formula = lse.logsumexp(w) if ord == math.inf else lse.p_norm(1.0 / ord)
        out = _dispatch.evaluate_reduction(be, formula, magnitude, axes, hard)
    return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)
