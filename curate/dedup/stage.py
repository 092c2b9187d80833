"""The dedup stage: exact duplicates first, then MinHash LSH near duplicates, optionally against a reference corpus.

Rules (deterministic, whatever the partitioning):
- Exact duplicates: documents with the same normalized text (see normalize.py; a text that normalizes to nothing is
  keyed by its raw text). Each exact group is represented by its smallest id in the near-duplicate search.
- Near duplicates: candidate pairs from LSH buckets (a star to each bucket's smallest id, never all pairs), kept
  when their Jaccard (MinHash estimate, or exact with `verify = "exact"`) reaches the threshold; connected components
  of the kept pairs, plus the exact groups, are the clusters.
- Keep rule: the member of a cluster with the smallest id. Every other member goes to removed/ with `reason`
  (`exact_duplicate` when its normalized text equals the kept document's, else `near_duplicate`), `cluster_id`
  (the cluster's smallest id) and `duplicate_of` (the kept document's id).
- `against`: a document matching a reference document (same normalized text, or a verified LSH candidate) is removed
  with `duplicate_of` = the matched reference id (the most similar one, then the smallest id) and
  `matched_reference` = true; the reference corpus is read only.
- Documents with no words after normalization (only punctuation or symbols) have no shingles: they are removed only
  as exact duplicates of the same raw text. Documents with fewer words than `ngram` have one shingle of all their
  words, so they match only documents with the same words.
"""

from __future__ import annotations

from typing import Any

from pyspark import InheritableThread, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from curate.console import console
from curate.dedup.components import ONE_TASK_MAX_EDGES, components_in_one_task, connected_components
from curate.dedup.config import DedupConfig
from curate.dedup.features import SIMILARITY_SCHEMA, document_features, similarity_fn
from curate.dedup.lsh import s_curve
from curate.errors import CurateError
from curate.sources import input_bytes, is_stage_output, read_documents
from curate.stage_output import StageOutput, output_partitions, summarize

EXACT = "exact_duplicate"
NEAR = "near_duplicate"


def _band_rows(feats: DataFrame, id_col: str = "id") -> DataFrame:
    """(band, key, id) for every band of every document with shingles."""
    return feats.select(F.col("id").alias(id_col), F.posexplode("band_keys").alias("band", "key"))


def _verify(pairs: DataFrame, feats: DataFrame, cfg: DedupConfig, other: DataFrame | None = None) -> DataFrame:
    """Candidate pairs (u, v) -> (u, v, similarity) for the pairs at or above the threshold; u's features come
    from `feats`, v's from `other` (default `feats`: a reference corpus may reuse an id of the input)."""
    col = "shingles" if cfg.verify == "exact" else "sig"
    fa = feats.select(F.col("id").alias("u"), F.col(col).alias("a"))
    fb = (feats if other is None else other).select(F.col("id").alias("v"), F.col(col).alias("b"))
    joined = pairs.join(fa, "u").join(fb, "v").select("u", "v", "a", "b")
    return joined.mapInArrow(similarity_fn(cfg.threshold, cfg.verify == "exact"), SIMILARITY_SCHEMA)


def _reference_matches(spark: SparkSession, reps: DataFrame, feats: DataFrame, cfg: DedupConfig, bands: int,
                       rows: int) -> DataFrame:
    """(rep, ref_id, ref_exact) for representatives that duplicate a document of the reference corpus (`feats`: the
    input's features, for verification)."""
    if not is_stage_output(spark, cfg.against):
        raise CurateError(f"--against {cfg.against}: not a finished stage output directory (no kept/ inside)")
    ref_docs = read_documents(spark, [cfg.against])
    ref = document_features(ref_docs, cfg.ngram, cfg.num_perm, cfg.seed, bands, rows, cfg.verify == "exact")
    ref = ref.persist(StorageLevel.MEMORY_AND_DISK)
    exact = (ref.groupBy("exact_key").agg(F.min("id").alias("ref_id"))
             .join(reps.select(F.col("id").alias("rep"), "exact_key"), "exact_key")
             .select("rep", "ref_id", F.lit(1.0).alias("similarity"), F.lit(True).alias("ref_exact")))
    buckets = _band_rows(ref, "ref_id").groupBy("band", "key").agg(F.min("ref_id").alias("v"))
    pairs = _band_rows(reps, "u").join(buckets, ["band", "key"]).select("u", "v").distinct()
    near = _verify(pairs, feats, cfg, other=ref).select(
        F.col("u").alias("rep"), F.col("v").alias("ref_id"), "similarity", F.lit(False).alias("ref_exact"))
    best = Window.partitionBy("rep").orderBy(F.desc("ref_exact"), F.desc("similarity"), F.asc("ref_id"))
    return (exact.unionByName(near).withColumn("_r", F.row_number().over(best)).where("_r = 1")
            .select("rep", "ref_id", "ref_exact"))


