"""The pipeline runner: stages in order, each reading the previous stage's output directory under the run directory."""

from __future__ import annotations

import hashlib
import json
import re
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


def _tokenize(ctx: StageContext) -> dict[str, Any]:
    from curate.fs import local_path
    from curate.tokenize.stage import run_tokenize
    from curate.tokenize.tokenizer import sample_texts, train_bpe

    if ctx.input is None:
        raise CurateError("tokenize: needs an earlier stage's output to read (add ingest to stages)")
    cfg = ctx.config.tokenize
    seed = ctx.config.run.seed if cfg.seed is None else cfg.seed
    tokenizer = cfg.tokenizer
    if tokenizer is None:
        # No tokenizer given: train one on this run's curated documents (balanced across domains).
        t = cfg.train
        tokenizer = f"{local_path(ctx.run_dir).rstrip('/')}/tokenizer.json"
        texts = sample_texts(ctx.spark, [ctx.input], t.chars_per_domain, seed if t.seed is None else t.seed)
        info = train_bpe(texts, t.vocab_size, tokenizer, t.min_frequency)
        console.print(f"tokenizer: trained byte-level BPE, vocab {info.vocab_size:,} -> {tokenizer}")
    return run_tokenize(ctx.spark, cfg.model_copy(update={"tokenizer": tokenizer, "seed": seed}), [ctx.input], ctx.out)


def _shards(ctx: StageContext) -> dict[str, Any]:
    import json
    import os

    from curate.fs import local_path
    from curate.tokenize.shards import run_shards, uniform_weights

    if ctx.input is None or not os.path.exists(f"{local_path(ctx.input)}/datasets.json"):
        raise CurateError("shards: needs the tokenize stage before it (add tokenize to stages)")
    cfg = ctx.config.shards
    run_dir = local_path(ctx.run_dir).rstrip("/")
    weights = cfg.weights
    if weights is None:
        if "mix" in ctx.config.stages:
            weights = f"{run_dir}/mix/weights.json"
        else:
            # No mixer ran: uniform weights, written down so the manifest can point at (and hash) them.
            weights = f"{run_dir}/uniform_weights.json"
            with open(weights, "w") as f:
                json.dump(uniform_weights(local_path(ctx.input)), f, indent=2, sort_keys=True)
            console.print(f"shards: no mix stage ran; uniform weights -> {weights}")
    seed = ctx.config.run.seed if cfg.seed is None else cfg.seed
    stats = run_shards(cfg.model_copy(update={"weights": weights, "seed": seed}), local_path(ctx.input),
                       local_path(ctx.out))
    console.print(f"shards: {stats['tokens']:,} tokens, {stats['docs']:,} documents in {stats['shards']} shards | "
                  f"{stats['wall_seconds']:.1f}s\n  -> {ctx.out}")
    return stats


def _dedup(ctx: StageContext) -> dict[str, Any]:
    from curate.dedup.stage import run_dedup

    if ctx.input is None:
        raise CurateError("dedup: no input (add ingest before it in `stages`)")
    return run_dedup(ctx.spark, ctx.config.dedup, [ctx.input], ctx.out)


def _mix(ctx: StageContext) -> dict[str, Any]:
    import os

    from curate.fs import local_path
    from curate.mix_stage import run_mix, summary

    if ctx.input is None or not os.path.exists(f"{local_path(ctx.input)}/datasets.json"):
        raise CurateError("mix: needs the tokenize stage before it (add tokenize to stages)")
    stats = run_mix(ctx.config.mix, local_path(ctx.input), local_path(ctx.out), seed=ctx.config.run.seed)
    console.print(summary(stats, f"{ctx.out}/weights.json"))
    return stats


