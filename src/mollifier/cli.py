"""Command line: ``mollifier check`` (and ``python -m mollifier check``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    plot.add_argument("-o", "--output", required=True, help="PNG file to write")
    gallery = sub.add_parser(
        "gallery",
        help="write every op x kernel figure, the seed figures and an index.html",
        description=(
            "Render every op with every kernel (widths 0.05, 0.2, 0.5), the figures of the "
            "seed posts (smooth max of two inputs, relu vs softplus, the windowed smooth "
            "floor next to the exact one, swish and gelu) and an index.html showing them."
        ),
    )
    gallery.add_argument("-o", "--output", required=True, help="directory to write")
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
    from ._check import format_table, rows_as_dicts, run_check
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
        except ValueError as error:
            print(f"mollifier gallery: {error}", file=sys.stderr)
            return 2
        print(files[-1])
        return 0
    if args.command == "bench":
        from ._bench import main as bench_main

        bench_main(extra)
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
    if any(not w > 0 for w in widths):
        print(f"mollifier plot: widths must be positive; got {widths}", file=sys.stderr)
        return 2
    from . import plot

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
        print(f"mollifier plot: {error}", file=sys.stderr)
        return 2
    figure.savefig(args.output, dpi=120)
    print(args.output)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
