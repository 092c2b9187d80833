"""`curate decontaminate INPUT --against EVAL... --out DIR [--ngram 13] [--mode document|span] [--min-overlap N]`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_overwrite_arg, add_spark_args, spark_from_args
from curate.commands.summaries import print_stage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decontaminate", help="remove (or cut) text that shares word n-grams with evaluation sets")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory, or raw files")
    p.add_argument("--against", nargs="+", required=True, metavar="EVAL",
                   help="evaluation sets: JSONL/Parquet files, directories or globs (one set per argument)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--ngram", type=int, default=13, help="words per n-gram (default 13)")
    p.add_argument("--mode", choices=["document", "span"], default="document",
                   help="drop a contaminated document (default), or cut its overlapping spans")
    p.add_argument("--min-overlap", type=int, default=1, metavar="N",
                   help="matching n-gram positions that make a document contaminated (default 1)")
    p.add_argument("--layout", choices=["auto", "fields", "qa", "prompt_completion"], default="auto",
                   help="eval record layout: text fields, question+choices+answer, prompt+completion (default: "
                        "detected per set)")
    p.add_argument("--text-field", action="append", default=[], metavar="F",
                   help="eval record field holding text (repeatable; implies --layout fields)")
    p.add_argument("--id-field", default="id", help="eval record field naming the item (default: id; else file:line)")
    p.add_argument("--output-partitions", type=int, default=0, help="files per table (default: by input size)")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.config import validate_config
    from curate.decontaminate.config import DecontamConfig
    from curate.decontaminate.stage import run_decontaminate

    cfg = validate_config(
        DecontamConfig,
        {"against": args.against, "ngram": args.ngram, "mode": args.mode, "min_overlap": args.min_overlap,
         "layout": args.layout, "text_fields": args.text_field, "id_field": args.id_field,
         "output_partitions": args.output_partitions},
        "command line",
    )
    spark = spark_from_args(args, [*args.inputs, *args.against])
    stats = run_decontaminate(spark, cfg, args.inputs, args.out, args.overwrite)
    print_stage("decontaminate", stats, args.out)
    return 0
