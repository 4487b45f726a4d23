"""Pictures of the smoothings: the hard op, its smooth versions, derivatives, error band.

Matplotlib is imported when a function here is called, never by ``import mollifier``.
Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state),
so they work headless and in notebooks alike; each function returns the figure.

The ops are those of ``mollifier check`` (:data:`OPS`): clip to ``[-1, 2]``, leaky ReLU
with slope 0.1, quantize with step 0.25.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._catalogue import Op, referenced
from ._kernels import Kernel, get_kernel, kernels
from ._params import flag

OPS: tuple[str, ...] = tuple(referenced())
"""Names accepted by :func:`plot` and :func:`compare_kernels`."""


def _spec(op: str) -> Op:
    try:
        return referenced()[op]
    except KeyError:
        raise ValueError(f"op must be one of {sorted(OPS)}; got {op!r}") from None


def _figure(rows: int = 2) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 6.0 if rows == 2 else 8.0), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, height_ratios=(3, 2, 2)[:rows])
    return (figure, *axes)


def _hard_curves(ax_value: Any, ax_slope: Any, op: str, x: np.ndarray) -> None:
    hard = _spec(op).hard_value(x)
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


def image_path(output: Any, name: str) -> Any:
    """Where to save a figure asked for as ``output``: the file itself, or
    ``output / name`` when ``output`` is an existing directory.

    Raises
    ------
    ValueError
        If the file's directory does not exist or is not a directory, or its extension
        is not an image format matplotlib writes (``.png``, ``.pdf``, ``.svg``, ...).
    """
    import pathlib

    from matplotlib.figure import Figure

    path = pathlib.Path(output)
    if path.is_dir():
        return path / name
    parent = path.parent
    if not parent.is_dir():
        why = "does not exist" if not parent.exists() else "is not a directory"
        raise ValueError(f"cannot write {str(path)!r}: {str(parent)!r} {why}")
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ValueError(
            f"cannot write {str(path)!r}: unknown image format "
            f"{path.suffix or '(no extension)'}; give one of "
            f"{', '.join('.' + f for f in sorted(formats))}"
        )
    return path


def _grid(x_range: tuple[float, float], points: int) -> np.ndarray:
    lo, hi = (float(v) for v in x_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"x_range must be two increasing finite numbers; got {x_range!r}")
    return np.linspace(lo, hi, int(points))


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
    x = _grid(x_range, points)
    if not widths:
        raise ValueError("widths must hold at least one width")
    figure, top, bottom = _figure()
    _hard_curves(top, bottom, op, x)
    for i, width in enumerate(widths):
        y = np.asarray(spec.example(x, width=float(width), kernel=k))
        line = top.plot(x, y, lw=1.4, label=f"w = {width:g}")[0]
        bottom.plot(x, np.gradient(y, x), lw=1.4, color=line.get_color())
        bound = spec.bound_for(k, spec.params)
        if i == 0 and bound.constant == 0.0 and np.isfinite(bound.slope):
            band = bound.at(float(width))
            hard = spec.hard_value(x)
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


MATCHES = ("width", "std", "mean_abs")
"""How :func:`compare_kernels` makes the kernels comparable: the same scale parameter,
the same standard deviation ``w sqrt(E[U^2])`` or the same mean absolute deviation
``w E|U|``."""


def _matched_width(kernel: Kernel, width: float, match: str) -> float | None:
    """The kernel's width for ``match``; None where that spread is infinite."""
    if match == "width":
        return width
    spread = math.sqrt(kernel.second_moment) if match == "std" else kernel.mean_abs
    return width / spread if math.isfinite(spread) else None


