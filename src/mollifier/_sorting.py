r"""The sorting family: soft ranks, sorts, permutations, top-k, quantiles and medians.

Every op works along one ``axis`` of an array of any rank (the other axes are a batch),
takes ``width`` (a Python number, in units of ``x``; larger is smoother) and chooses
a ``method``:

* ``"pairwise"`` (ranks): every comparison smoothed by a kernel's CDF,
  :math:`r_i = \tfrac12 + \sum_j K((x_i - x_j)/w)`, ``O(n^2)`` time in chunks of
  ``O(n)`` memory;
* ``"l2"`` and ``"kl"``: the permutahedron projections of Blondel et al. (2020) with
  regularization strength ``width``, ``O(n log n)`` forward and backward, the values
  of fast-soft-sort and torchsort at the same strength;
* ``"network"`` (sorts, permutations): a bitonic sorting network whose comparators
  are the smooth :func:`~mollifier.minimum` / :func:`~mollifier.maximum` of any kernel.

As the width goes to 0 every op becomes its hard counterpart exactly (ties share their
ranks equally). ``standardize=True`` applies every op to each slice over its standard
deviation ``s`` (values scaled back by ``s``): the width then reads in units of the
spread and the op is scale-equivariant.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _dispatch
from ._backend import Array, Backend, as_float_array
from ._catalogue import Op, register
from ._engine import isotonic, select, sorting
from ._engine import piecewise as shapes
from ._kernels import Kernel, get_kernel
from ._params import flag, one_of, require_float_width, width_or_tol

KernelLike = str | Kernel
_NO_BOUND = (
    "the distance to the hard sort depends on the gaps between the entries (it is exact "
    "once the width is small against them); see the op's docstring"
)
_RANK_METHODS = ("pairwise", "l2", "kl")
_SORT_METHODS = ("l2", "kl", "network")


def _sorting_op(name: str, module: str = "", **params: Any) -> Op:
    return Op(name, no_bound=_NO_BOUND, array_width=False, module=module, params=params)


# -- plumbing: one axis as rows, one width ------------------------------------------------


class _Rows(NamedTuple):
    be: Backend
    x: Array  # the input in its compute dtype
    rows: Array  # shape (batch, n)
    dtype: Any
    axis: int
    batch_shape: tuple[int, ...]


def _as_rows(x: Any, axis: Any) -> _Rows:
    """``x`` with ``axis`` last and the other axes flattened: ``(batch, n)``. A 0-d
    array is one slice of one entry (as ``torch.sort``)."""
    be, x_c, dtype = as_float_array(x)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int (one axis); got {axis!r}")
    xp = be.xp
    if x_c.ndim == 0:
        if int(axis) not in (0, -1):
            raise ValueError(f"axis {axis} is out of range for a 0-d array")
        return _Rows(be, x_c, xp.reshape(x_c, (1, 1)), dtype, 0, ())
    (ax,) = _dispatch.axes_of(int(axis), x_c.ndim)
    moved = xp.moveaxis(x_c, ax, -1)
    batch_shape = tuple(moved.shape[:-1])
    n = int(moved.shape[-1])
    rows = xp.reshape(moved, (math.prod(batch_shape), n))
    return _Rows(be, x_c, rows, dtype, ax, batch_shape)


def _standardized(r: _Rows, standardize: Any) -> tuple[_Rows, Array | None]:
    """With ``standardize``, the rows over each one's std and that std (to scale values
    back); the one place the sorting family reads ``standardize``."""
    if not flag(standardize, "standardize"):
        return r, None
    std, _ = _dispatch.slice_std(r.be, r.rows, (1,))
    return r._replace(rows=r.rows / std), std


def _rescaled(rows: Array, std: Array | None) -> Array:
    return rows if std is None else rows * std


def _restore(r: _Rows, out: Array) -> Array:
    """Rows back to the input's layout: the last axis of ``out`` to ``axis``."""
    xp = r.be.xp
    if r.x.ndim == 0:
        return xp.reshape(out, ())
    out = xp.reshape(out, (*r.batch_shape, int(out.shape[1])))
    return xp.moveaxis(out, -1, r.axis)


