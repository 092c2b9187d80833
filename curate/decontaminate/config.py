"""DecontamConfig: the decontaminate stage's settings, from a pipeline's `[decontaminate]` table or the CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curate.config_model import StrictModel


class DecontamConfig(StrictModel):
    """Remove (or cut) training text that shares word n-grams with evaluation sets. The defaults are GPT-3's 13-grams
    and datatrove's rule: one shared n-gram makes a document contaminated."""

    against: list[str] = Field(default_factory=list, description="evaluation sets: JSONL/Parquet files, "
                               "directories or globs (one set per entry; see curate.decontaminate.evalsets)")
    ngram: int = Field(default=13, ge=1, le=64, description="words per n-gram")
    mode: Literal["document", "span"] = Field(
        default="document", description="document: drop a contaminated document; span: cut the overlapping words "
                                        "out of it (dropped when fewer than ngram words are left)")
    min_overlap: int = Field(default=1, ge=1, description="n-gram positions of a document found in the eval sets "
                                                          "before it counts as contaminated")
    layout: Literal["auto", "fields", "qa", "prompt_completion"] = Field(
        default="auto", description="eval record layout: text fields, question+choices+answer, prompt+completion, "
                                    "or auto: detected per set")
    text_fields: list[str] = Field(default_factory=list, description="the eval records' fields holding text for the "
                                   "fields layout (default: text); naming them implies that layout")
    id_field: str = Field(default="id", description="eval record field naming the item (else file:line)")
    output_partitions: int = Field(default=0, ge=0, description="output files per table (per domain directory "
                                                                 "for kept/); 0 = one per 128 MiB of input")
