"""The decontaminate stage: remove (or cut) training text that shares word n-grams with evaluation sets.

The driver reads the eval sets (small), builds one table of their n-gram hashes (curate.decontaminate.ngrams: its
false-match rate is in stats.json) and broadcasts it; one `mapInArrow` pass then looks up every n-gram of every
document. A document with at least `min_overlap` matching n-gram positions is contaminated:
- document mode: it goes to removed/ with reason `contaminated`, the eval set and item it matched most
  (ties: the item given first), the number of matching positions and the first matching n-gram (normalized words);
- span mode: the words of every matching n-gram are cut from its text (whole words, from the first character of
  the first to the last of the last; what lies between the spans stays byte for byte) and the edit is recorded on
  the kept row (`cut_spans` in the original text's characters, `cut_chars`); a document left with fewer than
  `ngram` words, or whose words could not be placed in its text (`ngrams.word_spans`), is removed instead.
Every decision depends on the document alone, so outputs are the same for any partitioning.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from curate.decontaminate.config import DecontamConfig
from curate.decontaminate.evalsets import EvalSet, read_eval_sets
from curate.decontaminate.ngrams import NgramTable
from curate.errors import CurateError, InternalError
from curate.sources import input_bytes, read_documents
from curate.stage_output import StageOutput, output_partitions, summarize

CONTAMINATED = "contaminated"
_SPAN = T.StructType([T.StructField("start", T.LongType(), False), T.StructField("end", T.LongType(), False)])
MATCH_FIELDS = [
    T.StructField("eval_set", T.StringType(), True),
    T.StructField("eval_item", T.StringType(), True),
    T.StructField("matched_ngrams", T.IntegerType(), True),
    T.StructField("contaminated_ngram", T.StringType(), True),
]
EDIT_FIELDS = [
    T.StructField("cut_spans", T.ArrayType(_SPAN, False), True),
    T.StructField("cut_chars", T.LongType(), True),
]
ANNOTATIONS = [*MATCH_FIELDS, *EDIT_FIELDS, T.StructField("reason", T.StringType(), True)]
ANNOTATION_NAMES = [f.name for f in ANNOTATIONS]
_ARROW = {
    "eval_set": pa.string(), "eval_item": pa.string(), "matched_ngrams": pa.int32(), "contaminated_ngram": pa.string(),
    "cut_spans": pa.list_(pa.field("element", pa.struct([pa.field("start", pa.int64(), False),
                                                          pa.field("end", pa.int64(), False)]), False)),
    "cut_chars": pa.int64(), "reason": pa.string(),
}


class EvalIndex:
    """What the executors need, broadcast once: the n-gram table and, per eval item, its set's name and its id."""

    def __init__(self, table: NgramTable, set_names: list[str], item_set: np.ndarray, item_ids: list[str]):
        self.table, self.set_names, self.item_set, self.item_ids = table, set_names, item_set, item_ids

    @classmethod
    def build(cls, sets: list[EvalSet], n: int) -> "EvalIndex":
        """One table over every item of every set, in the order given; a set with no n-gram is a one-line error."""
        texts = [t for s in sets for t in s.texts]
        table = NgramTable.build(texts, n)
        item_set = np.repeat(np.arange(len(sets), dtype=np.int32), [len(s.texts) for s in sets])
        start = 0
        for s in sets:
            if not table.per_item[start:start + len(s.texts)].any():
                raise CurateError(f"eval set {s.path}: none of its {len(s.texts):,} items has {n} words, so it has "
                                  f"no {n}-grams to match (lower --ngram, or check --layout / --text-field)")
            start += len(s.texts)
        return cls(table, [s.name for s in sets], item_set, [i for s in sets for i in s.ids])

    def item(self, k: int) -> tuple[str, str]:
        return self.set_names[int(self.item_set[k])], self.item_ids[k]


