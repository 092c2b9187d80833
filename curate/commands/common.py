"""Flags shared by the stage commands."""

from __future__ import annotations

import argparse

from curate.console import console


def add_spark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--master", default=None, help="Spark master URL (default: local[*], or spark-submit's)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting (repeatable)")


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="--out may hold another stage's curate output, which is replaced (never other files)")


def check_local_inputs(paths: list[str]) -> None:
    """A local input path that does not exist is a one-line error before Spark (and the JVM's start-up lines)
    begins. Globs (Hadoop's syntax, with {a,b}, which Python's glob lacks) and non-local paths are left to the
    stage's listing on Spark's file system."""
    import os

    from curate.errors import CurateError
    from curate.fs import is_local, local_path
    from curate.sources import GLOB

    for raw in paths:
        if is_local(raw) and not GLOB.search(raw) and not os.path.exists(local_path(raw)):
            raise CurateError(f"input path does not exist: {raw}")


def spark_from_args(args: argparse.Namespace, inputs: list[str] | None = None):
    from curate.errors import CurateError
    from curate.spark import get_spark

    check_local_inputs(inputs or [])
    conf = {}
    for item in args.conf:
        if "=" not in item:
            raise CurateError(f"--conf {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        conf[k] = v
    return get_spark(master=args.master, conf=conf, progress=console.is_terminal)
