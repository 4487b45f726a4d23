r"""Smooth staircases: floor, ceil, round, trunc, frac and uniform quantizers.

Every op reduces ``x = m + r`` with ``m = round(x)`` and ``|r| <= 1/2`` (exact in IEEE
arithmetic), then evaluates the kernel's ``S(r) = floor_w(m + r) - m`` in O(1): a few
nearest integer steps for narrow kernels, the Fourier series damped by the
characteristic function for wide ones, or a closed form (Laplace: geometric sums;
Cauchy: the Poisson kernel; compact kernels: Bernoulli polynomials). Exact for every
finite ``x``, unlike a sum over a fixed window of steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _backend
from ._backend import Array, Backend, as_float_array, finish
from ._elementwise import KernelLike, resolve_width, use_torch_fast_path
from ._kernels import Kernel, get_kernel
from ._params import positive_real, real, require_float_width


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


def _offset(be: Backend, r: Array, width: float, kernel: Kernel) -> Array:
    """``S(r) = floor_w(m + r) - m``."""
    with be.quiet():
        return kernel._floor_offset(be, r, width, _truncation(r, be))


def _smooth_floor(be: Backend, x: Array, width: float, kernel: Kernel) -> tuple[Array, Array]:
    """``(m, S(r))`` with ``floor_w(x) = m + S(r)``; non-finite ``x`` gives ``(x, 0)``."""
    xp = be.xp
    finite, m, r = _reduce(be, x)
    offset = _offset(be, r, width, kernel)
    return xp.where(finite, m, x), xp.where(finite, offset, be.const(0.0, x))


# -- values and slopes, one pair per op --------------------------------------------------
# The slopes are the closed-form derivatives: every staircase differentiates to the kernel
# wrapped on the circle, P(r) = sum_n k_w(r - n) (kernel._floor_slope), give or take
# a step; the torch fast path backpropagates through them and saves only x.


def _floor_value(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    m, offset = _smooth_floor(be, x, width, kernel)
    return m + offset


def _ceil_value(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    m, offset = _smooth_floor(be, x, width, kernel)
    return m + (offset + 1.0)


def _round_value(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    finite, m, r = _reduce(be, x)
    offset = kernel._round_offset(be, r, width, _truncation(r, be))
    return be.xp.where(finite, m + offset, x)


def _trunc_value(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    m, offset = _smooth_floor(be, x, width, kernel)
    return m + (offset + kernel._cdf(be, -x / width))


def _frac_value(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    finite, _, r = _reduce(be, x)
    return be.xp.where(finite, r - _offset(be, r, width, kernel), x - x)  # frac(±inf): NaN


def _wrapped_density(be: Backend, r: Array, width: float, kernel: Kernel) -> Array:
    return kernel._floor_slope(be, r, width, _truncation(r, be))


def _floor_slope(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    # ceil = floor + 1 has the same slope; at ±inf the mean slope 1 (the generic
    # formula's derivative there)
    finite, _, r = _reduce(be, x)
    return be.xp.where(finite, _wrapped_density(be, r, width, kernel), be.const(1.0, x))


def _round_slope(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    finite, _, r = _reduce(be, x)
    slope = kernel._round_slope(be, r, width, _truncation(r, be))
    return be.xp.where(finite, slope, be.const(1.0, x))


def _trunc_slope(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    # trunc = floor + K(-x/w): the step at 0 is taken back out
    return _floor_slope(be, x, width, kernel) - kernel._pdf(be, -x / width) * (1.0 / width)


def _frac_slope(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    finite, _, r = _reduce(be, x)
    return be.xp.where(finite, 1.0 - _wrapped_density(be, r, width, kernel), be.const(0.0, x))


Formula = Callable[[Backend, Array, float, Kernel], Array]
STAIRCASES: dict[str, tuple[Formula, Formula]] = {
    "floor": (_floor_value, _floor_slope),
    "ceil": (_ceil_value, _floor_slope),
    "round": (_round_value, _round_slope),
    "trunc": (_trunc_value, _trunc_slope),
    "frac": (_frac_value, _frac_slope),
}
"""``op -> (value, slope)``: the smooth staircase and its closed-form derivative."""


def _smooth(op: str, be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    with be.quiet():
        if use_torch_fast_path(be, width):
            from ._torch_fast import smooth_formula

            return smooth_formula(be, op, x, width, kernel)
        return STAIRCASES[op][0](be, x, width, kernel)


def _finish(
    be: Backend, x: Array, smooth: Array, hard: Any, straight_through: bool, dtype: Any
) -> Array:
    if straight_through:
        smooth = _backend.straight_through(be, hard(x), smooth)
    return finish(be, smooth, dtype)


def _common(
    op: str, x: Any, width: Any, tol: Any, kernel: KernelLike
) -> tuple[Backend, Array, Any, float, Kernel]:
    k = get_kernel(kernel)
    w = require_float_width(resolve_width(op, width, tol, k), op)
    be, x_c, dtype = as_float_array(x)
    return be, x_c, dtype, w, k


_DOC_PARAMETERS = """
    Parameters
    ----------
    x : array
        NumPy, PyTorch or JAX array (or a Python number).
    width : float
        Kernel scale in units of ``x``.
    tol : float, optional
        Not available: the staircase jumps by 1, so the sup error is 1/2 at the
        jumps whatever the width; passing it raises ``ValueError``.
    kernel : str or Kernel, default "logistic"
        Any kernel; Cauchy gives the principal value (up- and down-steps paired).
    straight_through : bool, default False
        Forward the hard op, backpropagate the smooth gradient.
