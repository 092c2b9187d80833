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
    from curate.tokenize.stage import run_tokenize, with_tokenizer

    if ctx.input is None:
        raise CurateError("tokenize: needs an earlier stage's output to read (add ingest to stages)")
    cfg = ctx.config.tokenize
    seed = ctx.config.run.seed if cfg.seed is None else cfg.seed
    # Without a tokenizer the stage trains one on this run's curated documents, kept beside the stage directories.
    cfg = with_tokenizer(ctx.spark, cfg, [ctx.input], f"{local_path(ctx.run_dir).rstrip('/')}/tokenizer.json", seed)
    return run_tokenize(ctx.spark, cfg.model_copy(update={"seed": seed}), [ctx.input], ctx.out)


def _shards(ctx: StageContext) -> dict[str, Any]:
    import os

    from curate.fs import local_path
    from curate.mix_stage import write_uniform_weights
    from curate.shards.stage import run_shards

    if ctx.input is None or not os.path.exists(f"{local_path(ctx.input)}/datasets.json"):
        raise CurateError("shards: needs the tokenize stage before it (add tokenize to stages)")
    cfg = ctx.config.shards
    run_dir = local_path(ctx.run_dir).rstrip("/")
    weights = cfg.weights
    if weights is None:
        if "mix" in ctx.config.stages:
            weights = f"{run_dir}/mix/weights.json"
        else:
            weights = write_uniform_weights(local_path(ctx.input), f"{run_dir}/uniform_weights.json")
    seed = ctx.config.run.seed if cfg.seed is None else cfg.seed
    return run_shards(cfg.model_copy(update={"weights": weights, "seed": seed}), local_path(ctx.input),
                      local_path(ctx.out))


def _dedup(ctx: StageContext) -> dict[str, Any]:
    from curate.dedup.stage import run_dedup

    if ctx.input is None:
        raise CurateError("dedup: no input (add ingest before it in `stages`)")
    return run_dedup(ctx.spark, ctx.config.dedup, [ctx.input], ctx.out)


def _mix(ctx: StageContext) -> dict[str, Any]:
    import os

    from curate.fs import local_path
    from curate.mix_stage import run_mix

    if ctx.input is None or not os.path.exists(f"{local_path(ctx.input)}/datasets.json"):
        raise CurateError("mix: needs the tokenize stage before it (add tokenize to stages)")
    return run_mix(ctx.config.mix, local_path(ctx.input), local_path(ctx.out), seed=ctx.config.run.seed)


def _ladder(ctx: StageContext) -> dict[str, Any]:
    import os

    from curate.fs import local_path
    from curate.ladder_stage import run_ladder

    if ctx.input is None or not os.path.exists(f"{local_path(ctx.input)}/datasets.json"):
        raise CurateError("ladder: needs the tokenize stage before it (add tokenize to stages)")
    run_dir = local_path(ctx.run_dir).rstrip("/")
    weights = [f"{run_dir}/mix/weights.json"] if "mix" in ctx.config.stages else []
    return run_ladder(ctx.config.ladder, local_path(ctx.input), weights, local_path(ctx.out))


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


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its runner, whether its output is what the stages after it read, and what else it reads
    (for the --resume fingerprint)."""

    run: Callable[[StageContext], dict[str, Any]]
    # mix and ladder write weights and verdicts, not documents or tokens: a later stage reads what came before them.
    feeds_next: bool = True
    # Corpora the stage reads besides the stage before it, {fingerprint key: paths}: listed with sizes and times.
    corpora: Callable[[PipelineConfig], dict[str, list[str]]] | None = None
    # Small files it reads (a weights file, a tokenizer), {fingerprint key: path or None}: hashed by content.
    files: Callable[[PipelineConfig], dict[str, str | None]] | None = None
    # False for a stage no later stage reads (ladder: its verdicts): its settings stay out of the fingerprints after
    # it, so changing them under --resume reruns it alone, not the shards after it.
    read_later: bool = True


# In run order: a run follows this order whatever the order of `stages` in the pipeline file, and each stage reads
# the output of the latest stage before it that ran and feeds the next.
STAGES: dict[str, Stage] = {
    "ingest": Stage(_ingest, corpora=lambda cfg: {"inputs": cfg.ingest.inputs}),
    "dedup": Stage(_dedup),
    "filter": Stage(_filter),
    "decontaminate": Stage(_decontaminate, corpora=lambda cfg: {"eval_sets": cfg.decontaminate.against}),
    "tokenize": Stage(_tokenize, files=lambda cfg: {"tokenizer_file": cfg.tokenize.tokenizer}),
    "mix": Stage(_mix, feeds_next=False),
    "ladder": Stage(_ladder, feeds_next=False, read_later=False,
                    files=lambda cfg: {f"weights_file:{p}": p for p in cfg.ladder.weights}),
    "shards": Stage(_shards, files=lambda cfg: {"weights_file": cfg.shards.weights}),
}


def chain_fingerprints(spark: SparkSession | None, cfg: PipelineConfig) -> dict[str, str]:
    """Each stage's fingerprint, in run order: a chain, each covering everything upstream of it that a later stage
    reads (a stage with read_later=False stays out of the chain after it)."""
    out: dict[str, str] = {}
    upstream: str | None = None
    for name in sorted(cfg.stages, key=list(STAGES).index):
        out[name] = stage_fingerprint(spark, name, cfg, upstream)
        if STAGES[name].read_later:
            upstream = out[name]
    return out


def stage_fingerprint(spark: SparkSession, name: str, cfg: PipelineConfig, upstream: str | None) -> str:
    """What a stage's output depends on: its own config, the run seed, its input (the upstream stage's fingerprint)
    and what else it reads (its Stage's corpora, listed with sizes and times, and files, hashed)."""
    section = getattr(cfg, name, None)
    payload: dict[str, Any] = {
        "stage": name,
        "config": section.model_dump(mode="json") if section is not None else None,
        "seed": cfg.run.seed,
        "upstream": upstream,
    }
    stage = STAGES[name]
    if stage.corpora is not None:
        from curate.sources import list_inputs

        for key, paths in stage.corpora(cfg).items():
            if paths:  # an edited input or eval set must rerun the stage under --resume
                payload[key] = [[f.rel, f.path, f.size, f.mtime] for f in list_inputs(spark, paths).files]
    if stage.files is not None:
        for key, path in stage.files(cfg).items():
            if path:
                payload[key] = _file_digest(path)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: str) -> str | None:
    """sha256 of a small local file the stage reads; None when it is missing (the stage then says so itself)."""
    from curate.fs import local_path

    try:
        return hashlib.sha256(Path(local_path(path)).read_bytes()).hexdigest()
    except OSError:
        return None