def annotate_texts(texts: list[str], index: EvalIndex, cfg: DecontamConfig) -> dict[str, list[Any]]:
    """The annotations of a batch of documents (and, in span mode, their cut texts); runs in Python workers."""
    from curate.decontaminate.ngrams import word_spans, words_of

    n = cfg.ngram
    rows = len(texts)
    out: dict[str, list[Any]] = {name: [None] * rows for name in ANNOTATION_NAMES}
    out["text"] = list(texts)
    words, offsets = words_of(texts)
    owner = index.table.owners_at(words, offsets)
    hits = np.flatnonzero(owner >= 0)
    if not len(hits):
        return out
    doc_of = np.searchsorted(offsets, hits, side="right") - 1
    bounds = np.searchsorted(doc_of, np.arange(rows + 1))
    for d in np.flatnonzero(np.diff(bounds) >= cfg.min_overlap):
        pos = hits[bounds[d]:bounds[d + 1]]
        items, counts = np.unique(owner[pos], return_counts=True)
        out["eval_set"][d], out["eval_item"][d] = index.item(int(items[np.argmax(counts)]))
        out["matched_ngrams"][d] = int(len(pos))
        out["contaminated_ngram"][d] = " ".join(words.slice(int(pos[0]), n).to_pylist())
        if cfg.mode == "document":
            out["reason"][d] = CONTAMINATED
            continue
        lo, hi = int(offsets[d]), int(offsets[d + 1])
        doc_words = words.slice(lo, hi - lo).to_pylist()
        spans = word_spans(texts[d], doc_words)
        covered = np.zeros(hi - lo, dtype=bool)
        for p in pos - lo:
            covered[p:p + n] = True
        if spans is None or hi - lo - int(covered.sum()) < n:
            out["reason"][d] = CONTAMINATED
            continue
        # Runs of covered words -> character spans of the original text.
        edges = np.flatnonzero(np.diff(np.concatenate([[False], covered, [False]]).astype(np.int8)))
        cuts = [(spans[a][0], spans[b - 1][1]) for a, b in zip(edges[::2], edges[1::2])]
        text, pieces, at = texts[d], [], 0
        for start, end in cuts:
            pieces.append(text[at:start])
            at = end
        pieces.append(text[at:])
        out["text"][d] = "".join(pieces)
        out["cut_spans"][d] = [{"start": s, "end": e} for s, e in cuts]
        out["cut_chars"][d] = sum(e - s for s, e in cuts)
    return out


def _annotate_partition(batches: Iterator[pa.RecordBatch], names: list[str], index_bc: Any,
                        cfg: DecontamConfig) -> Iterator[pa.RecordBatch]:
    index = index_bc.value
    for batch in batches:
        if batch.num_rows == 0:
            continue
        got = annotate_texts(batch.column("text").to_pylist(), index, cfg)
        cols = [pa.array(got["text"], pa.string()) if c == "text" else batch.column(c) for c in names]
        cols += [pa.array(got[c], _ARROW[c]) for c in ANNOTATION_NAMES]
        yield pa.RecordBatch.from_arrays(cols, names=[*names, *ANNOTATION_NAMES])


def annotate(df: DataFrame, index_bc: Any, cfg: DecontamConfig) -> DataFrame:
    """Every column of `df` (text cut in span mode) plus the match and edit annotations and `reason`."""
    base = [f for f in df.schema.fields if f.name not in ANNOTATION_NAMES]
    names = [f.name for f in base]
    return df.select(*names).mapInArrow(partial(_annotate_partition, names=names, index_bc=index_bc, cfg=cfg),
                                        T.StructType(base + ANNOTATIONS))