def compare_kernels(
    op: str,
    *,
    width: float = 0.3,
    match: str = "width",
    errors: bool = False,
    x_range: tuple[float, float] = (-3.0, 3.0),
    points: int = 2001,
) -> Any:
    """Overlay ``op`` smoothed by every kernel, with derivatives (and errors) below.

    Parameters
    ----------
    op : str
        One of :data:`OPS`.
    width : float
        The common scale: the kernels' width (``match="width"``), their standard
        deviation (``"std"``) or their mean absolute deviation ``w E|U|``
        (``"mean_abs"``). Compared at the same *width*, the kernels' spreads differ by up
        to 2x (logistic std ``pi w / sqrt 3``, Gaussian ``w``); at the same spread
        the differences left are the kernels' own (shape, tails, smoothness).
    match : {"width", "std", "mean_abs"}
        See ``width``. Kernels whose spread is infinite (Cauchy, and sqrt for ``"std"``)
        are left out, as are kernels that diverge for ``op``.
    errors : bool
        Add a third panel with ``|smooth - hard|`` on a log scale: how far from the kink
        or jump each kernel's error reaches.
    x_range : (float, float)
    points : int

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from mollifier.plot import compare_kernels
    >>> figure = compare_kernels("relu", width=0.5)
    >>> [line.get_label() for line in figure.axes[0].lines][:3]
    ['relu (hard)', 'gaussian', 'logistic']
    >>> figure = compare_kernels("step", width=0.3, match="std", errors=True)
    >>> len(figure.axes), "cauchy" in [line.get_label() for line in figure.axes[0].lines]
    (3, False)
    """
    spec = _spec(op)
    errors = flag(errors, "errors")
    if match not in MATCHES:
        raise ValueError(f"match must be one of {list(MATCHES)}; got {match!r}")
    x = _grid(x_range, points)
    figure, top, bottom, *rest = _figure(3 if errors else 2)
    _hard_curves(top, bottom, op, x)
    hard = spec.hard_value(x)
    for name, kernel in kernels.items():
        kernel_width = _matched_width(kernel, float(width), match)
        if kernel_width is None or not spec.admits(kernel):
            continue
        y = np.asarray(spec.example(x, width=kernel_width, kernel=name))
        line = top.plot(x, y, lw=1.3, label=name)[0]
        bottom.plot(x, np.gradient(y, x), lw=1.3, color=line.get_color())
        if rest:
            error = np.abs(y - hard)
            rest[0].semilogy(x, np.where(error > 1e-17, error, np.nan), lw=1.3,
                             color=line.get_color())  # fmt: skip
    spread = {"width": "width", "std": "standard deviation", "mean_abs": "mean |deviation|"}
    top.set_title(f"{op} smoothed by each kernel at equal {spread[match]} {width:g}")
    top.set_ylabel("value")
    bottom.set_ylabel("derivative")
    if rest:
        rest[0].set_ylabel("|smooth - hard|")
        rest[0].set_ylim(1e-16, 2.0)
    (rest[0] if rest else bottom).set_xlabel("x")
    top.legend(loc="best", fontsize=8)
    for ax in (top, bottom, *rest):
        ax.grid(alpha=0.3)
    return figure


def _label_lower_panel(figure: Any, bottom: Any, ylabel: str, fontsize: int) -> Any:
    bottom.set_ylabel(ylabel)
    bottom.set_xlabel("x")
    bottom.legend(fontsize=fontsize)
    return figure


def _seed_smooth_max() -> Any:
    from ._reductions import logsumexp
    from ._reductions import max as smooth_max

    figure, top, bottom = _figure()
    x = np.linspace(0.01, 3.0, 600)
    pair = np.stack([x, np.ones_like(x)], axis=-1)
    top.plot(x, np.maximum(x, 1.0), color="black", lw=2.2, label="max(x, 1)")
    for w, style in ((0.1, "-"), (0.3, "--")):
        top.plot(x, logsumexp(pair, width=w), style, label=f"logsumexp, w = {w}")
        top.plot(
            x, smooth_max(pair, width=w, method="softmax"), style, label=f"softmax mean, w = {w}"
        )
        top.plot(
            x, smooth_max(pair, width=w, method="power"), style, label=f"power, p = {1 / w:.3g}"
        )
    top.set_title("Smooth max of two inputs (seed 1): above, below, and relative")
    top.legend(fontsize=7, ncol=2)
    for w in (0.1, 0.3):
        bottom.plot(
            x, logsumexp(pair, width=w) - np.maximum(x, 1.0), label=f"logsumexp − max, w = {w}"
        )
        bottom.plot(x, smooth_max(pair, width=w, method="softmax") - np.maximum(x, 1.0),
                    label=f"softmax mean − max, w = {w}")  # fmt: skip
    bottom.axhline(0.1 * np.log(2), color="grey", ls=":", label="w log 2 (w = 0.1)")
    return _label_lower_panel(figure, bottom, "error", fontsize=7)


def _seed_relu_softplus() -> Any:
    from ._elementwise import relu

    figure, top, bottom = _figure()
    x = np.linspace(-3, 3, 1201)
    top.plot(x, np.maximum(x, 0), color="black", lw=2.2, label="relu")
    for w in (0.25, 0.5, 1.0):
        y = relu(x, width=w)
        top.plot(x, y, label=f"w softplus(x / w), w = {w}")
        bottom.plot(x, y - np.maximum(x, 0), label=f"error, max w log 2 = {w * np.log(2):.3f}")
    top.set_title("ReLU and softplus: ReLU convolved with the logistic kernel")
    top.legend(fontsize=8)
    return _label_lower_panel(figure, bottom, "softplus − relu", fontsize=8)