def _width(width: Any) -> float:
    """The width of every slice: a positive Python number (the one place where a
    width transform, such as a width in units of each slice's spread, goes)."""
    w, _ = width_or_tol(width, None)
    return require_float_width(w, "the sorting family")


def _kernel_step(kernel: Any, w: float) -> shapes.Formula:
    k = get_kernel(kernel)
    shapes.STEP.check_kernel(k)
    return shapes.formula(shapes.STEP, w, k)


def _finish(r: _Rows, out: Array, hard: Callable[[], Array] | None) -> Array:
    """Cast to the caller's dtype; with ``hard``, forward its value (straight-through)."""
    hard_value = None
    if hard is not None:
        with r.be.quiet():
            hard_value = hard()
    return _dispatch.finish(r.be, out, r.dtype, hard_value)


def _caller_rows(r: _Rows) -> Array:
    """The input in the caller's dtype, without a graph (for the hard ops)."""
    return r.be.stop_gradient(_dispatch.caller_dtype(r.be, r.x, r.dtype))


def _hard_ranks(be: Backend, x: Array, axis: int, descending: bool) -> Array:
    """``1 + argsort(argsort(x))``: ranks from 1, ties in the order they come."""
    xp = be.xp
    if x.ndim == 0:
        return xp.ones_like(x)
    key = -x if descending else x
    order = xp.argsort(key, axis=axis, stable=True)
    return xp.astype(xp.argsort(order, axis=axis, stable=True), x.dtype) + 1.0


def _hard_sort(be: Backend, x: Array, axis: int, descending: bool) -> Array:
    xp = be.xp
    if x.ndim == 0:
        return x
    return xp.sort(x, axis=axis, descending=descending, stable=True)


def _slicewise(
    layout: Callable[[int, int, tuple[Any, ...], dict[str, Any]], Callable[[int], int | None]]
    | None = None,
) -> Callable[[Callable[..., Array]], Callable[..., Array]]:
    """An op on whole slices along ``axis``, run through :func:`_dispatch.slicewise`
    (a DTensor's local tensor; gathered along ``axis`` where it is sharded, a sort
    needing every entry of its slice). ``layout(axis, ndim, args, knobs)`` maps each
    input dimension to the output's (identity when ``None``: same shape but along
    ``axis``)."""

    def wrap(op: Callable[..., Array]) -> Callable[..., Array]:
        default_axis = inspect.signature(op).parameters["axis"].default

        @functools.wraps(op)
        def slicewise_op(x: Any, /, *args: Any, **knobs: Any) -> Array:
            axis = knobs.get("axis", default_axis)
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
                return op(x, *args, **knobs)  # the op says what is wrong
            dims = None
            if layout is not None:
                dims = layout(int(axis), getattr(x, "ndim", 0), args, knobs)
            return _dispatch.slicewise(lambda v: op(v, *args, **knobs), x, int(axis), dims)

        return slicewise_op

    return wrap


def _quantile_layout(
    axis: int, ndim: int, args: tuple[Any, ...], knobs: dict[str, Any]
) -> Callable[[int], int | None]:
    """Where :func:`quantile` puts each input dimension: ``axis`` reduced (kept with
    ``keepdims``), a sequence of levels first."""
    q = args[0] if args else knobs.get("q", 0.5)
    first = 0 if isinstance(q, numbers.Real) else 1
    keep = bool(knobs.get("keepdims", False))
    ax = axis % ndim if ndim else 0
    return lambda d: d + first if keep or d < ax else (None if d == ax else d - 1 + first)


def _matrix_layout(
    axis: int, ndim: int, args: tuple[Any, ...], knobs: dict[str, Any]
) -> Callable[[int], int | None]:
    """Where :func:`argsort` puts each input dimension: ``axis`` removed (the matrix's
    two axes are appended)."""
    ax = axis % ndim if ndim else 0
    return lambda d: d if d < ax else (None if d == ax else d - 1)


