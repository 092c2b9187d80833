"""The leakage guard of held-out splits: how many valid/test documents have a near-duplicate in train, and (on
request) held-out clusters that take their train near-duplicates with them.

Near-duplicates are found with the dedup stage's machinery (curate.dedup: word n-gram MinHash signatures, LSH
bands, the same verification, connected components) at a lower default threshold: Jaccard 0.5, because dedup at 0.8
leaves pairs at 0.5-0.8 that flatter a held-out loss. Candidates are every (held-out, train) pair that shares an LSH
bucket; a pair leaks when the MinHash estimate of its Jaccard reaches the threshold. The figure per domain and
held-out split is the share of its held-out documents with at least one such partner in train, in any domain (every
domain's train split can be mixed into training).

Split by cluster: a search from the held-out documents through train finds every train document linked to one by a
chain of verified pairs (one round per link: each round's new documents are searched against the train documents
left). The connected components of the pairs found (dedup's functions) are the clusters, and every member of a
cluster goes to the split of its held-out member that comes first in hash order (split bucket, then id): its train
members leave train, and a valid or test member of a cluster shared with the other held-out split may switch. A
valid-test pair with no train document between them is no leak and stays as planned. After the move the figure is 0
by construction (every verified train partner of a held-out document, and each of theirs in turn, left train with
it), so it is not searched again.

Domains split by the tail rule (splits.py) are left out: their held-out text is cut from documents whose rest is in
train, so a whole-document figure does not apply. Only counts per (domain, split) reach the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from curate.dedup.components import ONE_TASK_MAX_EDGES, components_in_one_task, connected_components
from curate.dedup.features import (MAX_TEXT_BYTES_PER_BATCH, SIMILARITY_SCHEMA, batch_features, similarity_fn,
                                   text_slices)
from curate.dedup.lsh import choose_bands
from curate.dedup.minhash import permutations
from curate.errors import CurateError
from curate.tokenize.config import LeakageConfig
from curate.tokenize.splits import HELDOUT, split_bucket

GUARD_SCHEMA = "id string, domain string, split string, bucket long, sig binary, band_keys array<bigint>"
_ARROW_SCHEMA = pa.schema([("id", pa.string()), ("domain", pa.string()), ("split", pa.string()),
                           ("bucket", pa.int64()), ("sig", pa.binary()), ("band_keys", pa.list_(pa.int64()))])


def lsh_params(cfg: LeakageConfig) -> tuple[int, int]:
    """(bands, rows) centred 0.2 below the threshold, as dedup does: a missed pair is a leak nobody sees."""
    return choose_bands(max(0.05, round(cfg.threshold - 0.2, 4)), cfg.num_perm)


def _features_fn(cfg: LeakageConfig, bands: int, rows: int) -> Callable[[Iterator[pa.RecordBatch]],
                                                                         Iterator[pa.RecordBatch]]:
    a, b = permutations(cfg.num_perm, cfg.seed)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for part in text_slices(batch, MAX_TEXT_BYTES_PER_BATCH):
                f = batch_features(part, cfg.ngram, a, b, bands, rows, False)
                yield pa.RecordBatch.from_arrays(
                    [part.column("id"), part.column("domain"), part.column("split"), part.column("bucket"),
                     f.column("sig"), f.column("band_keys")], schema=_ARROW_SCHEMA)

    return run


def guard_features(assigned: DataFrame, cfg: LeakageConfig, seed: int, bands: int, rows: int) -> DataFrame:
    """GUARD_SCHEMA rows for (domain, split, id, text) documents: the split bucket (`seed`), signature, band keys."""
    cols = assigned.select("id", "domain", "split", split_bucket(seed).alias("bucket"), "text")
    return cols.mapInArrow(_features_fn(cfg, bands, rows), GUARD_SCHEMA)


def _band_rows(feats: DataFrame) -> DataFrame:
    return feats.select("id", "split", F.posexplode("band_keys").alias("band", "key"))


# Band rows (documents x bands) and pairs up to these counts are broadcast to the join instead of shuffling the
# whole corpus's band rows and signatures: held-out documents are a small share of a corpus, their partners fewer.
BROADCAST_BAND_ROWS = 1_000_000
BROADCAST_PAIRS = 1_000_000


def _linked(left: DataFrame, right: DataFrame, feats: DataFrame, threshold: float,
            keep: Callable[[DataFrame], DataFrame]) -> DataFrame:
    """(u, v, similarity): left documents u and right documents v (band rows) that share a bucket and reach the
    threshold by their signatures' estimated Jaccard (persisted with `keep`)."""
    left = keep(left.select("band", "key", F.col("id").alias("u")))
    if left.count() <= BROADCAST_BAND_ROWS:
        left = F.broadcast(left)
    pairs = keep(left.join(right.select("band", "key", F.col("id").alias("v")), ["band", "key"])
                 .select("u", "v").distinct())
    sig = feats.select("id", "sig")
    small = pairs.count() <= BROADCAST_PAIRS  # then each join scans the signatures once, shuffling nothing

    def hint(df: DataFrame) -> DataFrame:
        return F.broadcast(df) if small else df

    # Each input appears once in the plan: the search's rounds nest these plans, so more would grow exponentially.
    joined = hint(hint(pairs).join(sig.select(F.col("id").alias("u"), F.col("sig").alias("a")), "u"))
    joined = joined.join(sig.select(F.col("id").alias("v"), F.col("sig").alias("b")), "v").select("u", "v", "a", "b")
    return keep(joined.mapInArrow(similarity_fn(threshold, exact=False), SIMILARITY_SCHEMA))


