"""The pipeline runner: stages in order, each reading the previous stage's output directory under the run directory."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pyspark.sql import SparkSession

from curate.config import PipelineConfig
from curate.console import console
from curate.errors import CurateError
from curate.fs import HadoopFS

FINGERPRINT_FILE = "_FINGERPRINT"
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


# name -> runner; the order of a run is the order of `stages` in the pipeline file.
STAGE_RUNNERS: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "ingest": _ingest,
}
# Which earlier stage's output a stage reads, by preference (the latest one that ran).
STAGE_ORDER = ["ingest", "dedup", "filter", "tokenize", "mix", "shards"]


def stage_fingerprint(spark: SparkSession, name: str, cfg: PipelineConfig, upstream: str | None) -> str:
    """What a stage's output depends on: its own config, the run seed, and its input (the upstream stage's
    fingerprint, or for ingest the input files' names, sizes and modification times)."""
    section = getattr(cfg, name, None)
    payload: dict[str, Any] = {
        "stage": name,
        "config": section.model_dump(mode="json") if section is not None else None,
        "seed": cfg.run.seed,
        "upstream": upstream,
    }
    if name == "ingest":
        from curate.sources import list_inputs

        payload["inputs"] = [[f.rel, f.path, f.size, f.mtime] for f in list_inputs(spark, cfg.ingest.inputs).files]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _finished_with(fs: HadoopFS, out: str, fingerprint: str) -> bool:
    if not (fs.exists(f"{out}/_SUCCESS") and fs.exists(f"{out}/{FINGERPRINT_FILE}")):
        return False
    return fs.read_text(f"{out}/{FINGERPRINT_FILE}").strip() == fingerprint


def run_pipeline(
    spark: SparkSession, cfg: PipelineConfig, run_dir: str | None = None, resume: bool = False
) -> dict[str, dict[str, Any]]:
    """Run every stage of `cfg.stages` in order under `run_dir` (default: the pipeline's run.out). With `resume`,
    a stage whose output finished (`_SUCCESS`) with the same fingerprint is skipped; any other is run again."""
    from curate.commands.common import print_summary

    unknown = [s for s in cfg.stages if s not in STAGE_RUNNERS]
    if unknown:
        raise CurateError(f"stages: unknown stage {unknown[0]!r} (known: {', '.join(STAGE_RUNNERS)})")
    run_dir = (run_dir or cfg.run.out).rstrip("/")
    fs = HadoopFS(spark)
    results: dict[str, dict[str, Any]] = {}
    previous: str | None = None
    upstream: str | None = None
    for name in sorted(cfg.stages, key=STAGE_ORDER.index):
        out = f"{run_dir}/{name}"
        fingerprint = stage_fingerprint(spark, name, cfg, upstream)
        if resume and _finished_with(fs, out, fingerprint):
            console.rule(f"[bold]{name}[/] (finished earlier with the same config and input: skipped)")
            results[name] = json.loads(fs.read_text(f"{out}/stats.json"))
        else:
            console.rule(f"[bold]{name}")
            # A stale fingerprint must never survive next to a new output.
            fs.delete(f"{out}/{FINGERPRINT_FILE}")
            stats = STAGE_RUNNERS[name](StageContext(spark, cfg, run_dir, previous, out))
            fs.write_text(f"{out}/{FINGERPRINT_FILE}", fingerprint + "\n")
            results[name] = stats
            if "input_docs" in stats:
                print_summary(stats, out)
        upstream = fingerprint  # a chain: each stage's fingerprint covers everything upstream of it
        if name != "mix":
            previous = out
    return results