# -- rank ---------------------------------------------------------------------------------


def _rank_rows(r: _Rows, w: float, method: str, kernel: Any, descending: bool) -> Array:
    sign = -1.0 if descending else 1.0
    batch, n = (int(s) for s in r.rows.shape)
    if method == "pairwise":
        formula = sorting.pairwise_rank(_kernel_step(kernel, w), sign, batch, n)
    else:
        formula = sorting.projection(method, sorting.RANK, w, sign, sorting.ranks_vertex)
    out = _dispatch.evaluate_transform(r.be, formula, r.rows)
    return out if method == "pairwise" else isotonic.nan_rows(r.be, r.rows, out)


_RANK = _sorting_op("rank", "SoftRank")


@register(_RANK)
@_slicewise()
def rank(
    x: Array,
    /,
    *,
    axis: int = -1,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    method: str = "pairwise",
    descending: bool = False,
    straight_through: bool = False,
    standardize: bool = False,
) -> Array:
    r"""Soft ranks along ``axis``: 1 for the smallest entry, ``n`` for the largest.

    * ``"pairwise"``: :math:`r_i = \tfrac12 + \sum_j K\big((x_i - x_j)/w\big)`, the
      expected rank when every comparison is smoothed by the kernel's CDF ``K``.
      ``O(n^2)`` time, computed over chunks of columns in ``O(n \cdot chunk)`` memory,
      with any kernel. Its error is
      :math:`|r_i - \mathrm{rank}_i| \le \sum_{j \ne i} K(-|x_i - x_j|/w)`: exponentially
      small for the logistic and gaussian kernels once the gaps exceed a few widths,
      exactly 0 for compact kernels beyond ``w`` times their support.
    * ``"l2"``: the Euclidean projection of ``x / w`` onto the permutahedron of
      :math:`(1, \dots, n)` (Blondel et al. 2020, fast-soft-sort's and torchsort's
      ``soft_rank`` with ``regularization_strength = w``); ``"kl"``: the KL projection
      (their ``regularization="kl"``). ``O(n log n)`` forward and backward (a sort and
      pool-adjacent-violators); the ranks are exact once every gap between neighbours
      in sorted order exceeds ``w`` (``l2``). ``kernel`` is not used.

    Parameters
    ----------
    x : array
        NumPy, PyTorch or JAX array.
    axis : int, default -1
        The axis along which to rank; the other axes are a batch.
    width : float
        The width (``"pairwise"``) or regularization strength (``"l2"``, ``"kl"``), in
        units of ``x``; a Python number.
    kernel : str or Kernel, default "logistic"
        The comparison's kernel (``"pairwise"``).
    method : {"pairwise", "l2", "kl"}
    descending : bool, default False
        Rank 1 for the largest entry.
    straight_through : bool, default False
        Forward the hard ranks ``1 + argsort(argsort(x))`` (ties in order), backpropagate
        the soft ranks' gradient.
    standardize : bool, default False
        Apply the op to each slice over its standard deviation ``s`` (of its finite
        entries), ``s * op(x / s)`` for values and ``op(x / s)`` for ranks, masks and
        permutations: the width then reads in units of the spread (SoftTorch's
        scale-free softness), and the op is scale-equivariant. Gradients flow through
        ``s``; a slice with no spread takes ``s = 1``.

    Returns
    -------
    array
        The soft ranks, of ``x``'s shape and dtype. Every method gives ranks that sum
        to ``n (n + 1) / 2`` along ``axis``, are permutation equivariant, and give tied
        entries equal ranks. A NaN makes its slice NaN. Infinite entries: the
        pairwise ranks take their limits (``K(+-inf)`` is exact); the projections need
        finite entries (an infinite entry makes its slice NaN).

    Notes
    -----
    As ``w -> 0`` the ranks are the hard ranks, ties averaged (``scipy.stats.rankdata``).
    The pairwise Jacobian is :math:`(\delta_{ij}\sum_l k_{il} - k_{ij})/w` with
    :math:`k_{ij} = k((x_i - x_j)/w)`; the projections' is ``(I - B)/w`` with ``B`` a
    block average (``"l2"``) or block softmax (``"kl"``, times the ranks).

    References
    ----------
    M. Blondel, O. Teboul, Q. Berthet, J. Djolonga, "Fast Differentiable Sorting and
    Ranking", ICML 2020.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> x = np.array([0.3, -1.0, 2.0, 0.0])
    >>> mol.rank(x, width=1e-3)
    array([3., 1., 4., 2.])
    >>> mol.rank(x, width=1.0, method="l2")
    array([2.53333333, 1.23333333, 4.        , 2.23333333])
    """
    straight_through = flag(straight_through, "straight_through")
    descending = flag(descending, "descending")
    one_of(method, _RANK_METHODS, "method")
    w = _width(width)
    r, _ = _standardized(_as_rows(x, axis), standardize)
    if method == "pairwise":
        _kernel_step(kernel, w)  # a kernel is checked before the data
    if int(r.rows.shape[0]) * int(r.rows.shape[1]) == 0:
        return _finish(r, r.x * 0.0, None)
    out = _restore(r, _rank_rows(r, w, method, kernel, descending))
    hard = None
    if straight_through:
        hard = lambda: _hard_ranks(r.be, _caller_rows(r), r.axis, descending)  # noqa: E731
    return _finish(r, out, hard)


