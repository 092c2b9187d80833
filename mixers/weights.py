"""Domain weights: what every mixer returns, how they are capped by repetition, and how they are written.

Reads only `DATA/datasets.json` (the tokenize stage's index), never Spark.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def read_index(data_dir: str | Path) -> dict[str, Any]:
    """The `datasets.json` of a tokenize output directory."""
    path = Path(data_dir) / "datasets.json"
    if not path.is_file():
        raise FileNotFoundError(f"{data_dir}: not a tokenize output directory (no datasets.json)")
    return json.loads(path.read_text())


def train_tokens(data_dir: str | Path) -> dict[str, int]:
    """Tokens per domain in the train split, domains sorted by name (a ValueError when no domain has any: every
    document was removed upstream)."""
    splits = read_index(data_dir)["splits"]
    tokens = {d: int(v["tokens"]) for d, v in sorted(splits.get("train", {}).items())}
    if not any(tokens.values()):
        raise ValueError(f"{data_dir}: no domain has train tokens (were all documents removed before tokenize?)")
    return tokens


def normalize(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0 or not math.isfinite(total):
        raise ValueError(f"weights must have a positive finite sum, got {weights}")
    return {d: w / total for d, w in sorted(weights.items())}


def cap_by_epochs(weights: dict[str, float], tokens: dict[str, int], budget: int, max_epochs: float) -> dict[str, float]:
    """Clip each weight so domain d is drawn at most `max_epochs` times over a `budget`-token run
    (w_d * budget <= max_epochs * tokens_d); what is clipped goes to the other domains in proportion to their weights."""
    w = normalize(weights)
    caps = {d: min(1.0, max_epochs * tokens.get(d, 0) / budget) if budget > 0 else 1.0 for d in w}
    if sum(caps.values()) < 1.0 - 1e-12:
        raise ValueError(
            f"a {budget:,}-token run needs more than {max_epochs} epochs of the whole corpus "
            f"({sum(tokens.values()):,} tokens): lower the budget or raise max_epochs"
        )
    fixed: dict[str, float] = {}
    for _ in range(len(w) + 1):
        free = {d: v for d, v in w.items() if d not in fixed}
        room = 1.0 - sum(fixed.values())
        if free and sum(free.values()) <= 0 < room:
            # Only zero-weight domains are left to take the clipped mass: spread it by what they can hold.
            free = {d: caps[d] for d in free}
            w = {**w, **free}
        scale = room / sum(free.values()) if free and sum(free.values()) > 0 else 0.0
        over = {d for d, v in free.items() if v * scale > caps[d] + 1e-15}
        if not over:
            out = {**fixed, **{d: v * scale for d, v in free.items()}}
            return dict(sorted(out.items()))
        for d in over:
            fixed[d] = caps[d]
    raise AssertionError("cap_by_epochs did not converge")  # pragma: no cover


@dataclass
class DomainWeights:
    """A mixture over domains plus how it was found."""

    method: str
    weights: dict[str, float]
    target: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = normalize(self.weights)

    def megatron_blend(self, prefixes: dict[str, list[str] | list[tuple[str, int]]] | None = None) -> str:
        """`w1 prefix1 w2 prefix2 ...` for Megatron's `--data-path`. A domain's weight is split over its files by
        their tokens when `prefixes` gives (prefix, tokens) pairs: Megatron samples each file by its own weight,
        so an equal split would draw a short last file's tokens more often than the others'. Plain prefixes split
        it evenly."""
        parts = []
        for d, w in self.weights.items():
            files = [f if isinstance(f, tuple) else (f, 1) for f in (prefixes or {}).get(d, [d])]
            total = sum(n for _, n in files)
            for f, n in files:
                parts.append(f"{w * n / total if total else w / len(files):.8g} {f}")
        return " ".join(parts)

    def to_json(self, prefixes: dict[str, list[str]] | None = None) -> dict[str, Any]:
        return {
            "method": self.method,
            "weights": self.weights,
            "target": self.target,
            "config": self.config,
            "diagnostics": self.diagnostics,
            "megatron_blend": self.megatron_blend(prefixes),
            "dataset_weights": [self.weights[d] for d in self.weights],
            "domains": list(self.weights),
        }

    def save(self, path: str | Path, prefixes: dict[str, list[str]] | None = None) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(prefixes), indent=2, sort_keys=True) + "\n")
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> "DomainWeights":
        obj = json.loads(Path(path).read_text())
        return cls(method=obj.get("method", Path(path).stem), weights=obj["weights"], target=obj.get("target"),
                   config=obj.get("config", {}), diagnostics=obj.get("diagnostics", {}))
