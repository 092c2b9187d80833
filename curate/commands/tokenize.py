"""`curate tokenize INPUT... --tokenizer tokenizer.json --out DIR`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_overwrite_arg, add_spark_args, spark_from_args
from curate.commands.summaries import print_stage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="per-domain Megatron datasets (train/valid/test) from curated documents")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory or raw .jsonl/.parquet files")
    p.add_argument("--tokenizer", required=True, help="a tokenizers tokenizer.json (ours, GPT-2, Llama, ...)")
    p.add_argument("--out", required=True, help="output directory (local or a shared mount)")
    p.add_argument("--eos-token", default=None, help="end-of-document token (default: found among special tokens)")
    p.add_argument("--dtype", choices=["auto", "uint16", "int32"], default="auto",
                   help="token dtype (auto: uint16 below 65500 ids, else int32)")
    p.add_argument("--valid-fraction", type=float, default=0.01, help="documents per domain held out for validation")
    p.add_argument("--test-fraction", type=float, default=0.01, help="documents per domain held out for test")
    p.add_argument("--min-heldout-docs", type=int, default=1,
                   help="documents per domain in valid and in test at least (0: the fractions alone)")
    p.add_argument("--part-tokens", type=int, default=500_000_000, help="tokens per part file at most")
    p.add_argument("--partitions", type=int, default=0, help="Spark tasks (0: automatic; never changes the output)")
    p.add_argument("--seed", type=int, default=1234, help="split and order seed")
    p.add_argument("--leakage-threshold", type=float, default=0.5,
                   help="Jaccard at which a train document leaks into a held-out one (MinHash estimate)")
    p.add_argument("--no-leakage-check", action="store_true",
                   help="skip the held-out leakage figure (near-duplicates of valid/test documents in train)")
    p.add_argument("--split-by-cluster", action="store_true",
                   help="move each held-out document's train near-duplicates (whole clusters) into its split")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.config import validate_config
    from curate.tokenize.config import TokenizeConfig
    from curate.tokenize.stage import run_tokenize

    cfg = validate_config(
        TokenizeConfig,
        {"tokenizer": args.tokenizer, "eos_token": args.eos_token, "dtype": args.dtype,
         "valid_fraction": args.valid_fraction, "test_fraction": args.test_fraction,
         "min_heldout_docs": args.min_heldout_docs,
         "part_tokens": args.part_tokens, "partitions": args.partitions, "seed": args.seed,
         "leakage": {"check": not args.no_leakage_check, "threshold": args.leakage_threshold,
                     "split_by_cluster": args.split_by_cluster}},
        "command line",
    )
    stats = run_tokenize(spark_from_args(args, args.inputs), cfg, args.inputs, args.out, args.overwrite)
    print_stage("tokenize", stats, args.out)
    return 0
