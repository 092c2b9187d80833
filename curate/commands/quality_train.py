"""`curate quality-train --positive P --negative N --out MODEL`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_spark_args, config_from_args, spark_from_args
from curate.console import console
from curate.filter.config import QualityConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality-train", help="train a fastText quality classifier (DCLM recipe, word bigrams)")
    p.add_argument("--positive", nargs="+", required=True, metavar="P", help="documents to keep more of")
    p.add_argument("--negative", nargs="+", required=True, metavar="N", help="ordinary documents")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (metrics go to MODEL.json)")
    for field in ("epoch", "dim", "valid_fraction", "max_docs_per_class", "lr", "seed"):
        add_field(p, QualityConfig, field)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.filter.quality import train_quality
    from curate.output_target import check_file_target, is_fasttext_model, json_with_keys
    from curate.sources import read_documents

    cfg = config_from_args(args, QualityConfig)
    check_file_target(args.out, is_fasttext_model, "fastText model")
    check_file_target(f"{args.out}.json", json_with_keys("train_docs"), "quality-train metrics file")
    spark = spark_from_args(args, [*args.positive, *args.negative])
    m = train_quality(read_documents(spark, args.positive), read_documents(spark, args.negative), args.out, cfg)
    console.print(f"quality-train: {m['train_docs']:,} training, {m['valid_docs']:,} held-out documents | "
                  f"precision {m.get('precision')} recall {m.get('recall')} ROC AUC {m.get('roc_auc')}")
    console.print(f"  -> {args.out} (+ {args.out}.json)")
    return 0
