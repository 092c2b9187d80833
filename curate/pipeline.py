"""The pipeline runner: stages in order, each reading the previous stage's output directory under the run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pyspark.sql import SparkSession

from curate.config import PipelineConfig
from curate.console import console
from curate.errors import CurateError

PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"


@dataclass
class StageContext:
    """What a stage runner gets: the session, the whole config, its input directory and its output directory."""

    spark: SparkSession
    config: PipelineConfig
    run_dir: str
    input: str | None
    out: str


def _ingest(ctx: StageContext) -> dict[str, Any]:
    from curate.ingest import run_ingest

    return run_ingest(ctx.spark, ctx.config.ingest, ctx.out)


def _filter(ctx: StageContext) -> dict[str, Any]:
    from curate.filter.stage import run_filter

    if ctx.input is None:
        raise CurateError("stages: filter needs an earlier stage (ingest) to read from")
    return run_filter(ctx.spark, ctx.config.filter, [ctx.input], ctx.out)


# name -> runner; the order of a run is the order of `stages` in the pipeline file.
STAGE_RUNNERS: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "ingest": _ingest,
    "filter": _filter,
}
# Which earlier stage's output a stage reads, by preference (the latest one that ran).
STAGE_ORDER = ["ingest", "dedup", "filter", "tokenize", "mix", "shards"]


def run_pipeline(spark: SparkSession, cfg: PipelineConfig, run_dir: str | None = None) -> dict[str, dict[str, Any]]:
    """Run every stage of `cfg.stages` in order under `run_dir` (default: the pipeline's run.out)."""
    from curate.commands.common import print_summary

    unknown = [s for s in cfg.stages if s not in STAGE_RUNNERS]
    if unknown:
        raise CurateError(f"stages: unknown stage {unknown[0]!r} (known: {', '.join(STAGE_RUNNERS)})")
    run_dir = run_dir or cfg.run.out
    results: dict[str, dict[str, Any]] = {}
    previous: str | None = None
    for name in sorted(cfg.stages, key=STAGE_ORDER.index):
        out = f"{run_dir.rstrip('/')}/{name}"
        console.rule(f"[bold]{name}")
        stats = STAGE_RUNNERS[name](StageContext(spark, cfg, run_dir, previous, out))
        results[name] = stats
        if "input_docs" in stats:
            print_summary(stats, out)
        if name != "mix":
            previous = out
    return results
