"""The baselines every mixer must beat: uniform over domains, and natural (token-proportional, repetition-capped)."""

from __future__ import annotations

from pathlib import Path

from mixers.weights import DomainWeights, cap_by_epochs, train_tokens


class Uniform:
    """Every domain that has train tokens the same weight; one with none (every document removed upstream, or all
    held out) gets 0: there is nothing to draw from it, and the ladder's and shards' uniform leave it out the same."""

    def fit(self, data_dir: str | Path) -> DomainWeights:
        tokens = train_tokens(data_dir)
        return DomainWeights("uniform", {d: 1.0 if t > 0 else 0.0 for d, t in tokens.items()}, config={})


class Natural:
    """Each domain's share of the training tokens, clipped so that a `budget_tokens` run repeats no domain more than
    `max_epochs` times (budget default: the corpus size, where the cap never binds)."""

    def __init__(self, max_epochs: float = 4.0, budget_tokens: int | None = None):
        self.max_epochs = max_epochs
        self.budget_tokens = budget_tokens

    def fit(self, data_dir: str | Path) -> DomainWeights:
        tokens = train_tokens(data_dir)
        budget = self.budget_tokens or sum(tokens.values())
        weights = cap_by_epochs({d: float(t) for d, t in tokens.items()}, tokens, budget, self.max_epochs)
        return DomainWeights("natural", weights,
                             config={"max_epochs": self.max_epochs, "budget_tokens": budget},
                             diagnostics={"train_tokens": tokens})