def run_decontaminate(
    spark: SparkSession, cfg: DecontamConfig, inputs: list[str], out: str, overwrite: bool = False
) -> dict[str, Any]:
    """Decontaminate `inputs` against `cfg.against` into `out`: kept/ (by domain), removed/ (reason `contaminated`,
    eval_set, eval_item), stats.json and _SUCCESS."""
    docs = read_documents(spark, inputs)
    for col in ("id", "domain", "text"):
        if col not in docs.columns:
            raise CurateError(f"decontaminate: input has no '{col}' column (run ingest first)")
    sets = read_eval_sets(spark, cfg)
    index = EvalIndex.build(sets, cfg.ngram)
    stage = StageOutput(spark, out, "decontaminate", [*inputs, *cfg.against], overwrite)
    index_bc = spark.sparkContext.broadcast(index)
    try:
        labelled = annotate(docs, index_bc, cfg).withColumn("_removed", F.col("reason").isNotNull())
        columns = [c for c in docs.columns if c not in ANNOTATION_NAMES]
        match = [f.name for f in MATCH_FIELDS]
        kept_cols = columns + (match + [f.name for f in EDIT_FIELDS] if cfg.mode == "span" else [])
        kept_rows, removed_rows = stage.write_split(
            labelled, "_removed", ("kept", kept_cols), ("removed", [*columns, "reason", *match]),
            partitions=output_partitions(input_bytes(spark, inputs), cfg.output_partitions),
            tally={"kept": ["domain", "eval_set"] if cfg.mode == "span" else ["domain"],
                   "removed": ["domain", "reason", "eval_set"]})
    finally:
        index_bc.unpersist()
    kept, removed = stage.tallies["kept"], stage.tallies["removed"]
    if (sum(r["docs"] for r in kept), sum(r["docs"] for r in removed)) != (kept_rows, removed_rows):
        raise InternalError(f"decontaminate: counted {kept} kept / {removed} removed, wrote {kept_rows} / "
                            f"{removed_rows}")
    cut = _cut_chars(stage) if cfg.mode == "span" else {}
    stats = summarize(kept, removed, input_docs=kept_rows + removed_rows)
    stats.update(_eval_stats(sets, index, kept, removed, cut, cfg))
    stats["config"] = cfg.model_dump()
    return stage.finish(stats)


def _cut_chars(stage: StageOutput) -> dict[tuple[str, str], int]:
    """Characters span mode cut, per (domain, eval set), summed from the kept table's edited rows (few, narrow)."""
    rows = (stage.read("kept").where(F.col("eval_set").isNotNull()).groupBy("domain", "eval_set")
            .agg(F.sum("cut_chars").alias("chars")).collect())
    return {(r["domain"], r["eval_set"]): int(r["chars"] or 0) for r in rows}


def _eval_stats(sets: list[EvalSet], index: EvalIndex, kept: list[dict], removed: list[dict],
                cut: dict[tuple[str, str], int], cfg: DecontamConfig) -> dict[str, Any]:
    """Per eval set: what was read, and the documents it removed (and, span mode, edited) per domain; the table's
    size and false-match rate."""
    per_set: dict[str, dict[str, Any]] = {}
    start = 0
    for s in sets:
        counts = index.table.per_item[start:start + len(s.texts)]
        start += len(s.texts)
        per_set[s.name] = {"path": s.path, "layout": s.layout, "files": s.files, "items": len(s.texts),
                           "items_without_ngrams": int((counts == 0).sum()), "ngrams": int(counts.sum()),
                           "removed_docs": 0, "edited_docs": 0, "cut_chars": 0, "by_domain": {}}

    def domain_entry(name: str, domain: str) -> dict[str, int]:
        return per_set[name]["by_domain"].setdefault(domain, {"removed_docs": 0, "edited_docs": 0, "cut_chars": 0})

    for r in removed:
        per_set[r["eval_set"]]["removed_docs"] += r["docs"]
        domain_entry(r["eval_set"], r["domain"])["removed_docs"] += r["docs"]
    for r in kept:
        if r.get("eval_set") is not None:
            per_set[r["eval_set"]]["edited_docs"] += r["docs"]
            domain_entry(r["eval_set"], r["domain"])["edited_docs"] += r["docs"]
    for (domain, name), chars in cut.items():
        per_set[name]["cut_chars"] += chars
        domain_entry(name, domain)["cut_chars"] += chars
    for v in per_set.values():
        v["by_domain"] = dict(sorted(v["by_domain"].items()))
    table = index.table
    edited = sum(v["edited_docs"] for v in per_set.values())
    cut_total = sum(cut.values())
    kept_chars = sum(r.get("chars") or 0 for r in kept)
    removed_chars = sum(r.get("chars") or 0 for r in removed)
    return {
        "mode": cfg.mode,
        "edited_docs": edited,
        "cut_chars": cut_total,
        "input_chars": kept_chars + removed_chars + cut_total,
        "eval_sets": per_set,
        "index": {"ngram": cfg.ngram, "hash_bits": 64, "distinct_ngrams": table.distinct,
                  "slots": int(len(table.slots)), "bytes": int(table.slots.nbytes + table.owners.nbytes),
                  "false_match_rate_per_ngram": table.false_match_rate,
                  "expected_false_matches_per_1e12_ngrams": table.false_match_rate * 1e12},
    }
