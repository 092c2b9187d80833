"""The one writer of stage outputs: deterministic Parquet tables, stats.json and _SUCCESS, renamed into place at the end.

A stage writes into a hidden temporary directory beside its `--out`; only `finish()` renames it to `--out`, after
`stats.json` and `_SUCCESS`. A killed run therefore leaves nothing that looks finished. The stages that run without
Spark (mix) use the same writer on local paths (`StageOutput.local`).

Determinism: rows are hash-partitioned by id into a fixed number of files (chosen from the input size, never from the
input's partitioning) and sorted by id inside each file. The files are written by pyarrow inside the Spark tasks, with
stable names and content-defined row groups: Spark's own Parquet writer names files with a random job id and lists
column encodings in a JVM hash order that differs from run to run, so its output is never byte-identical.
"""

from __future__ import annotations

import heapq
import json
import math
import re
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import __version__
from curate.errors import InternalError
from curate.fs import HadoopFS, LocalFS
from curate.output_target import OutputTarget

if TYPE_CHECKING:  # pyspark is imported where a table is written: `curate shards` publishes without it
    from pyspark.sql import DataFrame, SparkSession

BYTES_PER_OUTPUT_FILE = 128 * 1024 * 1024
# Row groups are cut by content (bytes and rows), never by how batches happened to arrive, so they are reproducible.
ROW_GROUP_BYTES = 32 * 1024 * 1024
ROW_GROUP_ROWS = 65536


def output_partitions(input_bytes: int, configured: int = 0) -> int:
    """Files per table (per domain directory when partitioned by domain): configured, or one per 128 MiB of input."""
    if configured > 0:
        return configured
    return max(1, math.ceil(input_bytes / BYTES_PER_OUTPUT_FILE))


@dataclass(frozen=True)
class Samples:
    """`k` rows of the flagged table per value of column `group`, those with the smallest (`key`, id): the same rows
    whatever the partitioning. Each sample holds `columns` in that order; "text" is cut to `text_chars` characters
    and "chars" is the full text's length. The writing tasks pick them as they write, so no job of its own reads
    the rows again (a window over every flagged row, text included, was one more shuffle)."""

    group: str
    key: str  # an integer column
    k: int
    columns: tuple[str, ...]
    text_chars: int

    def merged(self, parts: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each task's candidates (JSON) -> the samples per group, groups sorted, each group by (key, id)."""
        by_group: dict[str, list] = {}
        for part in parts:
            for group, rows in json.loads(part).items():
                by_group.setdefault(group, []).extend(rows)
        return {g: [row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))[:self.k]]
                for g, rows in sorted(by_group.items())}


class _SamplePicker:
    """Keeps, per group, the `k` rows with the smallest (key, id) seen so far (a bounded max-heap)."""

    def __init__(self, spec: Samples):
        self.spec = spec
        self.heaps: dict[str, list] = {}

    def add(self, rows: pa.RecordBatch) -> None:
        spec = self.spec
        groups, keys, ids = (rows.column(c).to_pylist() for c in (spec.group, spec.key, "id"))
        for i, (group, key, rid) in enumerate(zip(groups, keys, ids)):
            heap = self.heaps.setdefault(group, [])
            if len(heap) == spec.k and (-heap[0][0], heap[0][1].value) <= (key, rid):
                continue
            text = rows.column("text")[i].as_py()
            row = {}
            for c in spec.columns:
                if c == "chars":
                    row[c] = len(text)
                elif c == "text":
                    row[c] = text[:spec.text_chars]
                else:
                    row[c] = rows.column(c)[i].as_py()
            item = (-key, _Desc(rid), row)
            if len(heap) < spec.k:
                heapq.heappush(heap, item)
            else:
                heapq.heapreplace(heap, item)

    def json(self) -> str:
        return json.dumps({g: [(-k, d.value, row) for k, d, row in heap] for g, heap in self.heaps.items()})


