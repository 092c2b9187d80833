"""`curate tokenize INPUT... --tokenizer tokenizer.json --out DIR`"""

from __future__ import annotations

import argparse

from curate.commands.flags import (add_field, add_overwrite_arg, add_seed, add_spark_args, config_from_args,
                                   spark_from_args, with_run_seed)
from curate.commands.summaries import print_stage
from curate.tokenize.config import TokenizeConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="per-domain Megatron datasets (train/valid/test) from curated documents")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory or raw .jsonl/.parquet files")
    add_field(p, TokenizeConfig, "tokenizer", required=True,
              help="a tokenizers tokenizer.json (ours, GPT-2, Llama, ...)")
    p.add_argument("--out", required=True, help="output directory (local or a shared mount)")
    for field in ("eos_token", "dtype", "engine", "valid_fraction", "test_fraction", "min_heldout_docs", "part_tokens",
                  "partitions"):
        add_field(p, TokenizeConfig, field)
    add_seed(p, TokenizeConfig)
    add_field(p, TokenizeConfig, "leakage.threshold", "--leakage-threshold")
    add_field(p, TokenizeConfig, "leakage.check", "--no-leakage-check", action="store_const", const=False,
              help="skip the held-out leakage figure (near-duplicates of valid/test documents in train)")
    add_field(p, TokenizeConfig, "leakage.split_by_cluster", "--split-by-cluster", action="store_const", const=True)
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.tokenize.stage import run_tokenize

    cfg = with_run_seed(config_from_args(args, TokenizeConfig))
    stats = run_tokenize(spark_from_args(args, args.inputs), cfg, args.inputs, args.out, args.overwrite)
    print_stage("tokenize", stats, args.out)
    return 0
