"""The dedup stage on Spark, against ground truth from exact Jaccard on a small synthetic corpus."""

from __future__ import annotations

import functools
import hashlib
import json
import random
from itertools import combinations
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from curate.dedup.config import DedupConfig
from curate.dedup.normalize import words
from curate.dedup.stage import run_dedup

VOCAB = [f"{a}{b}{c}" for a in "bcdfghklmnprstvz" for b in "aeiou" for c in "lmnrst"]  # 480 words


@functools.lru_cache(maxsize=None)
def shingles(text: str, n: int = 5) -> frozenset[tuple[str, ...]]:
    w = words(text)
    return frozenset(tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))) if w else frozenset()


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def edited(rng: random.Random, base: list[str], target: float) -> list[str]:
    """A copy of `base` with words replaced at spaced positions so its 5-gram Jaccard is near `target`."""
    m = len(base) - 4
    k = max(1, round(m * (1 - target) / (5 * (1 + target))))
    out = list(base)
    step = len(base) / k
    for i in range(k):
        out[int(i * step + step / 2)] = rng.choice(VOCAB) + "x"
    return out


def make_corpus(seed: int = 0) -> list[dict]:
    """Unrelated base documents, each with copies at known similarities, a chain, and short/empty documents."""
    rng = random.Random(seed)
    docs = []

    def add(text: str, domain: str = "web") -> str:
        doc_id = hashlib.sha1(f"{len(docs)}:{text}".encode()).hexdigest()[:12]
        docs.append({"id": doc_id, "domain": domain, "text": text})
        return doc_id

    targets = [0.3, 0.5, 0.6, 0.7, 0.85, 0.9, 0.95]
    for i in range(70):
        base = [rng.choice(VOCAB) for _ in range(rng.randint(150, 260))]
        add(" ".join(base), "web" if i % 2 else "books")
        if i < 56:
            t = targets[i % len(targets)]
            add(" ".join(edited(rng, base, t)), "web")
        if i % 10 == 0:
            add(" ".join(base).upper() + " !!!")  # normalizes to the base text: an exact duplicate
    # A chain: A ~ B and B ~ C above the threshold, A ~ C below it.
    a = [rng.choice(VOCAB) for _ in range(240)]
    b = list(a)
    for pos in range(3, 120, 40):
        b[pos] = "chainb"
    c = list(b)
    for pos in range(123, 240, 40):
        c[pos] = "chainc"
    for w in (a, b, c):
        add(" ".join(w), "chain")
    for text in ("!!!", "!!!", "???", "Hello", "hello!", "world"):
        add(text, "short")
    return docs


def write_stage_input(spark, docs: list[dict], path: Path, files: int) -> str:
    """A finished stage directory (kept/ by domain + _SUCCESS) holding `docs` in `files` Parquet files."""
    df = spark.createDataFrame(
        [(d["id"], d["domain"], d["text"], None, "synthetic.jsonl", i + 1) for i, d in enumerate(docs)],
        "id string, domain string, text string, meta string, source string, line long",
    )
    df.repartition(files).write.mode("overwrite").partitionBy("domain").parquet(str(path / "kept"))
    (path / "_SUCCESS").write_text("")
    return str(path)


def read_table(path: Path) -> list[dict]:
    if not path.exists() or not any(path.rglob("*.parquet")):
        return []
    return ds.dataset(str(path), partitioning="hive").to_table().to_pylist()


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def dedup_runs(spark, corpus, tmp_path_factory):
    """The same corpus in 1, 3 and 8 input files, each deduplicated with the default settings."""
    root = tmp_path_factory.mktemp("dedup")
    outs = {}
    for files in (1, 3, 8):
        src = write_stage_input(spark, corpus, root / f"in{files}", files)
        out = root / f"out{files}"
        stats = run_dedup(spark, DedupConfig(output_partitions=2), [src], str(out))
        outs[files] = (out, stats)
    return outs


def test_dedup_precision_and_recall_against_exact_jaccard(corpus, dedup_runs):
    out, stats = dedup_runs[1]
    removed = {r["id"]: r for r in read_table(out / "removed")}
    kept = {r["id"] for r in read_table(out / "kept")}
    text = {d["id"]: d["text"] for d in corpus}
    assert kept | set(removed) == set(text) and not kept & set(removed)
    # Truth: pairs at or above the threshold. A pair is caught when at most one of the two is kept.
    true_pairs = [(u, v) for u, v in combinations(text, 2)
                  if shingles(text[u]) and shingles(text[v]) and jaccard(text[u], text[v]) >= 0.8]
    caught = sum(1 for u, v in true_pairs if not (u in kept and v in kept))
    assert len(true_pairs) >= 30
    assert caught / len(true_pairs) >= 0.97
    # Precision: with exact verification (the default) every removed document's best partner is at the threshold.
    best = {i: max(jaccard(text[i], text[j]) for j in text if j != i) for i in removed if shingles(text[i])}
    assert min(best.values()) >= 0.8 - 1e-9
    assert stats["removed_docs"] == len(removed)


