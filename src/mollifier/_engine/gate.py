"""Elementwise forms that are not convolutions of a piecewise polynomial: the gates
``x K(x/w)`` (GELU, swish), the nascent delta ``k_w`` and the normalized bump."""

from __future__ import annotations

from typing import Any

from .._backend import Array, Backend
from .._kernels import Kernel, density_at_zero, scaled
from .formula import Formula, nan_where_nan


def _gate_value(be: Backend, x: Array, width: Any, kernel: Kernel, data: Any = None) -> Array:
    return kernel._gate(be, x, width)


def _gate_slope(be: Backend, x: Array, width: Any, kernel: Kernel, data: Any = None) -> Array:
    # d/dx x K(x/w) = K(x/w) + (x/w) k(x/w); the second term tends to 0 at +-inf (a
    # double where, so that its own derivative is 0 there too)
    t = x / width
    xp = be.xp
    infinite = xp.isinf(t)
    tame = xp.where(infinite, be.const(0.0, x), t)
    bump = xp.where(infinite, be.const(0.0, x), tame * kernel._pdf(be, tame))
    return kernel._cdf(be, t) + bump


def gate(width: Any, kernel: Kernel) -> Formula:
    """``x K(x / w)`` and its slope ``K(t) + t k(t)``."""
    return Formula(_gate_value, _gate_slope, width, kernel)


def _bump_value(be: Backend, x: Array, width: Any, kernel: Kernel, divisor: Any) -> Array:
    # NaN where x is, with its derivatives (the uniform density is flat inside)
    return nan_where_nan(be, x, kernel._density(be, scaled(be, x, 0.0, width)) / divisor)


def _bump_slope(be: Backend, x: Array, width: Any, kernel: Kernel, divisor: Any) -> Array:
    return kernel._density(be, scaled(be, x, 0.0, width), 1) / (divisor * width)


def delta(width: Any, kernel: Kernel) -> Formula:
    """The nascent delta ``k(x / w) / w`` and its slope ``k'(x / w) / w^2``."""
    return Formula(_bump_value, _bump_slope, width, kernel, width)


def bump(width: Any, kernel: Kernel) -> Formula:
    """``k(x / w) / k(0)``, the density rescaled to peak at 1, and its slope."""
    return Formula(_bump_value, _bump_slope, width, kernel, density_at_zero(kernel))
