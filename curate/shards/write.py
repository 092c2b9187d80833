"""The shards' bytes: where every drawn document's tokens are, the shard files, and the manifest that accounts for them.

compute_stream turns the plan's draws into one stream of documents and cuts it into shards at document boundaries,
each before it passes `shard_tokens` (a longer document stands alone). write_shards copies the tokens as Megatron
MMIDIDX v1 .bin/.idx pairs, one positioned read per document span into a chunk buffer; write_manifest records every
file's size and sha256, the per-domain and per-shard counts and the Megatron blend strings, so `verify` can check a
directory alone.

Memory: a few int64 per source document and per drawn document; tokens only in chunks of bounded size (_CHUNK_BYTES),
whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate import __version__
from curate.shards.config import ShardsConfig
from curate.shards.plan import ShardsPlan, draw, interleave
from curate.tokenize.tokenizer import file_sha256
from proxy_training.megatron import MMIDIDXDataset, MMIDIDXWriter

MANIFEST = "manifest.json"
# The manifest's own sha256 in `sha256sum` format, written beside it: verify reports any edit to the manifest.
MANIFEST_SHA256 = MANIFEST + ".sha256"
DATA_PATH_FILE = "data_path.txt"


def manifest_sha256_line(directory: Path) -> str:
    return f"{file_sha256(directory / MANIFEST)}  {MANIFEST}\n"


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def _blend(entries: list[tuple[float, str]]) -> str:
    return " ".join(f"{w:.10g} {p}" for w, p in entries if w > 0)


# ---------------------------------------------------------------------------------------------------------------------
# Compute: where every drawn document's tokens are, in stream order, and where the shards are cut


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.zeros(0, np.int64), *arrays])


def read_spans(files: list[int], which: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                out: np.ndarray) -> None:
    """Fill `out` with tokens [starts[i], starts[i] + lengths[i]) of the `.bin` file open as files[which[i]], for
    every i, one after the other: one positioned read per span straight into `out`. Not through the datasets' memory
    maps: a process's mapped file pages count in its resident memory, and on kernels that cache files in large
    folios a chunk's reads through the maps left most of the input resident in the driver."""
    size = out.dtype.itemsize
    view = memoryview(out).cast("B")
    dst = (np.cumsum(lengths) - lengths) * size
    for f, offset, at, n in zip(which.tolist(), (starts * size).tolist(), dst.tolist(), (lengths * size).tolist()):
        if n and os.preadv(files[f], [view[at:at + n]], offset) != n:
            raise OSError(f"short read at byte {offset} of a .bin file: the file changed while it was read")


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

    def gather(self, t0: int, t1: int, buffer: np.ndarray, files: list[int]) -> np.ndarray:
        """Tokens [t0, t1) of the stream (the documents overlapping that range, clipped to it) in `buffer`'s head,
        read from `files` (the datasets' `.bin` files, open, in `datasets` order)."""
        i0 = int(np.searchsorted(self.cum, t0, side="right")) - 1
        i1 = int(np.searchsorted(self.cum, t1, side="left"))
        lo = np.maximum(self.cum[i0:i1], t0)
        hi = np.minimum(self.cum[i0 + 1:i1 + 1], t1)
        src = self.source[i0:i1]
        out = buffer[:t1 - t0]
        read_spans(files, self.doc_dataset[src], self.doc_start[src] + (lo - self.cum[i0:i1]), hi - lo, out)
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
                 pool: ThreadPoolExecutor, progress: Callable[[int], None] | None, files: list[int]) -> dict[str, Any]:
    """Slots [a, b) as one .bin/.idx pair; the .bin is hashed as it is written (never read back)."""
    writer = MMIDIDXWriter(prefix, buffers[0].dtype)
    sha = hashlib.sha256()
    step, end = buffers[0].size, int(stream.cum[b])
    pending = None
    try:
        for i, t0 in enumerate(range(int(stream.cum[a]), end, step)):
            # The buffers take turns: this one's last chunk was hashed before the previous chunk's hash was submitted.
            chunk = stream.gather(t0, min(t0 + step, end), buffers[i % 2], files)
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
    files = [os.open(f"{ds.prefix}.bin", os.O_RDONLY) for ds in stream.datasets]
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return [_write_shard(stream, int(a), int(b), tmp / f"shard-{k:05d}", buffers, pool, progress, files)
                    for k, (a, b) in enumerate(zip(stream.cuts[:-1], stream.cuts[1:]))]
    finally:
        for fd in files:
            os.close(fd)


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
                   final: Path) -> dict[str, Any]:
    """data_path.txt and manifest.json (+ its sha256) into `tmp`; returns the stage's stats (StageOutput writes
    them, with the wall time: stats.json is therefore not among the manifest's files)."""
    _shard_domains(plan, stream, shards)
    files = {name: entry for s in shards for name, entry in s["files"].items()}
    data_path = _megatron_data_path(plan, final)
    path = tmp / DATA_PATH_FILE
    path.write_text(data_path + "\n")
    files[DATA_PATH_FILE] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    domain_table = _domain_table(plan, stream)
    manifest = _manifest(cfg, plan, shards, domain_table, files, data_path, final)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (tmp / MANIFEST_SHA256).write_text(manifest_sha256_line(tmp))
    return {"tokens": manifest["tokens"], "docs": manifest["docs"], "shards": len(shards), "domains": domain_table,
            "redistribution": plan.notes, "seed": plan.seed, "config": cfg.model_dump()}
