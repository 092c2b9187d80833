"""`curate report RUN_DIR`"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.html: one page of plots and tables for a run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from curate.console import console
    from curate.errors import CurateError
    from curate.report import build_report

    if not Path(args.run_dir).is_dir():
        raise CurateError(f"run directory does not exist: {args.run_dir}")
    console.print(f"report: {build_report(args.run_dir)}")
    return 0
