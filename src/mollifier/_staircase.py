r"""Smooth staircases: floor, ceil, round, trunc, frac and uniform quantizers.

The public ops: signatures, docstrings and catalogue entries. Their values and slopes
(``x = m + r`` reduced exactly, then the kernel's ``S(r)`` in O(1)) are in
:mod:`mollifier._engine.staircase`.
"""

from __future__ import annotations

from typing import Any

from . import _dispatch, _params
from ._backend import Array, Backend
from ._catalogue import Op, oracle, register
from ._engine import staircase as stairs
from ._engine.bound import Bound, jump
from ._kernels import Kernel
from ._params import positive_real, real

KernelLike = str | Kernel
_WIDTHS = (1e-3, 0.2, 0.6, 2.5)


def _staircase_op(name: str, hard: Any, reference: Any, bound: Any = None, **entry: Any) -> Op:
    return Op(
        name,
        hard=hard,
        bound=bound or (lambda kernel: jump(1.0, name)),
        reference=reference,
        widths=_WIDTHS,
        array_width=False,
        **entry,
    )


def _widest(width_range: Any, width: Any, step: float | None = None) -> float | None:
    """The widest width of a declared ``width_range`` (validated, ``width`` in it) in the
    formula's units (``/ step`` for quantize), or None without one."""
    if width_range is None:
        return None
    widest = _params.width_range(width_range, width, stairs.RANGE_LIMITS)[1]
    return widest if step is None else widest / step


def _smooth_staircase(
    op: Op,
    rules: stairs.Rules,
    x: Any,
    width: Any,
    tol: Any,
    kernel: Any,
    straight_through: Any,
    width_range: Any = None,
) -> Array:
    return _dispatch.elementwise(
        op, lambda w, k: stairs.formula(rules, w, k), x, width=width, tol=tol, kernel=kernel,
        straight_through=straight_through, widest=_widest(width_range, width),
    )  # fmt: skip


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
    width_range : (float, float), optional
        A declared ``(lowest, widest)`` range for the width: the term count is chosen
        once, for the widest width (truncation below a quarter of float64's epsilon at
        every width in the range), so the width may be an array (a tensor annealed
        inside ``torch.compile`` without recompiling, a learnable width) that must stay
        in the range (the :mod:`mollifier.nn` modules clamp it there). Without it the
        width is a Python number and the term count follows its value.
"""


_FLOOR = _staircase_op(
    "floor",
    lambda be, x: be.xp.floor(x),
    lambda k, w, x: oracle().floor(k, w, x),
    module="SmoothFloor",
)


@register(_FLOOR)
def floor(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
    width_range: tuple[float, float] | None = None,
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
    return _smooth_staircase(
        _FLOOR, stairs.FLOOR, x, width, tol, kernel, straight_through, width_range
    )


_CEIL = _staircase_op(
    "ceil",
    lambda be, x: be.xp.ceil(x),
    lambda k, w, x: oracle().floor(k, w, x) + 1,
    module="SmoothCeil",
)


@register(_CEIL)
def ceil(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
    width_range: tuple[float, float] | None = None,
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
    return _smooth_staircase(
        _CEIL, stairs.CEIL, x, width, tol, kernel, straight_through, width_range
    )


_ROUND = _staircase_op(
    "round",
    lambda be, x: be.xp.round(x),
    lambda k, w, x: oracle().floor(k, w, oracle().mp.mpf(x) + 0.5),
    module="SmoothRound",
)


@register(_ROUND)
def round(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
    width_range: tuple[float, float] | None = None,
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
    return _smooth_staircase(
        _ROUND, stairs.ROUND, x, width, tol, kernel, straight_through, width_range
    )


_TRUNC = _staircase_op(
    "trunc",
    lambda be, x: be.xp.trunc(x),
    lambda k, w, x: oracle().trunc(k, w, x),
    bound=lambda kernel: Bound(
        slope=0.0,
        constant=1.0,
        description="trunc = floor + step(-x) jumps by 1; the two errors add to at most 1",
    ),
    module="SmoothTrunc",
)


@register(_TRUNC)
def trunc(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
    width_range: tuple[float, float] | None = None,
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
    return _smooth_staircase(
        _TRUNC, stairs.TRUNC, x, width, tol, kernel, straight_through, width_range
    )


_FRAC = _staircase_op(
    "frac",
    lambda be, x: x - be.xp.floor(x),
    lambda k, w, x: oracle().mp.mpf(x) - oracle().floor(k, w, x),
    module="SmoothFrac",
)


@register(_FRAC)
def frac(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
    width_range: tuple[float, float] | None = None,
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
    return _smooth_staircase(
        _FRAC, stairs.FRAC, x, width, tol, kernel, straight_through, width_range
    )


def _quantize_hard(be: Backend, x: Array, step: float = 1.0, offset: float = 0.0) -> Array:
    xp = be.xp
    scaled = (x - offset) / step if offset else x / step
    out = xp.round(scaled) * step + offset if offset else xp.round(scaled) * step
    return xp.where(xp.isinf(scaled) & xp.isfinite(x), x, out)


_QUANTIZE = _staircase_op(
    "quantize",
    _quantize_hard,
    # step 1/4, offset 1/10: q(x) = round_{4w}(4 (x - 1/10)) / 4 + 1/10
    lambda k, w, x: (
        oracle().floor(k, 4 * w, 4 * (oracle().mp.mpf(x) - 0.1) + 0.5) / 4 + oracle().mp.mpf(0.1)
    ),
    bound=lambda kernel, step=1.0, offset=0.0: jump(positive_real(step, "step"), "quantize"),
    params={"step": 0.25, "offset": 0.1},
    module="SmoothQuantize",
)
_QUANTIZE.widths = tuple(w / 4 for w in _WIDTHS)


@register(_QUANTIZE)
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
    width_range: tuple[float, float] | None = None,
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
    return _dispatch.elementwise(
        _QUANTIZE, lambda w, k: stairs.quantizer(w, k, s, o), x, width=width, tol=tol,
        kernel=kernel, straight_through=straight_through, params={"step": s, "offset": o},
        widest=_widest(width_range, width, s),
    )  # fmt: skip


for _op in (floor, ceil, round, trunc, frac, quantize):
    _op.__doc__ = (_op.__doc__ or "").replace("{params}", _DOC_PARAMETERS)
