"""Raw Parquet inputs: any file name and any column name reads, a bad file is one quarantine row, partition
directories become columns, and `meta` is what Spark's to_json wrote."""

from __future__ import annotations

import datetime
import decimal
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.cli import main
from curate.config import DomainRule, IngestConfig
from curate.ingest import run_ingest
from curate.parquet_input import cast_encoder, parse_parquet_file


def _parquet(path: Path, columns: dict, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, **kwargs)
    return path


def _kept(spark, out: Path) -> dict[str, dict]:
    return {r["text"]: r.asDict() for r in spark.read.parquet(str(out / "kept")).collect()}


def _quarantine(spark, out: Path) -> list[tuple]:
    return sorted((r["source"], r["line"], r["reason"], r["error"])
                  for r in spark.read.parquet(str(out / "quarantine")).collect())


def test_columns_spark_cannot_resolve_by_name_go_into_meta(spark, tmp_path):
    _parquet(tmp_path / "in" / "c.parquet", {"text": ["one", "two"], "a.b": [1, 2], "_file": ["f", "g"],
                                               "_row": [7, 8], "_metadata": [{"x": 1}, None], "with space": ["s", "t"]})
    assert main(["ingest", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    kept = _kept(spark, tmp_path / "out")
    assert json.loads(kept["one"]["meta"]) == {"_file": "f", "_metadata": {"x": 1}, "_row": 7, "a.b": 1,
                                               "with space": "s"}
    assert kept["two"]["meta"] == '{"_file":"g","_row":8,"a.b":2,"with space":"t"}'  # sorted keys, nulls left out
    assert [(r["source"], r["line"]) for r in sorted(kept.values(), key=lambda r: r["line"])] == [
        ("c.parquet", 1), ("c.parquet", 2)]


@pytest.mark.parametrize("name", ["part 1.parquet", "p%41q.parquet", "h#1.parquet", "br[1].parquet",
                                  "x:y.parquet", "ü.parquet"])
def test_any_file_name_keeps_its_source_and_path_rule_domain(spark, tmp_path, name):
    _parquet(tmp_path / "in" / "web" / name, {"text": ["a page"]})
    cfg = IngestConfig(inputs=[str(tmp_path / "in")], domain_rules=[DomainRule(pattern="web/*", domain="web")])
    stats = run_ingest(spark, cfg, str(tmp_path / "out"))
    assert [(r["source"], r["domain"]) for r in _kept(spark, tmp_path / "out").values()] == [(f"web/{name}", "web")]
    assert stats["empty_files"] == [] and stats["kept_docs"] == 1


def test_the_binary_file_path_for_remote_files_takes_glob_and_url_characters(spark, tmp_path, monkeypatch):
    # Object-store files come through Spark's binaryFile source, which reads a path as a glob: here local files
    # are sent that way.
    from curate import parquet_input, sources
    from curate.sources import list_inputs

    for name in ("br[1].parquet", "a b.parquet", "x:y.parquet"):
        _parquet(tmp_path / "in" / name, {"text": [f"from {name}"]})
    listing = list_inputs(spark, [str(tmp_path / "in")])
    monkeypatch.setattr(sources, "is_local", lambda path: False)
    rows = parquet_input.read_parquet(spark, listing.files, IngestConfig()).collect()
    assert sorted((r["kind"], r["source"], r["text"]) for r in rows) == [
        ("doc", "a b.parquet", "from a b.parquet"), ("doc", "br[1].parquet", "from br[1].parquet"),
        ("doc", "x:y.parquet", "from x:y.parquet")]


def test_an_unreadable_parquet_file_is_one_quarantine_row_and_the_rest_is_ingested(spark, tmp_path):
    src = tmp_path / "in"
    _parquet(src / "good.parquet", {"text": ["fine"]})
    (src / "zero.parquet").write_bytes(b"")
    (src / "junk.parquet").write_bytes(b"PAR1 this is not a parquet file")
    stats = run_ingest(spark, IngestConfig(inputs=[str(src)]), str(tmp_path / "out"))
    assert stats["kept_docs"] == 1 and stats["quarantined_by_reason"] == {"unreadable_file": 2}
    assert stats["input_docs"] == 3 and stats["empty_files"] == []
    q = _quarantine(spark, tmp_path / "out")
    assert [(s, line, reason) for s, line, reason, _ in q] == [("junk.parquet", 0, "unreadable_file"),
                                                               ("zero.parquet", 0, "unreadable_file")]
    assert "0 bytes" in q[1][3]


def test_a_corrupt_row_group_keeps_the_rows_before_it_and_ends_in_one_quarantine_row(spark, tmp_path):
    path = _parquet(tmp_path / "in" / "cut.parquet", {"text": [f"row {i}" for i in range(6)]}, row_group_size=2,
                    compression="none")
    col = pq.ParquetFile(path).metadata.row_group(2).column(0)
    data = bytearray(path.read_bytes())
    start = col.dictionary_page_offset or col.data_page_offset
    data[start:start + 16] = b"\xff" * 16  # the last row group's first page header
    path.write_bytes(bytes(data))
    stats = run_ingest(spark, IngestConfig(inputs=[str(tmp_path / "in")]), str(tmp_path / "out"))
    assert sorted(_kept(spark, tmp_path / "out")) == ["row 0", "row 1", "row 2", "row 3"]
    assert [q[:3] for q in _quarantine(spark, tmp_path / "out")] == [("cut.parquet", 5, "unreadable_file")]
    assert stats["input_docs"] == 5


def test_a_fifo_named_parquet_is_an_unreadable_file_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.parquet")
    rows = list(parse_parquet_file(f"file:{tmp_path / 'pipe.parquet'}", "pipe.parquet", IngestConfig()))
    assert [(r["reason"], r["error"]) for r in rows] == [("unreadable_file", "cannot open file: a FIFO, not a regular "
                                                                             "file")]


def test_partition_directories_become_string_columns(spark, tmp_path):
    src = tmp_path / "in"
    _parquet(src / "domain=web" / "part-0.parquet", {"text": ["web page"]})
    _parquet(src / "domain=code" / "lang=py" / "part-0.parquet", {"text": ["def f(): pass"]})
    _parquet(src / "domain=web" / "own.parquet", {"text": ["labelled"], "domain": ["books"]})  # its column wins
    _parquet(src / "year=2024" / "part-0.parquet", {"text": ["dated"]})
    run_ingest(spark, IngestConfig(inputs=[str(src)]), str(tmp_path / "out"))
    kept = _kept(spark, tmp_path / "out")
    assert {t: (r["domain"], r["meta"]) for t, r in kept.items()} == {
        "web page": ("web", None), "def f(): pass": ("code", '{"lang":"py"}'), "labelled": ("books", None),
        "dated": ("unknown", '{"year":"2024"}')}


def test_a_stage_kept_directory_given_to_ingest_keeps_its_domains(spark, tmp_path):
    _parquet(tmp_path / "in" / "a.parquet", {"text": ["web one", "code one"], "domain": ["web", "code"]})
    run_ingest(spark, IngestConfig(inputs=[str(tmp_path / "in")]), str(tmp_path / "first"))
    assert main(["ingest", str(tmp_path / "first" / "kept"), "--out", str(tmp_path / "second")]) == 0
    kept = _kept(spark, tmp_path / "second")
    assert {t: r["domain"] for t, r in kept.items()} == {"web one": "web", "code one": "code"}
    assert json.loads(kept["web one"]["meta"])["source"] == "a.parquet"


def test_parquet_ingest_is_byte_identical_across_runs(spark, tmp_path):
    src = tmp_path / "in"
    for i in range(5):
        _parquet(src / f"d{i % 2}" / f"f{i}.parquet", {"text": [f"doc {i} {j}" for j in range(50)],
                                                       "score": [j / 3 for j in range(50)]})
    (src / "bad.parquet").write_bytes(b"nope")
    for out in ("a", "b"):
        run_ingest(spark, IngestConfig(inputs=[str(src)]), str(tmp_path / out))
    tree = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))  # noqa: E731
                         if p.is_file() and p.name != "stats.json"}
    assert tree(tmp_path / "a") == tree(tmp_path / "b") and len(tree(tmp_path / "a")) > 2