def _seed_floor() -> Any:
    from ._staircase import floor

    figure, top, bottom = _figure()
    x = np.linspace(-9, 14, 4601)
    t, m, n = 10.0, 5, 10
    seed = sum(1 / (1 + np.exp(-t * (x - k))) - 1 for k in range(-m, 1)) + sum(
        1 / (1 + np.exp(-t * (x - k))) for k in range(1, n + 1)
    )
    exact = floor(x, width=1 / t)
    top.plot(x, np.floor(x), color="black", lw=2, label="floor")
    top.plot(x, seed, label="seed: sum over n = -5..10, t = 10")
    top.plot(x, exact, "--", label="mollifier.floor, w = 0.1 (O(1), every x)")
    top.axvspan(-9, -m, color="red", alpha=0.08)
    top.axvspan(n, 14, color="red", alpha=0.08, label="outside the seed's window")
    top.set_title("Smooth floor: the seed's windowed sum breaks down outside -M..N")
    top.legend(fontsize=8)
    bottom.plot(x, seed - exact, label="seed − exact")
    return _label_lower_panel(figure, bottom, "difference", fontsize=8)


def _seed_gates() -> Any:
    from ._elementwise import gelu, relu, swish

    figure, top, bottom = _figure()
    x = np.linspace(-4, 3, 1401)
    top.plot(x, np.maximum(x, 0), color="black", lw=2.2, label="relu")
    top.plot(x, swish(x), label="swish: x sigmoid(x)")
    top.plot(x, gelu(x), label="gelu: x Phi(x)")
    top.plot(x, relu(x, width=1.0, kernel="gaussian"), "--", label="relu * gaussian (convolution)")
    top.set_title("Product forms x K(x / w) next to a convolution")
    top.legend(fontsize=8)
    for name, y in (("swish", swish(x)), ("gelu", gelu(x))):
        bottom.plot(x, y - np.maximum(x, 0), label=f"{name} − relu")
    bottom.axhline(-0.27846, color="grey", ls=":", label="−W(1/e) (swish minimum)")
    bottom.axhline(-0.16997, color="grey", ls="--", label="−0.16997 (gelu minimum)")
    return _label_lower_panel(figure, bottom, "error", fontsize=8)


SEED_FIGURES = {
    "seed-smooth-max": (
        _seed_smooth_max,
        "Smooth max of two inputs: logsumexp, softmax mean, power",
    ),
    "seed-relu-softplus": (_seed_relu_softplus, "ReLU and softplus (logistic-kernel ReLU)"),
    "seed-floor": (_seed_floor, "The seed's windowed smooth floor next to the exact O(1) one"),
    "seed-gates": (_seed_gates, "Swish and GELU as x times a smooth step"),
}
"""Figures of the cited blog posts, allenwind (n.d.) and Su (2021): name -> (builder, caption)."""


def _first_entry_figure(
    title: str, ylabel: str, hard: tuple[Any, Any], smooth: list[tuple[str, Any]]
) -> Any:
    """A reduction of ``x = (t, 0, -0.5)`` as ``t`` moves: the hard op ``hard = (value,
    derivative)`` as functions of ``t`` and the smooth ones (``(label, function of x)``,
    top), with their derivatives in ``t`` (bottom, by central differences)."""
    figure, top, bottom = _figure()
    t = np.linspace(-3.0, 3.0, 1201)
    x = np.stack([t, np.zeros_like(t), np.full_like(t, -0.5)], axis=-1)
    value, slope = hard
    top.plot(t, value(t), color="black", lw=2.2, label="hard")
    shown = np.asarray(slope(t), dtype=float)
    shown[np.abs(t) < 1e-12] = np.nan  # the jump at t = 0 is not drawn as a line
    bottom.plot(t, shown, color="black", lw=2.2, label="hard (a.e.)")
    for label, function in smooth:
        y = np.asarray(function(x), dtype=float)
        top.plot(t, y, label=label)
        bottom.plot(t, np.gradient(y, t), label=label)
    top.set_title(title)
    top.legend(fontsize=8)
    _label_lower_panel(figure, bottom, ylabel, fontsize=8)
    bottom.set_xlabel("t")
    return figure