class _Persisted:
    """DataFrames persisted for the stage, unpersisted together at its end."""

    def __init__(self) -> None:
        self.frames: list[DataFrame] = []

    def __call__(self, df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self.frames.append(df)
        return df

    def release(self) -> None:
        for df in self.frames:
            df.unpersist()


def run_dedup(
    spark: SparkSession, cfg: DedupConfig, inputs: list[str], out: str, overwrite: bool = False
) -> dict[str, Any]:
    """Deduplicate `inputs` into `out`: kept/ (by domain), removed/ (with reason, cluster_id, duplicate_of),
    stats.json and _SUCCESS."""
    bands, rows = cfg.lsh_params()
    if bands * rows > cfg.num_perm:
        raise CurateError(f"bands x rows = {bands * rows} is more than num_perm = {cfg.num_perm}")
    docs = read_documents(spark, inputs)
    if "text" not in docs.columns or "id" not in docs.columns:
        raise CurateError(f"{' '.join(inputs)}: documents need 'id' and 'text' columns (run curate ingest first)")
    stage = StageOutput(spark, out, "dedup", [*inputs, cfg.against or ""], overwrite)
    spark.sparkContext.setCheckpointDir(stage.path("_checkpoints"))
    keep = _Persisted()
    try:
        if not (len(inputs) == 1 and is_stage_output(spark, inputs[0])):
            # Raw files are parsed and validated in Python and their ids resolved with a shuffle: do that once, not
            # again for the final join (a stage output's Parquet is cheaper to read twice than to cache).
            docs = keep(docs)
        graph = _search(spark, cfg, docs, bands, rows, keep)
        status = _fates(graph, keep)
        extra = _write(spark, stage, cfg, inputs, docs, status, graph)
    finally:
        keep.release()
        stage.fs.delete(stage.path("_checkpoints"))
    return _finish(stage, cfg, bands, rows, extra)


def _search(spark: SparkSession, cfg: DedupConfig, docs: DataFrame, bands: int, rows: int,
            keep: _Persisted) -> dict[str, Any]:
    """Features, exact groups, reference matches, candidate pairs, verified pairs and their components."""
    # The features stay where their documents are; only the narrow columns move to find exact groups, and the
    # wide one (signature or shingle set) moves in verification, for the candidates' documents only.
    feats = keep(document_features(docs, cfg.ngram, cfg.num_perm, cfg.seed, bands, rows, cfg.verify == "exact"))
    groups = keep(feats.select("id", "exact_key", "n_shingles", "band_keys")
                  .withColumn("rep", F.min("id").over(Window.partitionBy("exact_key"))))
    reps = groups.where(F.col("id") == F.col("rep"))
    # 1. The reference corpus, if any: matched representatives leave the search, with their exact groups.
    ref_match = None
    if cfg.against:
        ref_match = keep(_reference_matches(spark, reps, feats, cfg, bands, rows))
        reps = reps.join(ref_match.select(F.col("rep").alias("id")), "id", "left_anti")
    # 2. Candidate pairs: a star from every bucket member to the bucket's smallest id.
    bucketed = _band_rows(reps, "u").withColumn("v", F.min("u").over(Window.partitionBy("band", "key")))
    candidates = keep(bucketed.where(F.col("u") != F.col("v")).select("u", "v").distinct())
    # Counting materializes the features and the candidates, so the joins below are planned with their real sizes
    # (a small candidate set is broadcast to the features instead of every document's features being shuffled).
    n_candidates = candidates.count()
    ends = candidates.select(F.col("u").alias("id")).unionByName(candidates.select(F.col("v").alias("id")))
    involved = feats.join(ends.distinct(), "id", "left_semi")
    # 3. Verification against the threshold, then connected components of the verified pairs.
    verified = keep(_verify(candidates, involved, cfg))
    n_verified = verified.count()
    if n_verified <= ONE_TASK_MAX_EDGES:
        components, cc_rounds = keep(components_in_one_task(verified)), 0
    else:
        components, cc_rounds = connected_components(verified.select("u", "v"), cfg.max_cc_rounds)
    return {"groups": groups, "candidates": candidates, "verified": verified, "components": components,
            "ref_match": ref_match, "cc_rounds": cc_rounds, "candidate_pairs": n_candidates,
            "verified_pairs": n_verified}


def _fates(graph: dict[str, Any], keep: _Persisted) -> DataFrame:
    """Every document's fate: reference match, else its cluster's smallest id (a representative without verified
    pairs is its own cluster). Columns id, keep_id, reason, matched_reference, removed."""
    ref_match = graph["ref_match"]
    fate = graph["groups"].select("id", "rep").join(
        graph["components"].select(F.col("u").alias("rep"), "component"), "rep", "left")
    if ref_match is None:
        ref_id, ref_exact = F.lit(None).cast("string"), F.lit(False)
    else:
        fate = fate.join(ref_match, "rep", "left")
        ref_id, ref_exact = F.col("ref_id"), F.col("ref_exact")
    component = F.coalesce("component", "rep")
    status = fate.select(
        "id",
        F.when(ref_id.isNotNull(), ref_id).otherwise(component).alias("keep_id"),
        F.when(ref_id.isNotNull(), F.when(ref_exact, F.lit(EXACT)).otherwise(F.lit(NEAR)))
        .when(F.col("rep") == component, F.lit(EXACT)).otherwise(F.lit(NEAR)).alias("reason"),
        ref_id.isNotNull().alias("matched_reference"),
    )
    return keep(status.withColumn("removed", F.col("matched_reference") | (F.col("id") != F.col("keep_id"))))


def _write(spark: SparkSession, stage: StageOutput, cfg: DedupConfig, inputs: list[str], docs: DataFrame,
           status: DataFrame, graph: dict[str, Any]) -> dict[str, Any]:
    """kept/ and removed/, with the graph stats computed beside the write; returns the graph stats."""
    # The graph stats are a handful of small jobs over cached tables: run them beside the write (a second thread,
    # so their scheduling gaps and the write's overlap) rather than after it. They also materialize the fates first,
    # so the join below is planned with their real size: a fate table under Spark's broadcast threshold goes to the
    # documents, which then move once (in the write), not twice.
    out: dict[str, Any] = {}
    side = InheritableThread(target=_graph_stats_into, args=(out, graph, status), daemon=True)
    side.start()
    try:
        status.count()
        labelled = docs.join(status, "id").select(
            *docs.columns, "reason", F.col("keep_id").alias("cluster_id"), F.col("keep_id").alias("duplicate_of"),
            "matched_reference", "removed",
        )
        stage.write_split(labelled, "removed", ("kept", docs.columns),
                          ("removed", [*docs.columns, "reason", "cluster_id", "duplicate_of", "matched_reference"]),
                          partitions=output_partitions(input_bytes(spark, inputs), cfg.output_partitions),
                          tally={"kept": ["domain"], "removed": ["domain", "reason", "matched_reference"]})
    finally:
        side.join()
    if "error" in out:
        raise out["error"]
    return out["stats"]


def _graph_stats_into(out: dict[str, Any], graph: dict[str, Any], status: DataFrame) -> None:
    try:
        out["stats"] = _graph_stats(graph["groups"], graph["verified"], status, graph["cc_rounds"])
        out["stats"].update(candidate_pairs=graph["candidate_pairs"], verified_pairs=graph["verified_pairs"])
    except BaseException as exc:  # re-raised on the driver's main thread
        out["error"] = exc


def _finish(stage: StageOutput, cfg: DedupConfig, bands: int, rows: int, extra: dict[str, Any]) -> dict[str, Any]:
    # Counted by the writing tasks (the same numbers as reading the tables back, without the jobs).
    kept_counts = stage.tallies["kept"]
    removed_counts = stage.tallies["removed"]
    stats = summarize(kept_counts, removed_counts, input_docs=extra.pop("documents_seen"))
    ref_rows = sum(r["docs"] for r in removed_counts if r["matched_reference"])
    stats.update(
        exact_duplicates=stats["removed_by_reason"].get(EXACT, 0),
        near_duplicates=stats["removed_by_reason"].get(NEAR, 0),
        removed_against_reference=ref_rows,
        lsh={"bands": bands, "rows": rows, "num_perm": cfg.num_perm, "ngram": cfg.ngram,
             "candidate_threshold": cfg.effective_candidate_threshold() if cfg.bands is None else None,
             "threshold": cfg.threshold, "verify": cfg.verify, "s_curve": s_curve(bands, rows)},
        **extra,
        config=cfg.model_dump(),
    )
    stats["alarms"] = _alarms(stats, cfg)
    for alarm in stats["alarms"]:
        console.print(f"[bold red]dedup alarm:[/] {alarm}")
    return stage.finish(stats)


def _graph_stats(feats: DataFrame, verified: DataFrame, status: DataFrame, cc_rounds: int) -> dict[str, Any]:
    """Small numbers about the candidate graph and the clusters (only aggregates reach the driver), all in one
    query: its independent parts run side by side instead of one action after another."""
    sizes = (status.where(~F.col("matched_reference")).groupBy("keep_id").count().where("count > 1")
             .withColumn("bin", F.ceil(F.log2(F.col("count").cast("double"))).cast("int")))
    null = F.lit(None).cast("long")
    parts = [
        sizes.groupBy("bin").agg(F.lit("hist").alias("kind"), F.count(F.lit(1)).alias("a"),
                                 F.max("count").alias("b"), F.sum("count").alias("c")),
        feats.agg(F.lit("docs").alias("kind"), F.lit(None).cast("int").alias("bin"), F.count(F.lit(1)).alias("a"),
                  F.count(F.when(F.col("n_shingles") == 0, 1)).alias("b"), null.alias("c")),
    ]
    query = parts[0].select("kind", "bin", "a", "b", "c")
    for part in parts[1:]:
        query = query.unionByName(part.select("kind", "bin", "a", "b", "c"))
    rows = query.collect()
    one = {r["kind"]: r for r in rows if r["kind"] != "hist"}
    hist_rows = sorted((r for r in rows if r["kind"] == "hist"), key=lambda r: r["bin"])
    histogram = []
    for r in hist_rows:
        lo, hi = 2 ** (r["bin"] - 1) + 1, 2 ** r["bin"]
        histogram.append({"size": f"{lo}" if lo == hi else f"{lo}-{hi}", "clusters": r["a"], "docs": r["c"]})
    return {
        "documents_seen": one["docs"]["a"],
        "cc_rounds": cc_rounds,
        "clusters": sum(h["clusters"] for h in histogram),
        "largest_cluster": max((r["b"] for r in hist_rows), default=1),
        "cluster_size_histogram": histogram,
        "docs_without_shingles": one["docs"]["b"],
    }


def _alarms(stats: dict[str, Any], cfg: DedupConfig) -> list[str]:
    alarms = []
    if stats["largest_cluster"] > cfg.alarm_component_size:
        alarms.append(f"a cluster of {stats['largest_cluster']:,} documents (alarm_component_size = "
                      f"{cfg.alarm_component_size:,}): check the threshold and the bands")
    rate = stats["removed_docs"] / stats["input_docs"] if stats["input_docs"] else 0.0
    if rate > cfg.alarm_removal_rate:
        alarms.append(f"removed {rate:.1%} of the documents (alarm_removal_rate = {cfg.alarm_removal_rate:.0%}): "
                      "a setting this aggressive over-removes (as DCLM's bug did)")
    return alarms