# -- sort -----------------------------------------------------------------------------------


def _network_sort_rows(be: Backend, rows: Array, w: float, kernel: Any, sign: float) -> Array:
    """The bitonic network of smooth ``minimum``/``maximum`` (see :func:`sort`)."""
    xp = be.xp
    k = get_kernel(kernel)
    shapes.RELU.check_kernel(k)
    relu = shapes.formula(shapes.RELU, w, k)
    upper, lower = select.maximum(relu, 1.0), select.maximum(relu, -1.0)
    values = rows * sign  # ascending network; sign -1 sorts -x ascending
    batch, n = (int(s) for s in values.shape)
    size = sorting.padded_size(n)
    if size > n:
        pad = be.const(np.full((1, size - n), np.inf), values)
        values = xp.concat([values, xp.broadcast_to(pad, (batch, size - n))], axis=1)
    for j, ascending in sorting.bitonic_stages(size):
        a, b = sorting.pairs(be, values, j)
        small = _dispatch.evaluate_combination(be, lower, (a, b))
        large = _dispatch.evaluate_combination(be, upper, (a, b))
        up = be.const(ascending, a) > 0
        values = sorting.unpairs(be, xp.where(up, small, large), xp.where(up, large, small))
    return values[:, :n] * sign


def _sort_rows(r: _Rows, w: float, method: str, kernel: Any, descending: bool) -> Array:
    if method == "network":
        return _network_sort_rows(r.be, r.rows, w, kernel, -1.0 if descending else 1.0)
    sign = 1.0 if descending else -1.0
    formula = sorting.projection(method, sorting.SORT, w, sign, sorting.ranks_vertex)
    return isotonic.nan_rows(r.be, r.rows, _dispatch.evaluate_transform(r.be, formula, r.rows))


_SORT = _sorting_op("sort", "SoftSort")


