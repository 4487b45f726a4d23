r"""Soft booleans on probabilities in ``[0, 1]`` and a soft ``isclose``.

Truth values are probabilities ``p`` in ``[0, 1]`` (1 true, 0 false). Two t-norms:

* ``tnorm="product"`` (default, no width): ``and = p q``, ``or = p + q - p q``,
  ``xor = p + q - 2 p q``, ``not = 1 - p``, ``all = prod p``, ``any = 1 - prod(1 - p)``:
  the probabilities of the events for independent inputs; exact on ``{0, 1}``, smooth
  everywhere, values in ``[0, 1]``;
* ``tnorm="minmax"`` (Goedel's ``min``/``max``, smoothed, with ``width``): ``and`` and
  ``or`` are :func:`mollifier.minimum` and :func:`mollifier.maximum` with any kernel
  (within ``w E|U| / 2`` of the hard ``min``/``max``, so they may leave ``[0, 1]`` by
  that much), ``xor = or(and(p, not q), and(not p, q))``; ``all``/``any`` are
  :func:`mollifier.min`/:func:`mollifier.max` with ``method="softmax"`` (a weighted
  mean of the inputs: in ``[0, 1]``, within ``W((n-1)/e) w`` of the hard value).

Inputs are not clipped to ``[0, 1]`` (outside it the formulas are just polynomials);
NaN in gives NaN out.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from . import _dispatch
from ._backend import Array, Backend, as_float_array
from ._catalogue import Op, register
from ._engine import piecewise as shapes
from ._engine.bound import Bound
from ._kernels import Kernel, get_kernel
from ._params import flag, one_of, width_or_tol
from ._reductions import max as _smooth_max
from ._reductions import maximum, minimum
from ._reductions import min as _smooth_min

KernelLike = str | Kernel
_TNORMS = ("product", "minmax")


def _minmax_bound(kernel: Kernel, tnorm: str = "product") -> Bound:
    """The smooth min/max t-norm's sup error, that of ``minimum``/``maximum`` (ReLU's
    ``w E|U| / 2``; also for xor: its smooth mins lie below, its smooth max above)."""
    if tnorm != "minmax":
        raise ValueError("the product t-norm has no width and no error: exact on {0, 1}")
    shapes.RELU.check_kernel(kernel)
    return shapes.RELU.bound(kernel)


def _logic_op(name: str, pairwise: bool = True) -> Op:
    # the examples (check, the catalogue-driven tests) take the t-norm that has a width
    if pairwise:
        return Op(name, bound=_minmax_bound, params={"tnorm": "minmax"})
    return Op(name, no_bound="min/max(method='softmax'): within W((n-1)/e) w, n-dependent",
              params={"tnorm": "minmax"})  # fmt: skip


_NOT = Op("logical_not", no_bound="1 - p is exact")
_AND, _OR, _XOR = map(_logic_op, ("logical_and", "logical_or", "logical_xor"))
_ALL, _ANY = _logic_op("all", pairwise=False), _logic_op("any", pairwise=False)
_ISCLOSE = Op("isclose", no_bound="the step of the margin: within K(-d/w) at distance d")


def _tnorm(tnorm: Any, width: Any, tol: Any) -> str:
    tnorm = one_of(tnorm, _TNORMS, "tnorm")
    if tnorm == "product" and (width is not None or tol is not None):
        raise ValueError("tnorm='product' takes no width= or tol= (it is smooth as it is)")
    return tnorm


def _pair(p: Any, q: Any) -> tuple[Backend, Array, Array, Any]:
    be, (p_c, q_c), dtype = _dispatch.operands((p, q), ("p", "q"))
    if isinstance(p_c, float):
        p_c = be.const(p_c, q_c)
    if isinstance(q_c, float):
        q_c = be.const(q_c, p_c)
    return be, p_c, q_c, dtype


@register(_NOT)
def logical_not(p: Array, /, *, straight_through: bool = False) -> Array:
    r"""Soft ``not``: :math:`1 - p` (both t-norms), exact on ``{0, 1}`` and its own hard
    value (``straight_through`` changes nothing).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.logical_not(np.array([0.0, 0.25, 1.0]))
    array([1.  , 0.75, 0.  ])
    """
    flag(straight_through, "straight_through")
    be, p_c, dtype = as_float_array(p, "p")
    return _dispatch.finish(be, 1.0 - p_c, dtype)


def _minmax(
    op: Any, p: Any, q: Any, width: Any, tol: Any, kernel: Any, straight_through: bool
) -> Array:
    return op(p, q, width=width, tol=tol, kernel=kernel, straight_through=straight_through)


@register(_AND)
def logical_and(
    p: Array,
    q: Array | float,
    /,
    *,
    tnorm: str = "product",
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Soft ``and`` of probabilities: :math:`p q` (product t-norm) or the smooth
    :math:`\min(p, q)` (``tnorm="minmax"``, with ``width`` or ``tol`` and ``kernel``).

    The product is exact on ``{0, 1}`` and needs no width; its gradient is ``(q, p)``.
    The smooth min is within ``w E|U| / 2`` of ``min(p, q)``, never above it.
    ``straight_through`` forwards the hard value of the chosen t-norm (``p q`` is
    already its own hard value; ``min(p, q)`` for minmax).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.logical_and(np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.5, 1.0]))
    array([0.  , 0.25, 1.  ])
    >>> mol.logical_and(np.array([0.2, 0.9]), 0.8, tnorm="minmax", width=1e-3)
    array([0.2, 0.8])
    """
    if _tnorm(tnorm, width, tol) == "minmax":
        return _minmax(minimum, p, q, width, tol, kernel, straight_through)
    flag(straight_through, "straight_through")
    be, p_c, q_c, dtype = _pair(p, q)
    return _dispatch.finish(be, p_c * q_c, dtype)


