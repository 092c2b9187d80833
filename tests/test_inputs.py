"""Listing and checking inputs: only regular files are read, each real file and directory once, a curate output
inside an input directory is left alone, and Parquet and JSONL records pass the same checks."""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import IngestConfig
from curate.errors import CurateError
from curate.ingest import run_ingest
from curate.sources import list_inputs, parse_jsonl_file, read_documents, read_records, validate_record


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@contextmanager
def _fifo_released_after(fifo: Path, seconds: float = 20):
    """A reader that opened the FIFO blocks until a writer comes: this one comes late (and then every second, for
    readers that come later) and leaves at once, so such readers see end of file and the test fails, not hangs."""
    stop = threading.Event()

    def release() -> None:
        wait = seconds
        while not stop.wait(wait):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader is waiting
                pass
            wait = 1

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_fifo_in_an_input_directory_is_skipped_and_counted(spark, tmp_path):
    _jsonl(tmp_path / "in" / "a.jsonl", [{"text": "one"}])
    os.mkfifo(tmp_path / "in" / "pipe.jsonl")
    listing = list_inputs(spark, [str(tmp_path / "in")])
    assert [f.rel for f in listing.files] == ["a.jsonl"]
    assert [(s.rel, s.reason) for s in listing.skipped] == [("pipe.jsonl", "not_a_regular_file")]
    assert "FIFO" in listing.skipped[0].detail


def test_fifo_given_alone_is_the_no_files_error_not_a_hang(spark, tmp_path):
    fifo = tmp_path / "only.jsonl"
    os.mkfifo(fifo)
    with _fifo_released_after(fifo), pytest.raises(CurateError, match="no .jsonl"):
        run_ingest(spark, IngestConfig(inputs=[str(fifo)]), str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.jsonl"]  # no output, no hidden temporary directory


def test_jsonl_reader_never_blocks_on_a_fifo(tmp_path):
    fifo = tmp_path / "late.jsonl"
    os.mkfifo(fifo)
    with _fifo_released_after(fifo):
        rows = list(parse_jsonl_file(str(fifo), "late.jsonl", IngestConfig()))
    assert [(r["reason"], r["error"]) for r in rows] == [("unreadable_file", "cannot open file: a FIFO, not a regular "
                                                                              "file")]


def test_symlink_loops_are_followed_once_and_reported(spark, tmp_path):
    src = tmp_path / "in"
    _jsonl(src / "sub" / "a.jsonl", [{"text": "only once"}])
    (src / "sub" / "up").symlink_to("..")  # back to the input directory
    (src / "self").symlink_to("self")  # resolves to itself
    (src / "notes.txt").write_text("not data")
    os.mkfifo(src / "pipe.jsonl")
    with _fifo_released_after(src / "pipe.jsonl"):
        stats = run_ingest(spark, IngestConfig(inputs=[str(src)]), str(tmp_path / "out"))
    assert stats["input_docs"] == stats["kept_docs"] == 1
    assert stats["skipped_by_reason"] == {"not_a_regular_file": 1, "symlink_loop": 2, "unknown_extension": 1}
    assert stats["skipped_files"] == ["notes.txt", "pipe.jsonl", "self", "sub/up"]


def test_a_file_or_directory_under_two_names_is_read_once_under_its_real_name(spark, tmp_path):
    src = tmp_path / "in"
    _jsonl(src / "real" / "a.jsonl", [{"text": "one"}])
    (src / "real" / "b.jsonl").symlink_to("a.jsonl")
    (src / "alias").symlink_to("real")  # sorts before real/
    listing = list_inputs(spark, [str(src)])
    assert [(f.rel, f.path, f.size) for f in listing.files] == [
        ("real/a.jsonl", f"file:{src}/real/a.jsonl", (src / "real" / "a.jsonl").stat().st_size)]
    assert listing.files[0].mtime == (src / "real" / "a.jsonl").stat().st_mtime_ns // 10**6
    assert {(s.rel, s.reason) for s in listing.skipped} == {("alias", "duplicate"), ("real/b.jsonl", "duplicate")}


def test_globs_keep_hadoop_syntax(spark, tmp_path):
    for name in ("a", "b", "c"):
        _jsonl(tmp_path / "in" / name / "x.jsonl", [{"text": name}])
    listing = list_inputs(spark, [str(tmp_path / "in" / "{a,c}" / "*.jsonl")])
    assert [f.rel for f in listing.files] == ["a/x.jsonl", "c/x.jsonl"]


def test_curate_output_inside_an_input_directory_is_skipped_whole(spark, tmp_path):
    src = tmp_path / "in"
    _jsonl(src / "raw.jsonl", [{"id": "r1", "text": "raw document"}])
    # A finished stage output, as ingest writes it: its stats.json would parse as JSONL, its kept/ as raw Parquet.
    prev = src / "prev"
    (prev / "kept" / "domain=web").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["k1"], "text": ["kept document"], "meta": pa.array([None], pa.string()),
                             "source": ["x.jsonl"], "line": [1]}), prev / "kept" / "domain=web" / "part-0.parquet")
    (prev / "stats.json").write_text(json.dumps({"stage": "ingest", "input_docs": 1}))
    (prev / "_SUCCESS").write_text("")
    listing = list_inputs(spark, [str(src)])
    assert [f.rel for f in listing.files] == ["raw.jsonl"]
    assert [(s.rel, s.reason) for s in listing.skipped] == [("prev", "stage_output")]
    assert "pass it as its own input" in listing.skipped[0].detail
    assert [r["id"] for r in read_documents(spark, [str(src)]).collect()] == ["r1"]
    # Given as its own input, the stage output is still read as one.
    both = read_documents(spark, [str(src), str(prev)]).collect()
    assert sorted((r["id"], r["domain"]) for r in both) == [("k1", "web"), ("r1", "unknown")]
    # Given to ingest, which reads raw files only, it is a one-line error (not its stats.json read as a record).
    with pytest.raises(CurateError, match="is a curate stage output, not raw files"):
        list_inputs(spark, [str(prev)])


