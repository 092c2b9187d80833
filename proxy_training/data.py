"""Per-domain token data for proxy training: the DATA directory, a mixture sampler, fixed evaluation windows.

DATA is what `curate tokenize` writes: `datasets.json` lists, per split and domain, Megatron prefixes relative to
DATA. Each domain's documents (EOS-terminated) are read as one memory-mapped token stream, and a training sequence
is a window of `seq_len + 1` tokens anywhere in it (nanoGPT-style; windows cross documents).

    data = TokenDatasets("DATA")                         # data.domains: sorted domain names = the domain ids
    w = data.weights_vector({"web": 0.7, "code": 0.3})  # missing domains get 0; normalized
    sampler = MixtureSampler(data.streams("train"), w, batch_size=16, seq_len=256, seed=0, stratified=False)
    batch = sampler.batch(step)                          # Batch(x [B,T], y [B,T], domain_ids [B], step)
    windows = evaluation_windows(data, "valid", seq_len=256, per_domain=32)

Sampling is a pure function of (seed, step): resuming needs no sampler state, and two mixtures sampled with the same
seed use the same random numbers (common random numbers: the same uniform u picks the domain by inverse CDF and the
same v places the window), which lowers the variance of paired comparisons between mixtures.
`StackedSampler` stacks one sampler per model for StackedGPT: batches [M, B, T].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from proxy_training.megatron import MMIDIDXDataset, token_dtype, write_documents

SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """A DATA directory or a weights vector that does not fit the contract (one readable line)."""


class DomainStream:
    """All tokens of one domain in one split as one logical array over memory-mapped parts."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = [p for p in parts if len(p)]
        self.ends = np.cumsum([len(p) for p in self.parts], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __reduce__(self):
        # Pickled (to a worker process) as file references, not as the tokens: a whole-file memory map is reopened
        # from its path; anything else (an in-memory array, a view) travels as data.
        return _reopen_stream, ([_part_ref(p) for p in self.parts],)

    def window(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) as int64, reading across part boundaries when needed."""
        out = np.empty(length, dtype=np.int64)
        i = int(np.searchsorted(self.ends, start, side="right"))
        filled = 0
        while filled < length:
            part_start = int(self.ends[i - 1]) if i else 0
            lo = start + filled - part_start
            chunk = self.parts[i][lo : lo + length - filled]
            out[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
            i += 1
        return out


def _part_ref(part: np.ndarray):
    if isinstance(part, np.memmap) and part.filename and part.base is getattr(part, "_mmap", None):
        return ("file", part.filename, part.dtype.str, int(part.offset), len(part))
    return ("array", np.asarray(part))


def _reopen_stream(refs: list) -> "DomainStream":
    parts = []
    for ref in refs:
        if ref[0] == "file":
            _, path, dtype, offset, n = ref
            parts.append(np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=(n,)))
        else:
            parts.append(ref[1])
    return DomainStream(parts)


class TokenDatasets:
    """A DATA directory: the tokenizer facts from datasets.json and per-(split, domain) token streams."""

    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir)
        meta_path = self.root / "datasets.json"
        if not meta_path.is_file():
            raise DataError(f"{meta_path} not found (is {self.root} the output of `curate tokenize`?)")
        try:
            self.meta = json.loads(meta_path.read_text())
            tok = self.meta["tokenizer"]
            self.vocab_size = int(tok["vocab_size"])
            self.eos_id = tok.get("eos_id")
            self.splits = self.meta["splits"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{meta_path}: malformed ({exc})") from None
        if not self.splits.get("train"):
            raise DataError(f"{meta_path}: no train split")
        self.domains: list[str] = sorted(self.splits["train"])
        self._streams: dict[tuple[str, str], DomainStream] = {}

    def stream(self, split: str, domain: str) -> DomainStream:
        """The token stream of one domain in one split (memory-mapped, cached)."""
        key = (split, domain)
        if key not in self._streams:
            entry = self.splits.get(split, {}).get(domain)
            if entry is None:
                raise DataError(f"{self.root}: split {split!r} has no domain {domain!r}")
            parts = [MMIDIDXDataset(self.root / prefix).tokens for prefix in entry["prefixes"]]
            self._streams[key] = DomainStream(parts)
        return self._streams[key]

    def streams(self, split: str) -> list[DomainStream]:
        """One stream per domain, in `self.domains` order."""
        return [self.stream(split, d) for d in self.domains]

    def token_counts(self, split: str = "train") -> np.ndarray:
        """Tokens per domain in `self.domains` order (natural weights = these normalized)."""
        return np.array([len(self.stream(split, d)) for d in self.domains], dtype=np.int64)

    def weights_vector(self, weights: dict[str, float]) -> np.ndarray:
        """A {domain: weight} mapping as a normalized vector in `self.domains` order; absent domains get 0."""
        unknown = sorted(set(weights) - set(self.domains))
        if unknown:
            raise DataError(f"weights name domains not in the data: {', '.join(unknown)}")
        bad = [d for d, v in weights.items() if isinstance(v, bool) or not isinstance(v, (int, float, np.number))]
        if bad:
            raise DataError(f"weights of {', '.join(bad)}: not numbers")
        w = np.array([float(weights.get(d, 0.0)) for d in self.domains], dtype=np.float64)
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise DataError("weights must be finite, non-negative and not all zero")
        empty = [d for d, v in zip(self.domains, w) if v > 0 and len(self.stream("train", d)) < 2]
        if empty:
            raise DataError(f"the weights draw from {', '.join(empty)}, which {'has' if len(empty) == 1 else 'have'} "
                            f"no train tokens to draw (give {'it' if len(empty) == 1 else 'them'} weight 0)")
        return w / w.sum()


@dataclass
class Batch:
    """One training batch: inputs x and targets y [..., B, T] (int64), the domain of each sequence [..., B]."""

    x: torch.Tensor
    y: torch.Tensor
    domain_ids: torch.Tensor
    step: int

    def to(self, device, non_blocking: bool = False) -> "Batch":
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in (self.x, self.y, self.domain_ids)), self.step)


def stratified_counts(weights: np.ndarray, batch_size: int) -> np.ndarray:
    """Sequences per domain in a batch: proportional to weights (largest remainder), at least 1 for every
    domain with positive weight."""
    positive = weights > 0
    if batch_size < positive.sum():
        raise DataError(f"stratified batches need batch_size >= {positive.sum()} (domains with weight > 0)")
    exact = weights * batch_size
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: batch_size - counts.sum()]:
        counts[i] += 1
    for i in np.flatnonzero(positive & (counts == 0)):
        counts[np.argmax(counts)] -= 1  # take from the largest stratum: the smallest relative distortion
        counts[i] = 1
    return counts


class MixtureSampler:
    """Batches from a mixture of domains: each sequence's domain drawn by `weights`, then a uniform window in it.

    With `stratified=True` every batch holds each positive-weight domain in fixed proportion (DoReMi needs every
    domain in every batch). Deterministic in (seed, step).
    """

    def __init__(self, streams: list, weights, batch_size: int, seq_len: int, seed: int = 0, stratified: bool = False):
        self.streams = [s if isinstance(s, DomainStream) else DomainStream([np.asarray(s)]) for s in streams]
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.streams),) or (w < 0).any() or w.sum() <= 0:
            raise DataError(f"weights must be {len(self.streams)} non-negative numbers, not all zero")
        self.weights = w / w.sum()
        self.batch_size, self.seq_len, self.seed, self.stratified = batch_size, seq_len, seed, stratified
        self.num_domains = len(self.streams)
        for i in np.flatnonzero(self.weights > 0):
            if len(self.streams[i]) < 2:
                raise DataError(f"domain {i} has {len(self.streams[i])} tokens: nothing to train on")
        # A domain shorter than a window (a few short documents left by the filters) is read around and around:
        # its window repeats it, as further epochs over it would.
        self._short = {i: self.streams[i].window(0, len(self.streams[i])) for i in range(len(self.streams))
                       if 2 <= len(self.streams[i]) < seq_len + 1}
        self._cdf = np.cumsum(self.weights)
        self._last = int(np.flatnonzero(self.weights > 0)[-1])
        if stratified:
            self._strata = np.repeat(np.arange(len(w)), stratified_counts(self.weights, batch_size))

    def domains_for(self, u: np.ndarray) -> np.ndarray:
        # Inverse CDF; zero-weight domains have empty intervals. The clip guards float round-off at u ~ 1.
        return np.minimum(np.searchsorted(self._cdf, u * self._cdf[-1], side="right"), self._last)

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        u, v = rng.random(self.batch_size), rng.random(self.batch_size)
        domains = self._strata if self.stratified else self.domains_for(u)
        T = self.seq_len
        rows = np.empty((self.batch_size, T + 1), dtype=np.int64)
        for r, (d, vr) in enumerate(zip(domains, v)):
            short = self._short.get(int(d))
            if short is not None:
                rows[r] = np.take(short, int(vr * len(short)) + np.arange(T + 1), mode="wrap")
                continue
            start = int(vr * (len(self.streams[d]) - T))  # in [0, len - T - 1]: the window has T + 1 tokens
            rows[r] = self.streams[d].window(start, T + 1)
        rows_t = torch.from_numpy(rows)
        return Batch(rows_t[:, :-1], rows_t[:, 1:], torch.from_numpy(domains.astype(np.int64)), step)


class StackedSampler:
    """One MixtureSampler per stacked model; `batch(step)` has x, y [M, B, T] and domain_ids [M, B]."""

    def __init__(self, samplers: list[MixtureSampler]):
        self.samplers = samplers
        self.num_domains = samplers[0].num_domains

    def batch(self, step: int) -> Batch:
        parts = [s.batch(step) for s in self.samplers]
        return Batch(*(torch.stack([getattr(p, f) for p in parts]) for f in ("x", "y", "domain_ids")), step)


@dataclass
class EvalWindows:
    """Fixed held-out windows: x, y [N, T] and the domain id of each window [N]; `domains` names the ids. `mask`
    [N, T] (None: every position counts) marks the scored targets of a window padded at its end: the single window
    of a split shorter than seq_len + 1 tokens."""

    domains: list[str]
    x: torch.Tensor
    y: torch.Tensor
    domain_ids: torch.Tensor
    mask: torch.Tensor | None = None


def evaluation_windows(data: TokenDatasets, split: str = "valid", seq_len: int = 256, per_domain: int = 32) -> EvalWindows:
    """Up to `per_domain` non-overlapping windows per domain, evenly spread over the split's stream.

    They depend only on the data, the split, seq_len and per_domain (no seed, no mixture), so every mixture and
    every run is scored on the same tokens. A split shorter than seq_len + 1 tokens (a domain of a few documents,
    most of them filtered out) is scored whole, as one window padded at its end with the padding masked: a causal
    model's losses on the real tokens do not depend on what follows them.
    """
    xs, ys, ids, masks = [], [], [], []
    for d_id, domain in enumerate(data.domains):
        stream = data.stream(split, domain)
        if len(stream) < 2:
            raise DataError(f"{split} split of domain {domain!r} has {len(stream)} tokens: nothing to score "
                            "(re-tokenize with larger held-out fractions or without split-by-cluster, or leave the "
                            "domain out)")
        n = min(per_domain, (len(stream) - 1) // seq_len)
        mask = np.ones((max(n, 1), seq_len), dtype=bool)
        if n < 1:
            rows = np.zeros((1, seq_len + 1), dtype=np.int64)
            rows[0, : len(stream)] = stream.window(0, len(stream))
            mask[0, len(stream) - 1 :] = False
        else:
            stride = (len(stream) - 1 - seq_len) // (n - 1) if n > 1 else 0
            rows = np.stack([stream.window(i * stride, seq_len + 1) for i in range(n)])
        xs.append(rows[:, :-1])
        ys.append(rows[:, 1:])
        ids.append(np.full(len(rows), d_id, dtype=np.int64))
        masks.append(mask)
    mask = np.concatenate(masks)
    return EvalWindows(
        list(data.domains),
        torch.from_numpy(np.concatenate(xs)),
        torch.from_numpy(np.concatenate(ys)),
        torch.from_numpy(np.concatenate(ids)),
        None if mask.all() else torch.from_numpy(mask),
    )


def write_token_datasets(
    out_dir: str | os.PathLike,
    documents: dict[str, dict[str, list]],
    vocab_size: int,
    eos_id: int | None = None,
    bos_id: int | None = None,
) -> Path:
    """Write a small DATA directory (Megatron files + datasets.json, as `curate tokenize` lays them out) from
    {split: {domain: [token lists]}}, for tests and examples. Returns the directory."""
    out = Path(out_dir)
    dtype = token_dtype(vocab_size)
    splits: dict[str, dict] = {}
    for split, by_domain in documents.items():
        for domain, docs in sorted(by_domain.items()):
            prefix = f"{split}/{domain}/part-00000"
            tokens = write_documents(out / prefix, docs, dtype)
            splits.setdefault(split, {})[domain] = {"prefixes": [prefix], "docs": len(docs), "tokens": tokens}
    meta = {
        "tokenizer": {"path": None, "sha256": None, "vocab_size": vocab_size, "eos_id": eos_id, "bos_id": bos_id,
                      "dtype": dtype.name},
        "splits": splits,
    }
    (out / "datasets.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    (out / "_SUCCESS").write_text("")
    return out
