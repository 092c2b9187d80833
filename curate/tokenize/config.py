"""Typed settings of the tokenizer trainer and the tokenize stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curate.config_model import StrictModel


class TokenizerTrainConfig(StrictModel):
    """Byte-level BPE training on a sample balanced across domains."""

    vocab_size: int = Field(default=32768, ge=258, description="vocabulary size, <|endoftext|> included")
    # A large domain cannot crowd out a small one.
    chars_per_domain: int = Field(default=20_000_000, gt=0, description="sample size per domain (characters)")
    min_frequency: int = Field(default=2, ge=1, description="a merge needs at least this many occurrences")
    seed: int | None = Field(default=None, description="sample seed")  # None: the run's seed


class LeakageConfig(StrictModel):
    """The held-out leakage guard (leakage.py): valid/test documents with a MinHash near-duplicate in train."""

    check: bool = True
    # Lower than dedup's 0.8 on purpose: pairs dedup leaves at 0.5-0.8 still flatter a held-out loss.
    threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="Jaccard at which a train document leaks "
                                                                      "into a held-out one (MinHash estimate)")
    split_by_cluster: bool = Field(default=False, description="move every held-out document's train "
                                                              "near-duplicates (whole clusters) into its split")
    num_perm: int = Field(default=128, ge=8, le=1024)
    ngram: int = Field(default=5, ge=1, le=32)
    seed: int = 1  # the MinHash permutations' seed (dedup's default)
    # Rounds of the search from held-out documents through train (one per link of a chain of near-duplicates).
    max_rounds: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _cluster_needs_check(self) -> LeakageConfig:
        if self.split_by_cluster and not self.check:
            from curate.errors import CurateError

            raise CurateError("split_by_cluster needs the leakage check (leakage.check = true)")
        return self


class TokenizeConfig(StrictModel):
    """Per-domain Megatron datasets with train/valid/test splits by id hash (non-empty in every domain)."""

    tokenizer: str | None = Field(default=None, description="a tokenizers tokenizer.json (ours, GPT-2, Llama, ...); "
                                                            "None in a pipeline trains one with `train` on the input")
    train: TokenizerTrainConfig = Field(default_factory=TokenizerTrainConfig)
    eos_token: str | None = Field(
        default=None, description="end-of-document token (default: found among the special tokens: <|endoftext|>, "
                                  "</s>, <|end_of_text|>, ...)")
    # tiktoken only where it gives tokenizers' ids (engine.py); tiktoken asked for and unable is an error.
    engine: Literal["auto", "tiktoken", "tokenizers"] = Field(
        default="auto", description="the library that encodes (auto: tiktoken where it reproduces the tokenizer, "
                                    "several times faster; else tokenizers)")
    # Forcing uint16 makes any larger id an error.
    dtype: Literal["auto", "uint16", "int32"] = Field(
        default="auto", description="token dtype (auto: uint16 below 65500 ids, Megatron's rule, else int32)")
    valid_fraction: float = Field(default=0.01, ge=0, lt=1, description="documents per domain held out for "
                                                                       "validation")
    test_fraction: float = Field(default=0.01, ge=0, lt=1, description="documents per domain held out for test")
    # Moved from train in hash order; a domain of too few documents has the tail of each held out instead (splits.py).
    min_heldout_docs: int = Field(default=1, ge=0, description="documents per domain in valid and in test at least "
                                                               "(with a fraction above 0; 0: the fractions alone)")
    # Cut at document boundaries (a longer document stands alone).
    part_tokens: int = Field(default=500_000_000, gt=0, description="tokens per part file at most")
    partitions: int = Field(default=0, ge=0, description="Spark tasks that tokenize (0: the session's parallelism "
                                                         "or one per 64 MiB of input); never changes the output")
    seed: int | None = Field(default=None, description="split and order seed")  # None: the run's seed
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)

    @model_validator(mode="after")
    def _fractions(self) -> TokenizeConfig:
        if self.valid_fraction + self.test_fraction >= 1:
            from curate.errors import CurateError

            raise CurateError("valid_fraction + test_fraction must be below 1 (something must be left to train on)")
        return self

