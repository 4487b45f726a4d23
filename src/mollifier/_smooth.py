"""``smooth(f, ...)``: the smoothed version of a function, as a new function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._backend import Array
from ._elementwise import KernelLike, apply_piecewise, resolve_width
from ._kernels import get_kernel
from ._piecewise import Piecewise, check_admissible


def smooth(
    f: Piecewise,
    /,
    *,
    width: float | None = None,
    tol: float | None = None,
    kernel: KernelLike = "logistic",
    straight_through: bool = False,
) -> Callable[[Array], Array]:
    r"""Return ``g = f * k_w``, the convolution of ``f`` with the kernel at ``width``.

    .. math:: g(x) = \int f(x - w u)\, k(u)\, du = E[f(x - wU)]

    Parameters
    ----------
    f : Piecewise
        A piecewise polynomial (degree <= 2 per piece); ``g`` is exact in closed form,
        a finite sum of the kernel's truncated moments at ``(x - c_i) / w``.
    width, tol : float
        Exactly one: the kernel scale, or the sup error that picks it
        (``tol / (L E|U|)`` for continuous ``f`` with Lipschitz constant ``L``).
    kernel : str or Kernel, default "logistic"
    straight_through : bool, default False
        ``g`` forwards ``f`` and backpropagates the smooth gradient.

    Returns
    -------
    callable
        ``g(x)`` for NumPy, PyTorch and JAX arrays.

    Raises
    ------
    ValueError
        For the Cauchy kernel and an ``f`` that grows like ``|x|`` (the convolution
        diverges), for bad widths, or a ``tol`` that no width meets (``f`` jumps).
    TypeError
        If ``f`` is not a :class:`Piecewise`.

    Notes
    -----
    Sup error ``sum |jumps| / 2 + L w E|U|``; ``g -> f`` at every continuity point
    as ``w -> 0``, and ``g' = f' * k_w`` plus ``h k_w(x - c)`` for each jump ``h``.

    Examples
    --------
    >>> import numpy as np, mollifier as mol
    >>> f = mol.Piecewise(breakpoints=[-1, 0, 2], pieces=[[0], [1, 1], [1, -0.5], [0]])
    >>> g = mol.smooth(f, kernel="laplace", width=0.3)
    >>> g(np.array([-3.0, 0.0, 1.0, 5.0]))  # mpmath: 1.806844e-4, 0.7804465, 0.4948398, 3.392304e-6
    array([1.80684419e-04, 7.80446547e-01, 4.94839796e-01, 3.39230397e-06])
    """
    if not isinstance(f, Piecewise):
        raise TypeError(
            f"f must be a mollifier.Piecewise (exact closed form); got {type(f).__name__}"
        )
    k = get_kernel(kernel)
    check_admissible(f, k)
    w = resolve_width(f, width, tol, k)

    def smoothed(x: Any) -> Array:
        return apply_piecewise(
            f, x, op=f, width=w, tol=None, kernel=k, straight_through=straight_through
        )

    shown = f"{w:g}" if isinstance(w, float) else "given as an array"
    smoothed.__doc__ = f"{f!r} convolved with the {k.name} kernel of width {shown}."
    return smoothed
