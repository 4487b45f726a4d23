"""Pictures of the smoothings: the hard op, its smooth versions, derivatives, error band.

Matplotlib is imported when a function here is called, never by ``import mollifier``.
Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state),
so they work headless and in notebooks alike; each function returns the figure.

The ops are those of ``mollifier check`` (:data:`OPS`): clip to ``[-1, 2]``, leaky ReLU
with slope 0.1, quantize with step 0.25.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._bounds import op_bound
from ._check import SPECS
from ._kernels import get_kernel, kernels

OPS: tuple[str, ...] = tuple(SPECS)
"""Names accepted by :func:`plot` and :func:`compare_kernels`."""


def _spec(op: str) -> Any:
    try:
        return SPECS[op]
    except KeyError:
        raise ValueError(f"op must be one of {sorted(SPECS)}; got {op!r}") from None


def _figure() -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 6.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    return figure, top, bottom


def _hard_curves(ax_value: Any, ax_slope: Any, op: str, x: np.ndarray) -> None:
    hard = SPECS[op].hard(x)
    # break the hard curve at its jumps so that they are not drawn as steep lines
    steps = np.abs(np.diff(hard))
    jumps = steps > 20 * max(float(np.median(steps)), float(np.max(np.diff(x))))
    shown = hard.astype(float).copy()
    shown[1:][jumps] = np.nan
    ax_value.plot(x, shown, color="black", lw=2.2, label=f"{op} (hard)")
    slope = np.gradient(hard, x)
    slope[1:][jumps] = np.nan
    slope[:-1][jumps] = np.nan
    ax_slope.plot(x, slope, color="black", lw=2.2, label="hard (a.e.)")


def plot(
    op: str,
    *,
    kernel: str = "logistic",
    widths: Sequence[float] = (0.05, 0.2, 0.5),
    x_range: tuple[float, float] = (-3.0, 3.0),
    points: int = 2001,
) -> Any:
    """Draw ``op`` and its smoothings at several widths, with derivatives below.

    Parameters
    ----------
    op : str
        One of :data:`OPS`.
    kernel : str
        Kernel name.
    widths : sequence of float
        One curve per width.
    x_range : (float, float)
        Horizontal extent.
    points : int
        Samples per curve.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: values (the documented error band around the hard op for the
        smallest width, where the op is Lipschitz) and derivatives (central differences
        of the smooth values; the hard op's derivative where it exists).

    Examples
    --------
    >>> from mollifier.plot import plot
    >>> figure = plot("floor", kernel="gaussian", widths=[0.05, 0.2])
    >>> len(figure.axes)
    2
    """
    spec = _spec(op)
    k = get_kernel(kernel)
    lo, hi = (float(v) for v in x_range)
    if not lo < hi:
        raise ValueError(f"x_range must be increasing; got {x_range!r}")
    if not widths:
        raise ValueError("widths must hold at least one width")
    x = np.linspace(lo, hi, int(points))
    figure, top, bottom = _figure()
    _hard_curves(top, bottom, op, x)
    for i, width in enumerate(widths):
        y = np.asarray(spec.smooth(x, width=float(width), kernel=k))
        line = top.plot(x, y, lw=1.4, label=f"w = {width:g}")[0]
        bottom.plot(x, np.gradient(y, x), lw=1.4, color=line.get_color())
        bound = op_bound(op, k, {"step": 0.25, "negative_slope": 0.1})
        if i == 0 and bound.constant == 0.0 and np.isfinite(bound.slope):
            band = bound.at(float(width))
            hard = spec.hard(x)
            top.fill_between(x, hard - band, hard + band, color=line.get_color(), alpha=0.15,
                             label=f"error bound ±{band:.3g}")  # fmt: skip
    top.set_title(f"{op} smoothed by the {k.name} kernel")
    top.set_ylabel("value")
    bottom.set_ylabel("derivative")
    bottom.set_xlabel("x")
    top.legend(loc="best", fontsize=8)
    bottom.legend(loc="best", fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return figure


def compare_kernels(
    op: str, *, width: float = 0.3, x_range: tuple[float, float] = (-3.0, 3.0), points: int = 2001
) -> Any:
    """Overlay ``op`` smoothed by every kernel at one width (Cauchy left out where it diverges).

    Examples
    --------
    >>> from mollifier.plot import compare_kernels
    >>> figure = compare_kernels("relu", width=0.5)
    >>> [line.get_label() for line in figure.axes[0].lines][:3]
    ['relu (hard)', 'gaussian', 'logistic']
    """
    spec = _spec(op)
    lo, hi = (float(v) for v in x_range)
    x = np.linspace(lo, hi, int(points))
    figure, top, bottom = _figure()
    _hard_curves(top, bottom, op, x)
    for name in kernels:
        if name == "cauchy" and spec.grows:
            continue
        y = np.asarray(spec.smooth(x, width=float(width), kernel=name))
        line = top.plot(x, y, lw=1.3, label=name)[0]
        bottom.plot(x, np.gradient(y, x), lw=1.3, color=line.get_color())
    top.set_title(f"{op} smoothed at width {width:g} by each kernel")
    top.set_ylabel("value")
    bottom.set_ylabel("derivative")
    bottom.set_xlabel("x")
    top.legend(loc="best", fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return figure
