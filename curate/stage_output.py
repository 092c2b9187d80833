"""The one writer of stage outputs: deterministic Parquet tables, stats.json and _SUCCESS, renamed into place at the end.

A stage writes into a hidden temporary directory beside its `--out`; only `finish()` renames it to `--out`, after
`stats.json` and `_SUCCESS`. A killed run therefore leaves nothing that looks finished.

Determinism: rows are hash-partitioned by id into a fixed number of files (chosen from the input size, never from the
input's partitioning), sorted by id inside each file, and Spark's random part-file names are replaced by stable ones,
so the same input and config give byte-identical Parquet files locally and on a cluster.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from curate import __version__
from curate.errors import InternalError
from curate.fs import HadoopFS, qualify

BYTES_PER_OUTPUT_FILE = 128 * 1024 * 1024
_PART = re.compile(r"^(part-\d{5})-.*?(\.[a-z0-9]+)?\.parquet$")


def output_partitions(input_bytes: int, configured: int = 0) -> int:
    """Files per table (per domain directory when partitioned by domain): configured, or one per 128 MiB of input."""
    if configured > 0:
        return configured
    return max(1, math.ceil(input_bytes / BYTES_PER_OUTPUT_FILE))


class StageOutput:
    """Collects one stage's tables and stats in a temporary directory; `finish()` publishes them atomically."""

    def __init__(self, spark: SparkSession, out: str, stage: str):
        self.spark = spark
        self.stage = stage
        self.final = qualify(out).rstrip("/")
        parent, _, name = self.final.rpartition("/")
        self.tmp = f"{parent}/.{name}.{stage}.tmp"
        self.fs = HadoopFS(spark)
        self.fs.delete(self.tmp)
        self.fs.mkdirs(self.tmp)
        self.started = time.time()

    def path(self, name: str) -> str:
        """Where table or file `name` lives while the stage runs."""
        return f"{self.tmp}/{name}"

    def write(
        self,
        name: str,
        df: DataFrame,
        *,
        partitions: int,
        by_domain: bool = False,
        sort_by: tuple[str, ...] = ("id",),
    ) -> None:
        """Write `df` as Parquet table `name`: `partitions` files (per domain when `by_domain`), rows sorted."""
        key = [F.col(c) for c in sort_by]
        ordered = df.repartition(partitions, *key)
        if by_domain:
            ordered = ordered.sortWithinPartitions("domain", *sort_by)
        else:
            ordered = ordered.sortWithinPartitions(*sort_by)
        writer = ordered.write.mode("overwrite").option("compression", "zstd")
        if by_domain:
            writer = writer.partitionBy("domain")
        target = self.path(name)
        writer.parquet(target)
        self._stabilize(target)

    def _stabilize(self, table: str) -> None:
        """Give part files stable names and drop Hadoop's side files (their names carry a random job id)."""
        self.fs.mkdirs(table)
        for info in self.fs.list_files(table):
            base = info.path.rsplit("/", 1)[1]
            directory = info.path.rsplit("/", 1)[0]
            if base.endswith(".crc") or base == "_SUCCESS":
                self.fs.delete(info.path)
                continue
            match = _PART.match(base)
            if match:
                self.fs.rename(info.path, f"{directory}/{match.group(1)}.parquet")

    def read(self, name: str) -> DataFrame:
        return self.spark.read.parquet(self.path(name))

    def count_by(self, name: str, keys: list[str], chars: bool = True) -> list[dict[str, Any]]:
        """Small per-group counts of a written table (documents and characters), read back from its files."""
        files = [f for f in self.fs.list_files(self.path(name)) if f.path.endswith(".parquet")]
        if not files:
            return []
        aggs = [F.count(F.lit(1)).alias("docs")]
        if chars:
            aggs.append(F.sum(F.length("text")).alias("chars"))
        rows = self.read(name).groupBy(*keys).agg(*aggs).orderBy(*keys).collect()
        return [r.asDict() for r in rows]

    def write_json(self, name: str, obj: Any) -> None:
        self.fs.write_text(self.path(name), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def finish(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Check the counts reconcile, write stats.json and _SUCCESS, then rename into place."""
        check_reconciles(stats)
        stats = {"stage": self.stage, "curate_version": __version__, **stats}
        stats["wall_seconds"] = round(time.time() - self.started, 3)
        self.write_json("stats.json", stats)
        self.fs.write_text(self.path("_SUCCESS"), "")
        self.fs.delete(self.final)
        self.fs.rename(self.tmp, self.final)
        return stats


def check_reconciles(stats: dict[str, Any]) -> None:
    """input_docs == kept_docs + removed_docs + quarantined_docs, overall and per domain."""
    total = stats["kept_docs"] + stats["removed_docs"] + stats.get("quarantined_docs", 0)
    if stats["input_docs"] != total:
        raise InternalError(
            f"{stats.get('stage', 'stage')}: counts do not reconcile: input {stats['input_docs']} != "
            f"kept {stats['kept_docs']} + removed {stats['removed_docs']} + quarantined "
            f"{stats.get('quarantined_docs', 0)}"
        )
    if sum(stats.get("removed_by_reason", {}).values()) != stats["removed_docs"]:
        raise InternalError(f"{stats.get('stage', 'stage')}: removed_by_reason does not sum to removed_docs")


def domain_stats(kept: list[dict[str, Any]], removed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-domain table from `count_by(kept, ["domain"])` and `count_by(removed, ["domain", "reason"])`."""
    out: dict[str, dict[str, Any]] = {}

    def entry(domain: str) -> dict[str, Any]:
        return out.setdefault(
            domain,
            {"input_docs": 0, "kept_docs": 0, "removed_docs": 0, "kept_chars": 0, "removed_chars": 0,
             "removed_by_reason": {}},
        )

    for r in kept:
        e = entry(r["domain"])
        e["kept_docs"] += r["docs"]
        e["kept_chars"] += r.get("chars") or 0
    for r in removed:
        e = entry(r["domain"])
        e["removed_docs"] += r["docs"]
        e["removed_chars"] += r.get("chars") or 0
        e["removed_by_reason"][r["reason"]] = e["removed_by_reason"].get(r["reason"], 0) + r["docs"]
    for e in out.values():
        e["input_docs"] = e["kept_docs"] + e["removed_docs"]
    return dict(sorted(out.items()))


def summarize(kept: list[dict[str, Any]], removed: list[dict[str, Any]], input_docs: int) -> dict[str, Any]:
    """The stats keys every filtering stage shares (DESIGN.md): counts, chars, reasons, per domain."""
    by_domain = domain_stats(kept, removed)
    by_reason: dict[str, int] = {}
    for r in removed:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["docs"]
    return {
        "input_docs": input_docs,
        "kept_docs": sum(r["docs"] for r in kept),
        "removed_docs": sum(r["docs"] for r in removed),
        "kept_chars": sum(r.get("chars") or 0 for r in kept),
        "removed_chars": sum(r.get("chars") or 0 for r in removed),
        "removed_by_reason": dict(sorted(by_reason.items())),
        "by_domain": by_domain,
    }
