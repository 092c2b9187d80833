"""`curate shards DATA --weights weights.json --tokens N --out DIR` and `curate shards verify DIR`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_overwrite_arg
from curate.console import console
from curate.errors import CurateError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shards", help="training shards drawn by the mixture weights (or `shards verify DIR`)",
        usage="curate shards DATA --weights W --tokens N --out DIR [options]\n       curate shards verify DIR",
    )
    p.add_argument("target", nargs="+", metavar="DATA", help="a `curate tokenize` output (or: verify DIR)")
    p.add_argument("--weights", help="weights.json (a mixer's output)")
    p.add_argument("--tokens", type=int, help="total tokens to draw")
    p.add_argument("--out", help="output directory")
    p.add_argument("--max-epochs", type=float, default=4.0, help="most passes over any domain (default 4)")
    p.add_argument("--seed", type=int, default=1234, help="drawing seed")
    p.add_argument("--shard-tokens", type=int, default=500_000_000, help="tokens per shard at most")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target[0] == "verify":
        if len(args.target) != 2:
            raise CurateError("usage: curate shards verify DIR")
        return verify(args.target[1])
    if len(args.target) != 1:
        raise CurateError("shards: give one DATA directory")
    missing = [f for f in ("weights", "tokens", "out") if getattr(args, f) is None]
    if missing:
        raise CurateError(f"shards: missing --{missing[0]}")
    from curate.commands.summaries import print_stage
    from curate.config import validate_config
    from curate.tokenize.config import ShardsConfig
    from curate.tokenize.shards import run_shards

    cfg = validate_config(
        ShardsConfig,
        {"weights": args.weights, "tokens": args.tokens, "max_epochs": args.max_epochs, "seed": args.seed,
         "shard_tokens": args.shard_tokens},
        "command line",
    )
    stats = run_shards(cfg, args.target[0], args.out, overwrite=args.overwrite)
    print_stage("shards", stats, args.out)
    return 0


def verify(directory: str) -> int:
    from rich.markup import escape

    from curate.tokenize.shards import verify_shards

    problems = verify_shards(directory)
    # Problems quote file names and manifest values: escaped, so a "[...]" in them prints as it is.
    for p in problems:
        console.print(f"[red]verify: {escape(p)}[/]")
    if problems:
        console.print(f"[red]verify: {len(problems)} problem(s) in {escape(directory)}[/]")
        return 1
    console.print(f"verify: {directory} matches its manifest")
    return 0