def test_parquet_ids_pass_the_same_type_check_as_jsonl(spark, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    ids = {
        "str": pa.array(["s"]), "int": pa.array([7], pa.int64()), "uint64": pa.array([2**64 - 1], pa.uint64()),
        "float": pa.array([1.5]), "bool": pa.array([True]), "list": pa.array([[1, 2]]),
        "struct": pa.array([{"a": 1}]), "null_float": pa.array([None], pa.float64()),
    }
    for name, col in ids.items():
        pq.write_table(pa.table({"id": col, "text": [f"doc {name}"]}), src / f"{name}.parquet")
    rows = {r["source"]: r for r in read_records(spark, list_inputs(spark, [str(src)]), IngestConfig()).collect()}
    assert {s: r["id"] for s, r in rows.items() if r["kind"] == "doc" and not s.startswith("null")} == {
        "str.parquet": "s", "int.parquet": "7", "uint64.parquet": str(2**64 - 1)}
    assert rows["null_float.parquet"]["kind"] == "doc"  # a null id is a missing id, as in JSONL: the text's hash
    assert {s: r["reason"] for s, r in rows.items() if r["kind"] == "bad"} == {
        "float.parquet": "bad_id", "bool.parquet": "bad_id", "list.parquet": "bad_id", "struct.parquet": "bad_id"}
    assert rows["float.parquet"]["error"] == "column 'id' is double, not a string or integer"


@pytest.mark.parametrize("text", ["\x00", "\x00\x00 \n\t", "\u200b\ufeff\x1b", "\u00a0\u3000\u2028"])
def test_text_of_only_invisible_characters_is_empty(text):
    row = validate_record(text, None, None, None, "x.jsonl", 1, IngestConfig(), None)
    assert row["kind"] == "bad" and row["reason"] == "empty_text"


@pytest.mark.parametrize("text", ["a\x00", "\x00.", "\ue000"])
def test_text_with_a_visible_character_is_kept(text):
    assert validate_record(text, None, None, None, "x.jsonl", 1, IngestConfig(), None)["kind"] == "doc"


def test_the_file_listing_is_a_jvm_table_that_starts_no_python_worker(spark, tmp_path):
    # Rows of Python tuples become an RDD that a Python worker must convert (about a second before the read's first
    # task); an Arrow table is read by the JVM itself.
    from curate.sources import _string_table

    df = _string_table(spark, path=["/a/x.jsonl", "/a/y.jsonl"], rel=["x.jsonl", "y.jsonl"])
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "LocalTableScan" in plan and "ExistingRDD" not in plan
    assert [tuple(r) for r in df.collect()] == [("/a/x.jsonl", "x.jsonl"), ("/a/y.jsonl", "y.jsonl")]
    assert df.schema.simpleString() == "struct<path:string,rel:string>"


def test_a_cut_zstd_stream_ends_in_a_quarantine_row_and_a_bom_is_not_json(tmp_path):
    import zstandard

    cfg = IngestConfig()
    lines = b"".join(json.dumps({"text": f"document number {i} " * 20}).encode() + b"\n" for i in range(3000))
    whole = zstandard.ZstdCompressor().compress(lines)
    (tmp_path / "whole.jsonl.zst").write_bytes(whole)
    (tmp_path / "cut.jsonl.zst").write_bytes(whole[: len(whole) // 2])
    rows = list(parse_jsonl_file(str(tmp_path / "whole.jsonl.zst"), "whole.jsonl.zst", cfg))
    assert [r["kind"] for r in rows] == ["doc"] * 3000
    # zstandard's own reader ends such a stream quietly: the rest of the file would be gone without a trace.
    rows = list(parse_jsonl_file(str(tmp_path / "cut.jsonl.zst"), "cut.jsonl.zst", cfg))
    assert rows[-1]["kind"] == "bad" and rows[-1]["reason"] == "truncated_stream"
    assert all(r["kind"] == "doc" for r in rows[:-2])  # the line cut in half may be read as a bad one
    # A byte order mark opens a file exported on Windows; it is not part of the first record.
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "first"}).encode() + b"\n{\"text\": \"second\"}\n")
    assert [r["text"] for r in parse_jsonl_file(str(bom), "bom.jsonl", cfg)] == ["first", "second"]


