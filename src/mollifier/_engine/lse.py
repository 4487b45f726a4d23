"""Reductions over axes: shifted logsumexp, softmax and p-norms (array-API code).

Every reduction shifts by the (masked) maximum, so nothing overflows at any width;
entries equal to ``-inf`` carry no weight and ``+inf`` entries share all of it (the
limit of the smooth function). Axes are kept as size-1 dimensions.
"""

from __future__ import annotations

import math
from typing import Any

from .._backend import Array, Backend, memoize
from .formula import Reduction


def shifts(be: Backend, x: Array, axes: tuple[int, ...]) -> tuple[Array, Array, Array]:
    """``(m, shift, beyond)`` over ``axes`` (kept): the max, and the stop-gradient amounts
    subtracted from ``x`` in :func:`exponents`.

    ``shift`` is the max where it is finite, 0 for an all ``-inf`` slice (every entry
    stays ``-inf``) and the dtype's largest float at a ``+inf`` max, where ``beyond`` is
    that float again (0 elsewhere): ``(x - shift) - beyond`` is ``+inf`` at the ``+inf``
    entries and at most ``-max`` at every other, the largest finite ones included.
    """
    xp = be.xp
    m = be.stop_gradient(xp.max(x, axis=axes, keepdims=True))
    zero, big = be.const(0.0, m), be.const(xp.finfo(m.dtype).max, m)
    top = m == math.inf
    shift = xp.where(top, big, xp.where(m == -math.inf, zero, m))
    return m, shift, xp.where(top, big, zero)