def _step_at_zero(t: np.ndarray) -> np.ndarray:
    return (t > 0).astype(float)


def _sparse_argmax() -> Any:
    from ._reductions import softmax

    return _first_entry_figure(
        "Soft argmax of (t, 0, -0.5): the weight of the first entry",
        "d weight / dt",
        (_step_at_zero, np.zeros_like),
        [(f"{m}, w = 1", lambda x, m=m: softmax(x, width=1.0, method=m)[:, 0])
         for m in ("softmax", "sparsemax", "entmax15")],
    )  # fmt: skip


def _sparse_max() -> Any:
    from ._reductions import max as smooth_max

    return _first_entry_figure(
        "Smooth max by regularizer: Shannon (logsumexp), Tsallis 2 and 3/2",
        "d max / dt",
        (lambda t: np.maximum(t, 0.0), _step_at_zero),
        [(f"{m}, w = 1", lambda x, m=m: smooth_max(x, width=1.0, method=m))
         for m in ("logsumexp", "sparsemax", "entmax15")],
    )  # fmt: skip


def _log_softmax() -> Any:
    from ._reductions import log_softmax

    return _first_entry_figure(
        "w log_softmax(x / w) of (t, 0, -0.5), first entry: t - max(t, 0) as w -> 0",
        "d / dt",
        (lambda t: np.minimum(t, 0.0), lambda t: (t < 0).astype(float)),
        [(f"w = {w:g}", lambda x, w=w: w * log_softmax(x, width=w)[:, 0])
         for w in (0.1, 0.5, 1.0)],
    )  # fmt: skip


def _logmeanexp() -> Any:
    from ._reductions import logmeanexp

    figure = _first_entry_figure(
        "Log-mean-exp of (t, 0, -0.5): the max as w -> 0, the mean as w -> inf",
        "d / dt",
        (lambda t: np.maximum(t, 0.0), _step_at_zero),
        [(f"w = {w:g}", lambda x, w=w: logmeanexp(x, width=w)) for w in (0.1, 0.5, 1.0, 5.0)],
    )
    top, bottom = figure.axes
    t = top.lines[0].get_xdata()
    top.plot(t, (t - 0.5) / 3.0, color="gray", ls="--", label="mean (w -> inf)")
    bottom.axhline(1.0 / 3.0, color="gray", ls="--", label="mean")
    top.legend(fontsize=8)
    bottom.legend(fontsize=8)
    return figure


def _soft_booleans() -> Any:
    from ._logic import all as soft_all
    from ._logic import any as soft_any
    from ._logic import logical_and, logical_not, logical_or, logical_xor

    figure, top, bottom = _figure()
    p = np.linspace(0.0, 1.0, 801)
    q = 0.7
    triples = np.stack([p, np.full_like(p, q), np.full_like(p, 0.9)], axis=-1)
    curves = [
        ("not p = 1 - p", lambda: logical_not(p)),
        ("and = p q", lambda: logical_and(p, q)),
        ("or = p + q - p q", lambda: logical_or(p, q)),
        ("xor (product)", lambda: logical_xor(p, q)),
        ("all of (p, q, 0.9)", lambda: soft_all(triples, axis=-1)),
        ("any of (p, q, 0.9)", lambda: soft_any(triples, axis=-1)),
        ("and, smooth min, w = 0.1", lambda: logical_and(p, q, tnorm="minmax", width=0.1)),
        ("or, smooth max, w = 0.1", lambda: logical_or(p, q, tnorm="minmax", width=0.1)),
    ]
    top.plot(p, np.minimum(p, q), color="black", lw=2.2, label="min(p, q) (hard and)")
    top.plot(p, np.maximum(p, q), color="black", lw=1.2, ls="--", label="max(p, q) (hard or)")
    for label, function in curves:
        y = np.asarray(function(), dtype=float)
        top.plot(p, y, label=label)
        bottom.plot(p, np.gradient(y, p), label=label)
    top.set_title("Soft booleans of p, q = 0.7: product t-norm and smooth min/max")
    top.legend(fontsize=7)
    _label_lower_panel(figure, bottom, "d / dp", fontsize=7)
    bottom.set_xlabel("p")
    return figure


