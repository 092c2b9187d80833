"""`curate filter INPUT --out DIR [--preset fineweb|gopher|c4|none] [--lang en] [--quality-model M] ...`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_overwrite_arg, add_spark_args, spark_from_args
from curate.commands.summaries import print_stage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filter", help="annotate every document (language, heuristics, quality), then drop by rule")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory, or raw files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--preset", choices=["fineweb", "gopher", "c4", "none"], default="fineweb",
                   help="heuristic rules (default: fineweb = Gopher repetition, Gopher quality, C4, FineWeb)")
    p.add_argument("--lang", action="append", default=None, metavar="CODE",
                   help="language to keep (repeatable or comma-separated; 'none' = no language rule; default: en)")
    p.add_argument("--lang-threshold", type=float, default=0.65, help="minimum language score (default: 0.65)")
    p.add_argument("--quality-model", default=None, help="fastText quality model from `curate quality-train`")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--quality-threshold", type=float, default=None, help="keep documents scoring at least this")
    q.add_argument("--quality-keep-top", type=float, default=None, metavar="F",
                   help="keep the top fraction F of each domain by quality score")
    p.add_argument("--output-partitions", type=int, default=0, help="files per domain (0 = one per 128 MiB)")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def languages(values: list[str] | None) -> list[str]:
    if values is None:
        return ["en"]
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return [] if out == ["none"] else out


def run(args: argparse.Namespace) -> int:
    from curate.config import validate_config
    from curate.filter.config import FilterConfig
    from curate.filter.stage import run_filter

    cfg = validate_config(
        FilterConfig,
        {"preset": args.preset, "languages": languages(args.lang), "lang_threshold": args.lang_threshold,
         "quality_threshold": args.quality_threshold, "quality_keep_top": args.quality_keep_top,
         "quality": {"model": args.quality_model}, "output_partitions": args.output_partitions},
        "command line",
    )
    stats = run_filter(spark_from_args(args, args.inputs), cfg, args.inputs, args.out, args.overwrite)
    print_stage("filter", stats, args.out)
    return 0
