"""`curate ingest INPUT... --out DIR`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, add_spark_args, config_from_args, spark_from_args
from curate.commands.summaries import print_stage
from curate.ingest_config import IngestConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="validate, normalize and label raw records; bad ones go to quarantine/")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="file, directory or glob of .jsonl[.gz|.zst] / .parquet")
    p.add_argument("--out", required=True, help="output directory")
    for field in ("domain_field", "default_domain", "max_doc_chars"):
        add_field(p, IngestConfig, field)
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.ingest import run_ingest

    cfg = config_from_args(args, IngestConfig, inputs=args.inputs)
    stats = run_ingest(spark_from_args(args, args.inputs), cfg, args.out, args.overwrite)
    print_stage("ingest", stats, args.out)
    return 0