def _ladder(ctx: StageContext) -> dict[str, Any]:
    import os

    from curate.fs import local_path
    from curate.ladder_stage import run_ladder

    if ctx.input is None or not os.path.exists(f"{local_path(ctx.input)}/datasets.json"):
        raise CurateError("ladder: needs the tokenize stage before it (add tokenize to stages)")
    run_dir = local_path(ctx.run_dir).rstrip("/")
    weights = [f"{run_dir}/mix/weights.json"] if "mix" in ctx.config.stages else []
    stats = run_ladder(ctx.config.ladder, local_path(ctx.input), weights, local_path(ctx.out))
    for line in stats["verdicts"]:
        console.print(line)
    if stats["warning"]:
        console.print(f"[bold yellow]ladder: {stats['warning']}[/]")
    console.print(f"ladder: {stats['trained_runs']} runs trained, {stats['cached_runs']} cached | "
                  f"{stats['wall_seconds']:.1f}s\n  -> {ctx.out}/ladder.md")
    return stats


def _filter(ctx: StageContext) -> dict[str, Any]:
    from curate.filter.stage import run_filter

    if ctx.input is None:
        raise CurateError("stages: filter needs an earlier stage (ingest) to read from")
    return run_filter(ctx.spark, ctx.config.filter, [ctx.input], ctx.out)


def _decontaminate(ctx: StageContext) -> dict[str, Any]:
    from curate.decontaminate.stage import run_decontaminate

    if ctx.input is None:
        raise CurateError("stages: decontaminate needs an earlier stage (ingest) to read from")
    return run_decontaminate(ctx.spark, ctx.config.decontaminate, [ctx.input], ctx.out)


# name -> runner; the order of a run is the order of `stages` in the pipeline file.
STAGE_RUNNERS: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "ingest": _ingest,
    "tokenize": _tokenize,
    "mix": _mix,
    "shards": _shards,
    "dedup": _dedup,
    "filter": _filter,
    "decontaminate": _decontaminate,
    "ladder": _ladder,
}
# Which earlier stage's output a stage reads, by preference (the latest one that ran).
STAGE_ORDER = ["ingest", "dedup", "filter", "decontaminate", "tokenize", "mix", "ladder", "shards"]


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
    if name == "decontaminate" and cfg.decontaminate.against:
        from curate.sources import list_inputs

        # The eval sets are inputs too: an edited eval set must rerun the stage under --resume.
        payload["eval_sets"] = [[f.rel, f.path, f.size, f.mtime] for a in cfg.decontaminate.against
                                for f in list_inputs(spark, [a]).files]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _finished_with(fs: HadoopFS, out: str, fingerprint: str) -> bool:
    if not (fs.exists(f"{out}/_SUCCESS") and fs.exists(f"{out}/{FINGERPRINT_FILE}")):
        return False
    return fs.read_text(f"{out}/{FINGERPRINT_FILE}").strip() == fingerprint


# What a run directory holds besides its stage directories; the dot-names are the stages' locks, temporary and
# set-aside directories (curate.output_target) and the tokenizer's temporary file.
RUN_FILES = frozenset({"tokenizer.json", "uniform_weights.json", "report.html"})
_RUN_HIDDEN = re.compile(r"\.(%s)\..*" % "|".join([*STAGE_RUNNERS, *(re.escape(f) for f in RUN_FILES)]))


def check_run_dir(fs: HadoopFS, run_dir: str) -> None:
    """A run directory is missing, empty or an earlier run's: the runner writes tokenizer.json and
    uniform_weights.json into it, so a directory of other files is refused before they could be overwritten."""
    if not run_dir.strip():
        raise CurateError("--out is empty: name the run directory")
    if not fs.exists(run_dir):
        return
    if not fs.is_dir(run_dir):
        raise CurateError(f"run directory {run_dir} is a file: choose another --out")
    foreign = [n for n in fs.list_names(run_dir)
               if n not in STAGE_RUNNERS and n not in RUN_FILES and not _RUN_HIDDEN.fullmatch(n)]
    if foreign:
        raise CurateError(f"run directory {run_dir} holds files that are not a curate run's "
                          f"({', '.join(sorted(foreign)[:3])}): choose another --out")


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
    check_run_dir(fs, run_dir)
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
        if name not in ("mix", "ladder"):
            previous = out
    return results
