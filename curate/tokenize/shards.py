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

Memory: per domain, one int64 index per drawn document (and the domain's document lengths); never tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
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
# The stage


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


def run_shards(cfg: ShardsConfig, data: str, out: str, progress: Callable[[int], None] | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Draw training shards from the tokenize output `data` by `cfg.weights` into `out` (published atomically)."""
    started = time.time()
    if cfg.weights is None:
        raise CurateError("shards: no weights file given (--weights weights.json)")
    seed = 1234 if cfg.seed is None else cfg.seed
    meta = read_datasets_json(data)
    tok = meta["tokenizer"]
    dtype = np.dtype(tok["dtype"])
    train = meta["splits"]["train"]
    weights = read_weights(cfg.weights)
    unknown = sorted(set(weights) - set(train))
    if unknown:
        raise CurateError(f"shards: weights name domain(s) not in {data}: {', '.join(unknown)} "
                          f"(domains: {', '.join(sorted(train))})")
    notes = [f"{d}: not in the weights, weight 0" for d in sorted(set(train) - set(weights))]
    sources = {}
    for d in sorted(train):
        sets = [_open_dataset(Path(data) / p) for p in train[d]["prefixes"]]
        for s in sets:
            if s.dtype != dtype:
                raise CurateError(f"shards: {s.prefix} holds {s.dtype}, datasets.json says {dtype}")
        sources[d] = DomainSource(d, sets)
    available = {d: s.tokens for d, s in sources.items()}
    total = cfg.tokens if cfg.tokens is not None else sum(available.values())
    if total <= 0:
        raise CurateError(f"shards: {data} holds no train tokens")
    plan = plan_budgets(weights, available, total, cfg.max_epochs)
    notes += plan.notes
    for n in plan.notes:
        console.print(f"[yellow]shards: {n}[/]")

    domains = sorted(sources)
    drawn = {d: draw(sources[d], plan.budgets[d].tokens, seed) for d in domains}
    drawn_lengths = [sources[d].lengths[drawn[d][0]] for d in domains]
    stream_dom, stream_pos = interleave(drawn_lengths, seed)
    located = {d: sources[d].locate(drawn[d][0]) for d in domains}

    target = OutputTarget(LocalFS(), out, "shards", [data, cfg.weights], overwrite)
    final = Path(local_path(target.final))
    tmp = Path(local_path(target.open()))
    shards: list[dict[str, Any]] = []
    per_domain = {d: {"docs": 0, "tokens": 0} for d in domains}
    writer: MMIDIDXWriter | None = None
    shard_domains: dict[str, dict[str, int]] = {}
    written = 0

    def close_shard() -> None:
        nonlocal writer
        assert writer is not None
        counts = writer.close()
        name = writer.prefix.name
        shards.append({"prefix": name, **counts,
                       "by_domain": {d: v for d, v in sorted(shard_domains.items())}})
        writer = None

    try:
        for i in range(stream_dom.size):
            d = domains[int(stream_dom[i])]
            j = int(stream_pos[i])
            part, local = located[d][0][j], located[d][1][j]
            tokens = sources[d].datasets[part][int(local)]
            n = int(tokens.size)
            if writer is not None and writer.docs > 0 and writer.tokens + n > cfg.shard_tokens:
                close_shard()
            if writer is None:
                writer = MMIDIDXWriter(tmp / f"shard-{len(shards):05d}", dtype)
                shard_domains = {}
            writer.write_raw(tokens.data if tokens.flags.c_contiguous else tokens.tobytes())
            writer.add_lengths(np.array([n], np.int64))
            entry = shard_domains.setdefault(d, {"docs": 0, "tokens": 0})
            entry["docs"] += 1
            entry["tokens"] += n
            per_domain[d]["docs"] += 1
            per_domain[d]["tokens"] += n
            written += n
            if progress is not None and i % _PROGRESS_EVERY == 0:
                progress(written)
        if writer is not None:
            close_shard()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise

    files: dict[str, dict[str, Any]] = {}
    for s in shards:
        s["files"] = {}
        for ext in (".bin", ".idx"):
            name = s["prefix"] + ext
            path = tmp / name
            files[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            s["files"][name] = files[name]

    eff = plan.effective_weights
    data_root = Path(data).resolve()
    blend = []
    for d in domains:
        dom_tokens = train[d]["tokens"]
        for prefix, ds in zip(train[d]["prefixes"], sources[d].datasets):
            part_tokens = int(ds.lengths.astype(np.int64).sum())
            blend.append((eff[d] * part_tokens / dom_tokens if dom_tokens else 0.0, _rel(data_root / prefix, final)))
    shard_total = sum(s["tokens"] for s in shards)
    # Paths relative to the shards directory: the output does not depend on where it was written, and moves intact.
    shards_blend = [(s["tokens"] / shard_total, s["prefix"]) for s in shards]
    data_path = _blend(blend)
    (tmp / DATA_PATH_FILE).write_text(data_path + "\n")
    files[DATA_PATH_FILE] = {"bytes": (tmp / DATA_PATH_FILE).stat().st_size, "sha256": file_sha256(tmp / DATA_PATH_FILE)}

    domain_table = {}
    for d in domains:
        b = plan.budgets[d]
        epochs_started = int(drawn[d][1].max()) + 1 if drawn[d][1].size else 0
        domain_table[d] = {
            "weight": b.weight, "effective_weight": eff[d], "budget_tokens": b.tokens,
            "available_tokens": b.available, "available_docs": int(len(sources[d].lengths)),
            "docs": per_domain[d]["docs"], "tokens": per_domain[d]["tokens"],
            "epochs": (per_domain[d]["tokens"] / b.available) if b.available else 0.0,
            "epochs_started": epochs_started, "capped": b.capped, "redistributed_in_tokens": round(b.received, 3),
        }
    manifest = {
        "format": "megatron-mmidx-v1",
        "curate_version": __version__,
        "tokenizer": {"sha256": tok["sha256"], "vocab_size": tok["vocab_size"], "eos_id": tok["eos_id"],
                      "bos_id": tok["bos_id"], "dtype": tok["dtype"]},
        "dtype": tok["dtype"],
        "seed": seed,
        "tokens_requested": total,
        "tokens": shard_total,
        "docs": sum(s["docs"] for s in shards),
        "max_epochs": cfg.max_epochs,
        "shard_tokens": cfg.shard_tokens,
        "weights": {"requested": {d: plan.budgets[d].weight for d in domains}, "effective": eff,
                    "source": _rel(Path(cfg.weights).resolve(), final), "source_sha256": file_sha256(cfg.weights)},
        "data": {"path": _rel(data_root, final), "datasets_json_sha256": file_sha256(data_root / "datasets.json")},
        "paths_relative_to": "the directory holding this manifest",
        "redistribution": notes,
        "domains": domain_table,
        "shards": shards,
        "files": dict(sorted(files.items())),
        "megatron_data_path": data_path,
        "shards_data_path": _blend(shards_blend),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (tmp / MANIFEST_SHA256).write_text(_manifest_sha256_line(tmp))
    stats = {"stage": "shards", "curate_version": __version__, "tokens": shard_total, "docs": manifest["docs"],
             "shards": len(shards), "domains": domain_table, "redistribution": notes, "seed": seed,
             "config": cfg.model_dump(), "wall_seconds": round(time.time() - started, 3)}
    # stats.json carries the wall time (it differs run to run); it is therefore not listed in the manifest's files.
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
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
