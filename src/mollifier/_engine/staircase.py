r"""Smooth staircases: the values and slopes of floor, ceil, round, trunc and frac.

Every rule reduces ``x = m + r`` with ``m = round(x)`` and ``|r| <= 1/2`` (exact in IEEE
arithmetic), then evaluates the kernel's ``S(r) = floor_w(m + r) - m`` in O(1): a few
nearest integer steps for narrow kernels, the Fourier series damped by the
characteristic function for wide ones, or a closed form (Laplace: geometric sums;
Cauchy: the Poisson kernel; compact kernels: Bernoulli polynomials). Exact for every
finite ``x``, unlike a sum over a fixed window of steps.
"""

from __future__ import annotations

from typing import Any

from .._backend import Array, Backend
from .._kernels import _MAX_STAIRCASE_TERMS, Kernel, _staircase_terms
from .formula import Formula, Rule, nan_where_nan


def _reduce(be: Backend, x: Array) -> tuple[Array, Array, Array]:
    """``(finite, m, r)``: ``m = round(x)``, ``r = x - m`` in ``[-1/2, 1/2]`` (exact, by
    Sterbenz); non-finite entries are replaced by 0 so that ``inf - inf`` never occurs."""
    xp = be.xp
    finite = xp.isfinite(x)
    x_safe = xp.where(finite, x, be.const(0.0, x))
    m = xp.round(x_safe)
    return finite, m, x_safe - m


def _truncation(r: Array, be: Backend) -> float:
    """Series are truncated below a quarter of the dtype's epsilon."""
    return float(be.xp.finfo(r.dtype).eps) / 4.0


_TINY_WIDTH = 1e-300
"""Below it the kernels' forms would scale by ``1 / w`` (which overflows past 5.6e-309:
``quantize`` reaches such widths as ``w / step``); there the step at ``m`` alone is
kept, ``S(r) = -K(-r / w)`` with ``r / w`` divided out (±inf is K's limit), and the
neighbours' ``K(-(1 -+ r) / w)``, at most about ``w`` (Cauchy), are dropped."""


_HUGE_WIDTH = 1e200
"""Above it every staircase is its limit to within ``w^-1`` (compact kernels) or far
less: ``floor_w(m + r) = m + r - 1/2``, ``round_w(x) = x``, slope 1. The kernels'
forms would overflow there (``w^(j+1)``, subnormal ``1/w`` flushed by XLA), and
``quantize`` reaches ``w / step = inf``."""


_RANGE_MARGIN = 16.0
"""How far inside the dtype's range ``1 / w`` and ``w`` must stay for the kernels' forms:
float32 (and float16/bfloat16, computed in float32) reaches the tiny and huge limits at
``16 / max = 4.7e-38`` and ``max / 16 = 2.1e37``, long before float64's cut-offs (its
``1 / w`` overflowed below 2.9e-39: NaN at every integer, hostile review)."""


def _tiny(be: Backend, width: Any, like: Array) -> bool:
    """Whether a Python width is below :data:`_TINY_WIDTH` or so small that ``1 / w``
    overflows ``like``'s dtype; an array width (within a declared range, see InRange)
    is never."""
    if hasattr(width, "ndim"):
        return False
    return bool(width < max(_TINY_WIDTH, _RANGE_MARGIN / float(be.xp.finfo(like.dtype).max)))


def _huge(be: Backend, width: Any, like: Array) -> bool:
    """Whether a Python width is above :data:`_HUGE_WIDTH` or near ``like``'s dtype's max."""
    if hasattr(width, "ndim"):
        return False
    return bool(width > min(_HUGE_WIDTH, float(be.xp.finfo(like.dtype).max) / _RANGE_MARGIN))


def _over(be: Backend, a: Array, width: float) -> Array:
    """``a / w`` for a tiny ``w``: 0 where ``a`` is (XLA flushes a subnormal ``w`` to 0)."""
    return be.xp.where(a == 0.0, a, a / width)


def _offset(be: Backend, r: Array, width: float, kernel: Kernel) -> Array:
    """``S(r) = floor_w(m + r) - m``."""
    with be.quiet():
        if _tiny(be, width, r):
            return -kernel._cdf(be, _over(be, -r, width))
        if _huge(be, width, r):
            return r - 0.5
        return kernel._floor_offset(be, r, width, _truncation(r, be))


def _tiny_density(be: Backend, u: Array, width: float, kernel: Kernel) -> Array:
    """``k(u) / w`` for a tiny ``w``: inf at the step, 0 (not ``0 / 0``) away from it."""
    density = kernel._density(be, u)
    return be.xp.where(density > 0.0, density / width, 0.0 * density)


