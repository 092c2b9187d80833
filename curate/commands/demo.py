"""`curate demo [--out DIR]`: build the embedded demo corpus and run pipelines/demo.toml on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from curate.commands.flags import add_set_arg, add_spark_args, spark_from_args
from curate.console import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the demo corpus and run the demo pipeline end to end")
    p.add_argument("--out", default="out/demo", help="where the corpus and the run go (default: out/demo)")
    add_set_arg(p)
    add_spark_args(p, pipeline=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.commands.summaries import print_stage
    from curate.config import load_pipeline
    from curate.demo import build_demo_corpus
    from curate.pipeline import PIPELINES_DIR, run_pipeline

    out = Path(args.out).resolve()
    truth = build_demo_corpus(out / "corpus")
    console.print(f"demo corpus: {out / 'corpus' / 'raw'} ({sum(truth['docs_by_domain'].values()):,} documents "
                  f"in {len(truth['docs_by_domain'])} domains; ground truth in {out / 'corpus' / 'ground_truth.json'})")
    cfg = load_pipeline(
        PIPELINES_DIR / "demo.toml",
        [f'ingest.inputs=["{out / "corpus" / "raw"}"]', f'run.out="{out / "run"}"', *args.set],
    )
    # --master and --conf lay over the pipeline's [spark] as in `curate run`.
    run_pipeline(spark_from_args(args, pipeline=cfg.spark), cfg, on_stage=print_stage)
    console.print(f"[bold green]demo finished[/]: outputs under {out / 'run'}")
    from curate.report import build_report

    print(f"report: {build_report(out / 'run')}")
    return 0
