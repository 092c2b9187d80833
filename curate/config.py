"""Typed configuration: pipeline TOML files and CLI flags become one pydantic object per stage.

Every model forbids unknown keys, so a typo ends in one line naming the key and the file, never in a silently
ignored setting.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from curate.config_model import StrictModel
from curate.errors import CurateError
from curate.decontaminate.config import DecontamConfig
from curate.dedup.config import DedupConfig
from curate.filter.config import FilterConfig
from curate.ladder_stage import LadderConfig
from curate.mix_stage import MixConfig
from curate.tokenize.config import ShardsConfig, TokenizeConfig


class SparkConfig(StrictModel):
    """Where Spark runs. `master = None` means local[*], or the session spark-submit created."""

    master: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)


class DomainRule(StrictModel):
    """Label records whose source path (relative to its input) matches a glob pattern."""

    pattern: str
    domain: str

    @field_validator("pattern")
    @classmethod
    def _well_formed(cls, pattern: str) -> str:
        problem = glob_problem(pattern)
        if problem:
            raise ValueError(problem)
        return pattern

    def matches(self, rel: str) -> bool:
        """Whether a file's path relative to its input argument matches (fnmatch, as ingest labels records)."""
        return fnmatch.fnmatch(rel, self.pattern)


def glob_problem(pattern: str) -> str | None:
    """Why an fnmatch pattern cannot mean what its author meant, or None.

    fnmatch never rejects a pattern: an unclosed `[` silently becomes a literal `[`, and `{a,b}` (which Hadoop input
    globs accept) is literal text. Both match nothing their author intended, so both are errors here; a literal
    bracket or brace is still written `[[]` or `[{]`. An empty pattern matches no file."""
    if not pattern:
        return "empty pattern"
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "[":
            # fnmatch's own scan: `!` negates, and a `]` right after `[` or `[!` is a member, not the end.
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return f"unclosed '[' at position {i - 1} (fnmatch would read it as a literal '['; write '[[]' for one)"
            i = j + 1
        elif c == "{" and re.match(r"[^{}]*,[^{}]*}", pattern[i:]):
            return "'{a,b}' alternation is not fnmatch syntax: write one rule per alternative"
    return None


class IngestConfig(StrictModel):
    """Validation and labelling of raw records."""

    inputs: list[str] = Field(default_factory=list)
    text_field: str = "text"
    id_field: str = "id"
    # The record field that names the domain; path rules apply when it is absent, then default_domain.
    domain_field: str = "domain"
    domain_rules: list[DomainRule] = Field(default_factory=list)
    default_domain: str = "unknown"
    # Longer documents are quarantined (books need more: raise it per pipeline).
    max_doc_chars: int = Field(default=1_000_000, gt=0)
    # Output files per domain directory; 0 = one per 128 MiB of input (never the input's partitioning).
    output_partitions: int = Field(default=0, ge=0)


class RunConfig(StrictModel):
    """The run as a whole: its directory and seed."""

    out: str = "out/run"
    seed: int = 1234




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


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required value missing"
    value = err.get("input")
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    return f"{loc}: {err.get('msg', 'invalid value')}{shown}"


def validate_config(model: type[StrictModel], data: dict[str, Any], source: str) -> Any:
    """Build `model` from `data`; any error becomes one CurateError line naming the key and the source."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CurateError(f"{source}: {_describe(errors[0])}{more}") from None


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
    """Read a pipeline TOML, apply `--set` overrides, validate; relative input paths resolve against the file."""
    data = apply_overrides(read_toml(path), overrides or [])
    source = str(path) if not overrides else f"{path} (with --set)"
    return validate_config(PipelineConfig, data, source)