def exponents(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> tuple[Array, Array]:
    """``(m, e)``: the max over ``axes`` (kept) and ``e = exp((x - m)/w)``, exactly 1 at
    the max (ties included), in ``[0, 1)`` elsewhere.

    Without a ``where`` on whole arrays (a pass that costs torch three times an
    arithmetic one): ``min((x - shift) - beyond, 0)`` (:func:`shifts`) is ``x - m`` at a
    finite max, 0 at the ``+inf`` entries of a ``+inf`` max and ``-inf`` at the others,
    so they take all the weight (the limit), never forming ``inf - inf``; an all ``-inf``
    slice gets ``e = 0``; a NaN entry makes its slice's max, and so every ``e``, NaN.
    """
    m, shift, beyond = shifts(be, x, axes)
    return m, be.xp.exp(be.xp.clip((x - shift) - beyond, max=0.0) / w)


def logsumexp_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """The smooth max over ``axes`` (kept): ``m + w log1p((c - 1) + r)`` with ``e`` from
    :func:`exponents`, ``r`` the sum of ``e`` off the max (``e - floor(e)``: ``e`` is 1
    exactly at the max) and ``c = round(sum e - r)`` the number of entries at the max.
    scipy's form: exact to round-off also where ``r`` is below the resolution of 1,
    which ``log(sum e)`` rounds away.

    ``-inf`` for an all ``-inf`` slice (``log1p(-1)``), ``+inf`` with a ``+inf`` entry,
    NaN with a NaN entry.
    """
    xp = be.xp
    m, e = exponents(be, x, axes, w)
    total, rest = be.sums((e, e - xp.floor(e)), axes)  # one combine across shards
    return logsumexp_of(be, m, total, rest, w)


def logsumexp_of(be: Backend, m: Array, total: Array, rest: Array, w: Any) -> Array:
    """``m + w log1p((c - 1) + rest)`` from the max ``m``, ``total = sum e`` and ``rest``
    (reduced arrays; see :func:`logsumexp_values`). ``c`` is exact wherever it matters:
    an error of the rounded ``total`` changes ``c`` only once it exceeds 1/2, a relative
    error of ``total`` at its own rounding level. ``+inf`` at a ``+inf`` max, ``-inf``
    where every entry is ``-inf``.
    """
    xp = be.xp
    zero = be.const(0.0, m)
    empty = total == 0  # all -inf: -inf, through a double where (no log1p(-1) in gradients)
    count = xp.round(total - rest)
    lse = xp.where(xp.isfinite(m), m, zero) + w * xp.log1p(
        xp.where(empty, zero, (count - 1.0) + rest)
    )
    return xp.where(m == math.inf, m, xp.where(empty, be.const(-math.inf, m), lse))


def softmax_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """The softmax over ``axes``: shifted by the max, all ``-inf`` slices give zeros,
    ``+inf`` entries share the mass equally (the limit), a NaN entry makes its slice NaN."""
    xp = be.xp
    _, e = exponents(be, x, axes, w)
    s = xp.sum(e, axis=axes, keepdims=True)
    return e / xp.where(s == 0, be.const(1.0, s), s)  # s is NaN, 0 or >= 1


def entropy(be: Backend, p: Array, axes: tuple[int, ...], w: Any = None) -> Array:
    """``-sum p log p`` over ``axes`` (kept), ``0 log 0 = 0``: the derivative of
    ``w log sum exp(x/w)`` in ``w`` (``log S - sum p_i t_i`` with ``t = (x - m)/w``),
    between 0 and ``log n`` whatever ``x/w`` (no ``inf * 0`` from entries at ``-inf``
    or whose ``exp`` underflows)."""
    xp = be.xp
    log_p = xp.log(xp.where(p > 0, p, be.const(1.0, p)))  # double where: 0 at p = 0
    return -xp.sum(p * log_p, axis=axes, keepdims=True)


def softmax_width_slope(be: Backend, p: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``d softmax(x/w) / dw = -(p/w) (t - sum p t)`` with ``t = x/w``, from ``p`` alone:
    ``t_i - sum_j p_j t_j = log p_i + H(p)``; 0 where ``p = 0``."""
    xp = be.xp
    log_p = xp.log(xp.where(p > 0, p, be.const(1.0, p)))
    return -(p / w) * (log_p + entropy(be, p, axes))


def logsumexp(width: Any) -> Reduction:
    """``w log sum exp(x / w)``; its gradient is the softmax, its width derivative the
    softmax's entropy."""
    return Reduction(logsumexp_values, softmax_values, entropy, width, output_is_weights=False)


def softmax(width: Any) -> Reduction:
    """``softmax(x / w)``, which is its own weights."""
    return Reduction(
        softmax_values, softmax_values, softmax_width_slope, width, output_is_weights=True
    )


def hard_one_hot(be: Backend, x: Array, axes: tuple[int, ...]) -> Array:
    """The one-hot of the max over ``axes``; ties share the mass equally."""
    xp = be.xp
    hits = xp.astype(x == xp.max(x, axis=axes, keepdims=True), x.dtype)
    count = xp.sum(hits, axis=axes, keepdims=True)
    return hits / xp.where(count > 0, count, be.const(1.0, count))


@memoize
def boltzmann_gap(n: int) -> float:
    """``W((n - 1)/e)``: the sharp bound on ``(max - softmax mean) / w``."""
    from scipy.special import lambertw

    return float(lambertw((n - 1) / math.e).real) if n > 1 else 0.0


def log_ratios(
    be: Backend, a: Array, axes: tuple[int, ...], m: Array | None = None
) -> tuple[Array, Array, Array]:
    """``(m, usable, log(a / m))`` for the p-norm of ``a >= 0`` over ``axes``, shared by
    ``max(method="power")`` and ``norm``: ``(sum a_i^p)^(1/p) = m exp(lse_w(log(a/m)))``
    with ``p = 1/w`` and ``m = max a``, the powers taken in logs so that ``n^(1/p)``
    overflows only when the true value does.

    ``m`` is the stop-gradient max where it is positive and finite (``usable``), 1
    elsewhere (the norm is then ``max a`` itself: 0 or ``inf``); zeros get ``log = -inf``
    through a double ``where``, so that they weigh nothing and put no ``0 * inf`` into a
    gradient.
    """
    xp = be.xp
    m = xp.max(a, axis=axes, keepdims=True) if m is None else m  # the caller's max of a
    usable = (m > 0) & xp.isfinite(m)
    m_safe = be.stop_gradient(xp.where(usable, m, be.const(1.0, m)))
    # both scaled by 1/8 above 1 (exact): XLA divides by multiplying with 1/m, which is
    # subnormal for m beyond 2^1022 and flushed to 0 on CPU (the norm of a row holding
    # the float64 max came out 0)
    scale = xp.where(m_safe > 1.0, be.const(0.125, m_safe), be.const(1.0, m_safe))
    ratio = (a * scale) / (m_safe * scale)
    positive = ratio > 0
    logs = xp.log(xp.where(positive, ratio, be.const(1.0, a)))
    return m_safe, usable, xp.where(positive, logs, be.const(-math.inf, a))


def log_softmax_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``log softmax(x / w) = z - log sum e^z`` with ``z = (x - m)/w <= 0`` (scipy's
    form), the log of the sum as ``log1p((c - 1) + r)`` (:func:`logsumexp_values`), so
    that an entry far below the max keeps every digit (``[1000, 1]`` gives ``[0, -999]``
    exactly). ``-inf`` at ``-inf`` entries and for an all ``-inf`` slice; ``+inf``
    entries share the mass (``-log count``, the others ``-inf``); NaN with a NaN entry.
    """
    xp = be.xp
    _, shift, beyond = shifts(be, x, axes)
    z = xp.clip((x - shift) - beyond, max=0.0) / w
    e = xp.exp(z)
    total = xp.sum(e, axis=axes, keepdims=True)
    rest = xp.sum(e - xp.floor(e), axis=axes, keepdims=True)
    zero = be.const(0.0, total)
    count = xp.round(total - rest)
    return z - xp.log1p(xp.where(total == 0, zero, (count - 1.0) + rest))


def _finite_part(be: Backend, y: Array) -> tuple[Array, Array]:
    """``(p, y)`` with ``p = e^y`` and ``y`` set to 0 where ``p = 0`` (no ``0 * -inf``)."""
    xp = be.xp
    p = xp.exp(y)
    return p, xp.where(p > 0, y, be.const(0.0, y))


def log_softmax_tangent(be: Backend, y: Array, t: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``(t - sum(p t)) / w`` with ``p = e^y``: the Jacobian of log-softmax times ``t``."""
    p = be.xp.exp(y)
    return (t - be.xp.sum(p * t, axis=axes, keepdims=True)) / w


def log_softmax_cotangent(be: Backend, y: Array, g: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``(g - p sum g) / w``: the transposed Jacobian times ``g``."""
    p = be.xp.exp(y)
    return (g - p * be.xp.sum(g, axis=axes, keepdims=True)) / w


def log_softmax_width_slope(be: Backend, y: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``d y / d w = -(y - sum p y) / w`` (the shift cancels); 0 at ``-inf`` entries,
    whose value stays ``-inf`` at every width."""
    xp = be.xp
    p, y_finite = _finite_part(be, y)
    slope = -(y_finite - xp.sum(p * y_finite, axis=axes, keepdims=True)) / w
    return xp.where(p > 0, slope, be.const(0.0, slope))


def log_softmax(width: Any) -> Reduction:
    """``log softmax(x / w)``: saves its output, from which its Jacobian follows."""
    return Reduction(
        log_softmax_values,
        log_softmax_values,
        log_softmax_width_slope,
        width,
        output_is_weights=True,
        tangent_rule=log_softmax_tangent,
        cotangent_rule=log_softmax_cotangent,
    )


def weighted_logsumexp(
    be: Backend, x: Array, b: Array, axes: tuple[int, ...], w: Any
) -> tuple[Array, Array]:
    """``(w log|sum b e^{x/w}|, sign of the sum)`` over ``axes`` (kept), scipy's
    semantics: entries with ``b = 0`` add nothing whatever their ``x`` (``inf`` and NaN
    included); the terms at the max ``m`` of the others are summed apart,
    ``M = sum b`` there and ``R`` the rest, and the value is
    ``m + w (log|M| + log1p(R/M))`` (``R/M < -1`` through ``log1p(-R/M - 2)``), exact
    to round-off where ``R`` is far below ``M``; ``m + w log|R|`` where ``M = 0``.
    Differentiated by the framework: every input of the formula is finite where it
    is used (double ``where``), so its gradients in ``x``, ``b`` and an array width are
    ``b e / S``, ``w e / S`` and the entropy term, 0 where ``b = 0`` meets a non-finite
    ``x`` or one above ``m``.

    An all ``-inf`` (or all zero-weight) slice gives ``(-inf, 0)``, a ``+inf`` max
    ``(+inf, sign M)`` (NaN where ``M = 0``: ``inf - inf``), NaN in ``x`` (at a
    non-zero weight) or in ``b`` NaN.
    """
    xp = be.xp
    zero = be.const(0.0, x)
    minus_inf = be.const(-math.inf, x)
    used = b != 0
    m = be.stop_gradient(xp.max(xp.where(used, x, minus_inf), axis=axes, keepdims=True))
    top, bottom = m == math.inf, m == -math.inf
    shift = xp.where(xp.isfinite(m), m, be.const(0.0, m))
    d = xp.where(top, xp.where((x == math.inf) & used, zero, minus_inf), x - shift)
    d = xp.where(used | (d <= 0), d, minus_inf)  # zero weights above m or NaN: inert
    live = d > -math.inf  # False at NaN too (NaN x with b != 0 makes m NaN)
    e = xp.where(live, xp.exp(xp.where(live, d, zero) / w), zero)
    at_max = live & (d == 0) & used
    terms = b * e
    big = xp.sum(xp.where(at_max, terms, zero), axis=axes, keepdims=True)
    rest = xp.sum(xp.where(at_max, zero, terms), axis=axes, keepdims=True)
    no_max = big == 0
    ratio = rest / xp.where(no_max, be.const(1.0, big), big)
    sign = xp.where(no_max, xp.sign(rest), xp.sign(ratio + 1.0) * xp.sign(big))
    folded = xp.where(ratio < -1.0, -ratio - 2.0, ratio)
    magnitude_big = xp.abs(xp.where(no_max, be.const(1.0, big), big))
    magnitude_rest = xp.abs(xp.where(no_max, rest, be.const(1.0, rest)))
    log_abs = xp.where(
        no_max,
        xp.log(magnitude_rest),
        xp.log(magnitude_big) + xp.log1p(xp.where(no_max, be.const(0.0, folded), folded)),
    )
    value = shift + w * log_abs
    nan = be.const(math.nan, value)
    value = xp.where(top, xp.where(no_max, nan, m), value)
    value = xp.where(xp.isnan(m), m, xp.where(bottom, m, value))
    sign = xp.where(bottom, be.const(0.0, sign), xp.where(top & no_max, nan, sign))
    return value, xp.where(xp.isnan(value), nan, sign)
