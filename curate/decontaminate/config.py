"""DecontamConfig: the decontaminate stage's settings, from a pipeline's `[decontaminate]` table or the CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curate.config_model import StrictModel


class DecontamConfig(StrictModel):
    """Remove (or cut) training text that shares word n-grams with evaluation sets. The defaults are GPT-3's 13-grams
    and datatrove's rule: one shared n-gram makes a document contaminated."""

    # Evaluation sets: JSONL/Parquet files, directories or globs (see curate.decontaminate.evalsets).
    against: list[str] = Field(default_factory=list)
    ngram: int = Field(default=13, ge=1, le=64)
    # document: drop a contaminated document; span: cut the overlapping words out of it (dropped when fewer than
    # `ngram` words are left).
    mode: Literal["document", "span"] = "document"
    # N-gram positions of a document found in the eval sets before it counts as contaminated.
    min_overlap: int = Field(default=1, ge=1)
    layout: Literal["auto", "fields", "qa", "prompt_completion"] = "auto"
    # The eval records' text fields for the `fields` layout (default: text); naming them implies that layout.
    text_fields: list[str] = Field(default_factory=list)
    id_field: str = "id"
    # Output files per table (per domain directory for kept/); 0 = one per 128 MiB of input.
    output_partitions: int = Field(default=0, ge=0)