def _round_offset(be: Backend, r: Array, width: float, kernel: Kernel) -> Array:
    """``round_w(m + r) - m``."""
    if _tiny(be, width, r):  # floor_w(m + r + 1/2) - m, reduced about its own integer
        shifted = r + 0.5
        nearest = be.xp.round(shifted)
        return nearest + _offset(be, shifted - nearest, width, kernel)
    if _huge(be, width, r):
        return r
    return kernel._round_offset(be, r, width, _truncation(r, be))


def _round_wrapped_density(be: Backend, r: Array, width: float, kernel: Kernel) -> Array:
    """The derivative of :func:`_round_offset`."""
    if _tiny(be, width, r):
        shifted = r + 0.5
        return _wrapped_density(be, shifted - be.xp.round(shifted), width, kernel)
    if _huge(be, width, r):
        return r * 0.0 + 1.0
    return kernel._round_slope(be, r, width, _truncation(r, be))


def _smooth_floor(be: Backend, x: Array, width: float, kernel: Kernel) -> tuple[Array, Array]:
    """``(m, S(r))`` with ``floor_w(x) = m + S(r)``; non-finite ``x`` gives ``(x, 0)``."""
    xp = be.xp
    finite, m, r = _reduce(be, x)
    offset = _offset(be, r, width, kernel)
    return xp.where(finite, m, x), xp.where(finite, offset, be.const(0.0, x))


# -- values and slopes, one pair per op --------------------------------------------------
def _nan_at_nan(be: Backend, x: Array, width: Any, out: Array) -> Array:
    """``out`` with NaN derivatives at NaN ``x`` for an array width, whose value the
    framework differentiates (its ``where(finite, m, x)`` passed slope 1 there); a
    Python width's derivatives are the slope rules', so it is left as it is."""
    return out if isinstance(width, float) else nan_where_nan(be, x, out)


# The slopes are the closed-form derivatives: every staircase differentiates to the kernel
# wrapped on the circle, P(r) = sum_n k_w(r - n) (kernel._floor_slope), give or take
# a step; the torch fast path backpropagates through them and saves only x.


