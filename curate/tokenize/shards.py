"""Training shards: documents drawn from the per-domain train datasets by the mixture weights, written as Megatron
MMIDIDX v1 shards with a manifest that accounts for every token, and `verify` that checks a shard directory.

Budgets: domain d gets weight_d x N tokens. A domain whose train split holds fewer than its budget / max_epochs tokens
is capped at max_epochs passes over its documents, and what it lacks is redistributed over the uncapped domains in
proportion to their weights (repeated until nothing more is capped: water-filling). Every redistribution is reported
on the console and in the manifest; if all domains are capped before N is reached, that is an error.

Order: each domain's documents are drawn epoch by epoch, each epoch a seeded permutation, until the domain's budget is
reached (the last document may pass it by less than one document). The domains are interleaved by position: a
document that starts at fraction f of its domain's draw sits at fraction ~f of the whole stream (with a seeded jitter
inside the document), so every stretch of every shard holds the mixture. Shards are cut at document boundaries before
they pass `shard_tokens`.

Steps: plan (check the inputs, budget each domain), compute (draw, interleave, locate every drawn document, cut the
shards), write (copy the tokens, whole groups of documents per numpy call, in chunks of bounded size), stats (the
manifest and stats.json).

Memory: a few int64 per source document and per drawn document; tokens only in chunks of bounded size (_CHUNK_BYTES),
whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate import __version__
from curate.console import console
from curate.errors import CurateError
from curate.fs import LocalFS, local_path
from curate.output_target import OutputTarget
from curate.tokenize.config import ShardsConfig
from proxy_training.megatron import DTYPE_CODES, FormatError, MMIDIDXDataset, MMIDIDXWriter
from curate.tokenize.tokenizer import file_sha256

MANIFEST = "manifest.json"
# The manifest's own sha256 in `sha256sum` format, written beside it: verify reports any edit to the manifest.
MANIFEST_SHA256 = MANIFEST + ".sha256"
DATA_PATH_FILE = "data_path.txt"
# Files of a shard directory that the manifest does not list by hash: itself and its hash (it cannot hash itself),
# stats.json (its wall time differs run to run), _SUCCESS, and the _FINGERPRINT the pipeline runner writes after the
# stage (curate.pipeline.FINGERPRINT_FILE; not imported: that module needs Spark).
UNHASHED = {MANIFEST, MANIFEST_SHA256, "stats.json", "_SUCCESS", "_FINGERPRINT"}
_PROGRESS_EVERY = 1024


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


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
                have = sum(b.cap for b in budgets.values() if b.weight > 0)
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
            b.capped = True
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
    p = Path(path)
    if not p.is_file():
        raise CurateError(f"weights file not found: {path}")
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CurateError(f"{path}: not JSON ({exc})") from None
    weights = obj.get("weights") if isinstance(obj, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise CurateError(f"{path}: no \"weights\" object of domain -> weight")
    for d, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise CurateError(f"{path}: weight of {d!r} is {w!r}, not a number >= 0")
    if sum(weights.values()) <= 0:
        raise CurateError(f"{path}: the weights sum to 0")
    return {str(d): float(w) for d, w in weights.items()}


def uniform_weights(data: str) -> dict[str, Any]:
    """weights.json content with equal weight on every domain that has train tokens (used until a mixer ran)."""
    meta = read_datasets_json(data)
    domains = sorted(d for d, v in meta["splits"]["train"].items() if v["tokens"] > 0)
    w = {d: 1 / len(domains) for d in domains} if domains else {}
    return {"method": "uniform", "weights": w, "target": None, "config": {}, "diagnostics": {}}


def _blend(entries: list[tuple[float, str]]) -> str:
    return " ".join(f"{w:.10g} {p}" for w, p in entries if w > 0)


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
    return ShardsPlan(data, cfg.weights, 1234 if cfg.seed is None else cfg.seed, meta["tokenizer"], dtype, train,
                      sources, total, budgets, notes + budgets.notes)


# ---------------------------------------------------------------------------------------------------------------------
# Compute: where every drawn document's tokens are, in stream order, and where the shards are cut

# Widest window gather_spans copies as one element, as a power of two (tokens): wide enough that a long document
# costs a few copies, narrow enough that the extra copy of a document's last window stays small.
_PIECE_BITS = 10


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.zeros(0, np.int64), *arrays])


def _windows(a: np.ndarray, width: int) -> np.ndarray:
    """Every `width`-token window of the contiguous array `a`, overlapping, each one element (raw bytes): one fancy
    index copies `width` tokens per index, in C."""
    size = a.dtype.itemsize
    return np.ndarray((a.size - width + 1,), np.dtype((np.void, width * size)), buffer=a, strides=(size,))


def _copy_windows(src: np.ndarray, out: np.ndarray, starts: np.ndarray, dst: np.ndarray, lengths: np.ndarray,
                  width: int) -> None:
    """Copy spans (every length >= width) from `src` to `out` in windows of `width`, the last one end-aligned."""
    count = -(-lengths // width)
    span = np.repeat(np.arange(lengths.size), count)
    piece = np.arange(span.size) - np.repeat(np.cumsum(count) - count, count)
    offset = np.minimum(piece * width, lengths[span] - width)
    _windows(out, width)[dst[span] + offset] = _windows(src, width)[starts[span] + offset]


def gather_spans(arrays: list[np.ndarray], which: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                 out: np.ndarray) -> None:
    """Fill `out` with arrays[which[i]][starts[i]:starts[i] + lengths[i]] for every i, one after the other.

    No Python step per span: spans are grouped by source array and width (the largest power of two <= the length,
    at most 2**_PIECE_BITS), and each group is one gather of windows from the source and one scatter into `out`.
    A span's last window is end-aligned, so windows of a span may overlap; overlapping windows carry the same tokens,
    so `out` does not depend on the order numpy copies them in.
    """
    dst = np.cumsum(lengths) - lengths
    keep = lengths > 0
    which, starts, lengths, dst = which[keep], starts[keep], lengths[keep], dst[keep]
    bits = np.minimum(np.frexp(lengths.astype(np.float64))[1] - 1, _PIECE_BITS)  # floor(log2(length))
    key = which * (_PIECE_BITS + 1) + bits
    order = np.argsort(key, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
        if group.size:
            src = arrays[int(which[group[0]])]
            _copy_windows(src, out, starts[group], dst[group], lengths[group], 1 << int(bits[group[0]]))


@dataclass
class Stream:
    """Every drawn document in stream order, where its tokens are, and the shards the stream is cut into."""

    datasets: list[MMIDIDXDataset]  # every domain's train datasets, domain after domain
    doc_dataset: np.ndarray  # per source document (numbered across `datasets`): its dataset
    doc_start: np.ndarray  # per source document: its first token in its dataset
    source: np.ndarray  # per stream slot: the source document
    domain: np.ndarray  # per stream slot: its domain (index into the sorted domains)
    lengths: np.ndarray  # per stream slot: its tokens
    cum: np.ndarray  # tokens before each slot, then the total (size slots + 1)
    cuts: np.ndarray  # the slot each shard starts at, then the slot count
    epochs: dict[str, np.ndarray]  # per domain: the epoch of each of its draws

    def gather(self, t0: int, t1: int, buffer: np.ndarray) -> np.ndarray:
        """Tokens [t0, t1) of the stream (the documents overlapping that range, clipped to it) in `buffer`'s head."""
        i0 = int(np.searchsorted(self.cum, t0, side="right")) - 1
        i1 = int(np.searchsorted(self.cum, t1, side="left"))
        lo = np.maximum(self.cum[i0:i1], t0)
        hi = np.minimum(self.cum[i0 + 1:i1 + 1], t1)
        src = self.source[i0:i1]
        out = buffer[:t1 - t0]
        gather_spans([ds.tokens for ds in self.datasets], self.doc_dataset[src],
                     self.doc_start[src] + (lo - self.cum[i0:i1]), hi - lo, out)
        return out


