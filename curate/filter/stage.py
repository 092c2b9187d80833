"""The filter stage: annotate every document (language, heuristics, quality), then drop by the domain's rules.

One `mapInArrow` pass runs, per document: fastText language ID (`lang`, `lang_score`), the domain's heuristic preset
(datatrove's filters; `heuristic_reason`, and C4's line edits applied to `text` with `edit_chars` = characters they
removed) and the quality classifier (`quality_score`). The rules then decide, in FineWeb's order: language, then
heuristics, then quality. A keep-top-fraction quality rule needs a per-domain cut: it is computed in Spark from a
histogram of scores (exact to 1e-6, the same whatever the partitioning), never from rows on the driver.

Kept and removed rows both carry every annotation, so a later run can re-threshold without rescoring, except that
the heuristics do not run on a document the language rule removes (`heuristic_reason` null, text unedited). Removed rows
add `reason`: datatrove's reason names (`gopher_short_doc`, `line_punct_ratio`, ...), `wrong_language`, `low_quality`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window
from rich.markup import escape

from curate.console import console
from curate.errors import CurateError, InternalError
from curate.filter.config import FilterConfig
from curate.fs import HadoopFS, qualify
from curate.sources import input_bytes, is_stage_output, read_documents
from curate.stage_output import Samples, StageOutput, output_partitions, summarize

WRONG_LANGUAGE = "wrong_language"
LOW_QUALITY = "low_quality"
C4_LINE_EDITS = "c4_line_edits"
SCORE_BUCKETS = 1_000_000  # keep-top cuts are exact to 1 / SCORE_BUCKETS of a score
ANNOTATE_BYTES_PER_TASK = 1024 * 1024

ANNOTATIONS = [
    T.StructField("lang", T.StringType(), True),
    T.StructField("lang_score", T.DoubleType(), True),
    T.StructField("heuristic_reason", T.StringType(), True),
    T.StructField("edit_chars", T.LongType(), True),
    T.StructField("quality_score", T.DoubleType(), True),
    T.StructField("reason", T.StringType(), True),
]
ANNOTATION_NAMES = [f.name for f in ANNOTATIONS]
# A few removed documents per reason, the same ones every run: those with the smallest 64-bit hashes of id.
_SAMPLE_COLUMNS = ("id", "domain", "lang", "lang_score", "quality_score", "text", "chars")


def _arrow_type(field: T.StructField) -> pa.DataType:
    return {T.StringType: pa.string(), T.DoubleType: pa.float64(), T.LongType: pa.int64()}[type(field.dataType)]


def annotate_texts(
    cfg: FilterConfig, domains: list[str], ids: list[str], texts: list[str], quality_model: str | None
) -> dict[str, list[Any]]:
    """Annotations and the decision (before any keep-top cut) for a batch of documents; runs in Python workers."""
    from curate.filter.heuristics import ChainCache, run_chain
    from curate.filter.langid import identify, keeps_language
    from curate.filter.quality import score_texts

    rules = {d: cfg.rules_for(d) for d in set(domains)}
    chains = {r.preset: ChainCache.get(cfg, r.preset) for r in rules.values()}
    langs, lang_scores = identify(texts)
    reasons, heur, edits, out_texts = [], [], [], []
    for doc_id, dom, text, lang, score in zip(ids, domains, texts, langs, lang_scores):
        r = rules[dom]
        if not keeps_language(lang, score, r.languages, r.lang_threshold):
            # The language rule comes first in every preset: the heuristics could not change the decision, so they
            # do not run (as in datatrove's pipeline, where the language filter drops the document first).
            out_texts.append(text)
            heur.append(None)
            edits.append(0)
            reasons.append(WRONG_LANGUAGE)
            continue
        verdict = run_chain(chains[r.preset], text, doc_id)
        out_texts.append(verdict.text)
        heur.append(verdict.reason)
        edits.append(len(text) - len(verdict.text))
        reasons.append(verdict.reason)
    qscores: list[float | None] = [None] * len(texts)
    if quality_model:
        qscores = list(score_texts(quality_model, out_texts))
        for i, (dom, q) in enumerate(zip(domains, qscores)):
            t = rules[dom].quality_threshold
            if reasons[i] is None and t is not None and q < t:
                reasons[i] = LOW_QUALITY
    return {"text": out_texts, "lang": langs, "lang_score": lang_scores, "heuristic_reason": heur,
            "edit_chars": edits, "quality_score": qscores, "reason": reasons}


def annotate(df: DataFrame, cfg: FilterConfig, quality_model: str | None) -> DataFrame:
    """Every column of `df` plus the annotations and a provisional `reason` (null = kept so far)."""
    base = [f for f in df.schema.fields if f.name not in ANNOTATION_NAMES]
    df = df.select(*[f.name for f in base])
    schema = T.StructType(base + ANNOTATIONS)
    arrow_schema = pa.schema(
        [pa.field(f.name, _arrow_type(f), True) for f in ANNOTATIONS]
    )
    names = [f.name for f in base]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            got = annotate_texts(cfg, batch.column("domain").to_pylist(), batch.column("id").to_pylist(),
                                 batch.column("text").to_pylist(), quality_model)
            cols = [pa.array(got["text"], pa.string()) if n == "text" else batch.column(n) for n in names]
            cols += [pa.array(got[f.name], arrow_schema.field(f.name).type) for f in ANNOTATIONS]
            yield pa.RecordBatch.from_arrays(cols, names=names + ANNOTATION_NAMES)

    return df.mapInArrow(run, schema)


def keep_top_cuts(annotated: DataFrame, cfg: FilterConfig, domains: list[str]) -> dict[str, int]:
    """Per domain with a keep-top rule: the lowest score bucket that keeps at least that fraction of the documents
    still kept, computed from a Spark histogram (at most SCORE_BUCKETS rows per domain, never the documents)."""
    fractions = {d: cfg.rules_for(d).quality_keep_top for d in domains}
    fractions = {d: f for d, f in fractions.items() if f is not None}
    if not fractions:
        return {}
    frac = F.create_map(*[x for d, f in sorted(fractions.items()) for x in (F.lit(d), F.lit(f))])
    pool = annotated.where(F.col("reason").isNull() & F.col("domain").isin(list(fractions)))
    hist = pool.groupBy("domain", _bucket().alias("bucket")).count()
    w_total = Window.partitionBy("domain")
    w_cum = Window.partitionBy("domain").orderBy(F.desc("bucket")).rowsBetween(Window.unboundedPreceding, 0)
    hist = (hist.withColumn("n", F.sum("count").over(w_total)).withColumn("cum", F.sum("count").over(w_cum))
            .withColumn("need", F.ceil(F.col("n") * frac[F.col("domain")])))
    rows = hist.where(F.col("cum") >= F.col("need")).groupBy("domain").agg(F.max("bucket").alias("cut")).collect()
    return {r["domain"]: int(r["cut"]) for r in rows}


def _bucket():
    return F.floor(F.col("quality_score") * SCORE_BUCKETS).cast("long")


def decide(annotated: DataFrame, cuts: dict[str, int]) -> DataFrame:
    """Apply the keep-top cuts: a document still kept whose score falls below its domain's cut is `low_quality`."""
    if not cuts:
        return annotated
    cut_buckets = F.create_map(*[x for d, c in sorted(cuts.items()) for x in (F.lit(d), F.lit(c))])
    below = _bucket() < cut_buckets[F.col("domain")]
    return annotated.withColumn(
        "reason", F.when(F.col("reason").isNull() & below, F.lit(LOW_QUALITY)).otherwise(F.col("reason"))
    )