def _all_types() -> dict:
    ts = datetime.datetime(2024, 1, 1, 1, 2, 3, 456789)
    return {
        "s": pa.array(['q"b\\c\n\t\x01\x1f\x7f\u2028é', None, "", "\\u001f"]),
        "i8": pa.array([1, None, -3, 0], pa.int8()), "u8": pa.array([255, 0, 1, 2], pa.uint8()),
        "i64": pa.array([2**63 - 1, -(2**63), None, 0]), "u64": pa.array([2**64 - 1, 0, 1, None], pa.uint64()),
        "f32": pa.array([0.1, float("nan"), 1e10, 465560192.0], pa.float32()),
        "f64": pa.array([0.1, float("inf"), 12345678.0, -0.0]),
        "f64b": pa.array([1e-4, float("-inf"), 8.349633596250301e17, 123.456]),
        "b": pa.array([True, False, None, True]),
        "l": pa.array([[1, None, 3], [], None, [4]]),
        "st": pa.array([{"z": 1, "a": None}, None, {"z": None, "a": "x"}, {"z": 2, "a": "y"}]),
        "m": pa.array([[("k", "v"), ("n", None)], [], None, [("a", "b")]], pa.map_(pa.string(), pa.string())),
        "mi": pa.array([[(1, 2.5)], [], None, [(2, 1e20)]], pa.map_(pa.int32(), pa.float64())),
        "ts": pa.array([ts, None, datetime.datetime(1969, 12, 31, 23, 59, 59, 999999), datetime.datetime(2024, 1, 1)],
                       pa.timestamp("us")),
        "tsz": pa.array([ts, None, datetime.datetime(1900, 1, 1), datetime.datetime(999, 5, 5)],
                        pa.timestamp("us", tz="Europe/Paris")),
        "tsms": pa.array([ts, None, ts, ts], pa.timestamp("ms", tz="UTC")),
        "d": pa.array([datetime.date(2024, 2, 29), None, datetime.date(1, 1, 1), datetime.date(999, 1, 1)]),
        "dec": pa.array([decimal.Decimal("1.50"), decimal.Decimal("0.00000001"), decimal.Decimal("-12"),
                         decimal.Decimal("0")], pa.decimal128(12, 8)),
        "bin": pa.array([b"\x00\xff", b"", None, b"abc"]),
        "fsb": pa.array([b"ab", b"cd", None, b"ef"], pa.binary(2)),
        "ls": pa.array(["x", "y", None, "z"], pa.large_string()),
        "dic": pa.array(["p", "q", "p", None]).dictionary_encode(),
        "nest": pa.array([[{"q": [1.5, None]}], None, [None], [{"q": None}]]),
        "a.b": pa.array([1, 2, 3, 4]),
        "allnull": pa.array([None, None, None, None], pa.string()),
    }


