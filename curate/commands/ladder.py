"""`curate ladder DATA --weights A.json B.json ... --out DIR`: judge mixtures above the proxy's scale."""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, config_from_args
from curate.ladder_stage import LadderConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ladder",
        help="train every mixture (+ uniform, natural) at >= 3 model sizes; fit, extrapolate, say which wins",
        description="A scaling ladder: every mixture, plus uniform and natural, trained at each rung and seed with "
        "the same init and data order per seed; a scaling curve per mixture extrapolated to the target compute, "
        "intervals from resampling seeds, a self-check that predicts the top rung from the others.",
    )
    p.add_argument("data", metavar="DATA", help="output directory of `curate tokenize` (has datasets.json)")
    p.add_argument("--weights", nargs="*", default=[], metavar="JSON", help="weights.json files (mixer outputs)")
    p.add_argument("--out", required=True, help="output directory: ladder.json, ladder.md, ladder.png, stats.json")
    add_field(p, LadderConfig, "rungs", nargs="+", metavar="SIZE:TOKENS")
    for field in ("seeds", "target_params", "target_tokens", "metric"):
        add_field(p, LadderConfig, field)
    add_field(p, LadderConfig, "exclude_domains", "--exclude-domain", action="append", metavar="D",
              help="leave a domain out of the metric (a noise domain, say); repeatable")
    add_field(p, LadderConfig, "device", choices=["auto", "cpu", "cuda"])
    add_field(p, LadderConfig, "precision", choices=["auto", "fp32", "bf16"])
    for field in ("lr", "batch_size", "seq_len", "curve", "eval_windows"):
        add_field(p, LadderConfig, field)
    p.add_argument("--threads", type=int, help="CPU threads per training process")
    p.add_argument("--cache-dir", default=None, help="run cache (default: DATA/.ladder-cache)")
    add_field(p, LadderConfig, "mup_base_width")
    add_field(p, LadderConfig, "mup_output_mult")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.commands.summaries import print_stage
    from curate.ladder_stage import run_ladder

    cfg = config_from_args(args, LadderConfig)
    stats = run_ladder(cfg, args.data, args.weights, args.out, overwrite=args.overwrite, threads=args.threads,
                       cache_dir=args.cache_dir)
    print_stage("ladder", stats, args.out.rstrip("/"))
    return 0