def _floor_value(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    m, offset = _smooth_floor(be, x, width, kernel)
    return _nan_at_nan(be, x, width, m + offset)


def _ceil_value(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    m, offset = _smooth_floor(be, x, width, kernel)
    return _nan_at_nan(be, x, width, m + (offset + 1.0))


def _round_value(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    finite, m, r = _reduce(be, x)
    offset = _round_offset(be, r, width, kernel)
    return _nan_at_nan(be, x, width, be.xp.where(finite, m + offset, x))


def _trunc_value(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    m, offset = _smooth_floor(be, x, width, kernel)
    step = _over(be, -x, width) if _tiny(be, width, x) else -x / width
    return _nan_at_nan(be, x, width, m + (offset + kernel._cdf(be, step)))


def _frac_value(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    finite, _, r = _reduce(be, x)
    out = be.xp.where(finite, r - _offset(be, r, width, kernel), x - x)  # frac(±inf): NaN
    return _nan_at_nan(be, x, width, out)


def _wrapped_density(be: Backend, r: Array, width: float, kernel: Kernel) -> Array:
    if _tiny(be, width, r):  # the step at m alone (see _TINY_WIDTH); inf at r = 0
        return _tiny_density(be, _over(be, -r, width), width, kernel)
    if _huge(be, width, r):
        return r * 0.0 + 1.0
    return kernel._floor_slope(be, r, width, _truncation(r, be))


def _floor_slope(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    # ceil = floor + 1 has the same slope; at ±inf the mean slope 1 (the generic
    # formula's derivative there)
    finite, _, r = _reduce(be, x)
    return be.xp.where(finite, _wrapped_density(be, r, width, kernel), be.const(1.0, x))


def _round_slope(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    finite, _, r = _reduce(be, x)
    slope = _round_wrapped_density(be, r, width, kernel)
    return be.xp.where(finite, slope, be.const(1.0, x))


def _trunc_slope(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    # trunc = floor + K(-x/w): the step at 0 is taken back out
    if _tiny(be, width, x):  # the step at m = 0 alone, taken back out: 0 (not inf - inf)
        finite, m, _ = _reduce(be, x)
        slope = _floor_slope(be, x, width, kernel)
        return be.xp.where(finite & (m == 0.0), be.const(0.0, x), slope)
    step = kernel._density(be, -x / width) * (1.0 / width)
    return _floor_slope(be, x, width, kernel) - step


def _frac_slope(be: Backend, x: Array, width: float, kernel: Kernel, data: Any = None) -> Array:
    finite, _, r = _reduce(be, x)
    return be.xp.where(finite, 1.0 - _wrapped_density(be, r, width, kernel), be.const(0.0, x))


Rules = tuple[Rule, Rule]
FLOOR: Rules = (_floor_value, _floor_slope)
CEIL: Rules = (_ceil_value, _floor_slope)
ROUND: Rules = (_round_value, _round_slope)
TRUNC: Rules = (_trunc_value, _trunc_slope)
FRAC: Rules = (_frac_value, _frac_slope)
"""``(value, slope)`` of each staircase: the smooth function and its closed-form slope."""


def formula(rules: Rules, width: float, kernel: Kernel) -> Formula:
    """The :class:`Formula` of one staircase at ``width``; its fused-form key is
    ``(rules, kernel class)``."""
    return Formula(rules[0], rules[1], width, kernel, fusion=(rules, type(kernel)))


# -- the uniform quantizer q(x) = s round_{w/s}((x - o)/s) + o ------------------------
def _scaled(be: Backend, x: Array, step: float, offset: float) -> Array:
    return (x - offset) / step if offset else x / step


def _quantize_value(
    be: Backend, x: Array, width: float, kernel: Kernel, data: tuple[float, float]
) -> Array:
    step, offset = data
    xp = be.xp
    scaled = _scaled(be, x, step, offset)  # may overflow to inf: the right limit
    levels = _round_value(be, scaled, width / step, kernel)
    out = levels * step + offset if offset else levels * step
    # |x / step| beyond the dtype's range: the grid is finer than the spacing of
    # representable numbers there, so the quantizer is the identity
    return xp.where(xp.isinf(scaled) & xp.isfinite(x), x, out)


def _quantize_slope(
    be: Backend, x: Array, width: float, kernel: Kernel, data: tuple[float, float]
) -> Array:
    # d/dx s round_{w/s}((x - o)/s) = round'_{w/s}((x - o)/s)
    step, offset = data
    xp = be.xp
    scaled = _scaled(be, x, step, offset)
    slope = _round_slope(be, scaled, width / step, kernel)
    return xp.where(xp.isinf(scaled) & xp.isfinite(x), be.const(1.0, x), slope)


def quantizer(width: float, kernel: Kernel, step: float, offset: float) -> Formula:
    """The :class:`Formula` of the uniform quantizer with ``step`` and ``offset``."""
    return Formula(_quantize_value, _quantize_slope, width, kernel, (step, offset))


# -- a declared width range: array widths (annealed under torch.compile, or learned) ------
RANGE_LIMITS = (1e-30, 1e30)
"""Where a declared range may lie: ``1/w`` a finite float32."""


class InRange:
    """``kernel`` for the staircase sums at any width up to ``widest``: the direct sum over
    the nearest integer steps with the term count of ``widest`` (the omitted steps
    weigh ``sum_j K(-(N + 1/2 + j)/w)``, which grows with ``w``, so below ``eps`` over the
    whole range, in float64 and so in every dtype). The width may then be an array:
    the terms no longer depend on its value. Everything else is the kernel's."""

    def __init__(self, kernel: Kernel, widest: float) -> None:
        # float64's epsilon / 4 (a literal: dynamo passes no module-level float to a
        # function it assumes constant)
        direct, _ = _staircase_terms(kernel, widest, 5.551115123125783e-17)
        if direct is None:
            raise ValueError(
                f"width_range: the {kernel.name} kernel's staircase at width {widest:g} (in "
                f"units of the step) needs more than {_MAX_STAIRCASE_TERMS} terms of its "
                "direct sum (or its tails are too heavy for one); declare a narrower range or "
                "use a kernel with lighter tails (gaussian, a compact one)"
            )
        self.kernel, self.terms = kernel, direct

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)

    def _floor_offset(self, be: Backend, r: Array, width: Any, eps: float) -> Array:
        return Kernel._floor_offset_direct(self.kernel, be, r, width, self.terms)

    def _floor_slope(self, be: Backend, r: Array, width: Any, eps: float) -> Array:
        return Kernel._floor_slope_direct(self.kernel, be, r, width, self.terms)

    def _round_offset(self, be: Backend, r: Array, width: Any, eps: float) -> Array:
        return Kernel._round_offset(self, be, r, width, eps)  # type: ignore[arg-type]

    def _round_slope(self, be: Backend, r: Array, width: Any, eps: float) -> Array:
        return Kernel._round_slope(self, be, r, width, eps)  # type: ignore[arg-type]
