r"""Elementwise smooth ops: each is a piecewise polynomial convolved with a kernel.

``op_w(x) = (op * k_w)(x) = E[op(x - w U)]`` with ``U`` drawn from the kernel, computed in
closed form. Every function has the signature
``op(x, /, [op parameters], *, width=None, tol=None, kernel="logistic", straight_through=False)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _backend
from ._backend import Array, Backend, as_float_array, finish
from ._bounds import width_for
from ._kernels import Kernel, density_at_zero, get_kernel
from ._params import real, width_or_tol
from ._piecewise import Piecewise, check_admissible, convolve

KernelLike = str | Kernel


def resolve_width(
    op: Any, width: Any, tol: Any, kernel: Kernel, params: dict[str, Any] | None = None
) -> Any:
    """The width: ``width`` validated (a float or an array), or the one that meets ``tol``."""
    w, t = width_or_tol(width, tol)
    if w is not None:
        return w
    assert t is not None  # width_or_tol returns exactly one of the two
    return width_for(op, kernel=kernel, tol=t, **(params or {}))


def width_like(be: Backend, width: Any, x: Array) -> Any:
    """A float width as is; an array width in ``x``'s compute dtype (no silent upcast)."""
    if isinstance(width, float):
        return width
    if _backend.backend_of(width) is not be:
        raise TypeError(
            f"an array width must be an array of the same framework as x ({be.name}); got "
            f"{type(width).__name__}"
        )
    return be.xp.astype(width, x.dtype) if width.dtype != x.dtype else width


# Python-float widths for which 1/w is a finite float32 (the fused forms scale by it);
# array widths, which may be learnable, take the generic path
_FAST_WIDTHS = (1e-30, 1e30)


def use_torch_fast_path(be: Backend, width: Any) -> bool:
    """Whether an op on ``be`` at ``width`` goes through the torch fast path."""
    if be.name != "torch" or not isinstance(width, float):
        return False
    return _FAST_WIDTHS[0] < width < _FAST_WIDTHS[1]


def apply_piecewise(
    f: Piecewise,
    x: Array,
    *,
    op: Any,
    width: Any,
    tol: Any,
    kernel: KernelLike,
    straight_through: bool,
    params: dict[str, Any] | None = None,
    hard: Callable[[Backend, Array], Array] | None = None,
) -> Array:
    """Smooth ``f`` at ``x``; the shared body of every piecewise op."""
    k = get_kernel(kernel)
    check_admissible(f, k)
    w = resolve_width(op, width, tol, k, params)
    be, x_c, dtype = as_float_array(x)
    w = width_like(be, w, x_c)
    with be.quiet():
        if not straight_through and use_torch_fast_path(be, w):
            from ._torch_fast import smooth_piecewise

            smooth = smooth_piecewise(be, f, x_c, w, k)
        else:
            smooth = convolve(be, f, x_c, w, k)
        if straight_through:
            exact = hard(be, x_c) if hard is not None else f._evaluate(be, x_c)
            smooth = _backend.straight_through(be, exact, smooth)
    return finish(be, smooth, dtype)


_STEP = Piecewise([0.0], [[0.0], [1.0]])
_SIGN = Piecewise([0.0], [[-1.0], [1.0]])
_RELU = Piecewise([0.0], [[0.0], [0.0, 1.0]])
_ABS = Piecewise([0.0], [[0.0, -1.0], [0.0, 1.0]])


def _leaky_relu(negative_slope: float) -> Piecewise:
    return Piecewise([0.0], [[0.0, negative_slope], [0.0, 1.0]])


def _clip(lower: float, upper: float) -> Piecewise:
    return Piecewise([lower, upper], [[lower], [0.0, 1.0], [upper]])


def _hinge(margin: float) -> Piecewise:
    return Piecewise([margin], [[margin, -1.0], [0.0]])


def _native_sign(be: Backend, x: Array) -> Array:
    return be.xp.sign(x)


