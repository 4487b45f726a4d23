"""Command line: ``mollifier check`` (and ``python -m mollifier check``).

Every bad argument exits with status 2 and one line on stderr naming it (never a
traceback); ``check`` exits 1 when a row fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: ``mollifier plot: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mollifier",
        description=(
            "Smooth versions of non-smooth functions with a known error. "
            "Subcommands: check (accuracy of every op against an mpmath reference), "
            "plot (draw an op and its smoothings), gallery (all figures and an index.html), "
            "bench (speed against native torch ops)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="evaluate every op x kernel against a 40-digit mpmath reference",
        description=(
            "Evaluate every op with every kernel over a grid of x and widths, compare with "
            "an independent 40-digit mpmath computation (quadrature of the convolution, or "
            "the step-by-step sum for staircases), and measure the sup error against the "
            "hard op on a dense grid. Prints a table; exits 1 if any row fails."
        ),
    )
    check.add_argument("--op", action="append", help="only this op (repeatable)")
    check.add_argument("--kernel", action="append", help="only this kernel (repeatable)")
    check.add_argument("--quick", action="store_true", help="fewer points and widths")
    check.add_argument("--format", choices=["table", "json"], default="table")
    plot = sub.add_parser(
        "plot",
        help="draw an op, its smooth versions and their derivatives to a PNG",
        description=(
            "Draw OP and its smoothings at each --width (the documented error band shaded "
            "for the first width when the op is Lipschitz), with derivatives in a second "
            "panel. With --compare, overlay every kernel at the first width instead."
        ),
    )
    plot.add_argument("op", help="op name, e.g. relu, floor, clip")
    plot.add_argument("--kernel", default="logistic", help="kernel name (default logistic)")
    plot.add_argument("--width", type=float, action="append", help="width (repeatable)")
    plot.add_argument("--range", type=float, nargs=2, default=(-3.0, 3.0), metavar=("A", "B"))
    plot.add_argument("--compare", action="store_true", help="overlay all kernels")
    plot.add_argument(
        "--match", choices=("width", "std", "mean_abs"), default="width",
        help="with --compare: equal width, standard deviation or mean |deviation|",
    )  # fmt: skip
    plot.add_argument("--errors", action="store_true", help="with --compare: |error| panel")
    plot.add_argument(
        "-o", "--output", required=True,
        help="image file to write (its extension picks the format: png, pdf, svg, ...); an "
        "existing directory receives OP-KERNEL.png (OP-compare.png with --compare)",
    )  # fmt: skip
    gallery = sub.add_parser(
        "gallery",
        help="write every op x kernel figure, the seed figures and an index.html",
        description=(
            "Render every op with every kernel (widths 0.05, 0.2, 0.5), the figures of the "
            "seed posts (smooth max of two inputs, relu vs softplus, the windowed smooth "
            "floor next to the exact one, swish and gelu) and an index.html showing them."
        ),
    )
    gallery.add_argument(
        "-o", "--output", required=True, help="directory to write (created if missing)"
    )
    gallery.add_argument("--op", action="append", help="only this op (repeatable)")
    gallery.add_argument("--kernel", action="append", help="only this kernel (repeatable)")
    sub.add_parser(
        "bench",
        help="time every op against the native torch op it replaces (needs torch)",
        description="Arguments after 'bench' go to the benchmark suite; see 'mollifier bench -h'.",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._catalogue import referenced
    from ._check import format_table, pairs, rows_as_dicts, run_check
    from ._kernels import kernels

    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "check":
        for name, valid, kind in ((args.op, referenced(), "op"), (args.kernel, kernels, "kernel")):
            unknown = sorted(set(name or []) - set(valid))
            if unknown:
                print(f"mollifier check: unknown {kind} {unknown}; valid: {sorted(valid)}",
                      file=sys.stderr)  # fmt: skip
                return 2
        todo = pairs(args.op, args.kernel)
        refused = [
            f"{op} x {kernel}"
            for op in args.op or ()
            for kernel in args.kernel or ()
            if (op, kernel) not in todo
        ]
        if not todo:
            reason = _refusal(args.op[0], args.kernel[0]) if len(refused) == 1 else ""
            return _fail("check", f"nothing to check: no op admits the kernels asked for "
                         f"({', '.join(refused)}){reason}")  # fmt: skip
        if refused:
            print(f"mollifier check: skipping {', '.join(refused)} (not admissible)",
                  file=sys.stderr)  # fmt: skip
        rows = run_check(args.op, args.kernel, quick=args.quick)
        if args.format == "json":
            print(json.dumps(rows_as_dicts(rows), indent=1))
        else:
            print(format_table(rows))
            failed = sum(not r.passed for r in rows)
            print(f"\n{len(rows) - failed} passed, {failed} failed")
        return 1 if any(not r.passed for r in rows) else 0
    if args.command == "plot":
        return _plot(args)
    if args.command == "gallery":
        from . import plot as plots

        try:
            files = plots.gallery(args.output, ops=args.op, kernel_names=args.kernel,
                                  progress=sys.stderr)  # fmt: skip
        except (ValueError, OSError) as error:
            return _fail("gallery", error)
        except ModuleNotFoundError as error:
            return _fail("gallery", f"needs {error.name} (pip install 'mollifier[plot]')")
        print(files[-1])
        return 0
    if args.command == "bench":
        try:
            from ._bench import main as bench_main
        except ModuleNotFoundError as error:
            return _fail("bench", f"needs {error.name} (pip install 'mollifier[torch]')")
        bench_main(extra, parser_class=_Parser)
        return 0
    return 2  # pragma: no cover - argparse rejects other commands


def _plot(args: argparse.Namespace) -> int:
    from ._catalogue import referenced
    from ._kernels import kernels

    if args.op not in referenced():
        print(f"mollifier plot: unknown op {args.op!r}; valid: {sorted(referenced())}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.kernel not in kernels:
        print(f"mollifier plot: unknown kernel {args.kernel!r}; valid: {sorted(kernels)}",
              file=sys.stderr)  # fmt: skip
        return 2
    widths = args.width or [0.05, 0.2, 0.5]
    if any(not 0 < w < math.inf for w in widths):
        return _fail("plot", f"widths must be finite positive numbers; got {widths}")
    from . import plot

    name = f"{args.op}-{'compare' if args.compare else args.kernel}.png"
    try:
        output = plot.image_path(args.output, name)
    except ValueError as error:
        return _fail("plot", error)
    except ModuleNotFoundError as error:
        return _fail("plot", f"needs {error.name} (pip install 'mollifier[plot]')")
    try:
        if args.compare:
            figure = plot.compare_kernels(
                args.op, width=widths[0], match=args.match, errors=args.errors,
                x_range=tuple(args.range),
            )  # fmt: skip
        else:
            figure = plot.plot(
                args.op, kernel=args.kernel, widths=widths, x_range=tuple(args.range)
            )
    except ValueError as error:
        return _fail("plot", error)
    try:
        figure.savefig(output, dpi=120)
    except OSError as error:
        return _fail("plot", f"cannot write {str(output)!r}: {error.strerror or error}")
    print(output)
    return 0


def _refusal(op: str, kernel: str) -> str:
    """Why ``op`` does not admit ``kernel`` (its own message), after a colon."""
    from ._catalogue import referenced
    from ._kernels import kernels

    entry = referenced()[op]
    if entry.shape is None:  # pragma: no cover - only piecewise ops refuse kernels
        return ""
    try:
        entry.shape(**entry.params).check_kernel(kernels[kernel])
    except ValueError as error:
        return f": {error}"
    return ""  # pragma: no cover - only refused pairs are asked about


def _fail(command: str, message: Any) -> int:
    print(f"mollifier {command}: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