def _isclose() -> Any:
    from ._logic import isclose

    figure, top, bottom = _figure()
    d = np.linspace(-3e-5, 3e-5, 1201)
    hard = np.isclose(1.0 + d, 1.0).astype(float)
    top.plot(d, hard, color="black", lw=2.2, label="np.isclose(1 + d, 1) (hard)")
    bottom.plot(d, 0.0 * d, color="black", lw=2.2, label="hard (a.e.)")
    for w, kernel in ((1e-6, "logistic"), (3e-6, "gaussian"), (1e-12, "logistic")):
        y = isclose(1.0 + d, 1.0, width=w, kernel=kernel)
        top.plot(d, y, label=f"{kernel}, w = {w:g}")
        if w > 1e-9:
            bottom.plot(d, np.gradient(y, d) * 1e-5, label=f"{kernel}, w = {w:g}")
    top.set_title("Soft isclose: the smooth step of atol + rtol |b| - |a - b|")
    top.legend(fontsize=8)
    bottom.set_ylabel("d / dd (x 1e-5)")
    bottom.set_xlabel("d = a - b")
    bottom.legend(fontsize=8)
    return figure


FAMILY_FIGURES = {
    "sparse-argmax": (_sparse_argmax, "Soft argmax: softmax, sparsemax, entmax-1.5"),
    "sparse-max": (_sparse_max, "Smooth max: logsumexp, sparsemax and entmax-1.5 maxes"),
    "log-softmax": (_log_softmax, "log_softmax times the width: x_i - max as w -> 0"),
    "logmeanexp": (_logmeanexp, "Log-mean-exp between the max and the mean"),
    "soft-booleans": (_soft_booleans, "Soft not, and, or, xor, all, any"),
    "isclose": (_isclose, "Soft isclose down to w = 1e-12"),
}
"""Figures of the reductions beyond the max (sparse argmax, regularized maxes,
log_softmax, logmeanexp) and of the soft booleans and isclose: name -> (builder, caption)."""


def _sorting_figure(title: str, hard: Any, smooth: list[tuple[str, Any]], ylabel: str) -> Any:
    """One entry ``t`` moves through fixed others ``(-1, 0, 0.5, 1.5)``: the hard op and
    its smoothings as functions of ``t`` (top) and their derivatives in ``t`` (bottom,
    by central differences of the plotted values)."""
    figure, top, bottom = _figure()
    t = np.linspace(-2.0, 2.5, 901)
    others = np.array([-1.0, 0.0, 0.5, 1.5])
    x = np.concatenate([t[:, None], np.broadcast_to(others, (t.size, others.size))], axis=1)
    values = np.asarray(hard(x), dtype=float)
    steps = np.abs(np.diff(values))
    jumps = steps > 20 * max(float(np.median(steps)), float(np.diff(t).max()))
    shown = values.copy()
    shown[1:][jumps] = np.nan
    top.plot(t, shown, color="black", lw=2.2, label="hard")
    for label, function in smooth:
        y = np.asarray(function(x), dtype=float)
        top.plot(t, y, label=label)
        bottom.plot(t, np.gradient(y, t), label=label)
    top.set_title(title)
    top.set_ylabel(ylabel)
    top.legend(fontsize=7)
    return _label_lower_panel(figure, bottom, "d / dt", fontsize=7)


def _sorting_rank() -> Any:
    from ._sorting import rank

    return _sorting_figure(
        "rank of t among (-1, 0, 0.5, 1.5)",
        lambda x: 1.0 + (x[:, 1:] < x[:, :1]).sum(axis=1),
        [("pairwise, logistic, w = 0.1", lambda x: rank(x, width=0.1)[:, 0]),
         ("pairwise, gaussian, w = 0.1", lambda x: rank(x, width=0.1, kernel="gaussian")[:, 0]),
         ("l2, w = 0.3", lambda x: rank(x, width=0.3, method="l2")[:, 0]),
         ("kl, w = 0.3", lambda x: rank(x, width=0.3, method="kl")[:, 0])],
        "rank",
    )  # fmt: skip


def _sorting_sort() -> Any:
    from ._sorting import sort

    return _sorting_figure(
        "the 3rd smallest of (t, -1, 0, 0.5, 1.5)",
        lambda x: np.sort(x, axis=1)[:, 2],
        [("l2, w = 2 (pools gaps over 1/w)", lambda x: sort(x, width=2.0)[:, 2]),
         ("kl, w = 2", lambda x: sort(x, width=2.0, method="kl")[:, 2]),
         ("network, logistic, w = 0.1", lambda x: sort(x, width=0.1, method="network")[:, 2])],
        "sorted value",
    )  # fmt: skip


