"""The `curate` command line: argparse subcommands; user mistakes end in one line and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from curate.commands import COMMANDS
from curate.errors import CurateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curate",
        description="Data curation and mixture optimization for LLM pretraining.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"curate.commands.{name}").register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("CURATE_DEBUG") == "1"
    try:
        code = args.func(args)
    except CurateError as exc:
        if debug:
            raise
        print(f"curate: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("curate: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a stack trace
        if debug:
            raise
        from curate.spark import describe_spark_error

        print(
            f"curate: error: {describe_spark_error(exc)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
