"""Dedup benchmark: curate's Spark dedup vs datatrove's four MinHash stages on the same synthetic corpus, 2 cores.

The corpus is realistic prose (sentences of the standard library's docstrings, 20% of words swapped for other
docstring words so unrelated documents share almost no 5-grams), with planted families of near-duplicates at
similarities spread over 0.3..1.0, some edited copies of edited copies, and verbatim and case/punctuation-only copies.

Ground truth is exact Jaccard of word 5-grams (curate's normalization) for every pair that could matter: all pairs
inside a planted family plus every pair a very permissive LSH (42 bands x 3 rows: a pair at 0.5 is a candidate with
probability 0.996, at 0.8 with 1 - 1e-13) proposes. True edges are the pairs with Jaccard >= 0.8.
- recall: fraction of true edges of which at most one document was kept;
- precision: fraction of removed documents whose best partner has Jaccard >= 0.8; `removed_below_0.5` counts removed
  documents whose best partner is below 0.5.

Shapes (`--shape short|long|all`): "short" is the corpus above; "long" is ~`--mb` MB of files of this machine of at
least 8 KB each (source, headers, man pages, licenses, changelogs, READMEs; read by benchmarks/text_corpus.py) with
the same kinds of planted near-duplicates, where the per-byte path (normalize, shingle, hash, verify, write) is the
cost rather than the per-document one.

Usage: PYTHONPATH=$PWD .venv/bin/python benchmarks/dedup.py [--shape all] [--docs 5000] [--scales 1,2,4] [--mb 100]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

import text_corpus
from harness import MIB, ResourceMeter, device, shapes_json, write_json

SHARDS = 8  # input files: datatrove splits work by file, Spark reads one task per file
WORKERS = 2


# ---------------------------------------------------------------------------------------------------------------------
# Corpus


def _sentences() -> tuple[list[str], list[str]]:
    from curate.demo import _prose_paragraphs

    sents, vocab = set(), set()
    for para in _prose_paragraphs():
        for s in re.split(r"(?<=[.!?])\s+", para):
            if len(s.split()) >= 6:
                sents.add(s)
                vocab.update(w for w in s.split() if w.isalpha())
    return sorted(sents), sorted(vocab)


def _edit(words: list[str], rng: random.Random, target: float, vocab: list[str]) -> list[str]:
    """Word-level edits (replace, delete, insert) at random positions, about enough for 5-gram Jaccard `target`."""
    m = max(len(words) - 4, 1)
    k = max(1, round(m * (1 - target) / (5 * (1 + target))))
    out = list(words)
    for pos in sorted(rng.sample(range(len(out)), min(k, len(out))), reverse=True):
        r = rng.random()
        if r < 0.6:
            out[pos] = rng.choice(vocab)
        elif r < 0.8:
            del out[pos]
        else:
            out.insert(pos, rng.choice(vocab))
    return out


def build_corpus(n_docs: int, seed: int = 0) -> tuple[list[dict], list[list[str]]]:
    """`n_docs` documents (id, text) and the planted families (lists of ids)."""
    rng = random.Random(seed)
    sents, vocab = _sentences()
    docs: list[dict] = []
    families: list[list[str]] = []

    def add(text: str) -> str:
        doc_id = f"d{len(docs):07d}-{rng.getrandbits(24):06x}"
        docs.append({"id": doc_id, "text": text})
        return doc_id

    while len(docs) < n_docs:
        chosen = rng.sample(sents, rng.randint(8, 25))
        words = " ".join(chosen).split(" ")
        words = [rng.choice(vocab) if rng.random() < 0.2 else w for w in words]
        base = add(" ".join(words))
        if rng.random() < 0.3:
            fam = [base]
            prev = words
            for _ in range(rng.randint(1, 3)):
                kind = rng.random()
                if kind < 0.08:
                    fam.append(add(" ".join(words)))  # verbatim copy
                elif kind < 0.15:
                    fam.append(add(" ".join(words).upper().replace(".", "!")))  # same normalized text
                else:
                    src = prev if rng.random() < 0.3 else words  # sometimes a copy of a copy
                    prev = _edit(src, rng, rng.uniform(0.3, 1.0), vocab)
                    fam.append(add(" ".join(prev)))
            families.append(fam)
    docs = docs[:n_docs]
    keep = {d["id"] for d in docs}
    families = [[i for i in f if i in keep] for f in families]
    rng.shuffle(docs)
    return docs, [f for f in families if len(f) > 1]


LONG_DOMAINS = ("python", "c", "man", "licenses", "changelogs", "markdown", "reference")
LONG_MAX_DOC = 30_000  # characters: as text_corpus's "long" shape, so no file dominates
LONG_MIN_DOC = 8_000


def build_long_corpus(target_bytes: int, seed: int = 0) -> tuple[list[dict], list[list[str]]]:
    """Long documents (>= 8 KB: standard-library source, C headers, man pages, licenses, changelogs, READMEs, the
    language reference; read by benchmarks/text_corpus.py) up to about `target_bytes`, with planted families of
    near-duplicates as in the short corpus. Files are taken round-robin over the domains; when the machine's files
    run out, further documents are copies with 20% of their words swapped (5-gram Jaccard about 0.06 with the
    original: unrelated to it at any threshold that matters)."""
    rng = random.Random(seed)
    pools = [text_corpus.read_texts(d, 10**12, LONG_MAX_DOC, 10**6, LONG_MIN_DOC) for d in LONG_DOMAINS]
    texts: list[str] = []
    for k in range(max(map(len, pools))):
        texts += [pool[k][1] for pool in pools if k < len(pool)]
    docs: list[dict] = []
    families: list[list[str]] = []
    total = 0

    def add(text: str) -> str:
        nonlocal total
        doc_id = f"d{len(docs):07d}-{rng.getrandbits(24):06x}"
        docs.append({"id": doc_id, "text": text})
        total += len(text.encode("utf-8"))
        return doc_id

    k = 0
    while total < target_bytes:
        words = texts[k % len(texts)].split(" ")
        vocab = [w for w in words if w.isalpha()] or ["word"]
        if k >= len(texts):  # the pool is spent: a perturbed copy is a new, unrelated document
            words = [rng.choice(vocab) if rng.random() < 0.2 else w for w in words]
        k += 1
        base = add(" ".join(words))
        if rng.random() < 0.3:
            fam = [base]
            for _ in range(rng.randint(1, 2)):
                kind = rng.random()
                if kind < 0.1:
                    fam.append(add(" ".join(words)))  # verbatim copy
                elif kind < 0.2:
                    fam.append(add(" ".join(words).upper()))  # same normalized text
                else:
                    fam.append(add(" ".join(_edit(words, rng, rng.uniform(0.3, 1.0), vocab))))
            families.append(fam)
    rng.shuffle(docs)
    return docs, families


def write_shards(docs: list[dict], directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for s in range(SHARDS):
        path = directory / f"part-{s:03d}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for d in docs[s::SHARDS]:
                f.write(json.dumps(d) + "\n")
        total += path.stat().st_size
    return total


# ---------------------------------------------------------------------------------------------------------------------
# Ground truth


def ground_truth(docs: list[dict], families: list[list[str]]) -> dict[tuple[int, int], float]:
    """Exact 5-gram Jaccard for family pairs and permissive-LSH candidates: {(i, j): J} with i < j doc indexes."""
    from curate.dedup.lsh import band_keys
    from curate.dedup.minhash import permutations, shingle_hashes, shingle_sets, signatures
    from curate.dedup.normalize import normalize_texts

    n = len(docs)
    sets: list[np.ndarray] = []
    sigs = []
    a, b = permutations(126, seed=424242)
    for lo in range(0, n, 2000):
        norm = normalize_texts(pa.array([d["text"] for d in docs[lo:lo + 2000]], pa.string()))
        x, doc = shingle_hashes(norm, 5)
        m = len(norm)
        sets.extend(shingle_sets(x, doc, m))
        sigs.append(signatures(x, doc, m, a, b))
    keys = band_keys(np.concatenate(sigs), 42, 3)
    index = {d["id"]: i for i, d in enumerate(docs)}
    pairs: set[tuple[int, int]] = set()
    for fam in families:
        ids = sorted(index[i] for i in fam)
        pairs.update((u, v) for k, u in enumerate(ids) for v in ids[k + 1:])
    has = np.array([len(s) > 0 for s in sets])
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        col = keys[order, band]
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        ends = np.r_[starts[1:], len(col)]
        for s, e in zip(starts, ends):
            if e - s > 1:
                members = sorted(int(order[t]) for t in range(s, e) if has[order[t]])
                pairs.update((u, v) for k, u in enumerate(members) for v in members[k + 1:])
    out = {}
    for u, v in pairs:
        su, sv = sets[u], sets[v]
        if len(su) == 0 or len(sv) == 0:
            continue
        inter = len(np.intersect1d(su, sv, assume_unique=True))
        out[(u, v)] = inter / (len(su) + len(sv) - inter)
    return out


def score(docs: list[dict], truth: dict[tuple[int, int], float], kept_ids: set[str]) -> dict[str, float]:
    ids = [d["id"] for d in docs]
    kept = np.array([i in kept_ids for i in ids])
    best = np.zeros(len(ids))
    true_edges = caught = 0
    for (u, v), j in truth.items():
        best[u] = max(best[u], j)
        best[v] = max(best[v], j)
        if j >= 0.8:
            true_edges += 1
            caught += not (kept[u] and kept[v])
    removed = ~kept
    n_removed = int(removed.sum())
    return {
        "removed": n_removed,
        "true_edges": true_edges,
        "precision": round(float((best[removed] >= 0.8).mean()) if n_removed else 1.0, 4),
        "recall": round(caught / true_edges if true_edges else 1.0, 4),
        "removed_below_0.5": int((best[removed] < 0.5).sum()),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Systems


def run_ours(spark, input_dir: Path, out: Path, verify: str) -> tuple[ResourceMeter, set[str], dict]:
    import pyarrow.dataset as ds

    from curate.dedup.config import DedupConfig
    from curate.dedup.stage import run_dedup

    with ResourceMeter() as mem:
        stats = run_dedup(spark, DedupConfig(verify=verify), [str(input_dir)], str(out))
    kept = set(ds.dataset(str(out / "kept"), partitioning="hive").to_table(columns=["id"]).column("id").to_pylist())
    return mem, kept, stats


def run_datatrove(input_dir: Path, work: Path) -> tuple[ResourceMeter, set[str]]:
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.logging import logger

    logger.remove()  # its per-task progress and stats tables would bury ours
    logger.add(sys.stderr, level="WARNING")
    cfg = MinhashConfig()  # datatrove's defaults: 5-grams, 14 buckets x 8 hashes, 64-bit hashes
    logs = work / "logs"
    with ResourceMeter(exclude=("java",)) as mem:  # our Spark session's JVM (and its Python workers) stays up
        _datatrove_stages(input_dir, work, cfg, logs)
    kept = set()
    for p in sorted((work / "kept").glob("*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            kept.update(json.loads(line)["id"] for line in f)
    return mem, kept


def _datatrove_stages(input_dir: Path, work: Path, cfg, logs: Path) -> None:
    """datatrove's four MinHash stages (signatures, buckets, clusters, filter), each on its own executor."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    LocalPipelineExecutor(
        pipeline=[JsonlReader(str(input_dir)), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)],
        tasks=SHARDS, workers=WORKERS, logging_dir=str(logs / "1"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                      config=cfg)],
        tasks=cfg.num_buckets, workers=WORKERS, logging_dir=str(logs / "2"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                                      config=cfg)],
        tasks=1, workers=1, logging_dir=str(logs / "3"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[JsonlReader(str(input_dir)), MinhashDedupFilter(input_folder=str(work / "remove")),
                  JsonlWriter(str(work / "kept"))],
        tasks=SHARDS, workers=WORKERS, logging_dir=str(logs / "4"),
    ).run()


