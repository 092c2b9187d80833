"""`curate dedup INPUT --out DIR [--threshold 0.8] [--num-perm N] [--ngram N] [--bands B --rows R] [--against DIR]`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_overwrite_arg, add_spark_args, spark_from_args
from curate.commands.summaries import print_stage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedup", help="remove exact and near-duplicate documents (MinHash LSH, connected components)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory, or raw input files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard similarity of duplicates (default 0.8)")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128)")
    p.add_argument("--ngram", type=int, default=5, help="words per shingle (default 5)")
    p.add_argument("--bands", type=int, default=None, help="LSH bands (with --rows; default: searched)")
    p.add_argument("--rows", type=int, default=None, help="rows per LSH band (with --bands)")
    p.add_argument("--candidate-threshold", type=float, default=None,
                   help="similarity the LSH S-curve is centred on (default: threshold - 0.2)")
    p.add_argument("--verify", choices=["estimate", "exact"], default="exact",
                   help="check candidates by exact shingle Jaccard (default) or the MinHash estimate")
    p.add_argument("--against", default=None, metavar="DIR",
                   help="a curated reference corpus (stage output): remove documents that duplicate it")
    p.add_argument("--seed", type=int, default=1, help="seed of the MinHash permutations (default 1)")
    p.add_argument("--output-partitions", type=int, default=0, help="files per table (default: by input size)")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.config import validate_config
    from curate.dedup.config import DedupConfig
    from curate.dedup.stage import run_dedup

    cfg = validate_config(
        DedupConfig,
        {"threshold": args.threshold, "num_perm": args.num_perm, "ngram": args.ngram, "bands": args.bands,
         "rows": args.rows, "candidate_threshold": args.candidate_threshold, "verify": args.verify,
         "against": args.against, "seed": args.seed, "output_partitions": args.output_partitions},
        "command line",
    )
    stats = run_dedup(spark_from_args(args, args.inputs), cfg, args.inputs, args.out, args.overwrite)
    print_stage("dedup", stats, args.out)
    return 0
