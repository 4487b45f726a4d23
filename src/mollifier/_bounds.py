"""Sup-norm error bounds and the widths that meet a tolerance.

The bounds are data of the engine's objects and of the op catalogue, not a table here:

* a piecewise polynomial's bound comes from its own jumps, kinks and curvature
  (:meth:`mollifier.Piecewise.bound`): ``sum |jumps| / 2 + w E|U| sum |slope changes| / 2
  + w^2 E[U^2] (|a_02| + sum |curvature changes|)``; ``tol`` maps to a width when it has
  no jump;
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
    r"""Sup-norm error of ``op`` smoothed by ``kernel`` at ``width``.

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
        An upper bound on ``sup_x |smooth(x) - op(x)|``. For every piecewise op (and a
        :class:`Piecewise` ``f``) it is read off ``f``'s own structure:

        .. math:: \tfrac12 \sum_i |h_i| + \tfrac{w\,E|U|}{2} \sum_i |s_i|
                  + w^2 E[U^2] \big(|a_{0,2}| + \sum_i |q_i|\big)

        with ``h_i``, ``s_i`` and ``q_i`` the jumps of ``f``, of ``f'`` and of the
        quadratic coefficient at each breakpoint and ``a_{0,2}`` that of the first
        piece: ReLU ``w E|U| / 2``, abs and clip ``w E|U|``, step ``1/2`` whatever the
        width. Gates: ``w sup_s s K(-s)``; staircases: half the jump. ``inf`` when the
        kernel has no mean (Cauchy) and ``f`` has slope changes that cancel (clip).

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
