"""The shards plan: which documents the stage draws, in what order, and how many tokens each domain gets.

plan_shards checks the inputs (the tokenize output's datasets.json, the weights file, every train dataset) and
budgets each domain; draw and interleave give the stream order that write.py copies. Every choice is seeded, so
the same inputs and seed give the same shards.

Budgets: domain d gets weight_d x N tokens. A domain whose train split holds fewer than its budget / max_epochs tokens
is capped at max_epochs passes over its documents, and what it lacks is redistributed over the uncapped domains in
proportion to their weights (repeated until nothing more is capped: water-filling). Every redistribution is reported
on the console and in the manifest; if all domains are capped before N is reached, that is an error.

Order: each domain's documents are drawn epoch by epoch, each epoch a seeded permutation, until the domain's budget is
reached (the last document may pass it by less than one document). The domains are interleaved by position: a
document that starts at fraction f of its domain's draw sits at fraction ~f of the whole stream (with a seeded jitter
inside the document), so every stretch of every shard holds the mixture.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.config_model import DEFAULT_SEED
from curate.console import console
from curate.errors import CurateError
from curate.shards.config import ShardsConfig
from proxy_training.megatron import FormatError, MMIDIDXDataset


# ---------------------------------------------------------------------------------------------------------------------
# Budgets


@dataclass
class Budget:
    """One domain's share of the token budget."""

    domain: str
    weight: float  # requested (normalized)
    available: int  # train tokens of the domain
    cap: float  # available x max_epochs
    tokens: int = 0  # the budget after redistribution
    capped: bool = False
    received: float = 0.0  # tokens redistributed to this domain from capped ones


@dataclass
class BudgetPlan:
    budgets: dict[str, Budget]
    notes: list[str] = field(default_factory=list)

    @property
    def effective_weights(self) -> dict[str, float]:
        total = sum(b.tokens for b in self.budgets.values())
        return {d: (b.tokens / total if total else 0.0) for d, b in self.budgets.items()}


def plan_budgets(weights: dict[str, float], available: dict[str, int], tokens: int, max_epochs: float) -> BudgetPlan:
    """Token budget per domain: weight x tokens, capped at max_epochs x available, shortfalls redistributed by weight.
    Integer budgets sum to `tokens` exactly (largest remainder, ties by domain name)."""
    total_w = sum(weights.values())
    budgets = {d: Budget(d, weights.get(d, 0.0) / total_w, available.get(d, 0), available.get(d, 0) * max_epochs)
               for d in sorted(set(weights) | set(available))}
    plan = BudgetPlan(budgets)
    share: dict[str, float] = {}
    active = [d for d, b in budgets.items() if b.weight > 0]
    remaining = float(tokens)
    while True:
        w = sum(budgets[d].weight for d in active)
        if not active or w <= 0:
            if remaining > 0.5:
                weighted = [b for b in budgets.values() if b.weight > 0]
                if not any(b.available for b in weighted):
                    raise CurateError(
                        f"shards: the weights draw only from domains with no train tokens "
                        f"({', '.join(b.domain for b in weighted)}): weight a domain that has some")
                have = sum(b.cap for b in weighted)
                raise CurateError(
                    f"shards: {tokens:,} tokens requested but the weighted domains hold only {int(have):,} at "
                    f"max_epochs={max_epochs:g}; raise --max-epochs or lower --tokens")
            break
        tentative = {d: remaining * budgets[d].weight / w for d in active}
        over = [d for d in active if tentative[d] > budgets[d].cap + 1e-9]
        if not over:
            share.update(tentative)
            break
        for d in over:
            b = budgets[d]
            b.capped = b.available > 0  # a domain with nothing to draw is empty, not capped
            share[d] = b.cap
            remaining -= b.cap
            active.remove(d)
        for d in over:
            b = budgets[d]
            others = ", ".join(active) or "no other domain"
            plan.notes.append(
                f"{d}: budget {tentative[d]:,.0f} tokens, but {b.available:,} available x max_epochs "
                f"{max_epochs:g} = {b.cap:,.0f}; {tentative[d] - b.cap:,.0f} tokens redistributed over {others} "
                f"by weight")
    for d, b in budgets.items():
        base = tokens * b.weight
        b.received = max(0.0, share.get(d, 0.0) - base) if not b.capped else 0.0
    # Largest-remainder rounding, never above a cap.
    floors = {d: int(math.floor(share.get(d, 0.0) + 1e-9)) for d in budgets}
    left = tokens - sum(floors.values())
    order = sorted((d for d in budgets if share.get(d, 0.0) > 0 and floors[d] + 1 <= budgets[d].cap + 1e-9),
                   key=lambda d: (-(share[d] - floors[d]), d))
    for d in order[:max(0, left)]:
        floors[d] += 1
    for d, b in budgets.items():
        b.tokens = floors[d]
    return plan


# ---------------------------------------------------------------------------------------------------------------------
# Drawing documents


def _domain_key(domain: str) -> int:
    return int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "little")


def _open_dataset(prefix: Path) -> MMIDIDXDataset:
    try:
        return MMIDIDXDataset(prefix)
    except FormatError as exc:
        raise CurateError(f"shards: {exc}") from None


