r"""Smooth selections between inputs: ``maximum``/``minimum`` and ``where`` (array-API code).

Both are written so that no difference of two inputs is ever formed where it can
overflow or be ``inf - inf``:

* ``max_w(a, b) = max(a, b) + relu_w(-|a - b|)`` (``b + relu_w(a - b)``, since
  ``relu_w(d) - relu_w(-d) = d`` for a kernel of mean zero): the correction is in
  ``[0, w E|U|/2]``, so ``max_w(0, -40 w) = w log1p(e^-40)`` to round-off (``b +
  relu_w(a - b)`` rounds it to 0), ``|a - b| = inf`` (overflow or opposite infinities)
  gives ``max(a, b)`` itself, and equal infinities give their value;
* ``where_w(x, a, b) = a K(x/w) + b K(-x/w)`` (``b + (a - b) K(x/w)``, since
  ``K(t) + K(-t) = 1``): each term to round-off, a term of weight exactly 0 is 0 even
  for an infinite input (that side is not selected at all).
"""

from __future__ import annotations

from typing import Any

from .._backend import Array, Backend
from .formula import Combination, Formula


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


def _weighted(be: Backend, value: Any, weight: Array) -> Array:
    """``value * weight``, 0 where the weight is 0 (double where: an infinite ``value``
    there puts no ``inf * 0`` in the value or the gradient)."""
    xp = be.xp
    if _number(value) and abs(value) < float("inf"):
        return value * weight
    zero = be.const(0.0, weight)
    return xp.where(weight == 0, zero, _array(be, value, weight)) * weight


def _where_value(be: Backend, inputs: tuple[Any, ...], step: Formula, _: Any) -> Array:
    x, a, b = inputs
    return _weighted(be, a, step.value(be, x)) + _weighted(be, b, step.value(be, -x))


def _where_partials(
    be: Backend, inputs: tuple[Any, ...], step: Formula, _: Any, wanted: tuple[bool, ...]
) -> tuple[Array | None, ...]:
    # d/dx = (a - b) k(x/w)/w, as a k - b k (a - b may overflow); d/da = K(x/w), d/db = K(-x/w)
    x, a, b = inputs
    dx = None
    if wanted[0]:
        density = step.slope(be, x)
        dx = _weighted(be, a, density) - _weighted(be, b, density)
    return (
        dx,
        step.value(be, x) if wanted[1] else None,
        step.value(be, -x) if wanted[2] else None,
    )


def where(step: Formula) -> Combination:
    """``where_w(x, a, b) = a K(x/w) + b K(-x/w)`` from the smooth step ``K(x/w)``."""
    return Combination(_where_value, _where_partials, step)
