"""ShardsConfig: the shards stage's settings, from a pipeline's `[shards]` table or `curate shards` flags."""

from __future__ import annotations

from pydantic import Field

from curate.config_model import StrictModel


class ShardsConfig(StrictModel):
    """Training shards drawn from the per-domain train datasets by the mixture weights."""

    weights: str | None = Field(default=None, description="weights.json (a mixer's output); None in a pipeline: "
                                                          "the mix stage's, else uniform over the domains")
    # The mixture reshapes the train split at the same size.
    tokens: int | None = Field(default=None, gt=0, description="total tokens to draw; None: as many as the train "
                                                               "split holds")
    # What a capped domain still lacks goes to the others by weight.
    max_epochs: float = Field(default=4.0, gt=0, description="most passes over any domain")
    shard_tokens: int = Field(default=500_000_000, gt=0, description="tokens per shard at most (documents are "
                                                                    "never split: a longer one stands alone)")
    seed: int | None = Field(default=None, description="drawing seed")  # None: the run's seed