@dataclass
class DomainSource:
    """A domain's train datasets, seen as one list of documents."""

    domain: str
    datasets: list[MMIDIDXDataset]

    def __post_init__(self) -> None:
        self.lengths = (np.concatenate([d.lengths.astype(np.int64) for d in self.datasets])
                        if self.datasets else np.zeros(0, np.int64))
        self.starts = np.cumsum([0] + [len(d) for d in self.datasets])  # first global doc of each dataset

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())

    def locate(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        part = np.searchsorted(self.starts, docs, side="right") - 1
        return part, docs - self.starts[part]


def draw(source: DomainSource, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Global document indices drawn from `source` (epoch after epoch, each a seeded permutation) until `budget`
    tokens are reached, and the epoch of each draw."""
    n = len(source.lengths)
    if budget <= 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    chosen, epochs, have, epoch = [], [], 0, 0
    while have < budget:
        perm = np.random.default_rng([seed, _domain_key(source.domain), epoch]).permutation(n)
        cum = np.cumsum(source.lengths[perm])
        need = budget - have
        take = n if cum[-1] < need else int(np.searchsorted(cum, need, side="left")) + 1
        chosen.append(perm[:take])
        epochs.append(np.full(take, epoch, np.int64))
        have += int(cum[take - 1])
        epoch += 1
    return np.concatenate(chosen), np.concatenate(epochs)


def interleave(lengths_by_domain: list[np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The stream order of all drawn documents: (domain index, position in that domain's draw) per slot."""
    keys, dom, pos = [], [], []
    for i, lengths in enumerate(lengths_by_domain):
        if lengths.size == 0:
            continue
        total = float(lengths.sum())
        before = np.cumsum(lengths) - lengths
        jitter = np.random.default_rng([seed, 7919, i]).random(lengths.size)
        keys.append((before + jitter * lengths) / total)
        dom.append(np.full(lengths.size, i, np.int64))
        pos.append(np.arange(lengths.size, dtype=np.int64))
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k, d, p = np.concatenate(keys), np.concatenate(dom), np.concatenate(pos)
    order = np.lexsort((p, d, k))
    return d[order], p[order]


# ---------------------------------------------------------------------------------------------------------------------
# Inputs


def read_datasets_json(data: str) -> dict[str, Any]:
    path = Path(data) / "datasets.json"
    if not path.is_file():
        raise CurateError(f"{data}: no datasets.json (not a `curate tokenize` output)")
    if not (Path(data) / "_SUCCESS").exists():
        raise CurateError(f"{data}: unfinished tokenize output (no _SUCCESS): rerun `curate tokenize`")
    return json.loads(path.read_text())


def read_weights(path: str) -> dict[str, float]:
    """{domain: weight} of a weights.json (or a `curate mix` output directory), checked (curate.mix_stage)."""
    from curate.mix_stage import read_weights_file

    return read_weights_file(path)[1]


def uniform_weights(data: str) -> dict[str, Any]:
    """weights.json content with equal weight on every domain that has train tokens (used until a mixer ran)."""
    meta = read_datasets_json(data)
    domains = sorted(d for d, v in meta["splits"]["train"].items() if v["tokens"] > 0)
    w = {d: 1 / len(domains) for d in domains} if domains else {}
    return {"method": "uniform", "weights": w, "target": None, "config": {}, "diagnostics": {}}



# ---------------------------------------------------------------------------------------------------------------------
# Plan: the checked inputs and every domain's budget


@dataclass
class ShardsPlan:
    """What a run draws from: the tokenize output's train datasets per domain and each domain's token budget."""

    data: str
    weights_path: str
    seed: int
    tokenizer: dict[str, Any]
    dtype: np.dtype
    train: dict[str, Any]  # datasets.json's train split
    sources: dict[str, DomainSource]
    total: int  # tokens requested
    budgets: BudgetPlan
    notes: list[str]  # every redistribution and every domain left out of the weights

    @property
    def domains(self) -> list[str]:
        return sorted(self.sources)


def _domain_source(data: str, domain: str, prefixes: list[str], dtype: np.dtype) -> DomainSource:
    sets = [_open_dataset(Path(data) / p) for p in prefixes]
    for s in sets:
        if s.dtype != dtype:
            raise CurateError(f"shards: {s.prefix} holds {s.dtype}, datasets.json says {dtype}")
    return DomainSource(domain, sets)


def plan_shards(cfg: ShardsConfig, data: str) -> ShardsPlan:
    """Check the inputs (tokenize output, weights, datasets) and plan each domain's budget; writes nothing."""
    if cfg.weights is None:
        raise CurateError("shards: no weights file given (--weights weights.json)")
    meta = read_datasets_json(data)
    train = meta["splits"]["train"]
    dtype = np.dtype(meta["tokenizer"]["dtype"])
    weights = read_weights(cfg.weights)
    unknown = sorted(set(weights) - set(train))
    if unknown:
        raise CurateError(f"shards: weights name domain(s) not in {data}: {', '.join(unknown)} "
                          f"(domains: {', '.join(sorted(train))})")
    notes = [f"{d}: not in the weights, weight 0" for d in sorted(set(train) - set(weights))]
    sources = {d: _domain_source(data, d, train[d]["prefixes"], dtype) for d in sorted(train)}
    available = {d: s.tokens for d, s in sources.items()}
    total = cfg.tokens if cfg.tokens is not None else sum(available.values())
    if total <= 0:
        raise CurateError(f"shards: {data} holds no train tokens")
    budgets = plan_budgets(weights, available, total, cfg.max_epochs)
    for n in budgets.notes:
        console.print(f"[yellow]shards: {n}[/]")
    seed = DEFAULT_SEED if cfg.seed is None else cfg.seed
    from curate.mix_stage import weights_file

    return ShardsPlan(data, str(weights_file(cfg.weights)), seed, meta["tokenizer"], dtype, train, sources, total, budgets,
                      notes + budgets.notes)