# ---------------------------------------------------------------------------------------------------------------------


def _row(system: str, docs: list[dict], nbytes: int, mem: ResourceMeter, scored: dict, bxr: str) -> dict:
    wall = mem.wall_s
    return {"system": system, "wall_s": round(wall, 2), "cpu_s": round(mem.cpu_s, 1),
            "docs_per_s": round(len(docs) / wall, 1),
            "mb_per_s": round(nbytes / 1e6 / wall, 3), "driver_rss_mb": round(mem.driver / MIB),
            "workers_rss_mb": round(mem.workers / MIB), **scored, "bands_x_rows": bxr}


def _datatrove_row(input_dir: Path, work: Path, docs: list[dict], nbytes: int, truth: dict) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    mem, kept = run_datatrove(input_dir, work)
    row = _row("datatrove 0.10.1 (4 MinHash stages)", docs, nbytes, mem, score(docs, truth, kept), "14x8")
    print(json.dumps(row), flush=True)
    return row


def bench_short(spark, args, work: Path) -> dict:
    """The short-document corpus: three curate runs, datatrove, and our time at each scale."""
    scales = sorted({int(s) for s in args.scales.split(",")})
    corpora = {}
    for s in scales:
        docs, fams = build_corpus(args.docs * s, seed=s)
        corpora[s] = (docs, fams, write_shards(docs, work / f"input-{s}x"))
    # The peer comparison runs at the largest scale: at a few thousand documents our fixed Spark job overhead
    # (about 5 s on an idle 2-core machine) dominates; the growth table shows it.
    top = max(scales)
    docs, fams, nbytes = corpora[top]
    t = time.perf_counter()
    truth = ground_truth(docs, fams)
    print(f"short corpus: {len(docs):,} docs, {nbytes / 1e6:.1f} MB in {SHARDS} files, {len(fams):,} planted "
          f"families; ground truth for {len(truth):,} pairs in {time.perf_counter() - t:.1f}s", flush=True)
    rows = []
    # The first two rows are each mode's first full-size run in this session (what a one-off `curate dedup` pays,
    # JVM code paths still warming); the third repeats the exact run, the steady state of a long pipeline session.
    for system, verify, out in (("curate (estimate)", "estimate", "ours-estimate"),
                                ("curate (exact verify)", "exact", "ours-exact"),
                                ("curate (exact verify, second run)", "exact", "ours-exact-2")):
        mem, kept, stats = run_ours(spark, work / f"input-{top}x", work / out, verify)
        rows.append(_row(system, docs, nbytes, mem, score(docs, truth, kept),
                         f"{stats['lsh']['bands']}x{stats['lsh']['rows']}"))
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_datatrove:
        rows.append(_datatrove_row(work / f"input-{top}x", work / "datatrove", docs, nbytes, truth))
    growth = []
    for s in scales:
        d, _, nb = corpora[s]
        if s == top:
            wall = rows[0]["wall_s"]
        else:
            wall = run_ours(spark, work / f"input-{s}x", work / f"ours-{s}x", "estimate")[0].wall_s
        growth.append({"scale": s, "docs": len(d), "mb": round(nb / 1e6, 1), "wall_s": round(wall, 2),
                       "docs_per_s": round(len(d) / wall, 1)})
        print(json.dumps(growth[-1]), flush=True)
    ratios = _ratios(rows, args.no_datatrove)
    for g in growth:
        ratios[f"time {g['scale']}x / {growth[0]['scale']}x"] = round(g["wall_s"] / growth[0]["wall_s"], 2)
    return {"rows": rows, "growth": growth, "ratios": ratios,
            "corpus": {"docs": len(docs), "bytes": nbytes, "families": len(fams), "truth_pairs": len(truth)}}


