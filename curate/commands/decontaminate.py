"""`curate decontaminate INPUT --against EVAL... --out DIR [--ngram 13] [--mode document|span] [--min-overlap N]`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, add_spark_args, config_from_args, spark_from_args
from curate.commands.summaries import print_stage
from curate.decontaminate.config import DecontamConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decontaminate", help="remove (or cut) text that shares word n-grams with evaluation sets")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory, or raw files")
    add_field(p, DecontamConfig, "against", nargs="+", required=True, metavar="EVAL")
    p.add_argument("--out", required=True, help="output directory")
    add_field(p, DecontamConfig, "ngram")
    add_field(p, DecontamConfig, "mode")
    add_field(p, DecontamConfig, "min_overlap", metavar="N")
    add_field(p, DecontamConfig, "layout")
    add_field(p, DecontamConfig, "text_fields", "--text-field", action="append", metavar="F")
    add_field(p, DecontamConfig, "id_field")
    add_field(p, DecontamConfig, "output_partitions")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.decontaminate.stage import run_decontaminate

    cfg = config_from_args(args, DecontamConfig)
    spark = spark_from_args(args, [*args.inputs, *cfg.against])
    stats = run_decontaminate(spark, cfg, args.inputs, args.out, args.overwrite)
    print_stage("decontaminate", stats, args.out)
    return 0
