"""`curate tokenizer-train INPUT... --vocab-size N --out tokenizer.json`"""

from __future__ import annotations

import argparse

from curate.commands.flags import (add_field, add_seed, add_spark_args, config_from_args, spark_from_args,
                                   with_run_seed)
from curate.console import console
from curate.tokenize.config import TokenizerTrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer-train", help="train a byte-level BPE tokenizer on a sample balanced across domains")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory or raw .jsonl/.parquet files")
    add_field(p, TokenizerTrainConfig, "vocab_size", required=True, help="vocabulary size, <|endoftext|> included")
    p.add_argument("--out", required=True, help="where to write tokenizer.json")
    add_field(p, TokenizerTrainConfig, "chars_per_domain")
    add_field(p, TokenizerTrainConfig, "min_frequency")
    add_seed(p, TokenizerTrainConfig)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.output_target import check_file_target, json_with_keys
    from curate.tokenize.tokenizer import sample_texts, train_bpe

    cfg = with_run_seed(config_from_args(args, TokenizerTrainConfig))
    check_file_target(args.out, json_with_keys("model", "added_tokens"), "tokenizer.json file")
    spark = spark_from_args(args, args.inputs)
    texts = sample_texts(spark, args.inputs, cfg.chars_per_domain, cfg.seed)
    info = train_bpe(texts, cfg.vocab_size, args.out, cfg.min_frequency)
    console.print(f"tokenizer-train: vocab {info.vocab_size:,}, EOS {info.eos_token!r} = {info.eos_id} -> {args.out}")
    if info.vocab_size < cfg.vocab_size:
        # BPE stops when no pair is left to merge (or none reaches min_frequency): the sample is too small.
        console.print(f"[yellow]tokenizer-train: the sample held merges for {info.vocab_size:,} tokens, not the "
                      f"{cfg.vocab_size:,} asked (a larger --chars-per-domain, more text or a lower "
                      f"--min-frequency gives more)[/]")
    return 0