def test_meta_is_what_spark_to_json_writes(spark, tmp_path):
    from pyspark.sql import functions as F

    path = _parquet(tmp_path / "types.parquet", {**_all_types(), "text": ["a", "b", "c", "d"]})
    ours = [r["meta"] for r in parse_parquet_file(f"file:{path}", "types.parquet", IngestConfig())]
    df = spark.read.parquet(str(path)).orderBy("_metadata.row_index")
    meta_cols = sorted(c for c in df.columns if c != "text")
    theirs = [r[0] for r in df.select(F.to_json(F.struct(*[F.col(f"`{c}`") for c in meta_cols]))).collect()]
    assert ours == theirs
    assert ours[1].startswith('{"a.b":2,"b":false,"bin":"","dec":1E-8,') and '"allnull"' not in ours[0]


def test_domain_and_id_columns_are_cast_to_strings_as_spark_casts(spark, tmp_path):
    path = _parquet(tmp_path / "types.parquet", _all_types())
    table = pq.read_table(path)
    ours = {c: [None if v is None else cast_encoder(table.schema.field(c).type)(v) for v in table.column(c).to_pylist()]
            for c in table.column_names}
    df = spark.read.parquet(str(path)).orderBy("_metadata.row_index")
    theirs = {c: [r[0] for r in df.select(df[f"`{c}`"].cast("string")).collect()] for c in df.columns}
    assert ours == theirs