def _finished_with(fs: HadoopFS, out: str, fingerprint: str) -> bool:
    if not (fs.exists(f"{out}/_SUCCESS") and fs.exists(f"{out}/{FINGERPRINT_FILE}")):
        return False
    return fs.read_text(f"{out}/{FINGERPRINT_FILE}").strip() == fingerprint


# What a run directory holds besides its stage directories; the dot-names are the stages' locks, temporary and
# set-aside directories (curate.output_target) and the tokenizer's temporary file.
RUN_FILES = frozenset({"tokenizer.json", "uniform_weights.json", "report.html"})
_RUN_HIDDEN = re.compile(r"\.(%s)\..*" % "|".join([*STAGES, *(re.escape(f) for f in RUN_FILES)]))


def check_run_dir(fs: HadoopFS, run_dir: str) -> None:
    """A run directory is missing, empty or an earlier run's: a run writes tokenizer.json and
    uniform_weights.json into it, so a directory of other files is refused before they could be overwritten."""
    if not run_dir.strip():
        raise CurateError("--out is empty: name the run directory")
    if not fs.exists(run_dir):
        return
    if not fs.is_dir(run_dir):
        raise CurateError(f"run directory {run_dir} is a file: choose another --out")
    foreign = [n for n in fs.list_names(run_dir)
               if n not in STAGES and n not in RUN_FILES and not _RUN_HIDDEN.fullmatch(n)]
    if foreign:
        raise CurateError(f"run directory {run_dir} holds files that are not a curate run's "
                          f"({', '.join(sorted(foreign)[:3])}): choose another --out")


def preflight(cfg: PipelineConfig) -> None:
    """What can be checked before any stage runs, checked: the stage list, each stage's input, and the settings a
    late stage would otherwise reject after hours of the earlier ones (the mixer and its parameters, the rungs)."""
    if not cfg.stages:
        raise CurateError(f"stages: empty (name some of: {', '.join(STAGES)})")
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise CurateError(f"stages: unknown stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    twice = sorted({s for s in cfg.stages if cfg.stages.count(s) > 1})
    if twice:
        raise CurateError(f"stages: {', '.join(twice)} listed twice (each stage runs once, in the order "
                          f"{', '.join(STAGES)})")
    for name in ("mix", "ladder", "shards"):
        if name in cfg.stages and "tokenize" not in cfg.stages:
            raise CurateError(f"{name}: needs the tokenize stage before it (add tokenize to stages)")
    if "mix" in cfg.stages:
        from curate.mix_stage import configure_mixer

        configure_mixer(cfg.mix, cfg.run.seed)
    if "ladder" in cfg.stages:
        from mixers.ladder import parse_rung

        try:
            rungs = [parse_rung(r) for r in cfg.ladder.rungs or []]
        except ValueError as exc:
            raise CurateError(f"ladder.rungs: {exc}") from None
        if cfg.ladder.rungs is not None and len(rungs) < 3:
            raise CurateError(f"ladder.rungs: a ladder needs at least 3 rungs, got {len(rungs)}")


def run_pipeline(
    spark: SparkSession, cfg: PipelineConfig, run_dir: str | None = None, resume: bool = False,
    on_stage: Callable[[str, dict[str, Any], str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every stage of `cfg.stages` in order under `run_dir` (default: the pipeline's run.out). With `resume`,
    a stage whose output finished (`_SUCCESS`) with the same fingerprint is skipped; any other is run again.
    `on_stage(name, stats, out)` is called after each stage that ran (the CLI prints its summary there)."""
    preflight(cfg)
    run_dir = (run_dir or cfg.run.out).rstrip("/")
    fs = HadoopFS(spark)
    check_run_dir(fs, run_dir)
    results: dict[str, dict[str, Any]] = {}
    previous: str | None = None
    fingerprints = chain_fingerprints(spark, cfg)
    for name in sorted(cfg.stages, key=list(STAGES).index):
        out = f"{run_dir}/{name}"
        fingerprint = fingerprints[name]
        if resume and _finished_with(fs, out, fingerprint):
            console.rule(f"[bold]{name}[/] (finished earlier with the same config and input: skipped)")
            results[name] = json.loads(fs.read_text(f"{out}/stats.json"))
        else:
            console.rule(f"[bold]{name}")
            # A stale fingerprint must never survive next to a new output.
            fs.delete(f"{out}/{FINGERPRINT_FILE}")
            stats = STAGES[name].run(StageContext(spark, cfg, run_dir, previous, out))
            fs.write_text(f"{out}/{FINGERPRINT_FILE}", fingerprint + "\n")
            results[name] = stats
            if on_stage is not None:
                on_stage(name, stats, out)
        if STAGES[name].feeds_next:
            previous = out
    return results
