"""`curate ingest INPUT... --out DIR`"""

from __future__ import annotations

import argparse

from curate.commands.common import add_overwrite_arg, add_spark_args, spark_from_args
from curate.commands.summaries import print_stage
from curate.config import IngestConfig, validate_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="validate, normalize and label raw records; bad ones go to quarantine/")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="file, directory or glob of .jsonl[.gz|.zst] / .parquet")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--domain-field", default="domain", help="record field naming the domain (default: domain)")
    p.add_argument("--default-domain", default="unknown", help="domain of records with none (default: unknown)")
    p.add_argument("--max-doc-chars", type=int, default=1_000_000, help="longer documents are quarantined")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.ingest import run_ingest

    cfg = validate_config(
        IngestConfig,
        {"inputs": args.inputs, "domain_field": args.domain_field, "default_domain": args.default_domain,
         "max_doc_chars": args.max_doc_chars},
        "command line",
    )
    stats = run_ingest(spark_from_args(args, args.inputs), cfg, args.out, args.overwrite)
    print_stage("ingest", stats, args.out)
    return 0
