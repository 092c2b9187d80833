"""Ingest: every record ends in kept/ or quarantine/ with its file and line, counts reconcile, output is stable."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import DomainRule, IngestConfig
from curate.errors import CurateError
from curate.ingest import run_ingest


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))
    return path


def _quarantine(spark, out: Path) -> dict[tuple[str, int], str]:
    rows = spark.read.parquet(str(out / "quarantine")).collect()
    return {(r["source"], r["line"]): r["reason"] for r in rows}


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "stats.json"}


@pytest.fixture
def messy_corpus(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    _jsonl(src / "web" / "a.jsonl", [
        {"id": "a1", "text": "Hello\r\nworld", "lang": "en"},
        b"this is not json",
        {"id": "a3", "title": "no text"},
        {"id": "a4", "text": None},
        {"id": "a5", "text": 12},
        {"id": "a6", "text": "  \n "},
        b'{"id": "a7", "text": "bad \xff byte"}',
        {"id": "a1", "text": "same id again"},
        ["not", "an", "object"],
        {"id": "a10", "text": "x" * 5_000_001},
    ])
    (src / "web" / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "gz one"}\n{"text": "gz two"}\n', mtime=0))
    blob = gzip.compress(b"".join(b'{"text": "line %d"}\n' % i for i in range(200)), mtime=0)
    (src / "web" / "cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    (src / "web" / "empty.jsonl").write_bytes(b"")
    (src / "code").mkdir()
    pq.write_table(pa.table({"text": ["parquet doc", "Cafe\u0301"], "score": [1, 2]}), src / "code" / "p.parquet")
    return src


def test_ingest_quarantines_every_bad_record_with_file_and_line(spark, messy_corpus, tmp_path):
    cfg = IngestConfig(inputs=[str(messy_corpus)],
                       domain_rules=[DomainRule(pattern="code/*", domain="code")], default_domain="web")
    stats = run_ingest(spark, cfg, str(tmp_path / "out"))
    q = _quarantine(spark, tmp_path / "out")
    assert q[("web/a.jsonl", 2)] == "invalid_json"
    assert q[("web/a.jsonl", 3)] == "missing_text"
    assert q[("web/a.jsonl", 4)] == "null_text"
    assert q[("web/a.jsonl", 5)] == "text_not_string"
    assert q[("web/a.jsonl", 6)] == "empty_text"
    assert q[("web/a.jsonl", 7)] == "invalid_utf8"
    assert q[("web/a.jsonl", 8)] == "duplicate_id"
    assert q[("web/a.jsonl", 9)] == "not_an_object"
    assert q[("web/a.jsonl", 10)] == "too_long"
    truncated = [k for k, v in q.items() if v == "truncated_stream"]
    assert len(truncated) == 1 and truncated[0][0] == "web/cut.jsonl.gz"
    assert stats["input_docs"] == stats["kept_docs"] + stats["quarantined_docs"]
    assert stats["quarantined_docs"] == len(q) == 10
    assert stats["empty_files"] == ["web/empty.jsonl"]
    # What the truncated file held before the break is kept, line numbers intact.
    kept = spark.read.parquet(str(tmp_path / "out" / "kept")).where("source = 'web/cut.jsonl.gz'")
    lines = sorted(r["line"] for r in kept.select("line").collect())
    assert lines == list(range(1, len(lines) + 1)) and 0 < len(lines) < 200


def test_ingest_normalizes_and_labels(spark, messy_corpus, tmp_path):
    cfg = IngestConfig(inputs=[str(messy_corpus)],
                       domain_rules=[DomainRule(pattern="code/*", domain="code")], default_domain="web")
    run_ingest(spark, cfg, str(tmp_path / "out"))
    rows = {r["text"]: r for r in spark.read.parquet(str(tmp_path / "out" / "kept")).collect()}
    assert "Hello\nworld" in rows and rows["Hello\nworld"]["id"] == "a1"
    assert json.loads(rows["Hello\nworld"]["meta"]) == {"lang": "en"}
    assert "Caf\u00e9" in rows  # NFC
    assert rows["Caf\u00e9"]["domain"] == "code" and rows["gz one"]["domain"] == "web"
    assert len(rows["gz one"]["id"]) == 32  # content hash when the record has no id


def test_ingest_reconciles_per_domain(spark, messy_corpus, tmp_path):
    stats = run_ingest(spark, IngestConfig(inputs=[str(messy_corpus)]), str(tmp_path / "out"))
    assert sum(d["kept_docs"] for d in stats["by_domain"].values()) == stats["kept_docs"]
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert on_disk["input_docs"] == on_disk["kept_docs"] + on_disk["quarantined_docs"]
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert not list(tmp_path.glob(".out*"))  # the temporary directory was renamed away


def test_ingest_output_is_identical_across_partition_counts(spark, messy_corpus, tmp_path):
    cfg = IngestConfig(inputs=[str(messy_corpus)])
    outs = []
    for parts in ("1", "4"):
        spark.conf.set("spark.sql.shuffle.partitions", parts)
        try:
            run_ingest(spark, cfg, str(tmp_path / f"out{parts}"))
        finally:
            spark.conf.set("spark.sql.shuffle.partitions", "4")
        outs.append(_tree_bytes(tmp_path / f"out{parts}"))
    assert outs[0] == outs[1]


def test_duplicate_ids_resolve_alike_whether_broadcast_or_ranked_in_full(spark, messy_corpus, tmp_path, monkeypatch):
    import curate.sources

    # A third a1 (a given id: quarantined), a text repeated without an id (a content id: suffixed), a unique id.
    _jsonl(messy_corpus / "web" / "dups.jsonl", [{"id": "a1", "text": "third a1"}, {"text": "gz one"},
                                                 {"id": "z", "text": "unique"}])
    cfg = IngestConfig(inputs=[str(messy_corpus)])
    outs = []
    for cap in (curate.sources.BROADCAST_DUPLICATE_IDS, 0):  # 0: every duplicate id goes through the full window
        monkeypatch.setattr(curate.sources, "BROADCAST_DUPLICATE_IDS", cap)
        stats = run_ingest(spark, cfg, str(tmp_path / f"out{cap}"))
        stats.pop("wall_seconds")
        outs.append((_tree_bytes(tmp_path / f"out{cap}"), stats))
    assert outs[0] == outs[1]
    assert stats["quarantined_by_reason"]["duplicate_id"] == 2
    ids = {r["id"] for r in spark.read.parquet(str(tmp_path / "out0" / "kept")).collect()}
    assert {"a1", "z"} <= ids and sum(i.endswith("-2") for i in ids) == 1


def test_repeated_texts_without_ids_get_distinct_stable_ids(spark, tmp_path):
    _jsonl(tmp_path / "in" / "x.jsonl", [{"text": "same"}, {"text": "same"}, {"text": "other"}])
    run_ingest(spark, IngestConfig(inputs=[str(tmp_path / "in")]), str(tmp_path / "out"))
    rows = spark.read.parquet(str(tmp_path / "out" / "kept")).orderBy("line").collect()
    assert rows[1]["id"] == rows[0]["id"] + "-2"
    assert len({r["id"] for r in rows}) == 3


def test_missing_input_is_one_line_error(spark, tmp_path):
    with pytest.raises(CurateError, match="input path does not exist"):
        run_ingest(spark, IngestConfig(inputs=[str(tmp_path / "nope")]), str(tmp_path / "out"))


def test_cli_missing_input_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "ingest", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    # Checked before Spark starts: exactly one line, not the JVM's start-up warning and then the error.
    assert proc.stderr.strip().splitlines() == [f"curate: error: input path does not exist: {tmp_path / 'nope'}"]


def test_a_stage_output_mixed_with_raw_files_contributes_only_its_kept_table(spark, messy_corpus, tmp_path):
    # `curate tokenize STAGE_DIR extra.jsonl`: the stage output is read as its kept/ table (domains from its
    # partition directories), never as loose Parquet files (which would pull in quarantine/ rows under "unknown").
    from curate.sources import input_bytes, read_documents

    rules = [DomainRule(pattern="web/*", domain="web"), DomainRule(pattern="code/*", domain="code")]
    run_ingest(spark, IngestConfig(inputs=[str(messy_corpus)], domain_rules=rules), str(tmp_path / "out"))
    stage_only = read_documents(spark, [str(tmp_path / "out")])
    extra = _jsonl(tmp_path / "extra" / "more.jsonl", [{"id": "n1", "text": "noise one", "domain": "noise"},
                                                      {"id": "n2", "text": "noise two", "domain": "noise"}])
    mixed = read_documents(spark, [str(tmp_path / "out"), str(extra)])
    count = lambda df: {r["domain"]: r["count"] for r in df.groupBy("domain").count().collect()}  # noqa: E731
    assert set(count(stage_only)) == {"web", "code"}
    assert count(mixed) == {**count(stage_only), "noise": 2}
    assert input_bytes(spark, [str(tmp_path / "out"), str(extra)]) == (
        input_bytes(spark, [str(tmp_path / "out")]) + extra.stat().st_size)


def test_parsed_records_are_batched_by_characters_as_well_as_rows(tmp_path, monkeypatch):
    from curate import sources

    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": "word " * (20 * (i + 1))}) + "\n" for i in range(30)))
    monkeypatch.setattr(sources, "_BATCH_CHARS", 1000)
    batches = list(sources._batched(sources.parse_jsonl_file(str(path), "long.jsonl", IngestConfig())))
    assert sum(b.num_rows for b in batches) == 30 and len(batches) > 10
    texts = [t for b in batches for t in b.column("text").to_pylist()]
    assert texts == ["word " * (20 * (i + 1)) for i in range(30)]
    # A batch ends at the first record that reaches the limit: no batch holds more than one record past it.
    for b in batches:
        lengths = [len(t) for t in b.column("text").to_pylist()]
        assert sum(lengths[:-1]) < 1000


def test_domain_rule_matching_no_input_file_is_warned_and_recorded(spark, tmp_path, capsys):
    _jsonl(tmp_path / "in" / "code" / "a.jsonl", [{"text": "def f(): pass"}])
    rules = [DomainRule(pattern="code/*", domain="code"), DomainRule(pattern="cdoe/*", domain="code")]
    stats = run_ingest(spark, IngestConfig(inputs=[str(tmp_path / "in")], domain_rules=rules), str(tmp_path / "out"))
    assert stats["unmatched_domain_rules"] == [{"pattern": "cdoe/*", "domain": "code"}]
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["unmatched_domain_rules"] == [
        {"pattern": "cdoe/*", "domain": "code"}]
    assert "domain rule 'cdoe/*' -> 'code' matches no input file" in capsys.readouterr().err
