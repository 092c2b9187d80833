"""The `curate` command line: argparse subcommands; user mistakes end in one line and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from curate.commands import COMMANDS
from curate.errors import CurateError


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given a command line, only the subcommand it names (importing every command's module and
    config models is most of the start-up time of the quick commands: shards, report). An unknown or missing
    command gets the whole parser, so argparse lists every choice."""
    parser = argparse.ArgumentParser(
        prog="curate",
        description="Data curation and mixture optimization for LLM pretraining.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = None if argv is None else _named_command(argv)
    for name in COMMANDS:
        if chosen is not None and name != chosen:
            continue
        importlib.import_module(f"curate.commands.{name}").register(sub)
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The module of the subcommand `argv` names (its first word not starting with '-'), if there is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    module = word.replace("-", "_") if word and "_" not in word else None
    return module if module in COMMANDS else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
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
