"""The tokenize stage: per-domain Megatron datasets (train/valid/test) from curated documents, tokenized in Spark.

How the bytes get into a deterministic order without the driver holding the corpus:
1. Each document gets a split (train/valid/test, by the per-domain rules of `splits.py`, planned from a count per
   domain; a domain too small for whole-document splits has its documents cut into pieces first) and an order key (a
   seeded hash of its id). Spark range-partitions and sorts the *text* by (domain, split, order, id), before
   tokenizing, so the range partitioner's sampling pass reads text only and never tokenizes twice.
2. Tokenizing is a narrow `mapInArrow` over the sorted partitions (engine.py: tiktoken where it reproduces the
   tokenizer, else `tokenizers`' `encode_batch_fast`; EOS appended).
   Each task writes its tokens as raw "piece" files, one per (split, domain) run inside its partition, and returns
   only a few counts per piece. Token bytes never travel back through the JVM.
3. Partition i holds keys below partition i+1's, so concatenating a (split, domain)'s pieces in partition order gives
   the documents in global key order, whatever the partition count. The driver streams the pieces into size-bounded
   Megatron part files (4 MiB blocks, one thread per (split, domain)); it holds one piece's lengths at a time.
Pieces live in the stage's hidden temporary directory, so the output must be on a file system the executors and the
driver share (local disk for local Spark, a shared mount on a cluster).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from curate.config_model import DEFAULT_SEED
from curate.console import console
from curate.errors import CurateError, InternalError
from curate.fs import is_local, local_path
from curate.sources import input_bytes, read_documents
from curate.stage_output import StageOutput, summarize
from curate.tokenize.config import TokenizeConfig
from curate.tokenize.engine import VERIFY_ONE_IN, Encoder, EngineSpec, plan_engine
from curate.tokenize.leakage import GuardResult, apply_moves, run_guard
from proxy_training.megatron import MMIDIDXWriter, max_token_id, token_dtype
from curate.tokenize.splits import SplitPlan, plan_splits
from curate.tokenize.tokenizer import TokenizerInfo, describe_tokenizer, sample_texts, train_bpe

SPLITS = ("train", "valid", "test")
BYTES_PER_TASK = 64 * 1024 * 1024
# Characters handed to one encode_batch call: big enough for the tokenizer's thread pool, small enough for memory.
CHARS_PER_ENCODE = 4_000_000
_COPY_BLOCK = 4 * 1024 * 1024
PIECE_SCHEMA = "partition int, piece int, split string, domain string, docs long, tokens long, chars long, max_id long"


def order_column(seed: int):
    """The seeded shuffled document order inside a (split, domain) dataset (ties, never expected, broken by id)."""
    return F.xxhash64(F.lit(seed), F.lit("order"), F.col("id"))


_ENCODERS: dict[tuple[str, EngineSpec], Encoder] = {}


def _worker_encoder(sha: str, spec: EngineSpec, text: str, eos_id: int, append_eos: bool) -> Encoder:
    # Python workers are reused across tasks: load the tokenizer once per worker.
    key = (sha, spec)
    if key not in _ENCODERS:
        _ENCODERS.clear()
        _ENCODERS[key] = Encoder(spec, text, eos_id, append_eos)
    return _ENCODERS[key]


class _PieceWriter:
    """The raw tokens and lengths of one (split, domain) run of a partition, written under attempt-unique temporary
    names and renamed when complete, so a retried or speculative task can never leave a mixed piece."""

    def __init__(self, root: str, partition: int, piece: int, attempt: int, split: str, domain: str):
        self.base = os.path.join(root, f"{partition:06d}-{piece:04d}")
        self.suffix = f".tmp{attempt}"
        self.split, self.domain = split, domain
        self.bin = open(self.base + ".bin" + self.suffix, "wb")  # noqa: SIM115
        self.lengths: list[np.ndarray] = []
        self.docs = self.tokens = self.chars = 0
        self.max_id = -1

    def write(self, flat: np.ndarray, lengths: np.ndarray, chars: int, dtype: np.dtype) -> None:
        if flat.size:
            self.max_id = max(self.max_id, int(flat.max()))
        self.bin.write(flat.astype(dtype.newbyteorder("<")).data)
        self.lengths.append(lengths)
        self.docs += int(lengths.size)
        self.tokens += int(lengths.sum())
        self.chars += chars

    def close(self) -> None:
        self.bin.close()
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        lengths.astype("<i8").tofile(self.base + ".len" + self.suffix)
        os.replace(self.base + ".len" + self.suffix, self.base + ".len")
        os.replace(self.base + ".bin" + self.suffix, self.base + ".bin")


def _tokenize_partitions(root: str, info: TokenizerInfo, spec: EngineSpec, tok_json: str, dtype: np.dtype):
    """The mapInArrow function: tokenize a sorted partition into piece files, yield one count row per piece."""
    eos_id, append_eos, sha = info.eos_id, not info.adds_eos, info.sha256

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        partition, attempt = ctx.partitionId(), ctx.attemptNumber()
        encoder = _worker_encoder(sha, spec, tok_json, eos_id, append_eos)
        current: _PieceWriter | None = None
        done: list[_PieceWriter] = []
        for batch in batches:
            splits = batch.column("split").to_pylist()
            domains = batch.column("domain").to_pylist()
            texts = batch.column("text").to_pylist()
            # The documents tiktoken's output is checked on: by their order hash, whatever the partitioning.
            verify = np.asarray(batch.column("order"), dtype=np.int64) % VERIFY_ONE_IN == 0
            start = 0
            while start < len(texts):
                key = (splits[start], domains[start])
                if current is None or (current.split, current.domain) != key:
                    if current is not None:
                        current.close()
                        done.append(current)
                    current = _PieceWriter(root, partition, len(done), attempt, *key)
                end, chars = start, 0
                while end < len(texts) and (splits[end], domains[end]) == key and (end == start or chars < CHARS_PER_ENCODE):
                    chars += len(texts[end])
                    end += 1
                flat, lengths = encoder.encode(texts[start:end], verify[start:end])
                current.write(flat, lengths, chars, dtype)
                start = end
        if current is not None:
            current.close()
            done.append(current)
        if done:
            yield pa.RecordBatch.from_pydict({
                "partition": [partition] * len(done), "piece": list(range(len(done))),
                "split": [p.split for p in done], "domain": [p.domain for p in done],
                "docs": [p.docs for p in done], "tokens": [p.tokens for p in done], "chars": [p.chars for p in done],
                "max_id": [p.max_id for p in done],
            }, schema=pa.schema([("partition", pa.int32()), ("piece", pa.int32()), ("split", pa.string()),
                                 ("domain", pa.string()), ("docs", pa.int64()), ("tokens", pa.int64()),
                                 ("chars", pa.int64()), ("max_id", pa.int64())]))

    return run


def _copy_bytes(src, writer: MMIDIDXWriter, nbytes: int) -> None:
    while nbytes > 0:
        block = src.read(min(_COPY_BLOCK, nbytes))
        if not block:
            raise InternalError(f"{src.name}: ended early")
        writer.write_raw(block)
        nbytes -= len(block)


def assemble_dataset(pieces: list[str], prefix_root: Path, dtype: np.dtype, part_tokens: int) -> list[dict[str, Any]]:
    """Concatenate piece files (in the given order) into part files `prefix_root/part-NNNNN.bin|.idx`, each cut at a
    document boundary before it passes `part_tokens` tokens. Returns one {name, docs, tokens} per part."""
    parts: list[dict[str, Any]] = []
    writer: MMIDIDXWriter | None = None
    itemsize = dtype.itemsize

    def open_part() -> MMIDIDXWriter:
        return MMIDIDXWriter(prefix_root / f"part-{len(parts):05d}", dtype)

    try:
        for base in pieces:
            lengths = np.fromfile(base + ".len", dtype="<i8")
            with open(base + ".bin", "rb") as src:
                i = 0
                while i < lengths.size:
                    if writer is None:
                        writer = open_part()
                    room = part_tokens - writer.tokens
                    cum = np.cumsum(lengths[i:])
                    take = int(np.searchsorted(cum, room, side="right"))
                    if take == 0 and writer.docs == 0:
                        take = 1  # a document longer than a part stands alone
                    if take == 0:
                        parts.append({"name": writer.prefix.name, **writer.close()})
                        writer = None
                        continue
                    chunk = lengths[i:i + take]
                    _copy_bytes(src, writer, int(cum[take - 1]) * itemsize)
                    writer.add_lengths(chunk)
                    i += take
        if writer is not None:
            parts.append({"name": writer.prefix.name, **writer.close()})
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    return parts


def _resolve_dtype(cfg: TokenizeConfig, info: TokenizerInfo) -> np.dtype:
    if cfg.dtype == "auto":
        return token_dtype(info.vocab_size)
    return np.dtype(cfg.dtype)


def _print_split_rules(plan: SplitPlan, minimum: int) -> None:
    """One console line per rule other than the fraction: which domains, so a small domain is never a surprise."""
    for rule, how in (("minimum", f"grown to {minimum} held-out document(s) per split from train"),
                      ("tail", "too few documents: the tail of each document held out for valid/test")):
        hit = [d for d, p in sorted(plan.domains.items()) if rule in p.rule.values()]
        if hit:
            names = ", ".join(f"{d} ({plan.domains[d].docs} docs)" for d in hit[:10])
            more = f" and {len(hit) - 10} more" if len(hit) > 10 else ""
            console.print(f"tokenize: {how}: {names}{more} (stats.json: by_domain.*.split_rule)")


def _guard(spark: SparkSession, cfg: TokenizeConfig, docs: DataFrame, plan: SplitPlan, seed: int,
           stage: StageOutput) -> GuardResult | None:
    """The leakage guard (leakage.py) over the domains split into whole documents; None when switched off."""
    if not cfg.leakage.check:
        return None
    tails = plan.tail_domains()
    whole = sorted(d for d in plan.domains if d not in tails)
    if cfg.leakage.split_by_cluster:
        # Components of a big graph checkpoint their rounds here; the moves read them until the tokens are written.
        spark.sparkContext.setCheckpointDir(stage.path("_checkpoints"))
    assigned = plan.keyed(docs.where(~F.col("domain").isin(tails))) if tails else plan.keyed(docs)
    return run_guard(assigned, cfg.leakage, seed, whole, tails)


def _print_leakage(stats: dict[str, Any]) -> None:
    """One line for the whole figure, one per domain with leakage, one for the moves of split-by-cluster."""
    lk = stats["leakage"]
    if not lk["measured"]:
        console.print("tokenize: held-out leakage not measured (leakage.check = false)")
        return
    moved = lk.get("before_move")
    shown = moved or lk
    for domain, entry in sorted(stats["by_domain"].items()):
        f = entry.get("leakage_before_move" if moved else "leakage", {})
        if f.get("total", {}).get("leaked_docs"):
            console.print(f"tokenize: leakage {domain}: {_describe(f)}")
    console.print(f"tokenize: held-out leakage: {_describe(shown)} have a near-duplicate (Jaccard >= "
                  f"{lk['threshold']}) in train" + (f"; excluded (tail rule): {', '.join(lk['excluded_domains'])}"
                                                    if lk["excluded_domains"] else ""))
    if moved:
        how = ", ".join(f"{k} {n:,}" for k, n in lk["moved"].items()) or "none"
        console.print(f"tokenize: split by cluster: moved {lk['moved_docs']:,} documents ({how}); leakage now "
                      f"{lk['total']['leaked_docs']:,} of {lk['total']['heldout_docs']:,}")
        # A cluster can take a domain's whole train split, or its only valid (test) document to test (valid).
        emptied = [f"{d}/{s}" for d, e in sorted(stats["by_domain"].items()) if "leakage_before_move" in e
                   for s in SPLITS if e["docs_by_split"][s] == 0
                   and (s == "train" or e["leakage_before_move"][s]["heldout_docs"])]
        if emptied:
            console.print(f"[bold yellow]tokenize: split by cluster emptied {', '.join(emptied)}[/]")


def _describe(f: dict[str, Any]) -> str:
    t = f["total"]
    return (f"{t['leaked_docs']:,} of {t['heldout_docs']:,} held-out documents ({100 * t['share']:.2f}%; "
            f"valid {f['valid']['leaked_docs']:,}/{f['valid']['heldout_docs']:,}, "
            f"test {f['test']['leaked_docs']:,}/{f['test']['heldout_docs']:,})")


def _dataset_table(domains: list[str], built: dict[tuple[str, str], list[dict[str, Any]]],
                   groups: dict[tuple[str, str], list[Any]]) -> dict[str, dict[str, Any]]:
    """datasets.json's splits: per split and domain the part prefixes, documents and tokens (checked against the
    tokens the tasks counted)."""
    splits: dict[str, dict[str, Any]] = {s: {} for s in SPLITS}
    for split in SPLITS:
        for domain in domains:
            parts = built.get((split, domain), [])
            splits[split][domain] = {
                "prefixes": [f"{split}/{domain}/{p['name']}" for p in parts],
                "docs": sum(p["docs"] for p in parts), "tokens": sum(p["tokens"] for p in parts),
            }
            expect = groups.get((split, domain), [])
            if splits[split][domain]["tokens"] != sum(r["tokens"] for r in expect):
                raise InternalError(f"tokenize: {split}/{domain}: tokens written differ from tokens counted")
    return splits


def _split_stats(plan: SplitPlan, domains: list[str], pieces: list[Any], splits: dict[str, dict[str, Any]],
                 guard: GuardResult | None) -> dict[str, Any]:
    """The counts of stats.json: documents per domain (each input document once), tokens and documents per split,
    the split rules and the leakage figure."""
    kept = []
    for domain in domains:
        # A tail-cut document is several pieces in the datasets but one input document here.
        chars = sum(r["chars"] for r in pieces if r["domain"] == domain)
        kept.append({"domain": domain, "docs": plan.domains[domain].docs, "chars": chars})
    stats = summarize(kept, [], input_docs=sum(k["docs"] for k in kept))
    rules = plan.report()
    for domain, entry in stats["by_domain"].items():
        entry["tokens"] = {s: splits[s][domain]["tokens"] for s in SPLITS}
        entry["docs_by_split"] = {s: splits[s][domain]["docs"] for s in SPLITS}
        entry["split_rule"] = rules[domain]
        if guard is not None:
            entry.update(guard.by_domain.get(domain, {}))
    stats.update(
        tokens=sum(splits[s][d]["tokens"] for s in SPLITS for d in domains),
        tokens_by_split={s: sum(v["tokens"] for v in splits[s].values()) for s in SPLITS},
        docs_by_split={s: sum(v["docs"] for v in splits[s].values()) for s in SPLITS},
        leakage=guard.stats if guard is not None else {"measured": False},
    )
    return stats


def with_tokenizer(spark: SparkSession, cfg: TokenizeConfig, inputs: list[str], path: str, seed: int) -> TokenizeConfig:
    """`cfg` itself when it names a tokenizer; else `cfg` naming one trained by `cfg.train` on `inputs` (a sample
    balanced across domains, drawn with `cfg.train.seed`, else `seed`) and written to `path`."""
    if cfg.tokenizer is not None:
        return cfg
    t = cfg.train
    texts = sample_texts(spark, inputs, t.chars_per_domain, seed if t.seed is None else t.seed)
    info = train_bpe(texts, t.vocab_size, path, t.min_frequency)
    console.print(f"tokenizer: trained byte-level BPE, vocab {info.vocab_size:,} -> {path}")
    return cfg.model_copy(update={"tokenizer": path})


def run_tokenize(
    spark: SparkSession, cfg: TokenizeConfig, inputs: list[str], out: str, overwrite: bool = False
) -> dict[str, Any]:
    """Tokenize the documents of `inputs` with `cfg.tokenizer` into per-domain Megatron datasets under `out`."""
    if cfg.tokenizer is None:
        raise CurateError("tokenize: no tokenizer given (a tokenizer.json path)")
    if not is_local(out):
        raise CurateError(f"tokenize: --out must be a local or shared-mount path (got {out})")
    seed = DEFAULT_SEED if cfg.seed is None else cfg.seed
    info = describe_tokenizer(cfg.tokenizer, cfg.eos_token)
    dtype = _resolve_dtype(cfg, info)
    spec = plan_engine(str(cfg.tokenizer), cfg.engine)

    docs = read_documents(spark, inputs).select("id", "domain", "text")
    nbytes = input_bytes(spark, inputs)
    partitions = cfg.partitions or max(spark.sparkContext.defaultParallelism, math.ceil(nbytes / BYTES_PER_TASK))
    stage = StageOutput(spark, out, "tokenize", [*inputs, str(cfg.tokenizer)], overwrite)
    root = Path(local_path(stage.tmp))

    t_plan = time.time()
    plan = plan_splits(docs, seed, cfg.valid_fraction, cfg.test_fraction, cfg.min_heldout_docs)
    t_guard = time.time()
    guard = _guard(spark, cfg, docs, plan, seed, stage)
    t0 = time.time()
    t_plan, t_guard = t_guard - t_plan, t0 - t_guard
    pieces = _tokenize_pieces(docs, plan, guard, seed, partitions, root / "_pieces", info, spec, dtype, stage)
    t_spark = time.time() - t0
    domains, splits, tokenizer_json = _assemble(cfg, plan, pieces, root, info, dtype)
    t_assemble = time.time() - t0 - t_spark

    stats = _split_stats(plan, domains, pieces, splits, guard)
    stats.update(
        tokenizer={**tokenizer_json, "eos_token": info.eos_token, "source": str(cfg.tokenizer),
                   "engine": spec.describe()},
        seconds={"plan_splits": round(t_plan, 3), "leakage": round(t_guard, 3),
                 "sort_and_tokenize": round(t_spark, 3), "assemble": round(t_assemble, 3)},
        seed=seed, partitions=partitions, input_bytes=nbytes, config=cfg.model_dump(),
    )
    console.print(f"tokenize: {stats['tokens']:,} tokens ({dtype.name}) in {stats['input_docs']:,} documents, "
                  f"{len(domains)} domains")
    _print_split_rules(plan, cfg.min_heldout_docs)
    _print_leakage(stats)
    return stage.finish(stats)


def _tokenize_pieces(docs: DataFrame, plan: SplitPlan, guard: GuardResult | None, seed: int, partitions: int,
                     piece_root: Path, info: TokenizerInfo, spec: EngineSpec, dtype: np.dtype,
                     stage: StageOutput) -> list[Any]:
    """The Spark step: documents keyed by split (after the leakage guard's moves), sorted by (domain, split, seeded
    order, id) and tokenized into piece files under `piece_root`; one row per piece."""
    piece_root.mkdir(parents=True, exist_ok=True)
    keyed = plan.keyed(docs)
    if guard is not None and guard.moves is not None:
        keyed = apply_moves(keyed, guard.moves)
    keyed = keyed.withColumn("order", order_column(seed))
    ordered = keyed.repartitionByRange(partitions, "domain", "split", "order", "id").sortWithinPartitions(
        "domain", "split", "order", "id")
    tok_json = Path(info.path).read_text(encoding="utf-8")
    try:
        return ordered.mapInArrow(_tokenize_partitions(str(piece_root), info, spec, tok_json, dtype),
                                  PIECE_SCHEMA).collect()
    finally:
        if guard is not None:
            guard.release()
        stage.fs.delete(stage.path("_checkpoints"))


def _assemble(cfg: TokenizeConfig, plan: SplitPlan, pieces: list[Any], root: Path, info: TokenizerInfo,
              dtype: np.dtype) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """The pieces joined into one dataset per (split, domain) under `root`, beside tokenizer.json and datasets.json:
    (domains, the datasets table, the tokenizer's entry)."""
    piece_root = root / "_pieces"
    limit = max_token_id(dtype)
    too_big = max((r["max_id"] for r in pieces), default=-1)
    if too_big > limit:
        shutil.rmtree(piece_root, ignore_errors=True)
        raise CurateError(f"tokenize: token id {too_big} does not fit {dtype.name} (max {limit}); "
                          f"use dtype = \"int32\"")

    groups: dict[tuple[str, str], list[Any]] = {}
    for r in sorted(pieces, key=lambda r: (r["partition"], r["piece"])):
        groups.setdefault((r["split"], r["domain"]), []).append(r)
    domains = sorted(set(plan.domains) | {d for _, d in groups})

    def build(key: tuple[str, str]) -> list[dict[str, Any]]:
        split, domain = key
        bases = [str(piece_root / f"{r['partition']:06d}-{r['piece']:04d}") for r in groups[key]]
        return assemble_dataset(bases, root / split / domain, dtype, cfg.part_tokens)

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(groups)))) as pool:
        built = dict(zip(groups, pool.map(build, list(groups))))
    shutil.rmtree(piece_root)

    splits = _dataset_table(domains, built, groups)
    shutil.copyfile(cfg.tokenizer, root / "tokenizer.json")
    tokenizer_json = {"path": "tokenizer.json", "sha256": info.sha256, "vocab_size": info.vocab_size,
                      "eos_id": info.eos_id, "bos_id": info.bos_id, "dtype": dtype.name}
    (root / "datasets.json").write_text(json.dumps({"tokenizer": tokenizer_json, "splits": splits}, indent=2,
                                                   sort_keys=True) + "\n")
    return domains, splits, tokenizer_json
