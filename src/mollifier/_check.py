"""``mollifier check``: every op x kernel against the independent mpmath reference.

For each pair it reports the largest error of the float64 result against the
reference (relative to ``max(1, |reference|)``), the largest measured deviation from
the hard op on a dense grid, and the documented bound at the largest width; a row
passes when the first is below ``1e-12`` and, at every width, the measured deviation is
within that width's bound.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import mpmath as mp
import numpy as np

from . import _reference as ref
from ._bounds import error_bound
from ._elementwise import abs as smooth_abs
from ._elementwise import clip, gelu, hinge, leaky_relu, relu, sign, step, swish
from ._kernels import kernels
from ._staircase import ceil, floor, frac, quantize, round, trunc

TOLERANCE = 1e-12


@dataclass(frozen=True)
class OpSpec:
    smooth: Callable[..., Any]
    hard: Callable[[np.ndarray], np.ndarray]
    reference: Callable[[str, float, float], Any]
    widths: tuple[float, ...]
    grows: bool = False  # diverges with the Cauchy kernel


def _piecewise_reference(f: Callable[[Any], Any], breakpoints: list[float]) -> Callable[..., Any]:
    return lambda kernel, w, x: ref.convolve(f, breakpoints, kernel, w, x)


def _unit(y: Any) -> Any:
    return mp.mpf(1) if y >= 0 else mp.mpf(0)


_PIECEWISE_WIDTHS = (1e-4, 0.05, 1.0, 1e3)
_STAIR_WIDTHS = (1e-3, 0.2, 0.6, 2.5)

SPECS: dict[str, OpSpec] = {
    "step": OpSpec(step, lambda x: (x >= 0).astype(float), _piecewise_reference(_unit, [0.0]),
                   _PIECEWISE_WIDTHS),
    "sign": OpSpec(sign, lambda x: np.where(x >= 0, 1.0, -1.0),
                   _piecewise_reference(lambda y: 2 * _unit(y) - 1, [0.0]), _PIECEWISE_WIDTHS),
    "relu": OpSpec(relu, lambda x: np.maximum(x, 0.0),
                   _piecewise_reference(lambda y: max(y, 0), [0.0]), _PIECEWISE_WIDTHS, True),
    "leaky_relu": OpSpec(lambda x, **k: leaky_relu(x, 0.1, **k),
                         lambda x: np.where(x >= 0, x, 0.1 * x),
                         _piecewise_reference(lambda y: y if y >= 0 else y / 10, [0.0]),
                         _PIECEWISE_WIDTHS, True),
    "abs": OpSpec(smooth_abs, np.abs, _piecewise_reference(abs, [0.0]), _PIECEWISE_WIDTHS, True),
    "clip": OpSpec(lambda x, **k: clip(x, -1.0, 2.0, **k), lambda x: np.clip(x, -1.0, 2.0),
                   _piecewise_reference(lambda y: min(max(y, -1), 2), [-1.0, 2.0]),
                   _PIECEWISE_WIDTHS),
    "hinge": OpSpec(hinge, lambda x: np.maximum(1.0 - x, 0.0),
                    _piecewise_reference(lambda y: max(1 - y, 0), [1.0]), _PIECEWISE_WIDTHS, True),
    "floor": OpSpec(floor, np.floor, lambda k, w, x: ref.floor(k, w, x), _STAIR_WIDTHS),
    "ceil": OpSpec(ceil, np.ceil, lambda k, w, x: ref.floor(k, w, x) + 1, _STAIR_WIDTHS),
    "round": OpSpec(round, lambda x: np.floor(x + 0.5),
                    lambda k, w, x: ref.floor(k, w, mp.mpf(x) + mp.mpf(1) / 2), _STAIR_WIDTHS),
    "trunc": OpSpec(trunc, np.trunc,
                    ref.trunc, _STAIR_WIDTHS),
    "frac": OpSpec(frac, lambda x: x - np.floor(x),
                   lambda k, w, x: mp.mpf(x) - ref.floor(k, w, x), _STAIR_WIDTHS),
    "quantize": OpSpec(lambda x, **k: quantize(x, 0.25, **k),
                       lambda x: 0.25 * np.floor(4 * x + 0.5),
                       lambda k, w, x: ref.floor(k, 4 * w, 4 * mp.mpf(x) + mp.mpf(1) / 2) / 4,
                       tuple(w / 4 for w in _STAIR_WIDTHS)),
    "gelu": OpSpec(gelu, lambda x: np.maximum(x, 0.0),
                   ref.gate, _PIECEWISE_WIDTHS),
    "swish": OpSpec(swish, lambda x: np.maximum(x, 0.0),
                    ref.gate, _PIECEWISE_WIDTHS),
}  # fmt: skip


@dataclass
class Row:
    op: str
    kernel: str
    max_error: float
    measured_sup_error: float
    bound: float
    passed: bool


def sample_points(width: float, quick: bool) -> list[float]:
    base = [-1e6 - 0.3, -7.25, -1.0, -0.5, -0.1, 0.0, 0.3, 0.5, 1.0, 2.0, 3.7, 1e6 + 0.7]
    scaled = [0.37 * width, -1.6 * width]
    points = base + scaled
    return points[::3] if quick else points


def check_pair(op: str, kernel: str, quick: bool = False) -> Row:
    spec = SPECS[op]
    worst, sup_error, bound, within_bound = 0.0, 0.0, 0.0, True
    widths = spec.widths[1:3] if quick else spec.widths
    for w in widths:
        xs = sample_points(w, quick)
        got = np.asarray(spec.smooth(np.array(xs), width=w, kernel=kernel), dtype=np.float64)
        for x, value in zip(xs, got):
            expected = float(spec.reference(kernel, w, x))
            worst = max(worst, abs(value - expected) / max(1.0, abs(expected)))
        grid = np.linspace(-4.0, 4.0, 8001) * max(w, 0.5) + 0.5 * w * 1e-3
        grid = np.concatenate([grid, [0.0, 1.0, -1.0, 0.5, 2.0]])
        deviation = float(
            np.max(np.abs(spec.smooth(grid, width=w, kernel=kernel) - spec.hard(grid)))
        )
        bound_here = error_bound(op, kernel=kernel, width=w, step=0.25)
        within_bound = within_bound and deviation <= bound_here * (1 + 1e-9) + 1e-15
        sup_error = max(sup_error, deviation)
        bound = max(bound, bound_here)
    passed = worst <= TOLERANCE and within_bound
    return Row(op, kernel, worst, sup_error, bound, passed)


def pairs(
    ops: list[str] | None = None, kernel_names: list[str] | None = None
) -> list[tuple[str, str]]:
    out = []
    for op in ops or list(SPECS):
        for kernel in kernel_names or list(kernels):
            if kernel == "cauchy" and SPECS[op].grows:
                continue
            out.append((op, kernel))
    return out


def run_check(
    ops: list[str] | None = None,
    kernel_names: list[str] | None = None,
    *,
    quick: bool = False,
    progress: TextIO | None = sys.stderr,
) -> list[Row]:
    todo = pairs(ops, kernel_names)
    rows = []
    start = time.monotonic()
    for i, (op, kernel) in enumerate(todo, start=1):
        if progress is not None:
            elapsed = time.monotonic() - start
            progress.write(f"\r[{i:3d}/{len(todo)}] {op:<10} {kernel:<13} {elapsed:6.1f}s")
            progress.flush()
        rows.append(check_pair(op, kernel, quick))
    if progress is not None:
        progress.write("\n")
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [
        "| op | kernel | max error vs reference | measured sup error | bound | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        bound = "inf" if math.isinf(r.bound) else f"{r.bound:.3g}"
        lines.append(
            f"| {r.op} | {r.kernel} | {r.max_error:.2e} | {r.measured_sup_error:.3g} | {bound} | "
            f"{'pass' if r.passed else 'FAIL'} |"
        )
    return "\n".join(lines)


def rows_as_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