def test_dedup_keeps_component_minimum_and_labels_removed_rows(corpus, dedup_runs):
    out, stats = dedup_runs[1]
    text = {d["id"]: d["text"] for d in corpus}
    removed = read_table(out / "removed")
    kept = {r["id"] for r in read_table(out / "kept")}
    for r in removed:
        assert r["reason"] in ("exact_duplicate", "near_duplicate")
        assert r["duplicate_of"] in kept
        assert r["cluster_id"] == r["duplicate_of"]
        assert r["duplicate_of"] < r["id"]  # the kept document is the cluster's smallest id
        assert r["matched_reference"] is False
        if r["reason"] == "exact_duplicate":
            assert words(r["text"]) == words(text[r["duplicate_of"]])
    assert stats["exact_duplicates"] >= 7 and stats["near_duplicates"] >= 16
    assert stats["removed_by_reason"] == {"exact_duplicate": stats["exact_duplicates"],
                                          "near_duplicate": stats["near_duplicates"]}
    assert stats["input_docs"] == stats["kept_docs"] + stats["removed_docs"]
    assert stats["lsh"]["s_curve"][-1] == {"similarity": 1.0, "probability": 1.0}
    assert sum(h["docs"] for h in stats["cluster_size_histogram"]) == stats["removed_docs"] + stats["clusters"]
    assert stats["alarms"] == []


def test_dedup_chain_ends_in_one_component(corpus, dedup_runs):
    out, _ = dedup_runs[1]
    a, b, c = [d for d in corpus if d["domain"] == "chain"]
    assert jaccard(a["text"], b["text"]) >= 0.85 and jaccard(b["text"], c["text"]) >= 0.85
    assert jaccard(a["text"], c["text"]) < 0.8
    removed = {r["id"]: r for r in read_table(out / "removed") if r["domain"] == "chain"}
    root = min(a["id"], b["id"], c["id"])
    assert set(removed) == {a["id"], b["id"], c["id"]} - {root}
    assert {r["cluster_id"] for r in removed.values()} == {root}


def test_dedup_empty_and_one_word_documents_as_documented(corpus, dedup_runs):
    out, _ = dedup_runs[1]
    short = {d["id"]: d["text"] for d in corpus if d["domain"] == "short"}
    removed = {r["id"]: r for r in read_table(out / "removed") if r["id"] in short}
    # "!!!" twice: one removed as an exact duplicate of the same raw text; "???" is kept (no words, other text).
    # "Hello" and "hello!" normalize to the same word: one is removed; "world" is kept.
    assert sorted(short[i] for i in removed) == sorted([max(["!!!", "!!!"]),
                                                         short[max(i for i in short if short[i] in ("Hello", "hello!"))]])
    assert all(r["reason"] == "exact_duplicate" for r in removed.values())
    assert sum(short[i] == "!!!" for i in removed) == 1


def test_dedup_output_identical_with_1_3_8_partitions(dedup_runs):
    def files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes()
                for p in sorted(out.rglob("*")) if p.is_file() and p.name != "stats.json"}

    ref = files(dedup_runs[1][0])
    assert any(k.startswith("removed/") for k in ref)
    for n in (3, 8):
        assert files(dedup_runs[n][0]) == ref
        s1, sn = dedup_runs[1][1], dedup_runs[n][1]
        for key in ("removed_by_reason", "cluster_size_histogram", "candidate_pairs", "verified_pairs", "by_domain"):
            assert s1[key] == sn[key]


def test_dedup_giant_bucket_stays_linear_and_raises_alarms(spark, tmp_path):
    rng = random.Random(5)
    common = " ".join(rng.choice(VOCAB) for _ in range(60))
    docs = [{"id": f"same-{i:05d}", "domain": "spam", "text": "buy cheap pills now"} for i in range(2000)]
    # Templated pages that differ in two words (Jaccard ~0.9 with each other): one bucket per band holds all.
    docs += [{"id": f"tmpl-{i:05d}", "domain": "spam", "text": f"{common} item {VOCAB[i % 480]} {VOCAB[i // 480]}"}
             for i in range(1200)]
    docs += [{"id": f"uniq-{i:03d}", "domain": "web", "text": " ".join(rng.choice(VOCAB) for _ in range(80))}
             for i in range(20)]
    src = write_stage_input(spark, docs, tmp_path / "in", 2)
    cfg = DedupConfig(alarm_component_size=1000, alarm_removal_rate=0.5, output_partitions=1)
    stats = run_dedup(spark, cfg, [src], str(tmp_path / "out"))
    n_tmpl = 1200
    # A star to each bucket's minimum: a document links to at most one minimum per bucket it is in (a few distinct
    # buckets per band here), never to all n^2 / 2 pairs of a bucket.
    assert stats["candidate_pairs"] <= 4 * n_tmpl
    assert stats["exact_duplicates"] == 1999
    assert stats["near_duplicates"] == n_tmpl - 1
    assert stats["largest_cluster"] == 2000
    assert len(stats["alarms"]) == 2
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["alarms"] == stats["alarms"]


