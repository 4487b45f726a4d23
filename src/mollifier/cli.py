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
            "Subcommands: check (accuracy of every op against an mpmath reference)."
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._check import SPECS, format_table, rows_as_dicts, run_check
    from ._kernels import kernels

    args = _parser().parse_args(argv)
    if args.command == "check":
        for name, valid, kind in ((args.op, SPECS, "op"), (args.kernel, kernels, "kernel")):
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
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
