"""IngestConfig: the ingest stage's settings, from a pipeline's `[ingest]` table or `curate ingest` flags; the input
reader (curate.sources) reads records by it too."""

from __future__ import annotations

import fnmatch
import re

from pydantic import Field, field_validator

from curate.config_model import StrictModel


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
    domain_field: str = Field(
        default="domain",
        description="record field naming the domain; path rules apply when it is absent, then default_domain")
    domain_rules: list[DomainRule] = Field(default_factory=list)
    default_domain: str = Field(default="unknown", description="domain of records with none")
    # Books need more: raise it per pipeline.
    max_doc_chars: int = Field(default=1_000_000, gt=0, description="longer documents are quarantined")
    output_partitions: int = Field(
        default=0, ge=0,
        description="output files per domain directory; 0 = one per 128 MiB of input (never the input's partitioning)")
