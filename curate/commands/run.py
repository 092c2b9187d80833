"""`curate run PIPELINE.toml [--out DIR] [--master URL] [--set key=value ...]`"""

from __future__ import annotations

import argparse

from curate.commands.flags import add_set_arg, add_spark_args, spark_from_args
from curate.console import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a pipeline file end to end")
    p.add_argument("pipeline", help="pipeline TOML file (see pipelines/)")
    p.add_argument("--out", default=None, help="run directory (default: the pipeline's run.out)")
    add_spark_args(p, pipeline=True)
    add_set_arg(p)
    p.add_argument("--resume", action="store_true",
                   help="skip stages that finished with the same config and input; rerun the others")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.commands.summaries import print_stage
    from curate.config import load_pipeline
    from curate.pipeline import preflight, run_pipeline

    cfg = load_pipeline(args.pipeline, args.set)
    preflight(cfg)  # before the JVM starts: a mistake in a late stage's settings costs nothing
    spark = spark_from_args(args, pipeline=cfg.spark)
    run_dir = args.out or cfg.run.out
    run_pipeline(spark, cfg, run_dir, resume=args.resume, on_stage=print_stage)
    console.print(f"[bold green]run finished[/]: {run_dir}")
    _write_report(run_dir)
    return 0


def _write_report(run_dir: str) -> None:
    from curate.fs import is_local, local_path
    from curate.report import build_report

    if is_local(run_dir):
        print(f"report: {build_report(local_path(run_dir))}")