@register(_SORT)
@_slicewise()
def sort(
    x: Array,
    /,
    *,
    axis: int = -1,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    method: str = "l2",
    descending: bool = False,
    straight_through: bool = False,
    standardize: bool = False,
) -> Array:
    r"""Soft sort along ``axis`` (ascending unless ``descending``).

    * ``"l2"``: the Euclidean projection of :math:`\rho / w`, :math:`\rho = (n, \dots,
      1)`, onto the permutahedron of ``x`` (Blondel et al. 2020; fast-soft-sort's and
      torchsort's ``soft_sort`` at ``regularization_strength = w``). Mind the units,
      theirs: the strength multiplies ``x``, ``sort(c x, w) = c sort(x, c w)``. The
      projection pools neighbours (in sorted order) whose gap exceeds ``1/w`` and lays
      each block out around its mean at spacing ``1/w``: exact once every gap is below
      ``1/w`` (so as ``w -> 0``), the mean of ``x`` as ``w`` grows; it keeps the sum.
      ``"kl"``: the KL projection (their ``regularization="kl"``): a block takes
      :math:`\rho_i/w - \mathrm{lse}_B(\rho/w) + \mathrm{lse}_B(x)`, exact under the
      same condition. Both ``O(n log n)`` forward and backward; ``kernel`` is not used.
    * ``"network"``: a bitonic sorting network (padded to a power of 2) of the smooth
      :func:`~mollifier.minimum` / :func:`~mollifier.maximum` with ``kernel``; each
      output within :math:`D\, w\, E|U|/2` of the sorted value, with
      :math:`D = \log_2 N (\log_2 N + 1)/2` the network's depth (each comparator moves
      a value by at most :math:`w E|U|/2` and sorting is 1-Lipschitz in the sup norm).
      ``O(n \log^2 n)``.

    Parameters
    ----------
    x : array
    axis : int, default -1
    width : float
        Regularization strength (``"l2"``, ``"kl"``) or the comparators' width, in units
        of ``x``; a Python number.
    kernel : str or Kernel, default "logistic"
        The comparators' kernel (``"network"``).
    method : {"l2", "kl", "network"}
    descending : bool, default False
    straight_through : bool, default False
        Forward the hard sort, backpropagate the soft sort's gradient.
    standardize : bool, default False
        Apply the op to each slice over its standard deviation ``s`` (of its finite
        entries), ``s * op(x / s)`` for values and ``op(x / s)`` for ranks, masks and
        permutations: the width then reads in units of the spread (SoftTorch's
        scale-free softness), and the op is scale-equivariant. Gradients flow through
        ``s``; a slice with no spread takes ``s = 1``.

    Returns
    -------
    array
        ``x``'s shape and dtype. ``"l2"`` keeps the sum of the slice and is
        non-decreasing; ``"kl"`` is non-decreasing; the network's outputs are in order
        up to its error. A NaN or an infinite entry makes its slice NaN (``"l2"``,
        ``"kl"``: the projections need finite entries); the network takes infinite
        entries to their places.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> x = np.array([0.3, -1.0, 2.0, 0.0])
    >>> mol.sort(x, width=1e-3)
    array([-1. ,  0. ,  0.3,  2. ])
    >>> mol.sort(x, width=1.0)
    array([-1.  ,  0.  ,  0.65,  1.65])
    >>> mol.sort(x, width=0.1, method="network")
    array([-1.00000499, -0.00485396,  0.30485895,  2.        ])
    """
    straight_through = flag(straight_through, "straight_through")
    descending = flag(descending, "descending")
    one_of(method, _SORT_METHODS, "method")
    w = _width(width)
    r, std = _standardized(_as_rows(x, axis), standardize)
    if method == "network":
        shapes.RELU.check_kernel(get_kernel(kernel))
    if int(r.rows.shape[0]) * int(r.rows.shape[1]) == 0:
        return _finish(r, r.x * 0.0, None)
    out = _restore(r, _rescaled(_sort_rows(r, w, method, kernel, descending), std))
    hard = None
    if straight_through:
        hard = lambda: _hard_sort(r.be, _caller_rows(r), r.axis, descending)  # noqa: E731
    return _finish(r, out, hard)


# -- argsort ---------------------------------------------------------------------------


_ARGSORT = _sorting_op("argsort")


