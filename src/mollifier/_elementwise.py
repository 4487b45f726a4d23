r"""Elementwise smooth ops: each is a piecewise polynomial convolved with a kernel.

``op_w(x) = (op * k_w)(x) = E[op(x - w U)]`` with ``U`` drawn from the kernel, computed in
closed form. Every function has the signature
``op(x, /, [op parameters], *, width=None, tol=None, kernel="logistic", straight_through=False)``
and is one call of the dispatcher with its catalogue entry.
"""

from __future__ import annotations

from typing import Any

from . import _dispatch
from ._backend import Array, Backend, memoize
from ._catalogue import Op, oracle, register
from ._engine import gate as gates
from ._engine import piecewise as shapes
from ._engine import select
from ._engine.bound import Bound
from ._kernels import Kernel, get_kernel
from ._params import flag, real

KernelLike = str | Kernel


def _piecewise_reference(f: Any, breakpoints: list[float]) -> Any:
    return lambda kernel, w, x: oracle().convolve(f, breakpoints, kernel, w, x)


def _unit(y: Any) -> Any:
    return 1 if y >= 0 else 0


_WIDTHS = (1e-4, 0.05, 1.0, 1e3)


def _piecewise_op(name: str, shape: Any, hard: Any, reference: Any, **entry: Any) -> Op:
    return Op(name, hard=hard, shape=shape, reference=reference, widths=_WIDTHS, **entry)


def _evaluated(shape: Any) -> Any:
    # the piecewise function itself, for ops without a framework counterpart
    return lambda be, x, **params: shape(**params)._evaluate(be, x)


def _smooth_piecewise(
    op: Op, x: Any, width: Any, tol: Any, kernel: Any, straight_through: Any, **params: Any
) -> Array:
    return _dispatch.elementwise(
        op, None, x, width=width, tol=tol, kernel=kernel, straight_through=straight_through,
        params=params,
    )  # fmt: skip


_STEP = _piecewise_op(
    "step", lambda: shapes.STEP, _evaluated(lambda: shapes.STEP),
    _piecewise_reference(_unit, [0.0]), module="SmoothStep",
)  # fmt: skip