class _Desc:
    """An id that sorts in reverse, so the heap's top is the largest (key, id) it holds."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value


class StageOutput:
    """Collects one stage's tables and stats in a temporary directory; `finish()` publishes them atomically."""

    def __init__(self, spark: SparkSession | None, out: str, stage: str, inputs: Iterable[str] = (),
                 overwrite: bool = False, fs: HadoopFS | LocalFS | None = None):
        """Claim `out` (curate.output_target: refused when it holds anything but an earlier output of this stage,
        or overlaps `inputs`; locked while the stage runs) and create this run's temporary directory. `fs` defaults
        to Hadoop's file system of `spark`; the table methods (`write`, `read`) need `spark`."""
        self.spark = spark
        self.stage = stage
        self.fs = fs if fs is not None else HadoopFS(spark)
        self.target = OutputTarget(self.fs, out, stage, inputs, overwrite)
        self.final = self.target.final
        self.tmp = self.target.open()
        self.started = time.time()
        self.tallies: dict[str, list[dict[str, Any]]] = {}
        self.samples: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def local(cls, out: str, stage: str, inputs: Iterable[str] = (), overwrite: bool = False) -> "StageOutput":
        """The writer of a stage that runs without Spark, on local paths: the same claim, files and publishing."""
        return cls(None, out, stage, inputs, overwrite, fs=LocalFS())

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
        tally: list[str] | None = None,
    ) -> int:
        """Write `df` as Parquet table `name`: `partitions` files (per domain when `by_domain`), rows sorted; return
        the rows written (as the writing tasks counted them). `tally` (group columns): the writing tasks also count
        documents and characters per group, kept in `self.tallies[name]` (one row per group: the keys, `docs`,
        `chars`), with no job reading the table back."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import to_arrow_schema

        key = [F.col(c) for c in sort_by]
        order = ("domain", *sort_by) if by_domain else sort_by
        ordered = df.repartition(partitions, *key).sortWithinPartitions(*order)
        target = self.path(name)
        self.fs.mkdirs(target)
        written = ordered.mapInArrow(
            partial(_write_partition, target=target, by_domain=by_domain, schema=to_arrow_schema(df.schema),
                    tally=tally),
            "file string, attempt string, rows long, tally string",
        )
        # One small row per written file; the data itself never reaches the driver.
        rows = written.collect()
        files = [r for r in rows if r["file"] is not None]
        self._commit(target, files)
        if not files:
            _empty_table(target, to_arrow_schema(df.schema))
        if tally is not None:
            self.tallies[name] = _merge_tallies(tally, [json.loads(r["tally"]) for r in rows if r["tally"]])
        return sum(r["rows"] for r in files)

    def write_split(
        self,
        df: DataFrame,
        flag: str,
        kept: tuple[str, list[str]],
        removed: tuple[str, list[str]],
        *,
        partitions: int,
        tally: dict[str, list[str]] | None = None,
        samples: Samples | None = None,
    ) -> tuple[int, int]:
        """Write the rows of `df` whose boolean column `flag` is false as table kept[0] (columns kept[1], by domain)
        and the others as table removed[0] (columns removed[1]) in one pass: one shuffle and one sort for both
        tables, where two `write` calls would compute `df` twice. Both are hash-partitioned by id into `partitions`
        files; rows are sorted by (domain, id) inside each file. Return the rows written to each.

        `tally` ({table: group columns of that table}): the writing tasks also count each table's documents and
        characters per group, kept in `self.tallies[table]` as `write` keeps them, with no job reading them back.
        `samples`: a few rows of the removed table per group, kept in `self.samples`."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import to_arrow_schema

        cols = list(dict.fromkeys([*kept[1], *removed[1], "domain", "id", flag, *([samples.key] if samples else [])]))
        ordered = df.select(*cols).repartition(partitions, F.col("id")).sortWithinPartitions(flag, "domain", "id")
        tables = []
        for (name, columns), by_domain in ((kept, True), (removed, False)):
            target = self.path(name)
            self.fs.mkdirs(target)
            tables.append((name, target, by_domain, to_arrow_schema(df.select(*columns).schema)))
        tally = tally or {}
        written = ordered.mapInArrow(
            partial(_write_split_partition, flag=flag, tables=tables, tally=tally, samples=samples),
            "table string, file string, attempt string, rows long, tally string, samples string",
        ).collect()
        if samples is not None:
            self.samples = samples.merged([r["samples"] for r in written if r["samples"] is not None])
        rows = []
        for name, target, _, schema in tables:
            mine = [r for r in written if r["table"] == name and r["file"] is not None]
            self._commit(target, mine)
            if not mine:
                _empty_table(target, schema)
            rows.append(sum(r["rows"] for r in mine))
            if name in tally:
                self.tallies[name] = _merge_tallies(
                    tally[name], [json.loads(r["tally"]) for r in written if r["table"] == name and r["tally"]])
        return rows[0], rows[1]

    def _commit(self, target: str, files: list) -> None:
        """Rename the files of the attempts Spark counted (one per task) into place, then delete what other
        attempts of the same tasks left (failed, killed or speculative ones)."""
        for r in files:
            self.fs.rename(r["attempt"], r["file"])
        for f in self.fs.list_files(target):
            if f.path.endswith(".inprogress"):
                self.fs.delete(f.path)

    def read(self, name: str) -> DataFrame:
        return self.spark.read.parquet(self.path(name))

    def write_json(self, name: str, obj: Any) -> None:
        self.fs.write_text(self.path(name), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def finish(self, stats: dict[str, Any], reconcile: bool = True) -> dict[str, Any]:
        """Check the counts reconcile (`reconcile=False` for a stage that reads no documents, such as mix), write
        stats.json and _SUCCESS, then rename into place."""
        if reconcile:
            check_reconciles(stats)
        stats = {"stage": self.stage, "curate_version": __version__, **stats}
        stats["wall_seconds"] = round(time.time() - self.started, 3)
        self.write_json("stats.json", stats)
        self.fs.write_text(self.path("_SUCCESS"), "")
        self.target.commit()
        return stats

    def release(self) -> None:
        """Give up after a user's mistake: the temporary directory and the lock go, an earlier output stays."""
        self.target.release()


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
    """Per-domain table from the kept tally by domain and the removed tally by domain and reason."""
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
    """The stats keys every filtering stage shares: counts (input = kept + removed), chars, reasons, per domain."""
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


def _open_output(path: str):
    """A pyarrow file system and path for a local path or any URI pyarrow knows (hdfs://, s3://, gs://)."""
    import os

    from pyarrow import fs as pafs

    if path.startswith("file:"):
        local = re.sub(r"^file:(//)?", "", path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return pafs.LocalFileSystem(), local
    return pafs.FileSystem.from_uri(path.replace("s3a://", "s3://"))


def _empty_table(target: str, schema: pa.Schema) -> None:
    """An empty table is one schema-only file, so readers see its columns instead of "unable to infer schema"."""
    empty = _PartFile(f"{target}/part-00000.parquet", schema)
    empty.close()
    empty.commit()


def _row_sizes(batch: pa.RecordBatch) -> list[int]:
    sizes = None
    for col in batch.columns:
        if pa.types.is_string(col.type) or pa.types.is_binary(col.type) or pa.types.is_large_string(col.type):
            length = pc.fill_null(pc.binary_length(col), 0)
            sizes = length if sizes is None else pc.add(sizes, length)
    return sizes.to_pylist() if sizes is not None else [0] * batch.num_rows


def _attempt_path(path: str, attempt: str) -> str:
    """Where one task attempt writes the file `path`: a hidden name (readers skip it) unique to the attempt, so two
    attempts of one task (a retry beside a hung one, speculation) never write the same file."""
    head, _, name = path.rpartition("/")
    return f"{head}/.{name}.{attempt}.inprogress"


class _PartFile:
    """One Parquet file written by one task attempt: row groups cut at fixed byte/row budgets, written under the
    attempt's own name; the driver renames the winning attempt's file into place (`commit`)."""

    def __init__(self, path: str, schema: pa.Schema, attempt: str = "driver"):
        self.path = path
        self.attempt_path = _attempt_path(path, attempt)
        self.filesystem, self.inner = _open_output(path)
        self.tmp = _open_output(self.attempt_path)[1]
        self.stream = self.filesystem.open_output_stream(self.tmp)
        self.writer = pq.ParquetWriter(self.stream, schema, compression="zstd", write_statistics=True)
        self.schema = schema
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0
        self.pending_rows = 0
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        start = 0
        for i, size in enumerate(_row_sizes(batch)):
            self.pending_bytes += size
            self.pending_rows += 1
            if self.pending_bytes >= ROW_GROUP_BYTES or self.pending_rows >= ROW_GROUP_ROWS:
                self.pending.append(batch.slice(start, i + 1 - start))
                start = i + 1
                self._flush()
        if start < batch.num_rows:
            self.pending.append(batch.slice(start))

    def _flush(self) -> None:
        if self.pending:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=table.num_rows)
            self.rows += table.num_rows
        self.pending, self.pending_bytes, self.pending_rows = [], 0, 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
        self.stream.close()

    def commit(self) -> None:
        self.filesystem.move(self.tmp, self.inner)


class _TableWriter:
    """One task's files of one table: a single part file, or one per domain directory (rows arrive sorted by
    domain, so each domain is one contiguous run of a batch)."""

    def __init__(self, target: str, by_domain: bool, schema: pa.Schema, part: str, attempt: str):
        self.target, self.by_domain, self.schema, self.part, self.attempt = target, by_domain, schema, part, attempt
        self.body_schema = pa.schema([f for f in schema if f.name != "domain"]) if by_domain else schema
        self.files: dict[str, _PartFile] = {}

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        if not self.by_domain:
            if "" not in self.files:
                self.files[""] = _PartFile(f"{self.target}/{self.part}", self.body_schema, self.attempt)
            self.files[""].add(batch)
            return
        domains = batch.column("domain").to_pylist()
        body = pa.RecordBatch.from_arrays([batch.column(n) for n in self.body_schema.names], schema=self.body_schema)
        start = 0
        for i in range(1, len(domains) + 1):
            if i == len(domains) or domains[i] != domains[start]:
                d = domains[start]
                if d not in self.files:
                    self.files[d] = _PartFile(f"{self.target}/domain={d}/{self.part}", self.body_schema,
                                              self.attempt)
                self.files[d].add(body.slice(start, i - start))
                start = i

    def close(self) -> list[tuple[str, str, int]]:
        """Finish the files; (final path, this attempt's path, rows) of each, for the driver to commit."""
        for f in self.files.values():
            f.close()
        return [(f.path, f.attempt_path, f.rows) for f in self.files.values()]


def _task_part() -> tuple[str, str]:
    """This task's file name and its attempt's id (unique in the application)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return f"part-{ctx.partitionId():05d}.parquet", f"attempt-{ctx.taskAttemptId()}"


def _write_partition(
    batches: Iterator[pa.RecordBatch], target: str, by_domain: bool, schema: pa.Schema,
    tally: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Runs in a Spark task: this partition's sorted rows -> part-NNNNN.parquet (one per domain directory); one
    (file, attempt, rows) row per file, and with `tally` one more row whose `tally` is this task's group counts."""
    writer = _TableWriter(target, by_domain, schema, *_task_part())
    counts: list[dict[str, Any]] = []
    for batch in batches:
        if tally is not None and batch.num_rows:
            counts.extend(_batch_tally(batch, tally))
        writer.add(batch)
    files = writer.close()
    out: dict[str, list] = {"file": [f for f, _, _ in files], "attempt": [a for _, a, _ in files],
                            "rows": [n for _, _, n in files], "tally": [None] * len(files)}
    if tally is not None:
        row = {"file": None, "attempt": None, "rows": 0, "tally": json.dumps(_merge_tallies(tally, [counts]))}
        for k, v in row.items():
            out[k].append(v)
    yield pa.RecordBatch.from_pydict(out, schema=pa.schema(
        [("file", pa.string()), ("attempt", pa.string()), ("rows", pa.int64()), ("tally", pa.string())]))


def _batch_tally(batch: pa.RecordBatch, keys: list[str]) -> list[dict[str, Any]]:
    """Documents and characters (code points of `text`, as Spark's length counts them) per group of `keys`."""
    cols = {k: batch.column(k) for k in keys}
    has_text = "text" in batch.schema.names
    cols["_chars"] = pc.utf8_length(batch.column("text")) if has_text else pa.nulls(batch.num_rows, pa.int64())
    grouped = pa.table(cols).group_by(keys, use_threads=False).aggregate([("_chars", "sum"), ([], "count_all")])
    return [{**{k: r[k] for k in keys}, "docs": r["count_all"], "chars": r["_chars_sum"]}
            for r in grouped.to_pylist()]


def _merge_tallies(keys: list[str], parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Sum per-task tallies: one row per group (the keys, `docs`, `chars`), sorted by the keys."""
    total: dict[tuple, dict[str, Any]] = {}
    for part in parts:
        for r in part:
            key = tuple(r[k] for k in keys)
            e = total.setdefault(key, {**{k: r[k] for k in keys}, "docs": 0, "chars": None})
            e["docs"] += r["docs"]
            if r["chars"] is not None:
                e["chars"] = (e["chars"] or 0) + r["chars"]
    return [total[k] for k in sorted(total, key=lambda t: [(v is not None, v) for v in t])]


def _write_split_partition(
    batches: Iterator[pa.RecordBatch], flag: str, tables: list[tuple[str, str, bool, pa.Schema]],
    tally: dict[str, list[str]] | None = None, samples: Samples | None = None,
) -> Iterator[pa.RecordBatch]:
    """Runs in a Spark task: rows with `flag` false go to tables[0], true to tables[1] (name, target, by_domain,
    schema); returns one (table, file, rows) row per file written, per table in `tally` one row whose `tally`
    is this task's group counts as JSON, and with `samples` one row whose `samples` are its candidates."""
    tally = tally or {}
    picker = _SamplePicker(samples) if samples is not None else None
    part, attempt = _task_part()
    writers = [_TableWriter(target, by_domain, schema, part, attempt) for _, target, by_domain, schema in tables]
    counts: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in tables if name in tally}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        mask = pc.fill_null(batch.column(flag), False)
        for (name, *_), writer, rows in zip(tables, writers, (batch.filter(pc.invert(mask)), batch.filter(mask))):
            if name in counts and rows.num_rows:
                counts[name].extend(_batch_tally(rows, tally[name]))
            if picker is not None and writer is writers[1] and rows.num_rows:
                picker.add(rows)
            writer.add(pa.RecordBatch.from_arrays([rows.column(n) for n in writer.schema.names],
                                                  names=writer.schema.names))
    out: dict[str, list] = {"table": [], "file": [], "attempt": [], "rows": [], "tally": [], "samples": []}

    def emit(table: str, file=None, attempt=None, rows: int = 0, tally_json=None, samples_json=None) -> None:
        for col, v in zip(out, (table, file, attempt, rows, tally_json, samples_json)):
            out[col].append(v)

    for (name, *_), writer in zip(tables, writers):
        for f, a, n in writer.close():
            emit(name, f, a, n)
        if name in counts:
            emit(name, tally_json=json.dumps(_merge_tallies(tally[name], [counts[name]])))
    if picker is not None:
        emit(tables[1][0], samples_json=picker.json())
    yield pa.RecordBatch.from_pydict(out, schema=pa.schema(
        [("table", pa.string()), ("file", pa.string()), ("attempt", pa.string()), ("rows", pa.int64()),
         ("tally", pa.string()), ("samples", pa.string())]))