@register(_OR)
def logical_or(
    p: Array,
    q: Array | float,
    /,
    *,
    tnorm: str = "product",
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Soft ``or``: :math:`p + q - p q` (product t-norm, ``1 - (1-p)(1-q)``) or the
    smooth :math:`\max(p, q)` (``tnorm="minmax"``, never below it, within ``w E|U| / 2``).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.logical_or(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 0.0]))
    array([0.  , 0.75, 1.  ])
    """
    if _tnorm(tnorm, width, tol) == "minmax":
        return _minmax(maximum, p, q, width, tol, kernel, straight_through)
    flag(straight_through, "straight_through")
    be, p_c, q_c, dtype = _pair(p, q)
    return _dispatch.finish(be, p_c + q_c - p_c * q_c, dtype)


@register(_XOR)
def logical_xor(
    p: Array,
    q: Array | float,
    /,
    *,
    tnorm: str = "product",
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Soft ``xor``: :math:`p + q - 2 p q` (product t-norm: the probability that exactly
    one holds) or ``or(and(p, 1 - q), and(1 - p, q))`` with the smooth min/max
    (``tnorm="minmax"``, within ``w E|U|`` of the hard ``max(min(p, 1-q), min(1-p, q))``).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.logical_xor(np.array([0.0, 1.0, 1.0, 0.5]), np.array([0.0, 0.0, 1.0, 0.5]))
    array([0. , 1. , 0. , 0.5])
    """
    if _tnorm(tnorm, width, tol) == "minmax":
        straight_through = flag(straight_through, "straight_through")
        be, p_c, q_c, dtype = _pair(p, q)
        knobs = {"width": width, "tol": tol, "kernel": kernel}
        left = minimum(p_c, 1.0 - q_c, **knobs)
        out = maximum(left, minimum(1.0 - p_c, q_c, **knobs), **knobs)
        hard = None
        if straight_through:  # the hard max(min(p, 1 - q), min(1 - p, q)) in the caller's dtype
            xp = be.xp
            p_h = _dispatch.as_caller_array(be, p_c, p_c, dtype)
            q_h = _dispatch.as_caller_array(be, q_c, p_c, dtype)
            hard = xp.maximum(xp.minimum(p_h, 1.0 - q_h), xp.minimum(1.0 - p_h, q_h))
        return _dispatch.finish(be, out, dtype, hard)
    flag(straight_through, "straight_through")
    be, p_c, q_c, dtype = _pair(p, q)
    return _dispatch.finish(be, p_c + q_c - 2.0 * (p_c * q_c), dtype)


def _reduce_product(p: Any, axis: Any, keepdims: Any, complement: bool) -> Array:
    be, p_c, dtype = as_float_array(p, "p")
    axes = _dispatch.axes_of(axis, p_c.ndim)
    xp = be.xp
    if complement:  # any = 1 - prod(1 - p)
        stay = _dispatch.product(be, 1.0 - p_c, axes)
        # 1 - stay cancels where stay is near 1 (small p: any([1e-20, 1e-20]) was 0);
        # there every p <= 1/2, and -expm1(sum log1p(-p)) keeps their digits. The double
        # where keeps log1p(-1) (p = 1, stay = 0) out of the other branch's gradient
        near_one = stay >= 0.5
        small = xp.where(near_one, p_c, be.const(0.0, p_c))
        (logs,) = be.sums((xp.log1p(-small),), axes)
        kept = 0.0 - xp.expm1(logs)  # +0, not -0, over an empty axis
        out = xp.where(near_one, kept, 1.0 - stay)
    else:
        out = _dispatch.product(be, p_c, axes)
    return _dispatch.reduction_finish(be, out, axes, keepdims, dtype)


@register(_ALL)
def all(
    p: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    tnorm: str = "product",
    width: float | None = None,
    tol: float | None = None,
    keepdims: bool = False,
    straight_through: bool = False,
) -> Array:
    r"""Soft ``all`` over ``axis``: :math:`\prod_i p_i` (product t-norm; 1 over an empty
    axis, as ``np.all``) or the smooth min ``min(p, method="softmax")``
    (``tnorm="minmax"``: a softmax-weighted mean, in ``[min p, min p + W((n-1)/e) w]``).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.all(np.array([1.0, 0.5, 0.5]))
    array(0.25)
    >>> mol.all(np.array([1.0, 0.9, 1.0]), tnorm="minmax", width=0.01)
    array(0.90000908)
    """
    if _tnorm(tnorm, width, tol) == "minmax":
        return _smooth_min(p, axis=axis, width=width, tol=tol, method="softmax",
                           keepdims=keepdims, straight_through=straight_through)  # fmt: skip
    flag(straight_through, "straight_through")
    return _reduce_product(p, axis, keepdims, complement=False)