@register(_ARGSORT)
@_slicewise(_matrix_layout)
def argsort(
    x: Array,
    /,
    *,
    axis: int = -1,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    descending: bool = False,
    straight_through: bool = False,
    standardize: bool = False,
) -> Array:
    r"""Soft permutation matrix of the sort along ``axis``: ``P[..., i, j]`` is the
    weight of entry ``j`` at sorted position ``i``; every row and column sums to 1.

    The bitonic sorting network (see :func:`sort`) whose comparators mix their inputs
    ``a``, ``b``: the smaller goes first with weight :math:`\alpha = K((b - a)/w)`,
    ``(alpha a + (1 - alpha) b, (1 - alpha) a + alpha b)``. Every comparator is a
    doubly stochastic 2x2 block, so their product ``P`` is doubly stochastic exactly (to
    round-off); ``P x`` is that network's soft sort. As ``w -> 0``, ``P`` is the
    permutation matrix of the stable sort (ties share their rows equally).
    ``O(n^2 \log^2 n)`` per slice (the matrix itself is ``n^2``).

    Parameters
    ----------
    x : array
    axis : int, default -1
        The sorted axis; it is removed and the matrix's two axes ``(n, n)`` are
        appended: the result has shape ``x.shape`` without ``axis``, then ``(n, n)``.
    width : float
    kernel : str or Kernel, default "logistic"
    descending : bool, default False
    straight_through : bool, default False
        Forward the hard permutation matrix, backpropagate the soft one's gradient.
    standardize : bool, default False
        Apply the op to each slice over its standard deviation ``s`` (of its finite
        entries), ``s * op(x / s)`` for values and ``op(x / s)`` for ranks, masks and
        permutations: the width then reads in units of the spread (SoftTorch's
        scale-free softness), and the op is scale-equivariant. Gradients flow through
        ``s``; a slice with no spread takes ``s = 1``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.argsort(np.array([0.3, -1.0, 2.0]), width=1e-3)
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 1.]])
    """
    straight_through = flag(straight_through, "straight_through")
    descending = flag(descending, "descending")
    w = _width(width)
    step = _kernel_step(kernel, w)
    r, _ = _standardized(_as_rows(x, axis), standardize)
    be, xp = r.be, r.be.xp
    n = int(r.rows.shape[1])
    if int(r.rows.shape[0]) * n == 0:
        shape = (*r.batch_shape, n, n)
        return _finish(r, xp.zeros(shape, dtype=r.x.dtype), None)
    sign = -1.0 if descending else 1.0
    with be.quiet():
        matrix = sorting.soft_permutation(be, r.rows * sign, step)
    # a 0-d input is one entry: its 1x1 matrix as a 0-d array
    out = xp.reshape(matrix, (*r.batch_shape, n, n) if r.x.ndim else ())
    hard = None
    if straight_through:

        def hard() -> Array:
            keys = _caller_rows(r)
            if keys.ndim == 0:
                return xp.ones_like(keys)
            keys = xp.moveaxis(keys, r.axis, -1)
            order = xp.argsort(keys * sign, axis=-1, stable=True)
            columns = xp.arange(n, device=order.device if be.name == "torch" else None)
            return xp.astype(order[..., :, None] == columns, keys.dtype)

    return _finish(r, out, hard)


# -- top-k, quantile, median -----------------------------------------------------------


class TopK(NamedTuple):
    """What :func:`topk` returns: the ``k`` largest ``values`` (descending) and the soft
    ``mask`` of the ``k`` largest entries (in ``[0, 1]``, summing to ``k``)."""

    values: Array
    mask: Array


