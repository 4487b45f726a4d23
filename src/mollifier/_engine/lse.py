"""Reductions over axes: shifted logsumexp, softmax and p-norms (array-API code).

Every reduction shifts by the (masked) maximum, so nothing overflows at any width, and
entries equal to ``-inf`` carry no weight. Axes are kept as size-1 dimensions.
"""

from __future__ import annotations

import math
from typing import Any

from .._backend import Array, Backend, memoize
from .formula import Reduction


def shifted(be: Backend, x: Array, axes: tuple[int, ...], w: float) -> tuple[Array, Array, Array]:
    """``(m, e, s)``: the stop-gradient max, ``exp((x - m)/w)`` and its sum over ``axes``.

    ``m`` is replaced by 0 where it is not finite (an all ``-inf`` slice, or ``+inf``),
    so that ``x - m`` is never ``inf - inf``.
    """
    xp = be.xp
    m = xp.max(x, axis=axes, keepdims=True)
    m = be.stop_gradient(xp.where(xp.isfinite(m), m, be.const(0.0, m)))
    e = xp.exp((x - m) / w)
    return m, e, xp.sum(e, axis=axes, keepdims=True)


def logsumexp_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """The generic smooth max over ``axes`` (kept): ``m + w log sum exp((x - m)/w)``."""
    xp = be.xp
    m, _, s = shifted(be, x, axes, w)
    positive = s > 0
    s_safe = xp.where(positive, s, be.const(1.0, s))
    empty = xp.where(s == 0, be.const(-math.inf, s), s)  # -inf, or NaN from a NaN entry
    return xp.where(positive, m + w * xp.log(s_safe), empty)


def softmax_values(be: Backend, x: Array, axes: tuple[int, ...], w: Any) -> Array:
    """The generic softmax: shifted by the max, all-``-inf`` slices give zeros, a NaN
    entry makes its slice NaN."""
    xp = be.xp
    _, e, s = shifted(be, x, axes, w)
    return e / xp.where(s == 0, be.const(1.0, s), s)  # s is NaN, 0 or positive


def logsumexp(width: Any) -> Reduction:
    """``w log sum exp(x / w)``; its gradient is the softmax."""
    return Reduction(logsumexp_values, softmax_values, width, output_is_weights=False)


def softmax(width: Any) -> Reduction:
    """``softmax(x / w)``, which is its own weights."""
    return Reduction(softmax_values, softmax_values, width, output_is_weights=True)


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


def p_norm(be: Backend, a: Array, axes: tuple[int, ...], w: Any) -> Array:
    """``(sum a_i^p)^(1/p)`` with ``p = 1/w`` for ``a >= 0``, shared by ``max(method="power")``
    and :func:`norm`.

    ``m (sum (a/m)^p)^(1/p)`` with ``m = max a``, the powers taken in logs so that
    ``n^(1/p)`` overflows only when the true value does; zeros go through ``where`` so
    that ``0^p`` puts no ``inf * 0`` into the gradient.
    """
    xp = be.xp
    m = xp.max(a, axis=axes, keepdims=True)
    usable = (m > 0) & xp.isfinite(m)
    m_safe = be.stop_gradient(xp.where(usable, m, be.const(1.0, m)))
    ratio = xp.where(a > 0, a / m_safe, be.const(0.0, a))
    ratio_safe = xp.where(ratio > 0, ratio, be.const(1.0, a))
    powered = xp.where(ratio > 0, xp.exp(xp.log(ratio_safe) / w), be.const(0.0, a))
    total = xp.sum(powered, axis=axes, keepdims=True)
    total_safe = xp.where(total > 0, total, be.const(1.0, total))
    out = m_safe * xp.exp(w * xp.log(total_safe))
    return xp.where(usable, out, m)