def cut_shards(cum: np.ndarray, shard_tokens: int) -> np.ndarray:
    """Shard boundaries (slot indices, then the slot count): each shard takes documents while it stays within
    `shard_tokens`, and at least one (a longer document stands alone)."""
    cuts, n = [0], cum.size - 1
    while cuts[-1] < n:
        s = cuts[-1]
        e = int(np.searchsorted(cum, cum[s] + shard_tokens, side="right")) - 1
        cuts.append(max(e, s + 1))
    return np.asarray(cuts, np.int64)


def compute_stream(plan: ShardsPlan, shard_tokens: int) -> Stream:
    """Draw every domain's budget, interleave the draws, locate each drawn document and cut the shards."""
    domains = plan.domains
    sources = [plan.sources[d] for d in domains]
    drawn = [draw(s, plan.budgets.budgets[s.domain].tokens, plan.seed) for s in sources]
    dom, pos = interleave([s.lengths[idx] for s, (idx, _) in zip(sources, drawn)], plan.seed)
    datasets = [ds for s in sources for ds in s.datasets]
    doc_dataset = _cat([np.full(len(ds), i, np.int64) for i, ds in enumerate(datasets)])
    doc_start = _cat([ds.pointers // ds.dtype.itemsize for ds in datasets])
    # Each domain's draws renumbered as source documents across all domains, the domains one after the other.
    first_doc = np.cumsum([0] + [s.lengths.size for s in sources])
    first_draw = np.cumsum([0] + [idx.size for idx, _ in drawn])
    source = _cat([idx + first_doc[i] for i, (idx, _) in enumerate(drawn)])[first_draw[dom] + pos]
    lengths = _cat([s.lengths for s in sources])[source]
    cum = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Stream(datasets, doc_dataset, doc_start, source, dom, lengths, cum, cut_shards(cum, shard_tokens),
                  {d: epochs for d, (_, epochs) in zip(domains, drawn)})


# ---------------------------------------------------------------------------------------------------------------------
# Write: the shards' .bin/.idx, from chunks of bounded size

# Tokens gathered and written per step, in bytes: the driver holds two of these for tokens, whatever the corpus size.
_CHUNK_BYTES = 1 << 24


def _write_shard(stream: Stream, a: int, b: int, prefix: Path, buffers: tuple[np.ndarray, np.ndarray],
                 pool: ThreadPoolExecutor, progress: Callable[[int], None] | None) -> dict[str, Any]:
    """Slots [a, b) as one .bin/.idx pair; the .bin is hashed as it is written (never read back)."""
    writer = MMIDIDXWriter(prefix, buffers[0].dtype)
    sha = hashlib.sha256()
    step, end = buffers[0].size, int(stream.cum[b])
    pending = None
    try:
        for i, t0 in enumerate(range(int(stream.cum[a]), end, step)):
            # The buffers take turns: this one's last chunk was hashed before the previous chunk's hash was submitted.
            chunk = stream.gather(t0, min(t0 + step, end), buffers[i % 2])
            if pending is not None:
                pending.result()
            # The helper thread hashes this chunk while this thread writes it and gathers the next.
            pending = pool.submit(sha.update, chunk.data)
            writer.write_raw(chunk.data)
            if progress is not None:
                progress(t0 + chunk.size)
        if pending is not None:
            pending, done = None, pending
            done.result()
        writer.add_lengths(stream.lengths[a:b])
        counts = writer.close()
    except BaseException:
        if pending is not None:
            wait([pending])  # its buffer stays untouched until the hash is done
        writer.abort()
        raise
    files = {}
    for ext, digest in ((".bin", sha.hexdigest()), (".idx", None)):
        path = Path(f"{prefix}{ext}")
        files[path.name] = {"bytes": path.stat().st_size, "sha256": digest or file_sha256(path)}
    return {"prefix": prefix.name, **counts, "files": files}


def write_shards(stream: Stream, dtype: np.dtype, tmp: Path,
                 progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Every shard as `tmp/shard-NNNNN.bin|.idx`; per shard its prefix, counts and files (bytes, sha256)."""
    # Two chunk buffers for the whole run: fresh ones per chunk would be faulted in and zeroed by the kernel each time.
    size = max(1, min(_CHUNK_BYTES // dtype.itemsize, int(stream.cum[-1])))
    buffers = (np.empty(size, dtype), np.empty(size, dtype))
    with ThreadPoolExecutor(max_workers=1) as pool:
        return [_write_shard(stream, int(a), int(b), tmp / f"shard-{k:05d}", buffers, pool, progress)
                for k, (a, b) in enumerate(zip(stream.cuts[:-1], stream.cuts[1:]))]


# ---------------------------------------------------------------------------------------------------------------------
# Stats: per-domain and per-shard counts, the blend strings, manifest.json and stats.json


def _counts(domain: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents and tokens per domain index (bincount's float sums are exact far beyond any corpus)."""
    return np.bincount(domain, minlength=n), np.bincount(domain, weights=lengths, minlength=n).astype(np.int64)


def _shard_domains(plan: ShardsPlan, stream: Stream, shards: list[dict[str, Any]]) -> None:
    """Each shard's documents and tokens per domain (the domains it holds a document of)."""
    for s, a, b in zip(shards, stream.cuts[:-1], stream.cuts[1:]):
        docs, tokens = _counts(stream.domain[a:b], stream.lengths[a:b], len(plan.domains))
        s["by_domain"] = {d: {"docs": int(docs[i]), "tokens": int(tokens[i])}
                          for i, d in enumerate(plan.domains) if docs[i]}


def _domain_table(plan: ShardsPlan, stream: Stream) -> dict[str, dict[str, Any]]:
    eff = plan.budgets.effective_weights
    docs, tokens = _counts(stream.domain, stream.lengths, len(plan.domains))
    table = {}
    for i, d in enumerate(plan.domains):
        b, epochs = plan.budgets.budgets[d], stream.epochs[d]
        table[d] = {
            "weight": b.weight, "effective_weight": eff[d], "budget_tokens": b.tokens,
            "available_tokens": b.available, "available_docs": int(len(plan.sources[d].lengths)),
            "docs": int(docs[i]), "tokens": int(tokens[i]),
            "epochs": (int(tokens[i]) / b.available) if b.available else 0.0,
            "epochs_started": int(epochs.max()) + 1 if epochs.size else 0, "capped": b.capped,
            "redistributed_in_tokens": round(b.received, 3),
        }
    return table


def _megatron_data_path(plan: ShardsPlan, final: Path) -> str:
    """The source datasets as a Megatron blend, each part weighted by its domain's effective weight x its share."""
    eff = plan.budgets.effective_weights
    data_root = Path(plan.data).resolve()
    blend = []
    for d in plan.domains:
        dom_tokens = plan.train[d]["tokens"]
        for prefix, ds in zip(plan.train[d]["prefixes"], plan.sources[d].datasets):
            part_tokens = int(ds.lengths.astype(np.int64).sum())
            blend.append((eff[d] * part_tokens / dom_tokens if dom_tokens else 0.0, _rel(data_root / prefix, final)))
    return _blend(blend)


def _manifest(cfg: ShardsConfig, plan: ShardsPlan, shards: list[dict[str, Any]], domain_table: dict[str, Any],
              files: dict[str, Any], data_path: str, final: Path) -> dict[str, Any]:
    tok = plan.tokenizer
    shard_total = sum(s["tokens"] for s in shards)
    data_root = Path(plan.data).resolve()
    return {
        "format": "megatron-mmidx-v1",
        "curate_version": __version__,
        "tokenizer": {"sha256": tok["sha256"], "vocab_size": tok["vocab_size"], "eos_id": tok["eos_id"],
                      "bos_id": tok["bos_id"], "dtype": tok["dtype"]},
        "dtype": tok["dtype"],
        "seed": plan.seed,
        "tokens_requested": plan.total,
        "tokens": shard_total,
        "docs": sum(s["docs"] for s in shards),
        "max_epochs": cfg.max_epochs,
        "shard_tokens": cfg.shard_tokens,
        "weights": {"requested": {d: plan.budgets.budgets[d].weight for d in plan.domains},
                    "effective": plan.budgets.effective_weights,
                    "source": _rel(Path(plan.weights_path).resolve(), final),
                    "source_sha256": file_sha256(plan.weights_path)},
        "data": {"path": _rel(data_root, final), "datasets_json_sha256": file_sha256(data_root / "datasets.json")},
        "paths_relative_to": "the directory holding this manifest",
        "redistribution": plan.notes,
        "domains": domain_table,
        "shards": shards,
        "files": dict(sorted(files.items())),
        "megatron_data_path": data_path,
        # Paths relative to the shards directory: the output does not depend on where it was written, and moves intact.
        "shards_data_path": _blend([(s["tokens"] / shard_total, s["prefix"]) for s in shards]),
    }


def write_manifest(cfg: ShardsConfig, plan: ShardsPlan, stream: Stream, shards: list[dict[str, Any]], tmp: Path,
                   final: Path, started: float) -> dict[str, Any]:
    """data_path.txt, manifest.json (+ its sha256) and stats.json into `tmp`; returns the stats."""
    _shard_domains(plan, stream, shards)
    files = {name: entry for s in shards for name, entry in s["files"].items()}
    data_path = _megatron_data_path(plan, final)
    path = tmp / DATA_PATH_FILE
    path.write_text(data_path + "\n")
    files[DATA_PATH_FILE] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    domain_table = _domain_table(plan, stream)
    manifest = _manifest(cfg, plan, shards, domain_table, files, data_path, final)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (tmp / MANIFEST_SHA256).write_text(_manifest_sha256_line(tmp))
    stats = {"stage": "shards", "curate_version": __version__, "tokens": manifest["tokens"], "docs": manifest["docs"],
             "shards": len(shards), "domains": domain_table, "redistribution": plan.notes, "seed": plan.seed,
             "config": cfg.model_dump(), "wall_seconds": round(time.time() - started, 3)}
    # stats.json carries the wall time (it differs run to run); it is therefore not listed in the manifest's files.
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    return stats


# ---------------------------------------------------------------------------------------------------------------------
# The stage


def run_shards(cfg: ShardsConfig, data: str, out: str, progress: Callable[[int], None] | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Draw training shards from the tokenize output `data` by `cfg.weights` into `out` (published atomically).
    `progress` gets the tokens written so far after each chunk."""
    started = time.time()
    plan = plan_shards(cfg, data)
    stream = compute_stream(plan, cfg.shard_tokens)
    target = OutputTarget(LocalFS(), out, "shards", [data, plan.weights_path], overwrite)
    final = Path(local_path(target.final))
    tmp = Path(local_path(target.open()))
    shards = write_shards(stream, plan.dtype, tmp, progress)
    stats = write_manifest(cfg, plan, stream, shards, tmp, final, started)
    (tmp / "_SUCCESS").write_text("")
    target.commit()
    return stats


# ---------------------------------------------------------------------------------------------------------------------
# Verify

_COUNTS = {"docs": int, "tokens": int}
# Every key run_shards writes, with its type: a manifest that lacks one or holds another type is reported, and the
# checks below read only what was checked here.
_MANIFEST_KEYS: dict[str, Any] = {
    "format": str, "curate_version": str, "tokenizer": dict, "dtype": str, "seed": int, "tokens_requested": int,
    "tokens": int, "docs": int, "max_epochs": (int, float), "shard_tokens": int, "weights": dict, "data": dict,
    "paths_relative_to": str, "redistribution": list, "domains": dict, "shards": list, "files": dict,
    "megatron_data_path": str, "shards_data_path": str,
}
_TOKENIZER_KEYS = {"sha256": str, "vocab_size": int, "eos_id": int, "bos_id": (int, type(None)), "dtype": str}
_SHARD_KEYS = {"prefix": str, "docs": int, "tokens": int, "by_domain": dict, "files": dict}
_FILE_KEYS = {"bytes": int, "sha256": str}


def _manifest_sha256_line(directory: Path) -> str:
    return f"{file_sha256(directory / MANIFEST)}  {MANIFEST}\n"


def _type_problems(obj: Any, keys: dict[str, Any], where: str) -> list[str]:
    """One line per key of `keys` that `obj` lacks or holds with another type (a bool is not an int here)."""
    if not isinstance(obj, dict):
        return [f"{where}: {type(obj).__name__}, not an object"]
    problems = []
    for key, types in keys.items():
        types = types if isinstance(types, tuple) else (types,)
        if key not in obj:
            problems.append(f"{where}: no {key!r}")
        elif isinstance(obj[key], bool) or not isinstance(obj[key], types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"{where}: {key!r} is {type(obj[key]).__name__}, expected {want}")
    return problems


def _plain_name(name: str) -> bool:
    """A file directly in the shard directory (the manifest never names a path elsewhere)."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _manifest_problems(manifest: Any) -> list[str]:
    """Missing keys, wrong types and impossible names in a manifest; verify checks files only against a sound one."""
    problems = _type_problems(manifest, _MANIFEST_KEYS, MANIFEST)
    if problems:
        return problems
    problems += _type_problems(manifest["tokenizer"], _TOKENIZER_KEYS, f"{MANIFEST} tokenizer")
    try:
        dtype = np.dtype(manifest["dtype"])
    except TypeError:
        dtype = None
    if dtype not in DTYPE_CODES:
        problems.append(f"{MANIFEST}: dtype {manifest['dtype']!r} is not a Megatron token dtype")
    for name, entry in manifest["files"].items():
        if not _plain_name(name):
            problems.append(f"{MANIFEST} files: {name!r} is not a file name in this directory")
        problems += _type_problems(entry, _FILE_KEYS, f"{MANIFEST} files {name}")
    for i, shard in enumerate(manifest["shards"]):
        where = f"{MANIFEST} shard {i}"
        found = _type_problems(shard, _SHARD_KEYS, where)
        problems += found
        if found:
            continue
        if not _plain_name(shard["prefix"]):
            problems.append(f"{where}: prefix {shard['prefix']!r} is not a name in this directory")
        for ext in (".bin", ".idx"):
            if shard["prefix"] + ext not in manifest["files"]:
                problems.append(f"{where}: {shard['prefix'] + ext} is not in the manifest's files")
        for d, counts in shard["by_domain"].items():
            problems += _type_problems(counts, _COUNTS, f"{where} domain {d}")
    for d, counts in manifest["domains"].items():
        problems += _type_problems(counts, _COUNTS, f"{MANIFEST} domain {d}")
    return problems


def _unlisted(root: Path, listed: set[str]) -> list[str]:
    """Every file and directory under `root`, at any depth, that is neither listed nor one of the unhashed files."""
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root)
        dirnames.sort()
        for d in dirnames:
            problems.append(f"{(here / d).as_posix()}/: a directory, not in the manifest")
        for f in sorted(filenames):
            if here != Path(".") or f not in listed | UNHASHED:
                problems.append(f"{(here / f).as_posix()}: not in the manifest")
    return problems


def verify_shards(directory: str) -> list[str]:
    """Every difference between a shard directory and its manifest: the manifest's own hash, its keys and types,
    files not in it (at any depth), file hashes and sizes, index structure, counts and token ids; an empty list when
    all is well."""
    root = Path(directory)
    problems: list[str] = []
    mpath = root / MANIFEST
    if not mpath.is_file():
        return [f"{directory}: no {MANIFEST}"]
    if not (root / "_SUCCESS").exists():
        problems.append(f"{directory}: no _SUCCESS (the run did not finish)")
    sig = root / MANIFEST_SHA256
    if not sig.is_file():
        problems.append(f"{MANIFEST_SHA256}: missing (the manifest's own content cannot be checked)")
    elif sig.read_bytes() != _manifest_sha256_line(root).encode():
        problems.append(f"{MANIFEST}: its sha256 differs from {MANIFEST_SHA256} (edited after it was written)")
    try:
        manifest = json.loads(mpath.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problems + [f"{MANIFEST}: not JSON ({exc})"]
    found = _manifest_problems(manifest)
    if found:
        return problems + found
    listed = manifest["files"]
    problems += _unlisted(root, set(listed))
    for name, want in sorted(listed.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != want["bytes"]:
            problems.append(f"{name}: {size} bytes, manifest says {want['bytes']}")
        if file_sha256(path) != want["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest")
    data_path = root / DATA_PATH_FILE
    if data_path.is_file() and data_path.read_bytes() != (manifest["megatron_data_path"] + "\n").encode():
        problems.append(f"{DATA_PATH_FILE}: differs from the manifest's megatron_data_path")
    dtype = np.dtype(manifest["dtype"])
    vocab = manifest["tokenizer"]["vocab_size"]
    by_domain: dict[str, dict[str, int]] = {}
    for s in manifest["shards"]:
        prefix = root / s["prefix"]
        try:
            ds = MMIDIDXDataset(prefix, verify=False)
        except FormatError as exc:
            problems.append(str(exc))
            continue
        if ds.dtype != dtype:
            problems.append(f"{s['prefix']}: dtype {ds.dtype}, manifest says {dtype}")
        problems += ds.problems()
        tokens = int(ds.lengths.astype(np.int64).sum())
        if len(ds) != s["docs"] or tokens != s["tokens"]:
            problems.append(f"{s['prefix']}: {len(ds)} docs / {tokens} tokens, manifest says {s['docs']} / {s['tokens']}")
        if ds.bin_bytes and not ds.problems() and int(ds.tokens.max()) >= vocab:
            problems.append(f"{s['prefix']}: token id {int(ds.tokens.max())} >= vocab_size {vocab}")
        if sum(v["docs"] for v in s["by_domain"].values()) != s["docs"] or \
                sum(v["tokens"] for v in s["by_domain"].values()) != s["tokens"]:
            problems.append(f"{s['prefix']}: per-domain counts do not add up to the shard's")
        for d, v in s["by_domain"].items():
            e = by_domain.setdefault(d, {"docs": 0, "tokens": 0})
            e["docs"] += v["docs"]
            e["tokens"] += v["tokens"]
    for d, v in manifest["domains"].items():
        got = by_domain.get(d, {"docs": 0, "tokens": 0})
        if got["docs"] != v["docs"] or got["tokens"] != v["tokens"]:
            problems.append(f"domain {d}: shards hold {got['docs']} docs / {got['tokens']} tokens, manifest says "
                            f"{v['docs']} / {v['tokens']}")
    return problems