def _count(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    count = int(k)
    if not 0 <= count <= n:
        raise ValueError(f"k must be between 0 and the axis length {n}; got {k}")
    return count


_TOPK = _sorting_op("topk", "SoftTopK", k=1)


@register(_TOPK)
@_slicewise()
def topk(
    x: Array,
    /,
    k: int,
    *,
    axis: int = -1,
    width: float | None = None,
    method: str = "l2",
    straight_through: bool = False,
    standardize: bool = False,
) -> TopK:
    r"""Soft top-``k``: the ``k`` largest values and a soft mask of where they are.

    The mask is the Euclidean projection of ``x / w`` onto the capped simplex
    :math:`\{m \in [0, 1]^n : \sum_i m_i = k\}` (the permutahedron of
    ``(1, ..., 1, 0, ..., 0)``, Blondel et al. 2020): it sums to ``k`` exactly, lies in
    ``[0, 1]``, and is the hard mask once the ``k``-th and ``k+1``-th largest entries
    are more than ``w`` apart. The values are the first ``k`` of the descending soft
    sort (:func:`sort` with ``method``, whose strength acts on ``1/w``-sized gaps; see
    there). ``O(n log n)``.

    Parameters
    ----------
    x : array
    k : int
        How many, ``0 <= k <= n``.
    axis : int, default -1
    width : float
    method : {"l2", "kl"}, default "l2"
        The soft sort of the values; the mask is the Euclidean projection either way
        (the KL projection has no capped simplex: it needs a vertex of positive entries).
    straight_through : bool, default False
        Forward the hard values and mask (ties: the first in order).
    standardize : bool, default False
        Apply the op to each slice over its standard deviation ``s`` (of its finite
        entries), ``s * op(x / s)`` for values and ``op(x / s)`` for ranks, masks and
        permutations: the width then reads in units of the spread (SoftTorch's
        scale-free softness), and the op is scale-equivariant. Gradients flow through
        ``s``; a slice with no spread takes ``s = 1``.

    Returns
    -------
    TopK
        ``(values, mask)``: ``values`` has ``k`` entries along ``axis``, ``mask`` the
        shape of ``x``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> values, mask = mol.topk(np.array([0.3, -1.0, 2.0, 0.0]), 2, width=1e-3)
    >>> values, mask
    (array([2. , 0.3]), array([1., 0., 1., 0.]))
    """
    straight_through = flag(straight_through, "straight_through")
    one_of(method, ("l2", "kl"), "method")
    w = _width(width)
    r, _ = _standardized(_as_rows(x, axis), standardize)
    n = int(r.rows.shape[1])
    k = _count(k, n)
    be, xp = r.be, r.be.xp
    values = sort(x, axis=axis, width=w, method=method, descending=True,
                  straight_through=straight_through, standardize=standardize)  # fmt: skip
    values = (
        xp.moveaxis(xp.moveaxis(values, r.axis, -1)[..., :k], -1, r.axis) if values.ndim else values
    )
    if int(r.rows.shape[0]) * n == 0 or k == 0:
        return TopK(values, _finish(r, r.x * 0.0, None))

    def vertex(size: int) -> np.ndarray:
        return (np.arange(size) < k).astype(np.float64)

    formula = sorting.projection(isotonic.L2, sorting.RANK, w, 1.0, vertex)
    mask = isotonic.nan_rows(be, r.rows, _dispatch.evaluate_transform(be, formula, r.rows))
    hard = None
    if straight_through:
        hard = lambda: xp.astype(  # noqa: E731
            _hard_ranks(be, _caller_rows(r), r.axis, True) <= k, r.dtype
        )
    return TopK(values, _finish(r, _restore(r, mask), hard))


def _levels(q: Any) -> tuple[tuple[float, ...], bool]:
    """``q`` as a tuple of floats in [0, 1], and whether it was a scalar."""
    if isinstance(q, np.ndarray) and q.ndim == 0:  # as NumPy: a 0-d q is a scalar
        q = q[()]
    scalar = isinstance(q, numbers.Real) and not isinstance(q, (bool, np.bool_))
    values = (q,) if scalar else q
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"q must be a number or a sequence of numbers; got {type(q).__name__}")
    # a scalar skips NumPy's object arrays, which torch.compile(fullgraph=True) cannot trace
    entries: Any = values
    if not scalar:
        entries = np.asarray(values, dtype=object)
        if entries.ndim != 1 or entries.shape[0] == 0:
            raise ValueError(
                "q must be a number or a non-empty flat sequence of numbers (one output "
                f"axis); got shape {entries.shape}"
            )
    out = []
    for v in entries:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"q must hold real numbers; got {v!r}")
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"q must be in [0, 1]; got {v!r}")
        out.append(float(v))
    return tuple(out), scalar