def _native_abs(be: Backend, x: Array) -> Array:
    return be.xp.abs(x)


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
    Seed (b), "constructing smooth approximations with the Dirac delta": the step as
    the integral of a nascent delta.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.step(np.array([-1.0, 0.0, 1.0]), width=0.5)  # sigmoid(2x)
    array([0.11920292, 0.5       , 0.88079708])
    """
    return apply_piecewise(
        _STEP, x, op="step", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through,
    )  # fmt: skip


heaviside = step


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
    return apply_piecewise(
        _SIGN, x, op="sign", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through, hard=_native_sign,
    )  # fmt: skip


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
    return apply_piecewise(
        _RELU, x, op="relu", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through,
    )  # fmt: skip


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
    return apply_piecewise(
        _leaky_relu(a), x, op="leaky_relu", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through, params={"negative_slope": a},
    )  # fmt: skip


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

    Logistic: ``2 w log(2 cosh(x / 2w))`` (the seed's log-cosh form); gaussian:
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
    return apply_piecewise(
        _ABS, x, op="abs", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through, hard=_native_abs,
    )  # fmt: skip


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
    if not lo < hi:
        raise ValueError(f"clip needs lower < upper; got lower={lo}, upper={hi}")
    return apply_piecewise(
        _clip(lo, hi), x, op="clip", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through,
    )  # fmt: skip


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
    return apply_piecewise(
        _hinge(m), x, op="hinge", width=width, tol=tol, kernel=kernel,
        straight_through=straight_through,
    )  # fmt: skip


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
    return step(x1 - x2, width=width, tol=tol, kernel=kernel,
                straight_through=straight_through)  # fmt: skip


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
    return step(x2 - x1, width=width, tol=tol, kernel=kernel,
                straight_through=straight_through)  # fmt: skip


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
    r"""Smooth ``where(x >= 0, a, b)``: :math:`b + (a - b)\,K(x/w)`.

    A differentiable selection between two arrays driven by the sign of ``x``.

    Notes
    -----
    Where ``x = 0`` the result is the midpoint ``(a + b) / 2``; error
    ``|a - b| K(-|x|/w)`` elsewhere. No ``tol=``: the jump is data dependent.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> mol.where(np.array([-1.0, 0.0, 1.0]), 10.0, 0.0, width=1e-3)
    array([ 0.,  5., 10.])
    """
    gate = step(x, width=width, kernel=kernel, straight_through=straight_through)
    return b + (a - b) * gate


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
    k = get_kernel(kernel)
    w, _ = width_or_tol(width, None)
    assert w is not None
    be, x_c, dtype = as_float_array(x)
    w = width_like(be, w, x_c)
    with be.quiet():
        return finish(be, k._pdf(be, x_c / w) / w, dtype)


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
    k = get_kernel(kernel)
    w, _ = width_or_tol(width, None)
    assert w is not None
    be, d, dtype = as_float_array(x1 - x2)
    w = width_like(be, w, d)
    peak = density_at_zero(k)
    bump = k._pdf(be, d / w) / peak
    if straight_through:
        hard = be.xp.astype(d == 0.0, d.dtype)
        bump = _backend.straight_through(be, hard, bump)
    return finish(be, bump, dtype)


def _gate(
    x: Any, width: Any, tol: Any, kernel: KernelLike, op: str, straight_through: bool
) -> Array:
    k = get_kernel(kernel)
    if width is None and tol is None:
        width = 1.0  # the standard GELU / SiLU
    w = resolve_width(op, width, tol, k)
    be, x_c, dtype = as_float_array(x)
    w = width_like(be, w, x_c)
    with be.quiet():
        if use_torch_fast_path(be, w):
            from ._torch_fast import smooth_formula

            out = smooth_formula(be, "gate", x_c, w, k)
        else:
            out = k._gate(be, x_c, w)
    if straight_through:
        out = _backend.straight_through(be, _RELU._evaluate(be, x_c), out)
    return finish(be, out, dtype)


def _gate_value(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    return kernel._gate(be, x, width)


def _gate_slope(be: Backend, x: Array, width: float, kernel: Kernel) -> Array:
    # d/dx x K(x/w) = K(x/w) + (x/w) k(x/w); the second term tends to 0 at +-inf
    t = x / width
    xp = be.xp
    bump = xp.where(xp.isinf(t), be.const(0.0, x), t * kernel._pdf(be, t))
    return kernel._cdf(be, t) + bump


GATE = (_gate_value, _gate_slope)
"""``(value, slope)`` of the gates ``x K(x/w)``: the torch fast path's closed forms."""


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

    A *product form* from the seed series, not a convolution: the step inside is
    smoothed, the ReLU is not. Not convex, not monotone (minimum ``-0.16997 w`` for the
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
    return _gate(x, width, tol, kernel, "gelu", straight_through)


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
    return _gate(x, width, tol, kernel, "swish", straight_through)
