"""Typed settings of the tokenizer trainer, the tokenize stage and the shard writer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curate.config_model import StrictModel


class TokenizerTrainConfig(StrictModel):
    """Byte-level BPE training on a sample balanced across domains."""

    vocab_size: int = Field(default=32768, ge=258)
    # Each domain contributes up to this many characters, so a large domain cannot crowd out a small one.
    chars_per_domain: int = Field(default=20_000_000, gt=0)
    min_frequency: int = Field(default=2, ge=1)
    seed: int | None = None  # None: the run's seed


class TokenizeConfig(StrictModel):
    """Per-domain Megatron datasets with train/valid/test splits by id hash (non-empty in every domain)."""

    # A tokenizer.json; None in a pipeline trains one with `train` on the stage's input.
    tokenizer: str | None = None
    train: TokenizerTrainConfig = Field(default_factory=TokenizerTrainConfig)
    # The end-of-document token; None finds it among the special tokens (<|endoftext|>, </s>, <|end_of_text|>, ...).
    eos_token: str | None = None
    # auto: uint16 below 65500 ids (Megatron's rule), else int32. Forcing uint16 makes any larger id an error.
    dtype: Literal["auto", "uint16", "int32"] = "auto"
    valid_fraction: float = Field(default=0.01, ge=0, lt=1)
    test_fraction: float = Field(default=0.01, ge=0, lt=1)
    # Per domain and held-out split (with a fraction above 0): at least this many documents, moved from train in hash
    # order; a domain of too few documents has the tail of each held out instead (splits.py). 0: fractions only.
    min_heldout_docs: int = Field(default=1, ge=0)
    # Part files are cut at document boundaries before they pass this many tokens (a longer document stands alone).
    part_tokens: int = Field(default=500_000_000, gt=0)
    # Spark tasks that tokenize; 0 = the session's parallelism or one per 64 MiB of input. Never changes the output.
    partitions: int = Field(default=0, ge=0)
    seed: int | None = None  # None: the run's seed (1234 from the CLI)

    @model_validator(mode="after")
    def _fractions(self) -> TokenizeConfig:
        if self.valid_fraction + self.test_fraction >= 1:
            from curate.errors import CurateError

            raise CurateError("valid_fraction + test_fraction must be below 1 (something must be left to train on)")
        return self


class ShardsConfig(StrictModel):
    """Training shards drawn from the per-domain train datasets by the mixture weights."""

    # weights.json (a mixer's output); None in a pipeline: the mix stage's, else uniform over the domains.
    weights: str | None = None
    # Total tokens to draw; None: as many as the train split holds (the mixture reshapes it at the same size).
    tokens: int | None = Field(default=None, gt=0)
    # A domain is repeated at most this many times; what it still lacks goes to the others by weight.
    max_epochs: float = Field(default=4.0, gt=0)
    shard_tokens: int = Field(default=500_000_000, gt=0)
    seed: int | None = None  # None: the run's seed (1234 from the CLI)