def test_dedup_against_reference_names_the_matched_document(spark, tmp_path):
    rng = random.Random(9)
    base = [[rng.choice(VOCAB) for _ in range(200)] for _ in range(4)]
    ref = [{"id": f"ref-{i}", "domain": "web", "text": " ".join(w)} for i, w in enumerate(base)]
    near = edited(rng, base[1], 0.9)
    docs = [
        {"id": "a-exact", "domain": "web", "text": ref[0]["text"].upper()},
        {"id": "b-near", "domain": "web", "text": " ".join(near)},
        {"id": "c-new", "domain": "web", "text": " ".join(rng.choice(VOCAB) for _ in range(200))},
        {"id": "d-new-copy", "domain": "web", "text": None},
    ]
    docs[3]["text"] = docs[2]["text"]
    ref_dir = write_stage_input(spark, ref, tmp_path / "ref", 1)
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "ref").rglob("*"))
    src = write_stage_input(spark, docs, tmp_path / "in", 1)
    stats = run_dedup(spark, DedupConfig(against=ref_dir, verify="exact"), [src], str(tmp_path / "out"))
    removed = {r["id"]: r for r in read_table(tmp_path / "out" / "removed")}
    assert removed["a-exact"]["duplicate_of"] == "ref-0" and removed["a-exact"]["reason"] == "exact_duplicate"
    assert removed["b-near"]["duplicate_of"] == "ref-1" and removed["b-near"]["reason"] == "near_duplicate"
    assert removed["a-exact"]["matched_reference"] and removed["b-near"]["matched_reference"]
    assert removed["d-new-copy"]["duplicate_of"] == "c-new" and not removed["d-new-copy"]["matched_reference"]
    assert "c-new" not in removed
    assert stats["removed_against_reference"] == 2
    assert stats["lsh"]["verify"] == "exact"
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "ref").rglob("*")) == before


def _union_find_components(edges: list[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        if a != b:
            parent[max(a, b)] = min(a, b)
    nodes = {x for u, v in edges if u != v for x in (u, v)}
    return {x: find(x) for x in nodes}


@pytest.mark.parametrize("kind", ["random", "path", "stars", "empty"])
def test_connected_components_match_union_find(spark, kind, tmp_path):
    from curate.dedup.components import connected_components

    spark.sparkContext.setCheckpointDir(str(tmp_path))  # the rounds checkpoint (a stage sets its own)
    rng = random.Random(len(kind))
    if kind == "random":
        edges = [(f"n{rng.randrange(300):03d}", f"n{rng.randrange(300):03d}") for _ in range(320)]
    elif kind == "path":  # the worst case for the number of rounds; ids out of path order
        order = rng.sample(range(150), 150)
        edges = [(f"p{order[i]:03d}", f"p{order[i + 1]:03d}") for i in range(149)]
    elif kind == "stars":  # already converged: one round, repeats and self-loops allowed
        edges = [(f"s{c}{k}", f"s{c}") for c in range(5) for k in range(4)] + [("s1", "s1"), ("s10", "s1")]
    else:
        edges = []
    df = spark.createDataFrame(edges, "u string, v string")
    out, rounds = connected_components(df)
    got = {r["u"]: r["component"] for r in out.collect()}
    assert got == _union_find_components(edges)
    assert out.count() == len(got)
    if kind in ("stars", "empty"):
        assert rounds == 1


@pytest.mark.parametrize("kind", ["random", "path", "stars", "empty"])
def test_components_in_one_task_equal_union_find_and_the_rounds(spark, kind, tmp_path):
    from curate.dedup.components import components_in_one_task, connected_components

    spark.sparkContext.setCheckpointDir(str(tmp_path))
    rng = random.Random(7 + len(kind))
    if kind == "random":
        edges = [(f"n{rng.randrange(400)}", f"n{rng.randrange(400)}") for _ in range(500)]
    elif kind == "path":
        order = rng.sample(range(200), 200)
        edges = [(f"p{order[i]}", f"p{order[i + 1]}") for i in range(199)]
    elif kind == "stars":
        edges = [(f"s{c}{k}", f"s{c}") for c in range(5) for k in range(4)] + [("s1", "s1"), ("é", "z"), ("z", "Z")]
    else:
        edges = []
    df = spark.createDataFrame(edges, "u string, v string")
    got = {r["u"]: r["component"] for r in components_in_one_task(df).collect()}
    assert got == _union_find_components(edges)
    assert got == {r["u"]: r["component"] for r in connected_components(df)[0].collect()}