def _lerp(be: Backend, s: Array, levels: tuple[float, ...], n: int) -> Array:
    """NumPy's ``"linear"`` quantiles of the sorted rows ``s`` (one column per level),
    in its ``lerp`` form (``b - (b - a)(1 - t)`` from ``t = 1/2`` on), so that a hard
    sort gives ``np.quantile`` bit for bit."""
    xp = be.xp
    columns = []
    for level in levels:
        position = level * (n - 1)
        low = min(math.floor(position), n - 1)
        high = min(low + 1, n - 1)
        t = position - low
        a, b = s[:, low : low + 1], s[:, high : high + 1]
        diff = b - a
        columns.append(b - diff * (1.0 - t) if t >= 0.5 else a + diff * t)
    return xp.concat(columns, axis=1)


_QUANTILE = _sorting_op("quantile", q=0.25)


@register(_QUANTILE)
@_slicewise(_quantile_layout)
def quantile(
    x: Array,
    /,
    q: float | Sequence[float],
    *,
    axis: int = -1,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    method: str = "l2",
    keepdims: bool = False,
    straight_through: bool = False,
    standardize: bool = False,
) -> Array:
    r"""Soft quantile(s) along ``axis``: NumPy's linear interpolation between the
    entries of the soft sort (:func:`sort` with ``method`` and ``kernel``).

    The error is that of the soft sort at the two entries interpolated (``"l2"`` and
    ``"kl"``: 0 once the gaps around those entries are below ``1/w``, see :func:`sort`;
    the network: at most ``D w E|U| / 2``). As ``w -> 0`` it is
    ``np.quantile(x, q, axis)``.

    Parameters
    ----------
    x : array
    q : float or sequence of floats
        Levels in ``[0, 1]``; a sequence puts an axis of its length first (as NumPy).
    axis : int, default -1
    width : float
    kernel : str or Kernel, default "logistic"
    method : {"l2", "kl", "network"}
    keepdims : bool, default False
    straight_through : bool, default False
        Forward the hard quantile, backpropagate the soft one's gradient.
    standardize : bool, default False
        Apply the op to each slice over its standard deviation ``s`` (of its finite
        entries), ``s * op(x / s)`` for values and ``op(x / s)`` for ranks, masks and
        permutations: the width then reads in units of the spread (SoftTorch's
        scale-free softness), and the op is scale-equivariant. Gradients flow through
        ``s``; a slice with no spread takes ``s = 1``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> x = np.array([0.3, -1.0, 2.0, 0.0])
    >>> mol.quantile(x, 0.25, width=1e-3), np.quantile(x, 0.25)
    (array(-0.25), np.float64(-0.25))
    """
    keepdims = flag(keepdims, "keepdims")
    levels, scalar = _levels(q)
    s = sort(x, axis=axis, width=width, kernel=kernel, method=method,
             straight_through=straight_through, standardize=standardize)  # fmt: skip
    r = _as_rows(s, axis)
    be, xp = r.be, r.be.xp
    n = int(r.rows.shape[1])
    if n == 0:
        raise ValueError("the quantile of an empty axis is undefined")
    values = _lerp(be, r.rows, levels, n)  # (batch, levels)
    if r.x.ndim == 0:
        out = xp.reshape(values, (len(levels),) + ((1,) if keepdims else ()))
    else:
        out = xp.reshape(values, (*r.batch_shape, len(levels)))
        out = xp.moveaxis(out, -1, 0)  # the levels first, as NumPy
        out = xp.expand_dims(out, axis=r.axis + 1) if keepdims else out
    if scalar:
        out = out[0]
    return _dispatch.finish(be, out, r.dtype)


_MEDIAN = _sorting_op("median")


@register(_MEDIAN)
def median(
    x: Array,
    /,
    *,
    axis: int = -1,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    method: str = "l2",
    keepdims: bool = False,
    straight_through: bool = False,
    standardize: bool = False,
) -> Array:
    r"""Soft median along ``axis``: :func:`quantile` at ``q = 0.5`` (the mean of the two
    middle entries of the soft sort for an even length, as ``np.median``).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.median(np.array([0.3, -1.0, 2.0, 0.0]), width=1e-3)
    array(0.15)
    """
    return quantile(x, 0.5, axis=axis, width=width, kernel=kernel, method=method,
                    keepdims=keepdims, straight_through=straight_through,
                    standardize=standardize)  # fmt: skip