def _sorting_argsort() -> Any:
    from ._sorting import argsort

    return _sorting_figure(
        "argsort: weight of t at sorted position 3",
        lambda x: (np.argsort(x, axis=1, kind="stable")[:, 2] == 0).astype(float),
        [(f"network, logistic, w = {w}", lambda x, w=w: argsort(x, width=w)[:, 2, 0])
         for w in (0.05, 0.2)],
        "P[3, t]",
    )  # fmt: skip


def _sorting_topk() -> Any:
    from ._sorting import topk

    return _sorting_figure(
        "top-2 mask of t among (-1, 0, 0.5, 1.5)",
        lambda x: ((x[:, 1:] > x[:, :1]).sum(axis=1) < 2).astype(float),
        [(f"l2, w = {w}", lambda x, w=w: topk(x, 2, width=w).mask[:, 0]) for w in (0.1, 0.5)],
        "mask",
    )  # fmt: skip


def _sorting_median() -> Any:
    from ._sorting import median, quantile

    return _sorting_figure(
        "median and 0.8-quantile of (t, -1, 0, 0.5, 1.5)",
        lambda x: np.median(x, axis=1),
        [("median, l2, w = 2", lambda x: median(x, width=2.0)),
         ("median, network, w = 0.1", lambda x: median(x, width=0.1, method="network")),
         ("0.8-quantile, l2, w = 2", lambda x: quantile(x, 0.8, width=2.0))],
        "value",
    )  # fmt: skip


SORTING_FIGURES = {
    "sorting-rank": (_sorting_rank, "Soft rank: pairwise kernels and the projections"),
    "sorting-sort": (_sorting_sort, "Soft sort: l2, kl and a sorting network"),
    "sorting-argsort": (_sorting_argsort, "Soft permutation matrix: one entry"),
    "sorting-topk": (_sorting_topk, "Soft top-k mask"),
    "sorting-median": (_sorting_median, "Soft median and quantile"),
}
"""The sorting family as one entry moves: name -> (builder, caption)."""


def gallery(
    directory: Any,
    *,
    ops: Sequence[str] | None = None,
    kernel_names: Sequence[str] | None = None,
    progress: Any = None,
) -> list[Any]:
    """Write every op x kernel figure, the blog posts' figures and an ``index.html``.

    Parameters
    ----------
    directory : path
        Created if missing (the arguments are checked first, so a bad one creates
        nothing); an existing file there raises ``ValueError``.
    ops, kernel_names : sequences of str, optional
        Restrict the op x kernel grid (all by default).
    progress : text stream, optional
        Receives a progress bar (``sys.stderr`` from the command line).

    Returns
    -------
    list of pathlib.Path
        The files written, ``index.html`` last.
    """
    import html
    import pathlib

    for name in ops or ():
        _spec(name)
    for name in kernel_names or ():
        get_kernel(name)
    grid = [
        (op, k)
        for op in (ops or OPS)
        for k in (kernel_names or kernels)
        if _spec(op).admits(kernels[k])
    ]
    if not grid:
        raise ValueError(
            f"no op in {list(ops or OPS)} admits a kernel in {list(kernel_names or kernels)}"
        )
    out = pathlib.Path(directory)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, str, Any]] = [
        (f"{op}-{k}", f"{op}, {k} kernel", lambda op=op, k=k: plot(op, kernel=k)) for op, k in grid
    ]
    jobs += [(name, caption, build) for name, (build, caption) in SEED_FIGURES.items()]
    jobs += [(name, caption, build) for name, (build, caption) in FAMILY_FIGURES.items()]
    jobs += [(name, caption, build) for name, (build, caption) in SORTING_FIGURES.items()]
    written = []
    for i, (name, caption, build) in enumerate(jobs, start=1):
        if progress is not None:
            done = int(30 * i / len(jobs))
            progress.write(f"\r[{'#' * done}{'.' * (30 - done)}] {i}/{len(jobs)} {name:<28}")
            progress.flush()
        path = out / f"{name}.png"
        build().savefig(path, dpi=90)
        written.append((path, caption))
    if progress is not None:
        progress.write("\n")
    cards = "\n".join(
        f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(c)}" width="560">'
        f"<figcaption>{html.escape(c)}</figcaption></figure>"
        for p, c in written
    )
    index = out / "index.html"
    index.write_text(
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>mollifier gallery</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;margin:8px}</style>"
        f"</head><body><h1>mollifier gallery</h1>\n{cards}\n</body></html>\n",
        encoding="utf-8",
    )
    return [p for p, _ in written] + [index]
