"""The pipeline config: a TOML file (with `--set` overrides) composed of the stages' own config models, each defined
beside its stage.

Every model forbids unknown keys, so a typo ends in one line naming the key and the file, never in a silently
ignored setting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field

from curate.config_model import DEFAULT_SEED, StrictModel, validate_config
from curate.decontaminate.config import DecontamConfig
from curate.dedup.config import DedupConfig
from curate.errors import CurateError
from curate.filter.config import FilterConfig
from curate.ingest_config import DomainRule, IngestConfig
from curate.ladder_stage import LadderConfig
from curate.mix_stage import MixConfig
from curate.shards.config import ShardsConfig
from curate.tokenize.config import TokenizeConfig

# Defined beside their stages; importable from here as before.
__all__ = ["DomainRule", "IngestConfig", "PipelineConfig", "RunConfig", "SparkConfig", "apply_overrides",
           "load_pipeline", "parse_override", "read_toml", "validate_config"]


class SparkConfig(StrictModel):
    """Where Spark runs. `master = None` means local[*], or the session spark-submit created."""

    master: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)


class RunConfig(StrictModel):
    """The run as a whole: its directory and seed."""

    out: str = "out/run"
    seed: int = DEFAULT_SEED


class PipelineConfig(StrictModel):
    """A whole pipeline file: `[run]`, `[spark]` and one table per stage."""

    run: RunConfig = Field(default_factory=RunConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    stages: list[str] = Field(default_factory=lambda: ["ingest"])
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    ladder: LadderConfig = Field(default_factory=LadderConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value); the value is read as a TOML literal when it is one, else a string."""
    if "=" not in item:
        raise CurateError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise CurateError(f"--set {item!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each `key=value` into a nested dict (creating tables as needed)."""
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise CurateError(f"--set {item!r}: {p} is not a table")
            node = child
        node[parts[-1]] = value
    return data


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CurateError(f"pipeline file not found: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CurateError(f"{p}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError:
        raise CurateError(f"{p}: not UTF-8 text") from None


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Read a pipeline TOML, apply `--set` overrides, validate. Relative paths in it resolve against the current
    directory, as paths on the command line do (not against the file's directory)."""
    data = apply_overrides(read_toml(path), overrides or [])
    source = str(path) if not overrides else f"{path} (with --set)"
    return validate_config(PipelineConfig, data, source)
