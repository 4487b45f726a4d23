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
    ratio = a / m_safe
    positive = ratio > 0
    logs = xp.log(xp.where(positive, ratio, be.const(1.0, a)))
    return m_safe, usable, xp.where(positive, logs, be.const(-math.inf, a))