def bench_long(spark, args, work: Path) -> dict:
    """The long-document corpus (mean >= 8 KB): curate with its defaults (twice) and datatrove."""
    docs, fams = build_long_corpus(int(args.mb * 1e6))
    inp = work / "input-long"
    nbytes = write_shards(docs, inp)
    t = time.perf_counter()
    truth = ground_truth(docs, fams)
    mean_kb = sum(len(d["text"].encode()) for d in docs) / len(docs) / 1e3
    print(f"long corpus: {len(docs):,} docs, {nbytes / 1e6:.1f} MB in {SHARDS} files (mean {mean_kb:.1f} KB a "
          f"document), {len(fams):,} planted families; ground truth for {len(truth):,} pairs in "
          f"{time.perf_counter() - t:.1f}s", flush=True)
    rows = []
    for system, out in (("curate (defaults)", "ours-long"), ("curate (defaults, second run)", "ours-long-2")):
        mem, kept, stats = run_ours(spark, inp, work / out, "exact")
        rows.append(_row(system, docs, nbytes, mem, score(docs, truth, kept),
                         f"{stats['lsh']['bands']}x{stats['lsh']['rows']}"))
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_datatrove:
        rows.append(_datatrove_row(inp, work / "datatrove-long", docs, nbytes, truth))
    return {"rows": rows, "ratios": _ratios(rows, args.no_datatrove),
            "corpus": {"docs": len(docs), "bytes": nbytes, "mean_doc_bytes": round(mean_kb * 1e3),
                       "families": len(fams), "truth_pairs": len(truth)}}