"""


def floor(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth floor: :math:`\lfloor x\rfloor_w = \sum_n [K((x - n)/w) - \theta(-n)]`.

    .. math:: \lfloor x \rfloor_w = x - \tfrac12 + \sum_{k\ge1}
              \hat k(2\pi k w)\,\frac{\sin 2\pi k x}{\pi k}
    {params}
    Notes
    -----
    Sup error 1/2 at the integers (the smoothed value there is ``n - 1/2``); at
    distance ``d`` from the nearest integer about ``K(-d/w)``. ``floor_w(x + 1) =
    floor_w(x) + 1``; the derivative is the kernel wrapped on the circle. As
    ``w -> 0`` it tends to ``floor``; for wide kernels to ``x - 1/2`` (gaussian
    ``w >= 1.5`` to 1e-17). Cost per element: at most 11 kernel CDFs or 13 sines.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.floor(np.array([0.5, 2.5, 1e6 + 0.5]), width=0.05)
    array([0.000000e+00, 2.000000e+00, 1.000000e+06])
    """
    be, x_c, dtype, w, k = _common("floor", x, width, tol, kernel)
    smooth = _smooth("floor", be, x_c, w, k)
    return _finish(be, x_c, smooth, be.xp.floor, straight_through, dtype)


def ceil(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth ceiling: :math:`\lceil x\rceil_w = \lfloor x\rfloor_w + 1` (exactly).
    {params}
    Notes
    -----
    ``ceil = floor + 1`` except on the integers, a null set, so the convolutions agree.
    Sup error 1/2 at the integers.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.ceil(np.array([0.5, 2.5]), width=0.05)
    array([1., 3.])
    """
    be, x_c, dtype, w, k = _common("ceil", x, width, tol, kernel)
    smooth = _smooth("ceil", be, x_c, w, k)
    return _finish(be, x_c, smooth, be.xp.ceil, straight_through, dtype)


def round(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth rounding to the nearest integer.

    .. math:: \mathrm{round}_w(x) = \lfloor x + \tfrac12 \rfloor_w

    {params}
    Notes
    -----
    An odd function; at the half-integers it takes the midpoint ``n + 1/2`` (sup
    error 1/2). The straight-through forward is the framework's ``round`` (half to
    even).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.round(np.array([0.2, 0.8, -1.3]), kernel="gaussian", width=0.05)
    array([ 0.,  1., -1.])
    """
    be, x_c, dtype, w, k = _common("round", x, width, tol, kernel)
    smooth = _smooth("round", be, x_c, w, k)
    return _finish(be, x_c, smooth, be.xp.round, straight_through, dtype)


def trunc(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth truncation toward zero: :math:`\lfloor x\rfloor_w + K(-x/w)`.
    {params}
    Notes
    -----
    ``trunc = floor + theta(-x)`` almost everywhere; the step cancels the floor's
    jump at 0, so ``trunc_w`` is flat near 0 for small widths. Sup error 1/2 at the
    non-zero integers.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.trunc(np.array([-1.5, 0.0, 1.5]), width=0.05)
    array([-1.,  0.,  1.])
    """
    be, x_c, dtype, w, k = _common("trunc", x, width, tol, kernel)
    smooth = _smooth("trunc", be, x_c, w, k)
    return _finish(be, x_c, smooth, be.xp.trunc, straight_through, dtype)


def frac(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth fractional part :math:`x - \lfloor x\rfloor_w`, periodic with period 1.
    {params}
    Notes
    -----
    Computed from the reduced ``r = x - round(x)`` only, so it is exact for every
    finite ``x``; ``frac(±inf)`` is NaN (no limit). Sup error 1/2 at the integers.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.frac(np.array([0.25, 7.25]), width=0.01)
    array([0.25, 0.25])
    """
    be, x_c, dtype, w, k = _common("frac", x, width, tol, kernel)
    xp = be.xp
    smooth = _smooth("frac", be, x_c, w, k)
    return _finish(be, x_c, smooth, lambda v: v - xp.floor(v), straight_through, dtype)


def quantize(
    x: Array,
    /,
    step: float = 1.0,
    offset: float = 0.0,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth uniform quantizer ``step * round((x - offset) / step) + offset``.

    .. math:: q_w(x) = s\,\mathrm{round}_{w/s}\big((x - o)/s\big) + o

    ``width`` is in units of ``x`` (it is divided by ``step`` internally).
    {params}
    Notes
    -----
    Sup error ``step / 2`` at the decision thresholds ``offset + (n + 1/2) step``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.quantize(np.array([0.1, 0.4, 0.9]), 0.5, width=0.001).round(12)  # 0.1: 4e-66
    array([0. , 0.5, 1. ])
    """
    s = positive_real(step, "step")
    o = real(offset, "offset")
    k = get_kernel(kernel)
    w = require_float_width(resolve_width("quantize", width, tol, k, {"step": s}), "quantize")
    be, x_c, dtype = as_float_array(x)
    with be.quiet():  # x / step may overflow to inf, which is the right limit
        scaled = (x_c - o) / s if o else x_c / s
        levels = round(scaled, width=w / s, kernel=k, straight_through=straight_through)
        out = levels * s + o if o else levels * s
        # |x / step| beyond the dtype's range: the grid is finer than the spacing of
        # representable numbers there, so the quantizer is the identity
        out = be.xp.where(be.xp.isinf(scaled) & be.xp.isfinite(x_c), x_c, out)
        return finish(be, out, dtype)


for _op in (floor, ceil, round, trunc, frac, quantize):
    _op.__doc__ = (_op.__doc__ or "").replace("{params}", _DOC_PARAMETERS)