@register(_ANY)
def any(
    p: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    tnorm: str = "product",
    width: float | None = None,
    tol: float | None = None,
    keepdims: bool = False,
    straight_through: bool = False,
) -> Array:
    r"""Soft ``any`` over ``axis``: :math:`1 - \prod_i (1 - p_i)` (product t-norm; 0 over
    an empty axis, as ``np.any``) or the smooth max ``max(p, method="softmax")``
    (``tnorm="minmax"``, in ``[max p - W((n-1)/e) w, max p]``). The product form keeps
    the digits of small probabilities: where the product is above 1/2 it is computed as
    :math:`-\operatorname{expm1}(\sum_i \log1p(-p_i))` (``any([1e-20, 1e-20])`` is
    ``2e-20``, not 0).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.any(np.array([0.0, 0.5, 0.5]))
    array(0.75)
    """
    if _tnorm(tnorm, width, tol) == "minmax":
        return _smooth_max(p, axis=axis, width=width, tol=tol, method="softmax",
                           keepdims=keepdims, straight_through=straight_through)  # fmt: skip
    flag(straight_through, "straight_through")
    return _reduce_product(p, axis, keepdims, complement=True)


@register(_ISCLOSE)
def isclose(
    a: Array,
    b: Array | float,
    /,
    *,
    rtol: float = 1e-05,
    atol: float = 1e-08,
    width: float,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Soft ``isclose``: the smooth step of the margin,
    :math:`K\big((\mathrm{atol} + \mathrm{rtol}\,|b| - |a - b|)/w\big)`, NumPy's test
    ``|a - b| <= atol + rtol |b|`` smoothed over a width ``w`` (in units of ``a``).

    Notes
    -----
    The margin is formed before any division by ``w``: ``a - b`` is exact where ``a``
    and ``b`` are within a factor 2 (Sterbenz), so widths down to ``1e-12`` and below
    are resolved as long as they exceed the round-off ``eps (atol + rtol |b|)`` of the
    margin (``2e-22`` at the defaults and ``|b| <= 1`` in float64). Off the boundary by
    ``d`` the value is within the kernel's tail ``K(-d/w)`` of the hard 0/1 (Gaussian:
    ``Phi(-d/w)``); on it, ``1/2``. ``a = b = ±inf`` is close (1), an infinite
    difference is not (0); NaN gives NaN. ``straight_through`` forwards NumPy's hard
    test as 0/1, computed in the inputs' dtype.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.isclose(np.array([1.0, 1.0 + 1e-9, 1.1]), 1.0, width=1e-12)
    array([1., 1., 0.])
    >>> mol.isclose(np.array([1.0 + 1.001e-5]), 1.0, width=1e-12)  # on the boundary
    array([0.5])
    """
    straight_through = flag(straight_through, "straight_through")
    for value, name in ((rtol, "rtol"), (atol, "atol")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    k = get_kernel(kernel)
    shapes.STEP.check_kernel(k)
    w, _ = width_or_tol(width, None)
    be, a_c, b_c, dtype = _pair(a, b)
    xp = be.xp
    w = _dispatch.width_like(be, w, a_c)
    zero = be.const(0.0, a_c)
    with be.quiet():
        # an infinite input is close exactly when equal (NumPy); double where: the
        # finite formula never sees inf - inf, nor passes it into a gradient
        finite = xp.isfinite(a_c) & xp.isfinite(b_c)
        a_f, b_f = xp.where(finite, a_c, zero), xp.where(finite, b_c, zero)
        # |v| as v sign(v): the same value, and the derivative 0 at v = 0 on every
        # framework (xp.abs has 0 on torch, 1 on JAX): a = b is the smooth test's maximum
        d = a_f - b_f
        margin = (float(atol) + float(rtol) * (b_f * xp.sign(b_f))) - d * xp.sign(d)
        limit = xp.where(a_c == b_c, be.const(math.inf, a_c), be.const(-math.inf, a_c))
        nan = xp.isnan(a_c) | xp.isnan(b_c)  # NaN, with NaN derivatives: a - b itself
        margin = xp.where(finite, margin, xp.where(nan, a_c - b_c, limit))
        smooth = _dispatch.evaluate(be, shapes.formula(shapes.STEP, w, k), margin)
        hard = None
        if straight_through:  # NumPy's test, computed in the caller's dtype
            a_h = _dispatch.as_caller_array(be, a_c, a_c, dtype)
            b_h = _dispatch.as_caller_array(be, b_c, a_c, dtype)
            both = xp.isfinite(a_h) & xp.isfinite(b_h)
            near = xp.abs(a_h - b_h) <= float(atol) + float(rtol) * xp.abs(b_h)
            hard = xp.astype(xp.where(both, near, a_h == b_h), a_h.dtype)
    return _dispatch.finish(be, smooth, dtype, hard)