def _ratios(rows: list[dict], no_peer: bool) -> dict:
    if no_peer:
        return {}
    dt = rows[-1]
    out = {f"{r['system']} throughput / datatrove": round(r["docs_per_s"] / dt["docs_per_s"], 2) for r in rows[:-1]}
    out.update({f"{r['system']} CPU seconds, datatrove / ours": round(dt["cpu_s"] / r["cpu_s"], 2)
                for r in rows[:-1] if r["cpu_s"]})
    return out


def _print_shape(shape: str, res: dict, spark_start: float) -> None:
    cols = ["system", "wall_s", "cpu_s", "docs_per_s", "mb_per_s", "driver_rss_mb", "workers_rss_mb", "precision",
            "recall", "removed_below_0.5", "removed", "true_edges", "bands_x_rows"]
    c = res["corpus"]
    print(f"\n# dedup benchmark, {shape} documents: {c['docs']:,} docs, {c['bytes'] / 1e6:.1f} MB, {WORKERS} cores "
          f"(Spark session start {spark_start:.1f}s not included)")
    print(" | ".join(cols))
    for r in res["rows"]:
        print(" | ".join(str(r[k]) for k in cols))
    if "growth" in res:
        print("\nour time vs input size")
        print("scale | docs | MB | wall_s | docs_per_s")
        for g in res["growth"]:
            print(f"{g['scale']}x | {g['docs']} | {g['mb']} | {g['wall_s']} | {g['docs_per_s']}")
    print(f"\nratios ({shape})")
    for k, v in res["ratios"].items():
        print(f"{k}: {v}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=["short", "long", "all"], default="short",
                    help="corpus: short documents (docstring prose), long ones (>= 8 KB files of this machine), or "
                         "both in one run (default short)")
    ap.add_argument("--docs", type=int, default=5000, help="short documents at 1x (default 5000; the peer runs at "
                    "the largest scale)")
    ap.add_argument("--scales", default="1,2,4", help="input multiples for our time growth (default 1,2,4)")
    ap.add_argument("--mb", type=float, default=100.0, help="size of the long-document corpus in MB (default 100)")
    ap.add_argument("--no-datatrove", action="store_true", help="skip the peer")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    work = Path(args.work or tempfile.mkdtemp(prefix="dedup-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shapes = ["short", "long"] if args.shape == "all" else [args.shape]

    from curate.spark import get_spark

    t = time.perf_counter()
    spark = get_spark(master=f"local[{WORKERS}]", conf={"spark.sql.shuffle.partitions": "4",
                                                        "spark.default.parallelism": "4"})
    spark_start = time.perf_counter() - t
    # One untimed warm-up on a small slice: JVM JIT and Python worker start-up are paid once per session.
    warm = work / "warm"
    write_shards(build_corpus(200, seed=99)[0], warm / "in")
    run_ours(spark, warm / "in", warm / "out", "estimate")

    results = {shape: (bench_short if shape == "short" else bench_long)(spark, args, work) for shape in shapes}
    spark.stop()
    for shape, res in results.items():
        _print_shape(shape, res, spark_start)
    if args.json:
        write_json(args.json, "dedup", device(), **shapes_json(results))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