def test_domain_labels_become_distinct_safe_names():
    from curate.sources import clean_domain

    assert [clean_domain(n) for n in ("web", "c++", "v1.2", "café", "中文", "日本", "  ", "")] == [
        "web", "c++", "v1.2", "café", "中文", "日本", "unknown", "unknown"]
    changed = [clean_domain(n) for n in ("a b", "a/b", "a:b")]
    # Cleaned names keep the label readable and stay apart from each other and from the plain `a_b`.
    assert all(c.startswith("a_b-") for c in changed) and len(set(changed) | {"a_b"}) == 4
    # `.` and `..` would name a split directory itself or its parent; a leading dot would hide the domain.
    assert [clean_domain(n)[0] for n in (".", "..", ".hidden")] == ["_", "_", "_"]


def test_raw_input_to_a_later_stage_counts_what_it_leaves_out(spark, tmp_path, capsys):
    src = tmp_path / "raw.jsonl"
    src.write_text('{"text": "one", "id": "x"}\n{"text": "two", "id": "x"}\nnot json\n{"text": 5}\n\n'
                   '{"text": "three"}\n')
    docs = read_documents(spark, [str(src)])
    assert sorted(r["text"] for r in docs.collect()) == ["one", "three"]
    err = capsys.readouterr().err
    # What ingest would quarantine (the blank line is no record) is counted and named, not dropped in silence.
    assert "3 raw record(s) could not be read" in err
    assert "duplicate_id 1" in err and "invalid_json 1" in err and "text_not_string 1" in err


def test_numeric_domain_labels_stay_distinct_strings_through_a_stage_output(spark, tmp_path):
    labels = ["007", "7", "1e5", "2024", "__HIVE_DEFAULT_PARTITION__"]
    _jsonl(tmp_path / "in" / "a.jsonl", [{"text": f"document {i} of {d}", "domain": d} for d in labels
                                         for i in range(3)])
    run_ingest(spark, IngestConfig(inputs=[str(tmp_path / "in")]), str(tmp_path / "out"))
    # Read back as a later stage reads it: with Spark's partition type inference, 007 and 7 were both the integer 7.
    docs = read_documents(spark, [str(tmp_path / "out")])
    got = sorted((r["domain"], r["n"]) for r in docs.groupBy("domain").count().withColumnRenamed("count", "n")
                 .collect())
    assert [d for d, _ in got][:4] == ["007", "1e5", "2024", "7"] and all(n == 3 for _, n in got)
    assert got[4][0].startswith("__HIVE_DEFAULT_PARTITION__-")  # never Spark's null partition
    assert dict(docs.dtypes)["domain"] == "string"


def test_a_pre_check_read_of_raw_files_does_not_count_them_again(spark, tmp_path, capsys):
    src = tmp_path / "raw.jsonl"
    src.write_text('{"text": "one"}\nnot json\n')
    assert [r["text"] for r in read_documents(spark, [str(src)], count_unread=False).collect()] == ["one"]
    assert "could not be read" not in capsys.readouterr().err
