"""Reductions over axes: shifted logsumexp, softmax and p-norms (array-API code).

Every reduction shifts by the (masked) maximum, so nothing overflows at any width;
entries equal to ``-inf`` carry no weight and ``+inf`` entries share all of it (the
limit of the smooth function). Axes are kept as size-1 dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _MeanOfExponentials:
    """``w log((1/n) sum e^{x/w})`` over ``axes`` (kept) for ``n`` entries per slice:
    ``m + w log1p(sum expm1(z) / n)`` with ``z = (x - m)/w`` (shifted as in
    :func:`exponents`) while that mean is above -1/2, ``m + w log(sum e^z / n)`` below.
    Nothing cancels where every entry is near the max, as in ``logsumexp - w log n``
    (an absolute error ``eps w log n``, more than the distance to the mean at widths
    far above the spread), nor in ``exp(z) - 1`` (``expm1`` keeps a tiny ``z``)."""

    n: float

    def __call__(self, be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
        xp = be.xp
        m, shift, beyond = shifts(be, x, axes)
        z = xp.clip((x - shift) - beyond, max=0.0) / w  # as in exponents()
        total, change = be.sums((xp.exp(z), xp.expm1(z)), axes)  # one combine across shards
        zero, one = be.const(0.0, m), be.const(1.0, m)
        ratio = change / self.n
        near = ratio > -0.5  # double wheres: no log1p(-1) nor log(0) in the other branch
        logmean = xp.where(
            near, xp.log1p(xp.where(near, ratio, zero)), xp.log(xp.where(near, one, total / self.n))
        )
        value = xp.where(xp.isfinite(m), m, zero) + w * logmean
        empty = total == 0  # all -inf
        return xp.where(m == math.inf, m, xp.where(empty, be.const(-math.inf, m), value))


@dataclass(frozen=True)
class _EntropyLessLogCount:
    """``d/dw`` of the log-mean-exp: the softmax's entropy less ``log n``."""

    n: float

    def __call__(self, be: Backend, p: Array, axes: tuple[int, ...], w: Any) -> Array:
        return entropy(be, p, axes, w) - math.log(self.n)


def logmeanexp(width: Any, n: int) -> Reduction:
    """``w log((1/n) sum exp(x / w))`` over ``n`` entries per slice; its gradient is the
    softmax, as the logsumexp's."""
    return Reduction(_MeanOfExponentials(float(n)), softmax_values,
                     _EntropyLessLogCount(float(n)), width, output_is_weights=False)  # fmt: skip


def softmax_input_cotangent(
    be: Backend, x: Array, g: Array, axes: tuple[int, ...], w: Any
) -> tuple[Array, Array]:
    """``(p, p (g - sum p g) / w)`` from the input: for straight-through, which forwards
    the hard one-hot and never computes ``p`` (a backend that combines shards sums
    ``e`` and ``e g`` in one collective, after the one of the max)."""
    _, e = exponents(be, x, axes, w)
    p, (inner,) = be.means(e, (g,), axes)
    return p, p * (g - inner) / w


def softmax(width: Any) -> Reduction:
    """``softmax(x / w)``, which is its own weights."""
    return Reduction(
        softmax_values,
        softmax_values,
        softmax_width_slope,
        width,
        output_is_weights=True,
        input_cotangent_rule=softmax_input_cotangent,
    )


def hard_one_hot(be: Backend, x: Array, axes: tuple[int, ...]) -> Array:
    """The one-hot of the max over ``axes``; ties share the mass equally; NaN where the
    slice has a NaN (NaN in, NaN out: no entry equals a NaN max, and 0 would be a silent
    answer)."""
    xp = be.xp
    m = xp.max(x, axis=axes, keepdims=True)
    hits = xp.astype(x == m, x.dtype)
    count = xp.sum(hits, axis=axes, keepdims=True)
    return xp.where(xp.isnan(m), m, hits / xp.where(count > 0, count, be.const(1.0, count)))


