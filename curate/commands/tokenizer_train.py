"""`curate tokenizer-train INPUT... --vocab-size N --out tokenizer.json`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_spark_args, spark_from_args
from curate.console import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer-train", help="train a byte-level BPE tokenizer on a sample balanced across domains")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory or raw .jsonl/.parquet files")
    p.add_argument("--vocab-size", type=int, required=True, help="vocabulary size, <|endoftext|> included")
    p.add_argument("--out", required=True, help="where to write tokenizer.json")
    p.add_argument("--chars-per-domain", type=int, default=20_000_000, help="sample size per domain (characters)")
    p.add_argument("--min-frequency", type=int, default=2, help="a merge needs at least this many occurrences")
    p.add_argument("--seed", type=int, default=1234, help="sample seed")
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.config import validate_config
    from curate.tokenize.config import TokenizerTrainConfig
    from curate.tokenize.tokenizer import sample_texts, train_bpe

    cfg = validate_config(
        TokenizerTrainConfig,
        {"vocab_size": args.vocab_size, "chars_per_domain": args.chars_per_domain,
         "min_frequency": args.min_frequency, "seed": args.seed},
        "command line",
    )
    from curate.output_target import check_file_target, json_with_keys

    check_file_target(args.out, json_with_keys("model", "added_tokens"), "tokenizer.json file")
    spark = spark_from_args(args, args.inputs)
    texts = sample_texts(spark, args.inputs, cfg.chars_per_domain, cfg.seed)
    info = train_bpe(texts, cfg.vocab_size, args.out, cfg.min_frequency)
    console.print(f"tokenizer-train: vocab {info.vocab_size:,}, EOS {info.eos_token!r} = {info.eos_id} -> {args.out}")
    return 0