def leak_pairs(feats: DataFrame, threshold: float, keep: Callable[[DataFrame], DataFrame]) -> DataFrame:
    """(u, v, similarity): held-out document u has the train document v as a near-duplicate."""
    rows = _band_rows(feats)
    return _linked(rows.where(F.col("split") != "train"), rows.where(F.col("split") == "train"), feats, threshold,
                   keep)


def leakage_counts(feats: DataFrame, pairs: DataFrame, domains: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{domain: {valid|test|total: {heldout_docs, leaked_docs, share}}} for `domains`, from one small aggregate."""
    leaked = pairs.select(F.col("u").alias("id")).distinct().withColumn("leaked", F.lit(1))
    rows = (feats.where(F.col("split") != "train").select("id", "domain", "split").join(leaked, "id", "left")
            .groupBy("domain", "split").agg(F.count(F.lit(1)).alias("n"), F.count("leaked").alias("leaked"))
            .collect())
    got = {(r["domain"], r["split"]): (int(r["n"]), int(r["leaked"])) for r in rows}
    return {d: _with_total({s: figure(*got.get((d, s), (0, 0))) for s in HELDOUT}) for d in sorted(domains)}


def figure(heldout: int, leaked: int) -> dict[str, Any]:
    """One leakage figure: held-out documents, how many have a train near-duplicate, and the share."""
    return {"heldout_docs": heldout, "leaked_docs": leaked, "share": round(leaked / heldout, 6) if heldout else 0.0}


def _with_total(by_split: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    total = figure(*(sum(by_split[s][k] for s in HELDOUT) for k in ("heldout_docs", "leaked_docs")))
    return {**by_split, "total": total}


def total_figure(by_domain: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The figure per held-out split and in total over all domains."""
    return _with_total({s: figure(*(sum(v[s][k] for v in by_domain.values()) for k in ("heldout_docs", "leaked_docs")))
                        for s in HELDOUT})


def apply_moves(df: DataFrame, moves: DataFrame) -> DataFrame:
    """`df` (with id and split) with the moved documents' new split, columns in their order."""
    to = moves.select("id", F.col("split").alias("_to"))
    return df.join(to, "id", "left").withColumn("split", F.coalesce("_to", "split")).select(*df.columns)


def _search(feats: DataFrame, first: DataFrame, cfg: LeakageConfig,
            keep: Callable[[DataFrame], DataFrame]) -> tuple[DataFrame, int, int]:
    """The verified pairs linking held-out documents to train through chains of near-duplicates (`first`: the
    held-out documents' own, persisted), how many there are and the rounds it took."""
    train = keep(_band_rows(feats).where(F.col("split") == "train").select("band", "key", "id"))
    edges, n_edges = first.select("u", "v"), first.count()
    moved = keep(first.select(F.col("v").alias("id")).distinct())
    pulled, rounds = moved, 1
    while True:
        found = _linked(train.join(pulled, "id"), train.join(moved, "id", "left_anti"), feats, cfg.threshold, keep)
        n_found = found.count()
        if n_found == 0:
            return edges, n_edges, rounds
        rounds += 1
        if rounds > cfg.max_rounds:
            raise CurateError(f"tokenize: split by cluster: chains of near-duplicates longer than {cfg.max_rounds} "
                              "links (raise leakage.threshold or leakage.max_rounds)")
        edges, n_edges = edges.unionByName(found.select("u", "v")), n_edges + n_found
        pulled = keep(found.select(F.col("v").alias("id")).distinct())
        moved = keep(moved.unionByName(pulled))


def cluster_moves(feats: DataFrame, first: DataFrame, cfg: LeakageConfig,
                  keep: Callable[[DataFrame], DataFrame]) -> tuple[DataFrame, int, int]:
    """(id, domain, from, split) of every document whose cluster goes to another split, the search rounds and the
    connected-component rounds (0: one task's union-find, as dedup does for graphs of its size; the rounds of a
    bigger graph need a checkpoint directory)."""
    edges, n_edges, rounds = _search(feats, first, cfg, keep)
    if n_edges <= ONE_TASK_MAX_EDGES:
        components, cc_rounds = keep(components_in_one_task(edges)), 0
    else:
        components, cc_rounds = connected_components(edges)
    members = components.select(F.col("u").alias("id"), "component").join(
        feats.select("id", "domain", "split", "bucket"), "id")
    head = (members.where(F.col("split") != "train").groupBy("component")
            .agg(F.min(F.struct("bucket", "id", "split")).alias("head")))
    moves = (members.join(head, "component").where(F.col("split") != F.col("head.split"))
             .select("id", "domain", F.col("split").alias("from"), F.col("head.split").alias("split")))
    return keep(moves), rounds, cc_rounds


@dataclass
class GuardResult:
    """What the guard found: the stats.json section, the per-domain entries and the moves to apply (or None)."""

    stats: dict[str, Any]
    by_domain: dict[str, dict[str, Any]]
    moves: DataFrame | None = None
    persisted: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        """Unpersist the guard's cached tables (the moves among them: call it once they are applied)."""
        for df in self.persisted:
            df.unpersist()
        self.persisted.clear()


def run_guard(assigned: DataFrame, cfg: LeakageConfig, seed: int, domains: list[str],
              excluded: list[str]) -> GuardResult:
    """Measure leakage of (domain, split, id, text) documents of `domains` and, with `split_by_cluster`, plan the
    moves that end it; `excluded` (tail-rule domains) are named in the stats. Call `release()` when done."""
    bands, rows = lsh_params(cfg)
    result = GuardResult(stats={}, by_domain={})

    def keep(df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        result.persisted.append(df)
        return df

    feats = keep(guard_features(assigned, cfg, seed, bands, rows))
    first = leak_pairs(feats, cfg.threshold, keep)
    before = leakage_counts(feats, first, domains)
    after, moved, rounds = before, {}, (0, 0)
    if cfg.split_by_cluster and any(v["total"]["leaked_docs"] for v in before.values()):
        result.moves, *rounds = cluster_moves(feats, first, cfg, keep)
        moved = _moved_counts(result.moves)
        after = _after_move(before, moved)
    result.stats = {
        "measured": True, "threshold": cfg.threshold, "num_perm": cfg.num_perm, "ngram": cfg.ngram,
        "bands": bands, "rows": rows, "verify": "estimate", "split_by_cluster": cfg.split_by_cluster,
        **total_figure(after),
        "excluded_domains": {d: "tail rule: held-out text is cut from documents whose rest is in train"
                             for d in sorted(excluded)},
    }
    for d in domains:
        result.by_domain[d] = {"leakage": after[d]}
    if cfg.split_by_cluster:
        result.stats.update(before_move=total_figure(before),
                            moved_docs=sum(n for m in moved.values() for n in m.values()),
                            moved=_sum_moves(moved), search_rounds=rounds[0], cc_rounds=rounds[1])
        for d in domains:
            result.by_domain[d].update(leakage_before_move=before[d], moved=moved.get(d, {}))
    for d in excluded:
        result.by_domain[d] = {"leakage": {"excluded": result.stats["excluded_domains"][d]}}
    return result


def _after_move(before: dict[str, dict[str, dict[str, Any]]],
                moved: dict[str, dict[str, int]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The figure after the moves: held-out counts shifted by them and no leak left, by construction (every verified
    train partner of a held-out document, and each of theirs in turn, left train with it)."""
    out = {}
    for d, f in before.items():
        n = {s: f[s]["heldout_docs"] for s in HELDOUT}
        for move, count in moved.get(d, {}).items():
            src, dst = move.split("->")
            n[src] = n.get(src, 0) - count
            n[dst] += count
        out[d] = _with_total({s: figure(n[s], 0) for s in HELDOUT})
    return out


def _moved_counts(moves: DataFrame) -> dict[str, dict[str, int]]:
    """{domain: {"train->valid": n, ...}}: one small aggregate."""
    out: dict[str, dict[str, int]] = {}
    for r in moves.groupBy("domain", "from", "split").count().collect():
        out.setdefault(r["domain"], {})[f"{r['from']}->{r['split']}"] = int(r["count"])
    return {d: dict(sorted(m.items())) for d, m in sorted(out.items())}


def _sum_moves(moved: dict[str, dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in moved.values():
        for k, n in m.items():
            total[k] = total.get(k, 0) + n
    return dict(sorted(total.items()))
