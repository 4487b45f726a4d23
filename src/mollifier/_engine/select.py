r"""Smooth selections between inputs: ``maximum``/``minimum`` and ``where`` (array-API code).

Both are written so that no difference of two inputs is ever formed where it can
overflow or be ``inf - inf``:

* ``max_w(a, b) = max(a, b) + relu_w(-|a - b|)`` (``b + relu_w(a - b)``, since
  ``relu_w(d) - relu_w(-d) = d`` for a kernel of mean zero): the correction is in
  ``[0, w E|U|/2]``, so ``max_w(0, -40 w) = w log1p(e^-40)`` to round-off (``b +
  relu_w(a - b)`` rounds it to 0), ``|a - b| = inf`` (overflow or opposite infinities)
  gives ``max(a, b)`` itself, and equal infinities give their value;
* ``where_w(x, a, b) = a K(x/w) + b K(-x/w)`` (``b + (a - b) K(x/w)``, since
  ``K(t) + K(-t) = 1``), evaluated as ``b + 2h K(t)`` left of 0 and ``a - 2h K(-t)``
  right of it with ``h = a/2 - b/2`` (which cannot overflow): each term to round-off,
  and derivatives ``2h k dt`` in which no ``inf - inf`` appears; an infinite input
  takes the weighted sum, where a term of weight exactly 0 is 0 (that side is not
  selected at all).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .._backend import Array, Backend
from .formula import Combination, Formula


def _gradient_scales(be: Backend, half: Any, like: Array) -> tuple[Any, Any]:
    """``(2^-8, 2^8)`` where ``|half|`` is within ``2^-6`` of the dtype's max, ``(1, 1)``
    elsewhere: the factors by which :func:`_where_value` carries the gradient through
    the kernel (see there)."""
    xp = be.xp
    near_max = xp.finfo(like.dtype).max * 2.0**-6
    if _number(half):
        return (2.0**-8, 2.0**8) if abs(half) > near_max else (1.0, 1.0)
    large = xp.abs(half) > near_max
    one = be.const(1.0, half)
    return xp.where(large, one * 2.0**-8, one), xp.where(large, one * 2.0**8, one)


def _number(value: Any) -> bool:
    # a Python float input (a constant); not NumPy's float64 scalars, which -x of a 0-d
    # array is, and which are float subclasses
    return type(value) is float


def _array(be: Backend, value: Any, like: Array) -> Array:
    return be.const(value, like) if _number(value) else value


def _like(inputs: tuple[Any, ...]) -> Array:
    return next(v for v in inputs if not _number(v))


def _difference(be: Backend, a: Any, b: Any) -> Array:
    """``a - b``, 0 where ``a == b`` (equal infinities: no ``inf - inf``)."""
    xp = be.xp
    like = _like((a, b))
    a, b = _array(be, a, like), _array(be, b, like)
    return xp.where(a == b, be.const(0.0, like), a - b)


def _maximum_value(be: Backend, inputs: tuple[Any, ...], relu: Formula, sign: float) -> Array:
    a, b = (v * sign for v in inputs)  # minimum(a, b) = -maximum(-a, -b), exactly
    like = _like((a, b))
    top = be.xp.maximum(_array(be, a, like), _array(be, b, like))  # NaN in, NaN out
    return sign * (top + relu.value(be, -be.xp.abs(_difference(be, a, b))))


def _maximum_partials(
    be: Backend, inputs: tuple[Any, ...], relu: Formula, sign: float, wanted: tuple[bool, ...]
) -> tuple[Array | None, ...]:
    # d/da = K(d/w) = relu_w'(d), d/db = K(-d/w), with d = sign (a - b)
    a, b = (v * sign for v in inputs)
    d = _difference(be, a, b)
    return (relu.slope(be, d) if wanted[0] else None, relu.slope(be, -d) if wanted[1] else None)


def maximum(relu: Formula, sign: float = 1.0) -> Combination:
    """``max_w(a, b)`` (``sign = 1``) or ``min_w(a, b) = -max_w(-a, -b)`` (``sign = -1``),
    from the smooth ReLU ``relu`` of any kernel of mean zero."""
    return Combination(_maximum_value, _maximum_partials, relu, sign)


def _gap(be: Backend, a: Any, b: Any, like: Array) -> Array:
    """``a - b`` as an array like ``like``, 0 where ``a == b`` (no ``inf - inf``)."""
    a, b = _array(be, a, like), _array(be, b, like)
    return be.xp.where(a == b, be.const(0.0, like), a - b)


def _weighted(be: Backend, value: Any, weight: Array) -> Array:
    """``value * weight``, 0 where the weight is 0 (double where: an infinite ``value``
    there puts no ``inf * 0`` in the value or the gradient)."""
    xp = be.xp
    if _number(value) and abs(value) < float("inf"):
        return value * weight
    zero = be.const(0.0, weight)
    return xp.where(weight == 0, zero, _array(be, value, weight)) * weight


def _half_gap(be: Backend, a: Any, b: Any, like: Array) -> tuple[Any, Any]:
    """``(a/2 - b/2, finite)``: half the gap never overflows, and is 0 (a stand-in, with
    zero derivatives) where an input is infinite or NaN, which ``finite`` marks."""
    if _number(a) and _number(b):
        finite = abs(a) < float("inf") and abs(b) < float("inf")
        return (0.5 * a - 0.5 * b if finite else 0.0), finite
    xp = be.xp
    a, b = _array(be, a, like), _array(be, b, like)
    finite = xp.isfinite(a) & xp.isfinite(b)
    zero = be.const(0.0, like)
    return xp.where(finite, 0.5 * a, zero) - xp.where(finite, 0.5 * b, zero), finite


def _where_value(be: Backend, inputs: tuple[Any, ...], step: Formula, _: Any) -> Array:
    # with K(-|t|) <= 1/2 and h = a/2 - b/2: a - 2h K(-t) for x >= 0, b + 2h K(t) below.
    # Each term to round-off as in a K(t) + b K(-t), and its derivatives 2h k(t) dt never
    # meet a k dt - b k dt = inf - inf (equal huge inputs at a small width: 0, not NaN)
    x, a, b = inputs
    xp = be.xp
    right = x >= 0
    if isinstance(step.width, float):  # differentiated by the partials below
        low = step.value(be, xp.where(right, -x, x))
        twice = low + low  # not 2.0 * low: XLA would fold half * 2.0 into an overflow
    else:
        # an array width: autodiff through this value, whose chain reaches the kernel's
        # polynomial or special function with 2h g before the 1/w of dt/dx scales it
        # down (b at the dtype's max: inf, where 2h k g / w is finite); where the gap is
        # within 2^-6 of the dtype's max the gradient is carried at 2^-8 of its size
        # from each use of K(t) down to x and w (elsewhere at its size: scaled down, a
        # small one would lose its digits below the normal range)
        half, _ = _half_gap(be, a, b, x)
        scale, unscale = _gradient_scales(be, half, x)
        x_in = be.scale_gradient(x, unscale)
        step = replace(step, width=be.scale_gradient(step.width, unscale))
        raw = step.value(be, xp.where(right, -x_in, x_in))
        low = be.scale_gradient(raw, scale)
        twice = be.scale_gradient(raw + raw, scale)
    half, finite = _half_gap(be, a, b, low)
    gap = half * twice
    near = xp.where(right, _array(be, a, low) - gap, _array(be, b, low) + gap)
    if finite is True:
        return near
    # an infinite or NaN input: a K(t) + b K(-t), a weight of exactly 0 leaving its
    # input out (the selected side only)
    high = 1.0 - low
    apart = _weighted(be, a, xp.where(right, high, low)) + _weighted(
        be, b, xp.where(right, low, high)
    )
    return apart if finite is False else xp.where(finite, near, apart)


def _where_partials(
    be: Backend, inputs: tuple[Any, ...], step: Formula, _: Any, wanted: tuple[bool, ...]
) -> tuple[Array | None, ...]:
    # d/dx = (a - b) k(x/w)/w = 2h k/w (a k - b k where an input is infinite), d/da =
    # K(x/w), d/db = K(-x/w)
    x, a, b = inputs
    dx = None
    if wanted[0]:
        density = step.slope(be, x)
        half, finite = _half_gap(be, a, b, density)
        near = half * (density + density)  # (not 2.0 * density: see _where_value)
        if finite is True:
            dx = near
        else:
            # (a - b) k/w, 0 where a = b (equal infinities) and where k/w is 0; a - b
            # itself, so that a side at the dtype's max and one at inf give -inf, not
            # a k/w - inf = inf - inf once a k/w overflows
            apart = _weighted(be, _gap(be, a, b, density), density)
            dx = apart if finite is False else be.xp.where(finite, near, apart)
    return (
        dx,
        step.value(be, x) if wanted[1] else None,
        step.value(be, -x) if wanted[2] else None,
    )


def where(step: Formula) -> Combination:
    """``where_w(x, a, b) = a K(x/w) + b K(-x/w)`` from the smooth step ``K(x/w)``."""
    return Combination(_where_value, _where_partials, step)