@register(_STEP, "heaviside")
def step(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth Heaviside step: the kernel's CDF, :math:`\theta_w(x) = K(x / w)`.

    .. math:: \theta_w(x) = \int \theta(x - w u)\, k(u)\, du = K(x/w)

    Parameters
    ----------
    x : array
        NumPy, PyTorch or JAX array (or a Python number); the output has its type,
        device and floating dtype (integers become the default float).
    width : float, optional
        Kernel scale in units of ``x``; larger is smoother. Exactly one of ``width``
        and ``tol`` must be given.
    tol : float, optional
        Not available: the step jumps by 1, so the sup error is 1/2 at every width.
    kernel : str or Kernel, default "logistic"
        ``"logistic"`` gives the sigmoid ``sigmoid(x / w)``, ``"gaussian"`` gives
        ``Phi(x / w)``; see :data:`mollifier.kernels`.
    straight_through : bool, default False
        Forward the hard step (1 for ``x >= 0``), backpropagate the smooth gradient.

    Returns
    -------
    array
        ``K(x / w)``.

    Notes
    -----
    Error: ``1/2`` at ``x = 0`` whatever the width; at distance ``d`` from 0 it is
    ``K(-d / w)`` (gaussian ``<= exp(-d^2 / 2w^2) / 2``, logistic ``<= exp(-d / w)``,
    compact kernels 0 for ``d >= w``). As ``w -> 0`` the result tends to the step at
    every ``x != 0`` and is ``1/2`` at 0. Its derivative is the nascent delta
    :func:`delta`.

    References
    ----------
    Su (2021): the step as the integral of a nascent delta. Full entries: [References][references].

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.step(np.array([-1.0, 0.0, 1.0]), width=0.5)  # sigmoid(2x)
    array([0.11920292, 0.5       , 0.88079708])
    """
    return _smooth_piecewise(_STEP, x, width, tol, kernel, straight_through)


heaviside = step


_SIGN = _piecewise_op(
    "sign", lambda: shapes.SIGN, lambda be, x: be.xp.sign(x),
    _piecewise_reference(lambda y: 2 * _unit(y) - 1, [0.0]), module="SmoothSign",
)  # fmt: skip


@register(_SIGN)
def sign(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth sign: :math:`2K(x/w) - 1` (logistic: :math:`\tanh(x / 2w)`).

    Parameters are those of :func:`step`. The straight-through forward is the
    framework's ``sign`` (0 at 0).

    Notes
    -----
    Error 1 at 0 whatever the width (``tol=`` raises); ``2 K(-d / w)`` at distance
    ``d``. The identity ``sign_w = 2 step_w - 1`` holds exactly.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.sign(np.array([-2.0, 0.0, 2.0]), kernel="gaussian", width=1.0)  # erf(x/sqrt 2)
    array([-0.95449974,  0.        ,  0.95449974])
    """
    return _smooth_piecewise(_SIGN, x, width, tol, kernel, straight_through)


_RELU = _piecewise_op(
    "relu", lambda: shapes.RELU, lambda be, x: be.relu(x),
    _piecewise_reference(lambda y: max(y, 0), [0.0]), module="SmoothReLU",
)  # fmt: skip


@register(_RELU)
def relu(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth ReLU: :math:`w P_1(x/w)` with :math:`P_1(t) = E(t - U)_+`.

    .. math:: \mathrm{relu}_w(x) = E[\max(x - wU, 0)]

    Logistic: ``w * softplus(x / w)``; gaussian:
    ``x Phi(x/w) + w phi(x/w)``; uniform: the quadratic "SmeLU"/sparseplus.

    Parameters are those of :func:`step`; ``tol`` picks ``w = 2 tol / E|U|``.

    Notes
    -----
    Sup error ``w E|U| / 2`` at ``x = 0`` (logistic ``w log 2``, gaussian
    ``w / sqrt(2 pi)``); above ReLU everywhere (Jensen). ``d/dx relu_w = step_w``.
    The Cauchy kernel raises ``ValueError``: its convolution with ReLU diverges.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.relu(np.array([-1.0, 0.0, 1.0]), width=1.0)  # softplus
    array([0.31326169, 0.69314718, 1.31326169])
    """
    return _smooth_piecewise(_RELU, x, width, tol, kernel, straight_through)


def _leaky_shape(negative_slope: float = 0.01) -> Any:
    return shapes.leaky_relu(real(negative_slope, "negative_slope"))


def _leaky_hard(be: Backend, x: Array, negative_slope: float = 0.01) -> Array:
    return be.xp.where(x >= 0, x, negative_slope * x)


_LEAKY_RELU = _piecewise_op(
    "leaky_relu", _leaky_shape, _leaky_hard,
    _piecewise_reference(lambda y: y if y >= 0 else y / 10, [0.0]),
    params={"negative_slope": 0.1}, module="SmoothLeakyReLU",
)  # fmt: skip


@register(_LEAKY_RELU)
def leaky_relu(
    x: Array,
    /,
    negative_slope: float = 0.01,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth leaky ReLU :math:`a x + (1 - a) \mathrm{relu}_w(x)`, ``a = negative_slope``.

    With the gaussian kernel this is the SAU activation (leaky ReLU convolved with
    a Gaussian).

    Notes
    -----
    Sup error ``|1 - a| w E|U| / 2`` at 0. Cauchy raises unless ``a = 1``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.leaky_relu(np.array([-10.0, 10.0]), 0.1, width=0.1)
    array([-1., 10.])
    """
    a = real(negative_slope, "negative_slope")
    return _smooth_piecewise(_LEAKY_RELU, x, width, tol, kernel, straight_through, negative_slope=a)


_ABS = _piecewise_op(
    "abs", lambda: shapes.ABS, lambda be, x: be.xp.abs(x),
    _piecewise_reference(lambda y: -y if y < 0 else y, [0.0]), module="SmoothAbs",
)  # fmt: skip


@register(_ABS)
def abs(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth absolute value :math:`w[P_1(x/w) + P_1(-x/w)] = 2\,\mathrm{relu}_w(x) - x`.

    Logistic: ``2 w log(2 cosh(x / 2w))`` (the log-cosh form); gaussian:
    ``x erf(x / (sqrt 2 w)) + sqrt(2/pi) w exp(-x^2 / 2w^2)``.

    Notes
    -----
    Sup error ``w E|U|`` at 0, from above; the gradient at 0 is 0. Cauchy raises.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.abs(np.array([0.0, 3.0]), kernel="uniform", width=1.0)  # (x^2 + w^2) / 2w inside
    array([0.5, 3. ])
    """
    return _smooth_piecewise(_ABS, x, width, tol, kernel, straight_through)


def _clip_shape(lower: float = 0.0, upper: float = 1.0) -> Any:
    # the bound does not depend on the corners: error_bound("clip") needs none
    lo, hi = real(lower, "lower"), real(upper, "upper")
    if not lo < hi:
        raise ValueError(f"clip needs lower < upper; got lower={lo}, upper={hi}")
    return shapes.clip(lo, hi)


def _clip_hard(be: Backend, x: Array, lower: float, upper: float) -> Array:
    xp = be.xp
    return xp.minimum(xp.maximum(x, be.const(lower, x)), be.const(upper, x))


_CLIP = _piecewise_op(
    "clip", _clip_shape, _clip_hard,
    _piecewise_reference(lambda y: min(max(y, -1), 2), [-1.0, 2.0]),
    params={"lower": -1.0, "upper": 2.0}, module="SmoothClip",
)  # fmt: skip


@register(_CLIP)
def clip(
    x: Array,
    /,
    lower: float,
    upper: float,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth clip to ``[lower, upper]``.

    .. math:: \mathrm{clip}_w(x) = \ell + w\,[P_1(\tfrac{x-\ell}{w}) - P_1(\tfrac{x-h}{w})]


    Logistic: ``lower + w log((1 + e^{(x - lower)/w}) / (1 + e^{(x - upper)/w}))``.
    Works with every kernel, Cauchy included (its ramps diverge, their difference
    does not).

    Notes
    -----
    Sup error ``<= w E|U|`` (``w E|U| / 2`` when the corners are more than the kernel
    support apart); the result stays within ``[lower, upper]``. For Cauchy the bound is
    infinite (no mean) though the error is finite.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.clip(np.array([-5.0, 0.0, 5.0]), -1.0, 1.0, kernel="epanechnikov", width=0.2)
    array([-1.,  0.,  1.])
    """
    lo, hi = real(lower, "lower"), real(upper, "upper")
    return _smooth_piecewise(_CLIP, x, width, tol, kernel, straight_through, lower=lo, upper=hi)


def _hinge_shape(margin: float = 1.0) -> Any:
    return shapes.hinge(real(margin, "margin"))


def _hinge_hard(be: Backend, x: Array, margin: float = 1.0) -> Array:
    return be.xp.maximum(margin - x, be.const(0.0, x))


_HINGE = _piecewise_op(
    "hinge", _hinge_shape, _hinge_hard, _piecewise_reference(lambda y: max(1 - y, 0), [1.0]),
    params={"margin": 1.0}, module="SmoothHinge",
)  # fmt: skip


@register(_HINGE)
def hinge(
    x: Array,
    /,
    margin: float = 1.0,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth hinge loss :math:`\max(0, m - x)` smoothed: :math:`w P_1((m - x)/w)`.

    Notes
    -----
    Sup error ``w E|U| / 2`` at ``x = margin``. The logistic version is
    ``w softplus((margin - x) / w)``. Cauchy raises.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.hinge(np.array([-1.0, 3.0]), width=0.01)
    array([2., 0.])
    """
    m = real(margin, "margin")
    return _smooth_piecewise(_HINGE, x, width, tol, kernel, straight_through, margin=m)


def _compare(
    op: Op, x1: Any, x2: Any, width: Any, tol: Any, kernel: Any, straight_through: Any
) -> Array:
    """``greater``, ``less`` and ``equal``: the smooth form of the difference, and
    straight-through the framework's own comparison of the inputs (not of their
    difference, which is NaN for equal infinities)."""
    straight_through = flag(straight_through, "straight_through")
    be, (a, b), dtype = _dispatch.operands((x1, x2), ("x1", "x2"))
    with be.quiet():
        difference = b - a if op is _LESS else a - b
    smooth = _dispatch.elementwise(
        op,
        gates.bump if op is _EQUAL else None,
        difference,
        width=width,
        tol=tol,
        kernel=kernel,
        straight_through=False,
    )
    hard = None
    if straight_through:
        a_h = _dispatch.as_caller_array(be, a, difference, dtype)
        b_h = _dispatch.as_caller_array(be, b, difference, dtype)
        compared = {"greater": a_h > b_h, "less": a_h < b_h, "equal": a_h == b_h}[op.name]
        hard = be.xp.astype(compared, dtype)
    return _dispatch.finish(be, smooth, dtype, hard)


_GREATER = Op("greater", shape=lambda: shapes.STEP)


@register(_GREATER)
def greater(
    x1: Array,
    x2: Array | float,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth ``x1 > x2``: :math:`K((x_1 - x_2)/w)`, i.e. ``step(x1 - x2)``.

    Notes
    -----
    Error 1/2 where ``x1 == x2`` whatever the width (``tol=`` raises).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.greater(np.array([1.0, 3.0]), 2.0, width=1e-3)
    array([0., 1.])
    """
    return _compare(_GREATER, x1, x2, width, tol, kernel, straight_through)


_LESS = Op("less", shape=lambda: shapes.STEP)


@register(_LESS)
def less(
    x1: Array,
    x2: Array | float,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth ``x1 < x2``: :math:`K((x_2 - x_1)/w)`, i.e. ``step(x2 - x1)``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.less(np.array([1.0, 3.0]), 2.0, width=1e-3)
    array([1., 0.])
    """
    return _compare(_LESS, x1, x2, width, tol, kernel, straight_through)


_WHERE = Op(
    "where",
    no_bound="its hard counterpart is discontinuous with data-dependent jumps",
    module="",
)


@register(_WHERE)
def where(
    x: Array,
    a: Array | float,
    b: Array | float,
    /,
    *,
    width: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Smooth ``where(x >= 0, a, b)``: :math:`a\,K(x/w) + b\,K(-x/w) = b + (a - b)\,K(x/w)`.

    A differentiable selection between two arrays driven by the sign of ``x``.

    Notes
    -----
    Where ``x = 0`` the result is the midpoint ``(a + b) / 2``; error
    ``|a - b| K(-|x|/w)`` elsewhere. No ``tol=``: the jump is data dependent.
    Each side is weighted separately, so ``a - b`` is never formed (``where(-1, 1e308,
    -1e308)`` is finite) and a side of weight exactly 0 contributes 0 even when it is
    infinite (``where(x, 1, -inf)`` is 1 once a compact kernel no longer reaches it;
    with the logistic kernel it is ``-inf`` until ``K(-x/w)`` underflows).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.where(np.array([-1.0, 0.0, 1.0]), 10.0, 0.0, width=1e-3)
    array([ 0.,  5., 10.])
    """
    straight_through = flag(straight_through, "straight_through")
    k = get_kernel(kernel)
    w = _dispatch.resolve_width(_WHERE, width, None, k)
    be, (x_c, a_c, b_c), dtype = _dispatch.operands((x, a, b), ("x", "a", "b"))
    if isinstance(x_c, float):  # a number x with array a or b
        x_c = be.const(x_c, a_c if not isinstance(a_c, float) else b_c)
    w = _dispatch.width_like(be, w, x_c)
    formula = select.where(shapes.formula(shapes.STEP, w, k))
    smooth = _dispatch.evaluate_combination(be, formula, (x_c, a_c, b_c))
    with be.quiet():
        hard = None
        if straight_through:
            a_h = _dispatch.as_caller_array(be, a_c, x_c, dtype)
            b_h = _dispatch.as_caller_array(be, b_c, x_c, dtype)
            hard = be.xp.where(_dispatch.caller_dtype(be, x_c, dtype) >= 0, a_h, b_h)
    return _dispatch.finish(be, smooth, dtype, hard)


_DELTA = Op("delta", no_bound="the nascent delta converges to a distribution, not a function")


@register(_DELTA)
def delta(x: Array, /, *, width: float, kernel: KernelLike = "logistic") -> Array:
    r"""The nascent Dirac delta :math:`k_w(x) = k(x/w) / w`, the derivative of :func:`step`.

    Notes
    -----
    Integrates to 1 for every width; tends to the Dirac delta (a distribution) as
    ``w -> 0``, so there is no sup-norm error and no ``tol=``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.delta(np.array([0.0]), kernel="uniform", width=0.5)
    array([1.])
    """
    return _dispatch.elementwise(
        _DELTA, gates.delta, x, width=width, tol=None, kernel=kernel, straight_through=False
    )


_EQUAL = Op(
    "equal",
    no_bound="its hard counterpart is discontinuous with data-dependent jumps",
)


@register(_EQUAL)
def equal(
    x1: Array,
    x2: Array | float,
    /,
    *,
    width: float,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Soft equality :math:`k((x_1 - x_2)/w) / k(0)`: 1 where equal, decaying away.

    The kernel's density rescaled to peak at 1 (a bump of width ``w``); the hard
    counterpart is ``x1 == x2`` as 0/1. Not a convolution of anything (the indicator
    of a point smooths to 0), so there is no error bound.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.equal(np.array([0.0, 1.0]), 0.0, kernel="gaussian", width=1.0)
    array([1.        , 0.60653066])
    """
    return _compare(_EQUAL, x1, x2, width, None, kernel, straight_through)


@memoize
def _gate_bound(kernel: Kernel) -> Bound:
    return Bound(
        slope=kernel._gate_constant(),
        description="x K(x/w) misses ReLU by at most w sup_s s K(-s)",
    )


def _gate_op(name: str, module: str) -> Op:
    return Op(
        name,
        hard=lambda be, x: be.relu(x),  # the ReLU it gates
        bound=_gate_bound,
        reference=lambda kernel, w, x: oracle().gate(kernel, w, x),
        widths=_WIDTHS,
        module=module,
    )


def _gate(
    op: Op, x: Any, width: Any, tol: Any, kernel: KernelLike, straight_through: bool
) -> Array:
    if width is None and tol is None:
        width = 1.0  # the standard GELU / SiLU
    return _dispatch.elementwise(
        op, gates.gate, x, width=width, tol=tol, kernel=kernel, straight_through=straight_through
    )


_GELU = _gate_op("gelu", "SmoothGELU")
_SWISH = _gate_op("swish", "SmoothSwish")


@register(_GELU)
def gelu(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "gaussian",
    straight_through: bool = False,
) -> Array:
    r"""GELU-type gate :math:`x\,K(x/w)`; gaussian with ``width=1`` is the exact GELU.

    ``width`` defaults to 1 when neither ``width`` nor ``tol`` is given.

    A *product form* (Su 2021), not a convolution: the step inside is smoothed, the
    ReLU is not. Not convex, not monotone (minimum ``-0.16997 w`` for the
    gaussian).

    Notes
    -----
    Sup error against ReLU ``w sup_s s K(-s)``: ``0.16997 w`` (gaussian), ``0.27846 w``
    (logistic).

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.gelu(np.array([1.0]))  # x Phi(x)
    array([0.84134475])
    """
    return _gate(_GELU, x, width, tol, kernel, straight_through)


@register(_SWISH)
def swish(
    x: Array,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Array:
    r"""Swish/SiLU-type gate :math:`x\,K(x/w)`; logistic with ``width=1`` is SiLU.

    The same product form as :func:`gelu` with the logistic kernel by default
    (``x sigmoid(x / w)``); sup error against ReLU ``W(1/e) w = 0.27846 w``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.swish(np.array([1.0]))  # x sigmoid(x)
    array([0.73105858])
    """
    return _gate(_SWISH, x, width, tol, kernel, straight_through)
