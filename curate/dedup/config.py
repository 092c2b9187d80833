"""DedupConfig: the dedup stage's settings, from a pipeline's `[dedup]` table or `curate dedup` flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curate.config_model import StrictModel


class DedupConfig(StrictModel):
    """Exact + MinHash LSH near-duplicate removal. Defaults follow datatrove (word 5-grams, seed 1) and the
    issue's target (Jaccard 0.8)."""

    threshold: float = Field(default=0.8, gt=0.0, le=1.0, description="Jaccard similarity (estimated or exact, of "
                             "word shingles) at which two documents are duplicates")
    num_perm: int = Field(default=128, ge=8, le=1024, description="MinHash permutations")
    ngram: int = Field(default=5, ge=1, le=32, description="words per shingle")
    seed: int = Field(default=1, description="seed of the MinHash permutations")
    bands: int | None = Field(default=None, ge=1,
                              description="LSH bands, with rows (both or neither; neither: searched for "
                                          "candidate_threshold)")
    rows: int | None = Field(default=None, ge=1, description="rows per LSH band, with bands")
    # Candidates are verified afterwards, so a false candidate costs one check while a missed one is lost: centred
    # below the threshold for recall at the threshold.
    candidate_threshold: float | None = Field(default=None, gt=0.0, le=1.0,
                                              description="similarity the LSH S-curve is centred on "
                                                          "(default: threshold - 0.2)")
    # Exact by default: the estimate's error near the threshold costs precision and recall there, at no time saved.
    verify: Literal["estimate", "exact"] = Field(
        default="exact", description="how a candidate pair is checked: exact Jaccard of the shingle sets, or the "
                                     "MinHash estimate from the full signatures")
    against: str | None = Field(default=None, description="an already-curated reference corpus (a stage output "
                                                          "directory): documents that duplicate it are removed")
    # Alarms (stats.json and console): a component with more members, or removing more than this fraction.
    alarm_component_size: int = Field(default=1000, ge=2)
    alarm_removal_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    max_cc_rounds: int = Field(default=100, ge=1)
    output_partitions: int = Field(default=0, ge=0, description="output files per table (per domain directory "
                                                                 "for kept/); 0 = one per 128 MiB of input")

    @model_validator(mode="after")
    def _bands_rows(self) -> "DedupConfig":
        if (self.bands is None) != (self.rows is None):
            raise ValueError("bands and rows go together: give both or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} is more than num_perm = {self.num_perm}")
        return self

    def lsh_params(self) -> tuple[int, int]:
        """(bands, rows): given, or searched for the candidate threshold."""
        from curate.dedup.lsh import choose_bands

        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return choose_bands(self.effective_candidate_threshold(), self.num_perm)

    def effective_candidate_threshold(self) -> float:
        if self.candidate_threshold is not None:
            return self.candidate_threshold
        return max(0.05, round(self.threshold - 0.2, 4))