def hard_index(be: Backend, x: Array, axis: int) -> Array:
    """The mean position of the maxima along ``axis`` (kept): :func:`hard_one_hot`'s
    expected index, ``sum_i i hits_i / count``; NaN where the slice has a NaN."""
    xp = be.xp
    m = xp.max(x, axis=(axis,), keepdims=True)
    hits = xp.astype(x == m, x.dtype)
    # the count and the sum of positions together: exact integers, one division (a
    # DTensor's, and a shard's, in one all-reduce); a count of 0 is a NaN slice
    count, total = be.sums((hits, hits * be.positions(x, axis)), (axis,))
    return xp.where(xp.isnan(m), m, total / xp.where(count > 0, count, be.const(1.0, count)))


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
    gradient. A negative entry (outside the domain) gets NaN, which makes its slice's
    norm NaN.
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
    logs = xp.where(positive, logs, be.const(-math.inf, a))
    return m_safe, usable, xp.where(ratio < 0, be.const(math.nan, a), logs)


# The p-norm (sum a_i^p)^(1/p) of a >= 0 with p = 1/w, as one reduction: m exp(lse_w(log
# a/m)) with m = max a, whose logs are at most 0 and exactly 0 at the max, so that
# logsumexp's shift is known to be 0: one collective for the max and one for the sums
# along a sharded axis, forward and backward.


def _p_norm_terms(
    be: Backend, a: Array, axes: tuple[int, ...], w: Any
) -> tuple[Array, Array, Array, Array, Array]:
    """``(top, m, usable, logs, e)``: the max of ``a`` (stop-gradient), :func:`log_ratios`
    and ``e = exp(logs / w)`` (``logs`` clipped at 0, which changes them only where the
    max is not usable: there the norm is ``top`` itself)."""
    xp = be.xp
    top = be.stop_gradient(xp.max(a, axis=axes, keepdims=True))
    m, usable, logs = log_ratios(be, a, axes, top)
    return top, m, usable, logs, xp.exp(xp.clip(logs, max=0.0) / w)


def _p_norm_gap(be: Backend, total: Array, rest: Array, w: Any) -> Array:
    """``w log sum e`` in logsumexp's form (:func:`logsumexp_of`) at the shift 0."""
    return logsumexp_of(be, be.const(0.0, total), total, rest, w)  # in [0, w log n]


