"""`curate filter INPUT --out DIR [--preset fineweb|gopher|c4|none] [--lang en] [--quality-model M] ...`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, add_spark_args, set_fields, spark_from_args
from curate.commands.summaries import print_stage
from curate.filter.config import FilterConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filter", help="annotate every document (language, heuristics, quality), then drop by rule")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a stage output directory, or raw files")
    p.add_argument("--out", required=True, help="output directory")
    add_field(p, FilterConfig, "preset")
    add_field(p, FilterConfig, "languages", "--lang", action="append", metavar="CODE",
              help="language to keep (repeatable or comma-separated; 'none' = no language rule)")
    add_field(p, FilterConfig, "lang_threshold")
    add_field(p, FilterConfig, "quality.model", "--quality-model")
    q = p.add_mutually_exclusive_group()
    add_field(q, FilterConfig, "quality_threshold")
    add_field(q, FilterConfig, "quality_keep_top", metavar="F")
    add_field(p, FilterConfig, "output_partitions")
    add_overwrite_arg(p)
    add_spark_args(p)
    p.set_defaults(func=run)


def languages(values: list[str]) -> list[str]:
    """--lang values: repeated or comma-separated codes; 'none' alone means no language rule."""
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return [] if out == ["none"] else out


def run(args: argparse.Namespace) -> int:
    from curate.config_model import validate_config
    from curate.filter.stage import run_filter

    fields = set_fields(args)
    if "languages" in fields:
        fields["languages"] = languages(fields["languages"])
    cfg = validate_config(FilterConfig, fields, "command line")
    stats = run_filter(spark_from_args(args, args.inputs), cfg, args.inputs, args.out, args.overwrite)
    print_stage("filter", stats, args.out)
    return 0