def run_filter(
    spark: SparkSession, cfg: FilterConfig, inputs: list[str], out: str, overwrite: bool = False
) -> dict[str, Any]:
    """Read documents, annotate, drop by rule; write kept/ (by domain), removed/, stats.json, _SUCCESS to `out`."""
    # The filters cost far more per row than a shuffle: spread the rows over every core (Spark would otherwise keep
    # the input's few partitions, or adaptive execution would merge a small input into one task), in up to four
    # tasks per core for balance, but no more than the input fills: each task has a fixed cost of its own.
    in_bytes = input_bytes(spark, inputs)
    cores = spark.sparkContext.defaultParallelism
    docs = read_documents(spark, inputs, spread=max(cores, min(4 * cores, -(-in_bytes // ANNOTATE_BYTES_PER_TASK))))
    for col in ("id", "domain", "text"):
        if col not in docs.columns:
            raise CurateError(f"filter: input has no '{col}' column (run ingest first)")
    if cfg.uses_quality() and cfg.quality.model is None and cfg.quality.train_from is None:
        raise CurateError("filter: a quality rule is set but no quality model (set quality.model or "
                          "quality.train_from, or --quality-model)")
    check_domains(spark, cfg, inputs)
    stage = StageOutput(spark, out, "filter", [*inputs, cfg.quality.model or ""], overwrite)
    quality_model, quality_info = _quality_model(spark, cfg, docs, stage)
    annotated = annotate(docs, cfg, quality_model).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        cuts: dict[str, int] = {}
        if cfg.quality_keep_top is not None or any(d.quality_keep_top is not None for d in cfg.domains.values()):
            domains = [r["domain"] for r in annotated.select("domain").distinct().orderBy("domain").collect()]
            cuts = keep_top_cuts(annotated, cfg, domains)
        decided = decide(annotated, cuts)
        # One aggregate materializes the annotation pass (unless a cut did) and gives every count of stats.json.
        rows = _stat_rows(decided)
        columns = decided.columns
        samples = Samples("reason", "_sample_key", cfg.samples_per_reason, _SAMPLE_COLUMNS, cfg.sample_chars) \
            if cfg.samples_per_reason else None
        kept_rows, removed_rows = stage.write_split(
            decided.withColumn("_removed", F.col("reason").isNotNull())
            .withColumn("_sample_key", F.xxhash64("id")), "_removed",
            ("kept", [c for c in columns if c != "reason"]), ("removed", columns),
            partitions=output_partitions(in_bytes, cfg.output_partitions), samples=samples)
        stats = _stats(rows, cfg, cuts, quality_info, stage.samples if samples else {})
    finally:
        annotated.unpersist()
    # The stats come from the cached decisions, not from the files: check they describe what the files hold.
    if (stats["kept_docs"], stats["removed_docs"]) != (kept_rows, removed_rows):
        raise InternalError(f"filter: stats count {stats['kept_docs']} kept / {stats['removed_docs']} removed, the "
                            f"files hold {kept_rows} / {removed_rows}")
    return stage.finish(stats)


def input_domains(spark: SparkSession, inputs: list[str]) -> tuple[set[str], set[str]]:
    """(the domains with documents in `inputs`, the domains an upstream stats.json names whose documents were all
    removed). A stage output's domains are its `kept/domain=<d>/` directories, a listing, not a pass over the data;
    raw inputs need a distinct over their domain column."""
    fs = HadoopFS(spark)
    present: set[str] = set()
    upstream: set[str] = set()
    raw = []
    for given in inputs:
        if not is_stage_output(spark, given):
            raw.append(given)
            continue
        root = qualify(given).rstrip("/")
        dirs = [f.path.rstrip("/").rsplit("/", 1)[1] for f in fs.glob(f"{root}/kept/domain=*") if f.is_dir]
        present.update(d[len("domain="):] for d in dirs)
        if not dirs and any(f.path.endswith(".parquet") for f in fs.list_files(f"{root}/kept")):
            # A kept/ table not partitioned by domain (written by hand, not by a stage): read its column.
            present.update(_distinct_domains(spark.read.parquet(f"{root}/kept")))
        if fs.exists(f"{root}/stats.json"):
            try:
                upstream.update(json.loads(fs.read_text(f"{root}/stats.json")).get("by_domain") or {})
            except (ValueError, AttributeError):
                pass  # an unreadable stats file only loses the "removed upstream" leniency
    if raw:
        present.update(_distinct_domains(read_documents(spark, raw, count_unread=False)))
    return present, upstream - present


def _distinct_domains(df: DataFrame) -> set[str]:
    return {r[0] for r in df.select("domain").distinct().collect() if r[0] is not None}


def check_domains(spark: SparkSession, cfg: FilterConfig, inputs: list[str]) -> None:
    """Every domain the config names (per-domain tables, quality training sets) must be one of the input's: a typo
    would otherwise apply to nothing while its domain silently gets the default rules. A domain that an earlier
    stage emptied is only a warning."""
    named = [(f"filter.domains.{d}", d) for d in cfg.domains]
    if cfg.quality.train_from is not None:
        named += [(f"filter.quality.train_from.{side}", d) for side in ("positive", "negative")
                  for d in getattr(cfg.quality.train_from, side)]
    if not named:
        return
    present, emptied = input_domains(spark, inputs)
    for key, domain in named:
        if domain in present:
            continue
        if domain in emptied:
            console.print(f"[yellow]{escape(key)}: domain {escape(repr(domain))} has no documents left in the input "
                          f"(an earlier stage removed them all)[/]")
            continue
        shown = sorted(present)
        listed = ", ".join(shown[:20]) + (f", ... ({len(shown)} in all)" if len(shown) > 20 else "")
        raise CurateError(f"{key}: no domain {domain!r} in the input (domains: {listed or 'none'})")


def _quality_model(spark, cfg: FilterConfig, docs: DataFrame, stage: StageOutput) -> tuple[str | None, dict]:
    q = cfg.quality
    if q.model:
        path = os.path.abspath(q.model)
        if not os.path.isfile(path):
            raise CurateError(f"filter: quality model not found: {q.model}")
        return path, {"model": path}
    if q.train_from is None:
        return None, {}
    from curate.filter.quality import train_quality
    from curate.fs import local_path

    pos = docs.where(F.col("domain").isin(q.train_from.positive))
    neg = docs.where(F.col("domain").isin(q.train_from.negative))
    os.makedirs(local_path(stage.path("quality")), exist_ok=True)
    path = local_path(stage.path("quality/model.bin"))
    metrics = train_quality(pos, neg, path, q)
    console.print(f"filter: trained quality model on {metrics['train_docs']} documents: "
                  f"precision {metrics.get('precision')}, recall {metrics.get('recall')}, "
                  f"ROC AUC {metrics.get('roc_auc')}")
    # The model is read from the temp dir during the stage; stats name where it ends up.
    final = os.path.join(local_path(stage.final), "quality", "model.bin")
    return path, {**metrics, "model": final, "trained_in_stage": True}


_STAT_BINS = 20  # the quality-score histogram for the report


def _stat_rows(decided: DataFrame) -> list:
    """Documents, characters and edits per domain x reason x language x quality-score bin: a few hundred rows at
    most, never the documents."""
    qbin = F.when(F.col("quality_score").isNotNull(),
                  F.least(F.floor(F.col("quality_score") * _STAT_BINS), F.lit(_STAT_BINS - 1)).cast("int"))
    edit = F.coalesce(F.col("edit_chars"), F.lit(0))
    return decided.groupBy("domain", "reason", "lang", qbin.alias("qbin")).agg(
        F.count(F.lit(1)).alias("docs"), F.sum(F.length("text")).alias("chars"),
        F.sum(F.when(edit > 0, 1).otherwise(0)).alias("edited_docs"), F.sum(edit).alias("edit_chars"),
    ).collect()


def _stats(rows: list, cfg: FilterConfig, cuts: dict[str, int], quality_info: dict,
           samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every count of stats.json from `_stat_rows`; the removed samples the writing tasks picked."""
    bins = _STAT_BINS
    input_docs = sum(r["docs"] for r in rows)
    domains = sorted({r["domain"] for r in rows}, key=lambda d: (d is not None, d or ""))
    kept_by: dict[str, dict[str, int]] = {}
    removed_by: dict[tuple[str, str], dict[str, int]] = {}
    langs: dict[tuple[str, Any], int] = {}
    score_counts = [0] * bins
    for r in rows:
        chars, edit_chars = r["chars"] or 0, r["edit_chars"] or 0
        if r["reason"] is None:
            k = kept_by.setdefault(r["domain"], {"docs": 0, "chars": 0, "edited_docs": 0, "edit_chars": 0})
            k["docs"] += r["docs"]
            k["chars"] += chars
            k["edited_docs"] += r["edited_docs"] or 0
            k["edit_chars"] += edit_chars
        else:
            # A removed document loses all its characters: the stored text plus what C4's edits had cut from it.
            d = removed_by.setdefault((r["domain"], r["reason"]), {"docs": 0, "chars": 0})
            d["docs"] += r["docs"]
            d["chars"] += chars + edit_chars
        langs[(r["domain"], r["lang"])] = langs.get((r["domain"], r["lang"]), 0) + r["docs"]
        if r["qbin"] is not None:
            score_counts[r["qbin"]] += r["docs"]
    kept = [{"domain": d, "docs": v["docs"], "chars": v["chars"]} for d, v in sorted(kept_by.items())]
    edits = [{"domain": d, "docs": v["edited_docs"], "chars": v["edit_chars"]} for d, v in sorted(kept_by.items())]
    removed = [{"domain": d, "reason": why, **v} for (d, why), v in sorted(removed_by.items())]
    stats = summarize(kept, removed, input_docs=input_docs)
    edited_chars = sum(e["chars"] or 0 for e in edits)
    stats["input_chars"] = stats["kept_chars"] + stats["removed_chars"] + edited_chars
    stats["edited_docs"] = sum(e["docs"] or 0 for e in edits)
    stats["edited_chars"] = edited_chars
    # Rule x domain: documents and characters each rule removed (C4's line edits remove characters, not documents).
    rules: dict[str, dict[str, dict[str, int]]] = {}
    for r in removed:
        rules.setdefault(r["reason"], {})[r["domain"]] = {"docs": r["docs"], "chars": r["chars"] or 0}
    for e in edits:
        if e["chars"]:
            rules.setdefault(C4_LINE_EDITS, {})[e["domain"]] = {"docs": 0, "edited_docs": e["docs"],
                                                                "chars": e["chars"]}
    stats["removed_by_rule_and_domain"] = {k: dict(sorted(v.items())) for k, v in sorted(rules.items())}
    by_lang: dict[str, dict[str, int]] = {}
    for (domain, lang), n in langs.items():
        by_lang.setdefault(domain, {})[lang] = n
    stats["docs_by_domain_and_lang"] = {d: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0])))
                                        for d, v in sorted(by_lang.items())}
    if any(score_counts):
        stats["quality_histogram"] = {"edges": [i / bins for i in range(bins + 1)], "counts": score_counts}
    stats["samples"] = samples if removed else {}
    stats["rules"] = {d: cfg.rules_for(d).model_dump() for d in domains}
    stats["quality"] = {**quality_info, "keep_top_cuts": {d: c / SCORE_BUCKETS for d, c in cuts.items()}} \
        if quality_info else {}
    stats["config"] = cfg.model_dump()
    return stats