def p_norm_values(be: Backend, a: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``(sum a_i^(1/w))^w`` over ``axes`` (kept) for ``a >= 0``: ``m exp(gap)`` with
    ``gap = lse_w(log(a/m))``, so that ``n^w`` overflows only when the true value does;
    ``max a`` itself where it is 0 or infinite; NaN with a negative or NaN entry."""
    xp = be.xp
    top, m, usable, _, e = _p_norm_terms(be, a, axes, w)
    total, rest = be.sums((e, e - xp.floor(e)), axes)
    gap = _p_norm_gap(be, total, rest, w)
    out = m * xp.exp(xp.where(usable, gap, be.const(0.0, gap)))  # double where: no exp(inf)
    return xp.where(xp.isnan(total), total, xp.where(usable, out, top))


def p_norm_weights(be: Backend, a: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``d/da_i = exp(gap) (a_i/m)^(1/w - 1) / sum e = exp((1 - 1/w)(gap - log(a_i/m)))``;
    0 at ``a_i = 0`` (as the framework differentiated the double ``where``); where the
    max is 0 or infinite the max's gradient (ties share it)."""
    xp = be.xp
    top, _, usable, logs, e = _p_norm_terms(be, a, axes, w)
    hits = xp.astype(a == top, a.dtype)
    total, rest, count = be.sums((e, e - xp.floor(e), hits), axes)
    gap = _p_norm_gap(be, total, rest, w)
    zero = be.const(0.0, a)
    live = logs > -math.inf
    slope = xp.exp((1.0 - 1.0 / w) * (gap - xp.where(live, logs, zero)))
    one_hot = hits / xp.where(count > 0, count, be.const(1.0, count))
    return xp.where(usable, xp.where(live, slope, zero), one_hot)


def p_norm_width_slope(be: Backend, a: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``d/dw = value * H(q)`` with ``q = e / sum e`` (logsumexp's width slope is the
    entropy, :func:`entropy`), ``H = (gap - sum q log(a/m)) / w``; 0 where the max is 0
    or infinite (the value does not depend on the width)."""
    xp = be.xp
    _, m, usable, logs, e = _p_norm_terms(be, a, axes, w)
    finite_logs = xp.where(e > 0, logs, be.const(0.0, logs))
    total, rest, weighted = be.sums((e, e - xp.floor(e), e * finite_logs), axes)
    gap = _p_norm_gap(be, total, rest, w)
    mean = weighted / xp.where(total == 0, be.const(1.0, total), total)
    value = m * xp.exp(xp.where(usable, gap, be.const(0.0, gap)))
    return xp.where(usable, value * ((gap - mean) / w), be.const(0.0, value))


def p_norm(width: Any) -> Reduction:
    """``(sum a_i^p)^(1/p)`` with ``p = 1/width`` for ``a >= 0``: ``norm`` and
    ``max(method="power")``; saves ``a`` alone."""
    return Reduction(p_norm_values, p_norm_weights, p_norm_width_slope, width,
                     output_is_weights=False, width_slope_of_input=True)  # fmt: skip


def log_softmax_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``log softmax(x / w) = z - log sum e^z`` with ``z = (x - m)/w <= 0`` (scipy's
    form), the log of the sum as ``log1p((c - 1) + r)`` (:func:`logsumexp_values`), so
    that an entry far below the max keeps every digit (``[1000, 1]`` gives ``[0, -999]``
    exactly). ``-inf`` at ``-inf`` entries and for an all ``-inf`` slice; ``+inf``
    entries share the mass (``-log count``, the others ``-inf``); NaN with a NaN entry.
    """
    return _log_softmax(be, x, axes, w, ())[0]


def _log_softmax(
    be: Backend, x: Array, axes: tuple[int, ...], w: Any, extra: tuple[Array, ...]
) -> tuple[Array, tuple[Array, ...]]:
    """:func:`log_softmax_values` and the sums of ``extra`` over ``axes``, combined
    across shards with the log-softmax's own sums (one collective)."""
    xp = be.xp
    _, shift, beyond = shifts(be, x, axes)
    z = xp.clip((x - shift) - beyond, max=0.0) / w
    e = xp.exp(z)
    total, rest, *sums = be.sums((e, e - xp.floor(e), *extra), axes)  # one combine
    zero = be.const(0.0, total)
    count = xp.round(total - rest)
    return z - xp.log1p(xp.where(total == 0, zero, (count - 1.0) + rest)), tuple(sums)


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


def log_softmax_input_cotangent(
    be: Backend, x: Array, g: Array, axes: tuple[int, ...], w: Any
) -> tuple[Array, Array]:
    """``(y, (g - p sum g) / w)`` from the input (straight-through; ``sum g`` in the
    log-softmax's own collective)."""
    y, (total,) = _log_softmax(be, x, axes, w, (g,))
    return y, (g - be.xp.exp(y) * total) / w


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
        input_cotangent_rule=log_softmax_input_cotangent,
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


# The softmax-weighted means: sum p y with p = softmax(x / w), y the input itself (the
# smooth max by the softmax method) or the positions along the axis (the expected
# index). One reduction each, so that a sharded axis takes one collective for the max
# and one for the sums (Backend.means), forward and backward.


def _finite(be: Backend, x: Array) -> Array:
    """``x`` with its infinite entries set to 0 (the softmax weighs ``-inf`` entries 0;
    at a ``+inf`` max the mean is not used)."""
    return be.xp.where(be.xp.isfinite(x), x, be.const(0.0, x))


def _mean(
    be: Backend, x: Array, axes: tuple[int, ...], w: Any, y: Array | None
) -> tuple[Array, Array, Array]:
    """``(m, p, mean)``: the max, ``p = softmax(x / w)`` and ``sum p y`` (``y`` the
    finite part of ``x`` when ``None``), one max and one combine of sums."""
    m, e = exponents(be, x, axes, w)
    p, (mean,) = be.means(e, (_finite(be, x) if y is None else y,), axes)
    return m, p, mean


def _mean_width_slope(be: Backend, x: Array, axes: tuple[int, ...], w: Any, y: Array) -> Array:
    """``(m, d/dw sum p y = -cov_p(y, z) / w)`` with ``z = (x - m)/w`` (``dp/dw =
    -(p/w)(z - sum p z)``, :func:`softmax_width_slope`), its three means in one
    combine; ``z`` is 0 where ``p`` is (no ``0 * -inf``)."""
    xp = be.xp
    m, shift, beyond = shifts(be, x, axes)
    z = xp.clip((x - shift) - beyond, max=0.0) / w
    e = xp.exp(z)
    z = xp.where(e > 0, z, be.const(0.0, z))
    _, (mean_y, mean_z, mean_yz) = be.means(e, (y, z, y * z), axes)
    return m, -(mean_yz - mean_y * mean_z) / w


def softmax_mean_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``sum p x`` over ``axes`` (kept), ``p = softmax(x / w)``: the smooth max by the
    softmax method, between the mean and the max. ``-inf`` entries weigh 0; an
    infinite max (``+inf``, or all ``-inf``) is the value; NaN with a NaN entry."""
    m, _, mean = _mean(be, x, axes, w, None)
    return be.xp.where(be.xp.isinf(m), m, mean)


def softmax_mean_weights(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``p (1 + (x - mean)/w)``; ``p`` at an infinite max (the ``+inf`` entries share
    the gradient; an all ``-inf`` slice has none)."""
    xp = be.xp
    m, p, mean = _mean(be, x, axes, w, None)
    # (p / w) first and 0 where p is: no 0 * inf from an entry near -max at a small width
    spread = xp.where(p > 0, (p / w) * (_finite(be, x) - mean), be.const(0.0, p))
    return xp.where(xp.isinf(m), p, p + spread)


def softmax_mean_width_slope(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``d/dw sum p x`` (:func:`_mean_width_slope`); 0 at an infinite max."""
    m, slope = _mean_width_slope(be, x, axes, w, _finite(be, x))
    return be.xp.where(be.xp.isinf(m), be.const(0.0, slope), slope)


def softmax_mean(width: Any) -> Reduction:
    """``sum softmax(x / w) x``, the smooth max by the softmax method."""
    return Reduction(softmax_mean_values, softmax_mean_weights, softmax_mean_width_slope,
                     width, output_is_weights=False, width_slope_of_input=True)  # fmt: skip


def expected_index_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``sum_i i p_i`` along the one axis of ``axes`` (kept), ``p = softmax(x / w)``:
    the soft argmax as a position (along the whole axis for a shard)."""
    return _mean(be, x, axes, w, be.positions(x, axes[0]))[2]


def expected_index_weights(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``p (i - mean) / w``."""
    positions = be.positions(x, axes[0])
    _, p, mean = _mean(be, x, axes, w, positions)
    return (p / w) * (positions - mean)


def expected_index_width_slope(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``d/dw sum i p_i`` (:func:`_mean_width_slope`)."""
    return _mean_width_slope(be, x, axes, w, be.positions(x, axes[0]))[1]


def expected_index(width: Any) -> Reduction:
    """``sum_i i softmax(x / w)_i`` along one axis."""
    return Reduction(expected_index_values, expected_index_weights, expected_index_width_slope,
                     width, output_is_weights=False, width_slope_of_input=True)  # fmt: skip
