"""The decontaminate stage: planted eval text is found (verbatim, edited, embedded), paraphrases are not; span mode
cuts only the overlap; every eval layout; one-line errors; the same bytes for any partitioning."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from curate.cli import main
from curate.decontaminate.config import DecontamConfig
from curate.decontaminate.ngrams import normalize, word_spans
from curate.decontaminate.stage import run_decontaminate
from curate.errors import CurateError

VOCAB = ("harbor river lantern copper meadow signal orchard quarry violet anchor basalt cinder falcon glacier "
         "hollow juniper kestrel lattice marble nectar oyster pebble quiver rustle saddle thistle umber velvet "
         "willow yonder zephyr amber bramble candle drizzle ember fern gravel heron ivory jasper").split()
# Eval passages: each word drawn from its own seeded stream, so two passages share no 13-gram.
PASSAGE_A = ("Which of the following statements best explains why the early settlers built their houses on the "
             "northern bank of the river rather than on the wide southern plain near the old harbor")
PASSAGE_B = ("The committee concluded that the proposed bridge would carry twice the expected traffic within a "
             "decade and recommended that construction begin before the winter floods arrived")


def _filler(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def _stage_input(root: Path, rows: list[dict], files: int = 1) -> str:
    """A finished stage directory (kept/ + _SUCCESS) holding `rows` in `files` Parquet files."""
    kept = root / "kept"
    kept.mkdir(parents=True)
    for n in range(files):
        part = rows[n::files]
        cols = {k: pa.array([r.get(k) for r in part], pa.string()) for k in ("id", "domain", "text")}
        pq.write_table(pa.table(cols), kept / f"part-{n:05d}.parquet")
    (root / "_SUCCESS").write_text("")
    (root / "stats.json").write_text("{}")
    return str(root)


def _jsonl(path: Path, records: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _read(out: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    kept = ds.dataset(out / "kept", partitioning="hive").to_table().to_pylist()
    removed = ds.dataset(out / "removed").to_table().to_pylist()
    return {r["id"]: r for r in kept}, {r["id"]: r for r in removed}


def _paraphrase(text: str) -> str:
    """Every 8th word replaced: no run of 13 words survives."""
    words = text.split()
    return " ".join("something" if i % 8 == 7 else w for i, w in enumerate(words))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("decont")
    evals = _jsonl(root / "evals" / "quiz.jsonl", [{"id": "q-a", "text": PASSAGE_A}, {"id": "q-b", "text": PASSAGE_B}])
    edited = PASSAGE_A.replace(" the ", ", the ").replace("river", "river;").upper() + "?!"
    rows = [
        {"id": "verbatim", "domain": "web", "text": PASSAGE_A},
        {"id": "edited", "domain": "web", "text": edited},
        {"id": "embedded", "domain": "books", "text": f"{_filler(1, 120)}. {PASSAGE_B} {_filler(2, 150)}."},
        {"id": "paraphrase", "domain": "web", "text": _paraphrase(PASSAGE_A)},
        {"id": "short-run", "domain": "web", "text": " ".join(PASSAGE_B.split()[:12]) + " " + _filler(3, 40)},
    ]
    rows += [{"id": f"clean-{i}", "domain": ["web", "books"][i % 2], "text": _filler(10 + i, 60)} for i in range(20)]
    return root, evals, rows


def test_planted_verbatim_edited_and_embedded_found_paraphrase_not(spark, planted):
    root, evals, rows = planted
    out = root / "doc"
    stats = run_decontaminate(spark, DecontamConfig(against=[evals], output_partitions=2),
                              [_stage_input(root / "in-doc", rows)], str(out))
    kept, removed = _read(out)
    assert set(removed) == {"verbatim", "edited", "embedded"}
    assert {i: (r["reason"], r["eval_set"], r["eval_item"]) for i, r in removed.items()} == {
        "verbatim": ("contaminated", "quiz", "q-a"), "edited": ("contaminated", "quiz", "q-a"),
        "embedded": ("contaminated", "quiz", "q-b")}
    assert removed["verbatim"]["matched_ngrams"] == len(PASSAGE_A.split()) - 12
    assert removed["embedded"]["contaminated_ngram"] == " ".join(normalize(PASSAGE_B).split()[:13])
    assert {"paraphrase", "short-run"} <= set(kept) and len(kept) == len(rows) - 3
    assert kept["paraphrase"]["text"] == _paraphrase(PASSAGE_A)  # untouched, and no annotation columns in kept/
    assert "eval_set" not in kept["paraphrase"]
    assert stats["input_docs"] == len(rows) and stats["removed_by_reason"] == {"contaminated": 3}
    quiz = stats["eval_sets"]["quiz"]
    assert (quiz["items"], quiz["removed_docs"], quiz["by_domain"]["books"]["removed_docs"]) == (2, 3, 1)
    assert 0 < stats["index"]["false_match_rate_per_ngram"] < 1e-15


def test_span_mode_cuts_only_the_overlapping_spans(spark, planted):
    root, evals, rows = planted
    out = root / "span"
    stats = run_decontaminate(spark, DecontamConfig(against=[evals], mode="span", output_partitions=2),
                              [_stage_input(root / "in-span", rows)], str(out))
    kept, removed = _read(out)
    # Nothing but eval text: no 13 words would be left, so the whole document goes.
    assert set(removed) == {"verbatim", "edited"}
    doc = next(r for r in rows if r["id"] == "embedded")["text"]
    start = doc.index(PASSAGE_B)
    end = start + len(PASSAGE_B)
    assert kept["embedded"]["text"] == doc[:start] + doc[end:]
    assert kept["embedded"]["cut_spans"] == [{"start": start, "end": end}]
    assert (kept["embedded"]["cut_chars"], kept["embedded"]["eval_item"]) == (len(PASSAGE_B), "q-b")
    for i, r in kept.items():
        if i != "embedded":
            assert r["text"] == next(x for x in rows if x["id"] == i)["text"] and r["cut_spans"] is None
    assert (stats["edited_docs"], stats["cut_chars"]) == (1, len(PASSAGE_B))
    assert stats["input_chars"] == sum(len(r["text"]) for r in rows)
    assert stats["eval_sets"]["quiz"]["by_domain"]["books"] == {"removed_docs": 0, "edited_docs": 1,
                                                                "cut_chars": len(PASSAGE_B)}


def test_span_cut_keeps_text_between_two_overlaps(spark, tmp_path):
    evals = _jsonl(tmp_path / "e.jsonl", [{"text": PASSAGE_A}, {"text": PASSAGE_B}])
    middle = " Meanwhile, " + _filler(5, 30) + ". "
    text = "Intro: " + _filler(4, 20) + ". " + PASSAGE_A + middle + PASSAGE_B.upper() + ". " + _filler(6, 20)
    run_decontaminate(spark, DecontamConfig(against=[evals], mode="span"),
                      [_stage_input(tmp_path / "in", [{"id": "x", "domain": "web", "text": text}])],
                      str(tmp_path / "out"))
    kept, _ = _read(tmp_path / "out")
    a = text.index(PASSAGE_A)
    b = text.index(PASSAGE_B.upper())
    assert kept["x"]["text"] == text[:a] + middle + text[b + len(PASSAGE_B):]
    assert kept["x"]["eval_item"] == "e.jsonl:1"  # no id field: file and line


def test_word_spans_place_every_normalized_word():
    text = "Naïve  café, 3.14 and 1,000 -- it's DONE!"
    words = normalize(text).split()
    spans = word_spans(text, words)
    assert [normalize(text[s:e]) for s, e in spans] == words
    assert word_spans(text, words[:-1]) is None


def test_every_layout(spark, tmp_path):
    qa = _jsonl(tmp_path / "mmlu" / "test.jsonl", [
        {"question": "Which gas makes up most of the air that we breathe at sea level on a calm day?",
         "choices": ["nitrogen gas in the lower atmosphere", "oxygen", "argon", "carbon dioxide"], "answer": 0}])
    arc = _jsonl(tmp_path / "arc" / "test.jsonl", [
        {"id": "arc-1", "question": "A student drops a ball from a tall building and times its fall.",
         "choices": {"text": ["The ball speeds up as it falls toward the ground below", "It slows"],
                     "label": ["A", "B"]}, "answerKey": "A"}])
    pc_path = tmp_path / "pc.parquet"
    pq.write_table(pa.table({"prompt": ["Write a short poem about the sea and the old lighthouse keeper"],
                             "completion": ["who lit the lamp each night for forty years without fail"]}), pc_path)
    passage = _jsonl(tmp_path / "reading.jsonl", [
        {"uid": 7, "passage": "In the spring the orchard bloomed white and the bees returned to the hives by the "
                              "wall", "label": 1}])
    docs = [
        # question and the first choice, as a quiz site would print them
        {"id": "qa", "domain": "web", "text": "Quiz: Which gas makes up most of the air that we breathe at sea "
                                              "level on a calm day? (a) Nitrogen gas in the lower atmosphere."},
        {"id": "arc", "domain": "web", "text": "times its fall. The ball speeds up as it falls toward the ground!"},
        {"id": "pc", "domain": "web", "text": "poem about the sea and the old lighthouse keeper who lit the lamp"},
        {"id": "fields", "domain": "web", "text": "the orchard bloomed white and the bees returned to the hives by the wall"},
        {"id": "clean", "domain": "web", "text": _filler(0, 40)},
    ]
    inp = _stage_input(tmp_path / "in", docs)
    run_decontaminate(spark, DecontamConfig(against=[qa, arc, str(pc_path)]), [inp], str(tmp_path / "a"))
    _, removed = _read(tmp_path / "a")
    assert {i: (r["eval_set"], r["eval_item"]) for i, r in removed.items()} == {
        "qa": ("mmlu/test", "test.jsonl:1"), "arc": ("arc/test", "arc-1"), "pc": ("pc", "pc.parquet:1")}
    cfg = DecontamConfig(against=[passage], text_fields=["passage"], id_field="uid")
    stats = run_decontaminate(spark, cfg, [inp], str(tmp_path / "b"))
    _, removed = _read(tmp_path / "b")
    assert {i: r["eval_item"] for i, r in removed.items()} == {"fields": "7"}
    assert stats["eval_sets"]["reading"]["layout"] == "fields"


def test_empty_or_unusable_eval_sets_are_one_line_errors(spark, tmp_path, capsys):
    inp = _stage_input(tmp_path / "in", [{"id": "a", "domain": "web", "text": PASSAGE_A}])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    short = _jsonl(tmp_path / "short.jsonl", [{"text": "too short to hold a 13-gram"}])
    cases = [([str(empty)], "is empty"), ([short], "no 13-grams"),
             ([_jsonl(tmp_path / "qa.jsonl", [{"prompt": "x"}])], "no field 'text'")]
    for against, message in cases:
        with pytest.raises(CurateError, match=message) as err:
            run_decontaminate(spark, DecontamConfig(against=against), [inp], str(tmp_path / "o"))
        assert "\n" not in str(err.value)
    assert main(["decontaminate", inp, "--against", str(empty), "--out", str(tmp_path / "o")]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("curate:")]
    assert lines == [f"curate: error: eval set {empty} is empty: no records in 1 file(s)"]
    assert not (tmp_path / "o").exists()


def test_identical_output_across_partition_counts(spark, planted, tmp_path):
    _, evals, rows = planted
    outputs = []
    for files, shuffle in ((1, "4"), (3, "7")):
        spark.conf.set("spark.sql.shuffle.partitions", shuffle)
        try:
            out = tmp_path / f"out{files}"
            run_decontaminate(spark, DecontamConfig(against=[evals], mode="span", output_partitions=2),
                              [_stage_input(tmp_path / f"in{files}", rows, files)], str(out))
        finally:
            spark.conf.set("spark.sql.shuffle.partitions", "4")
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))})
    assert outputs[0] == outputs[1] and len(outputs[0]) >= 2


def test_pipeline_stage_after_filter_and_report_section(spark, planted, tmp_path):
    from curate.config import PipelineConfig, validate_config
    from curate.pipeline import run_pipeline
    from curate.report import build_report

    _, evals, rows = planted
    raw = _jsonl(tmp_path / "raw" / "docs.jsonl", rows)
    cfg = validate_config(PipelineConfig, {
        "stages": ["decontaminate", "ingest"], "ingest": {"inputs": [raw]},
        "decontaminate": {"against": [evals], "output_partitions": 1}}, "test")
    results = run_pipeline(spark, cfg, str(tmp_path / "run"))
    assert list(results) == ["ingest", "decontaminate"]
    assert results["decontaminate"]["removed_by_reason"] == {"contaminated": 3}
    page = build_report(tmp_path / "run").read_text()
    assert 'data-plot="decontamination"' in page and "quiz" in page
