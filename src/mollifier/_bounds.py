"""Sup-norm error bounds and the widths that meet a tolerance.

Two kinds of op:

* continuous, ``L``-Lipschitz: ``sup |f * k_w - f| <= L * w * E|U|`` (sharper constants
  where the kink structure is known, e.g. ReLU ``w E|U| / 2``); ``tol`` maps to a width;
* with jumps of height ``h``: the smoothed value at a jump is the midpoint, so the sup
  error is ``h / 2`` whatever the width; no width meets a smaller tolerance.
"""

from __future__ import annotations

from typing import Any

from ._catalogue import find
from ._dispatch import width_from_tol
from ._engine.bound import Bound
from ._engine.piecewise import Piecewise
from ._kernels import Kernel, get_kernel
from ._params import positive_real


def _bound(op: Any, kernel: Kernel, params: dict[str, Any]) -> tuple[str, Bound]:
    """``(name, bound)`` of a catalogue op (by name or function) or a Piecewise."""
    if isinstance(op, Piecewise):
        if params:
            raise TypeError(f"a Piecewise takes no parameters; got {sorted(params)}")
        op.check_kernel(kernel)
        return repr(op), op.bound(kernel)
    entry = find(op)
    return entry.name, entry.bound_for(kernel, params)


def error_bound(
    op: Any, *, kernel: str | Kernel = "logistic", width: float, **params: Any
) -> float:
    """Sup-norm error of ``op`` smoothed by ``kernel`` at ``width``.

    Parameters
    ----------
    op : str, callable or Piecewise
        An op name (``"relu"``), the op itself (``mol.relu``) or a :class:`Piecewise`.
    kernel : str or Kernel
        The smoothing kernel.
    width : float
        The kernel scale, in units of ``x``.
    **params
        Op parameters that change the bound (``negative_slope``, ``step``).

    Returns
    -------
    float
        An upper bound on ``sup_x |smooth(x) - op(x)|``. For a Lipschitz op it is
        ``L * width * E|U|`` (or a sharper constant); for an op with jumps of height
        ``h`` it is ``h / 2`` (at the jump), whatever the width. ``inf`` when the kernel
        has no mean (Cauchy) and the op is only known to be Lipschitz (clip).

    Examples
    --------
    >>> import mollifier as mol
    >>> mol.error_bound("relu", kernel="logistic", width=0.1)  # 0.1 * 2 log 2 / 2
    0.06931471805599453
    """
    k = get_kernel(kernel)
    w = positive_real(width, "width")
    return _bound(op, k, params)[1].at(w)


def width_for(op: Any, *, kernel: str | Kernel = "logistic", tol: float, **params: Any) -> float:
    """The largest width whose documented sup error is at most ``tol``.

    Raises
    ------
    ValueError
        When no width meets ``tol``: the op jumps (its sup error is half the jump at
        every width), or the bound is infinite for this kernel.

    Examples
    --------
    >>> import mollifier as mol
    >>> mol.width_for("abs", kernel="uniform", tol=1e-3)  # tol / E|U|, E|U| = 1/2
    0.002
    """
    k = get_kernel(kernel)
    t = positive_real(tol, "tol")
    name, bound = _bound(op, k, params)
    return width_from_tol(name, bound, t, k)
