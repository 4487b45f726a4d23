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
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import numpy as np

from . import _elementwise, _reductions, _staircase  # noqa: F401  (their ops register)
from ._bounds import error_bound
from ._catalogue import CATALOGUE, referenced
from ._kernels import kernels

TOLERANCE = 1e-12


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
    spec = CATALOGUE[op]
    assert spec.reference is not None
    worst, sup_error, bound, within_bound = 0.0, 0.0, 0.0, True
    widths = spec.widths[1:3] if quick else spec.widths
    for w in widths:
        xs = sample_points(w, quick)
        got = np.asarray(spec.example(np.array(xs), width=w, kernel=kernel), dtype=np.float64)
        for x, value in zip(xs, got):
            expected = float(spec.reference(kernel, w, x))
            worst = max(worst, abs(value - expected) / max(1.0, abs(expected)))
        grid = np.linspace(-4.0, 4.0, 8001) * max(w, 0.5) + 0.5 * w * 1e-3
        grid = np.concatenate([grid, [0.0, 1.0, -1.0, 0.5, 2.0]])
        deviation = float(
            np.max(np.abs(spec.example(grid, width=w, kernel=kernel) - spec.hard_value(grid)))
        )
        bound_here = error_bound(op, kernel=kernel, width=w, **spec.params)
        within_bound = within_bound and deviation <= bound_here * (1 + 1e-9) + 1e-15
        sup_error = max(sup_error, deviation)
        bound = max(bound, bound_here)
    passed = worst <= TOLERANCE and within_bound
    return Row(op, kernel, worst, sup_error, bound, passed)


def pairs(
    ops: list[str] | None = None, kernel_names: list[str] | None = None
) -> list[tuple[str, str]]:
    out = []
    checked = referenced()
    for op in ops or list(checked):
        for kernel in kernel_names or list(kernels):
            if not checked[op].admits(kernels[kernel]):
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
