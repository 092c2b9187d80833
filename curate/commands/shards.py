"""`curate shards DATA --weights weights.json --tokens N --out DIR` and `curate shards verify DIR`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, add_seed, config_from_args, set_fields, with_run_seed
from curate.console import console
from curate.errors import CurateError
from curate.shards.config import ShardsConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shards", help="training shards drawn by the mixture weights (or `shards verify DIR`)",
        usage="curate shards DATA --weights W --tokens N --out DIR [options]\n       curate shards verify DIR",
    )
    p.add_argument("target", nargs="+", metavar="DATA", help="a `curate tokenize` output (or: verify DIR)")
    add_field(p, ShardsConfig, "weights", help="weights.json (a mixer's output)")
    add_field(p, ShardsConfig, "tokens", help="total tokens to draw")
    p.add_argument("--out", help="output directory")
    add_field(p, ShardsConfig, "max_epochs")
    add_seed(p, ShardsConfig)
    add_field(p, ShardsConfig, "shard_tokens")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target[0] == "verify":
        if len(args.target) != 2:
            raise CurateError("usage: curate shards verify DIR")
        return verify(args.target[1])
    if len(args.target) != 1:
        raise CurateError("shards: give one DATA directory")
    fields = set_fields(args)
    missing = [f for f in ("weights", "tokens") if f not in fields] + (["out"] if args.out is None else [])
    if missing:
        raise CurateError(f"shards: missing --{missing[0]}")
    from curate.commands.summaries import print_stage
    from curate.shards.stage import run_shards

    cfg = with_run_seed(config_from_args(args, ShardsConfig))
    stats = run_shards(cfg, args.target[0], args.out, overwrite=args.overwrite)
    print_stage("shards", stats, args.out)
    return 0


def verify(directory: str) -> int:
    from rich.markup import escape

    from curate.shards.verify import verify_shards

    problems = verify_shards(directory)
    # Problems quote file names and manifest values: escaped, so a "[...]" in them prints as it is.
    for p in problems:
        console.print(f"[red]verify: {escape(p)}[/]")
    if problems:
        console.print(f"[red]verify: {len(problems)} problem(s) in {escape(directory)}[/]")
        return 1
    console.print(f"verify: {directory} matches its manifest")
    return 0
