"""`curate dedup INPUT --out DIR [--threshold 0.8] [--num-perm N] [--ngram N] [--bands B --rows R] [--against DIR]`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, add_spark_args, config_from_args, spark_from_args
from curate.commands.summaries import print_stage
from curate.dedup.config import DedupConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedup", help="remove exact and near-duplicate documents (MinHash LSH, connected components)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory, or raw input files")
    p.add_argument("--out", required=True, help="output directory")
    for field in ("threshold", "num_perm", "ngram", "bands", "rows", "candidate_threshold", "verify"):
        add_field(p, DedupConfig, field)
    add_field(p, DedupConfig, "against", metavar="DIR")
    add_field(p, DedupConfig, "seed")
    add_field(p, DedupConfig, "output_partitions")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dedup.stage import run_dedup

    cfg = config_from_args(args, DedupConfig)
    stats = run_dedup(spark_from_args(args, args.inputs), cfg, args.inputs, args.out, args.overwrite)
    print_stage("dedup", stats, args.out)
    return 0
