"""The held-out leakage guard of `curate tokenize`: the figure on a planted split, split by cluster, a clean corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tokenize_data import tree_bytes, word_level_tokenizer

from curate.errors import CurateError
from curate.tokenize.config import LeakageConfig, TokenizeConfig
from curate.tokenize.stage import run_tokenize
from mixers.evaluation import data_leakage, leakage_line

SEED = 1234
DOMAINS = ("a", "b", "c")
N_WORDS = 100


def _word(i: int) -> str:
    # Letters only: the near-duplicate normalization folds every digit run to 0.
    return "".join(chr(97 + (i // 26 ** k) % 26) for k in range(3))


def _doc(rng: random.Random) -> list[str]:
    return [_word(rng.randrange(26 ** 3)) for _ in range(N_WORDS)]


def _edit(words: list[str], start: int, length: int, rng: random.Random) -> list[str]:
    """`words` with a block replaced: a block of k words changes k + 4 of the ~96 word 5-grams."""
    return words[:start] + _doc(rng)[:length] + words[start + length:]


def _splits(spark, ids: list[str]) -> dict[str, tuple[str, int]]:
    from curate.tokenize.splits import split_bucket, split_column

    df = spark.createDataFrame([(i,) for i in ids], "id string")
    rows = df.select("id", split_column(SEED, 0.2, 0.2).alias("split"), split_bucket(SEED).alias("u")).collect()
    return {r["id"]: (r["split"], int(r["u"])) for r in rows}


@pytest.fixture(scope="module")
def planted(spark, tmp_path_factory):
    """Three domains of unrelated documents with planted train near-duplicates of known held-out ones, and a
    two-document domain that the tail rule cuts; returns (root, tokenizer, plan of the plants)."""
    rng = random.Random(7)
    root = tmp_path_factory.mktemp("leak")
    base = {d: [f"{d}-{i:02d}" for i in range(24)] for d in DOMAINS}
    spare = {d: [f"{d}-copy{j:02d}" for j in range(40)] for d in DOMAINS}
    where = _splits(spark, [i for d in DOMAINS for i in base[d] + spare[d]])
    texts = {d: {i: _doc(rng) for i in base[d]} for d in DOMAINS}
    held = {d: [i for i in base[d] if where[i][0] != "train"] for d in DOMAINS}
    train_ids = {d: iter(i for i in spare[d] if where[i][0] == "train") for d in DOMAINS}

    def plant(domain: str, words: list[str]) -> str:
        doc_id = next(train_ids[domain])
        texts[domain][doc_id] = words
        return doc_id

    a1, a2 = held["a"][:2]
    plant("a", _edit(texts["a"][a1], 40, 10, rng))  # Jaccard ~0.75
    plant("a", _edit(texts["a"][a2], 10, 10, rng))
    # A valid and a test document sharing one train near-duplicate: one cluster, so one split.
    v = next(i for i in held["a"][2:] if where[i][0] == "valid")
    t = next(i for i in held["a"][2:] if where[i][0] == "test")
    shared = texts["a"][v]
    texts["a"][t] = _edit(shared, 10, 20, rng)
    texts["a"][v] = _edit(shared, 70, 20, rng)
    plant("a", shared)  # ~0.6 to each; v and t are ~0.33 apart
    b1, b2 = held["b"][:2]
    plant("c", _edit(texts["b"][b1], 50, 10, rng))  # across domains: c's train leaks into b's held-out split
    t1 = plant("b", _edit(texts["b"][b2], 10, 20, rng))  # a chain: b2 ~ t1 ~ t2, but b2 and t2 ~0.33 apart
    plant("b", _edit(texts["b"][t1], 70, 20, rng))
    plant("c", _edit(texts["c"][held["c"][0]], 20, 60, rng))  # Jaccard ~0.2: no leak

    raw = root / "raw"
    raw.mkdir()
    for d in DOMAINS:
        with open(raw / f"{d}.jsonl", "w") as f:
            for doc_id, words in sorted(texts[d].items()):
                f.write(json.dumps({"id": doc_id, "domain": d, "text": " ".join(words)}) + "\n")
    with open(raw / "tiny.jsonl", "w") as f:
        for i in range(2):
            f.write(json.dumps({"id": f"tiny-{i}", "domain": "tiny", "text": " ".join(_doc(rng))}) + "\n")
    tok = word_level_tokenizer(root / "tokenizer.json", 64)
    plants = {"leaked": {"a": [a1, a2, v, t], "b": [b1, b2], "c": []},
              "split": {i: where[i] for i in (a1, a2, v, t, b1, b2)}, "moves": {"a": 3, "b": 2, "c": 1},
              "cluster": (v, t)}
    return root, tok, plants


def _cfg(tok: Path, **leakage) -> TokenizeConfig:
    return TokenizeConfig(tokenizer=str(tok), valid_fraction=0.2, test_fraction=0.2, part_tokens=5000, partitions=2,
                          leakage=LeakageConfig(**leakage))


def _expected(plants) -> dict[str, dict[str, int]]:
    out = {d: {"valid": 0, "test": 0} for d in DOMAINS}
    for d, ids in plants["leaked"].items():
        for i in ids:
            out[d][plants["split"][i][0]] += 1
    return out


def _expected_moves(plants) -> tuple[dict[str, dict[str, int]], tuple[str, str]]:
    """Per domain, the change of each split's documents under split by cluster; and the cluster's (from, to)."""
    split = {i: s for i, (s, _) in plants["split"].items()}
    a1, a2, b1, b2 = plants["leaked"]["a"][:2] + plants["leaked"]["b"]
    v, t = plants["cluster"]
    head = min((plants["split"][i][1], i) for i in (v, t))[1]
    other = t if head == v else v
    delta = {d: {"train": 0, "valid": 0, "test": 0} for d in DOMAINS}
    for d, partner in (("a", a1), ("a", a2), ("a", head), ("b", b2), ("b", b2), ("c", b1)):
        delta[d]["train"] -= 1
        delta[d][split[partner]] += 1
    delta["a"][split[other]] -= 1
    delta["a"][split[head]] += 1
    return delta, (split[other], split[head])


@pytest.fixture(scope="module")
def moved(spark, planted):
    root, tok, _ = planted
    return run_tokenize(spark, _cfg(tok, split_by_cluster=True), [str(root / "raw")], str(root / "moved"))


def test_leakage_figure_counts_the_planted_held_out_documents_per_domain(planted, moved):
    root, _, plants = planted
    stats = moved
    want = _expected(plants)
    delta, _ = _expected_moves(plants)
    for d in DOMAINS:
        entry = stats["by_domain"][d]
        assert entry["split_rule"] == {"valid": "fraction", "test": "fraction"}
        lk = entry["leakage_before_move"]
        for s in ("valid", "test"):
            assert lk[s]["heldout_docs"] == entry["docs_by_split"][s] - delta[d][s]
            assert lk[s]["leaked_docs"] == want[d][s], (d, s)
        total = lk["total"]
        assert total["leaked_docs"] == len(plants["leaked"][d])
        assert total["share"] == pytest.approx(total["leaked_docs"] / total["heldout_docs"], abs=1e-6)
    top = stats["leakage"]["before_move"]
    assert stats["leakage"]["threshold"] == 0.5 and top["total"]["leaked_docs"] == 6
    assert top["total"]["heldout_docs"] == sum(stats["by_domain"][d]["leakage_before_move"]["total"]["heldout_docs"]
                                               for d in DOMAINS)
    # The tail-cut domain is named, not measured.
    assert list(stats["leakage"]["excluded_domains"]) == ["tiny"]
    assert "excluded" in stats["by_domain"]["tiny"]["leakage"]


def test_split_by_cluster_moves_clusters_ends_leakage_and_is_partition_independent(spark, planted, moved):
    root, tok, plants = planted
    stats = moved
    lk = stats["leakage"]
    delta, (src, dst) = _expected_moves(plants)
    assert lk["split_by_cluster"] and lk["total"]["leaked_docs"] == 0
    # Train near-duplicates in a (three), b (two, a chain: found in the second round) and c, plus one held-out
    # member of the valid/test cluster, which follows the member first in hash order.
    assert lk["moved_docs"] == 7 and lk["search_rounds"] == 2
    assert lk["moved"]["train->valid"] + lk["moved"]["train->test"] == 6 and lk["moved"][f"{src}->{dst}"] == 1
    for d in DOMAINS:
        entry = stats["by_domain"][d]
        before = {s: entry["leakage_before_move"][s]["heldout_docs"] for s in ("valid", "test")}
        assert sum(entry["docs_by_split"].values()) == entry["kept_docs"]
        for s in ("valid", "test"):
            assert entry["docs_by_split"][s] == before[s] + delta[d][s] == entry["leakage"][s]["heldout_docs"]
        assert -delta[d]["train"] == sum(n for k, n in entry["moved"].items() if k.startswith("train->"))
        assert entry["leakage"]["total"]["leaked_docs"] == 0
    assert stats["input_docs"] == stats["kept_docs"] == 3 * 24 + 7 + 2
    # mix-eval and the ladder read the figure of the split they score.
    line = leakage_line(data_leakage(root / "moved", "test"))
    assert line.startswith(f"leakage: 0 of {lk['test']['heldout_docs']} test documents (0.00%)")
    assert "split by cluster: 7 documents moved" in line
    # Same bytes whatever the tokenize tasks and the guard's shuffle partitions.
    shuffle = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "3")
    try:
        again = run_tokenize(spark, _cfg(tok, split_by_cluster=True).model_copy(update={"partitions": 1}),
                             [str(root / "raw")], str(root / "moved-p1"))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", shuffle)
    assert tree_bytes(root / "moved-p1") == tree_bytes(root / "moved")
    assert again["leakage"] == lk and again["by_domain"] == stats["by_domain"]


def test_corpus_without_near_duplicates_has_no_leakage(spark, tmp_path):
    rng = random.Random(11)
    raw = tmp_path / "raw"
    raw.mkdir()
    with open(raw / "docs.jsonl", "w") as f:
        for d in DOMAINS:
            for i in range(20):
                f.write(json.dumps({"id": f"{d}{i}", "domain": d, "text": " ".join(_doc(rng))}) + "\n")
    tok = word_level_tokenizer(tmp_path / "tokenizer.json", 64)
    stats = run_tokenize(spark, _cfg(tok), [str(raw)], str(tmp_path / "out"))
    lk = stats["leakage"]
    assert lk["measured"] and not lk["split_by_cluster"] and "moved_docs" not in lk
    assert lk["total"]["leaked_docs"] == 0 and lk["total"]["heldout_docs"] > 0 and lk["excluded_domains"] == {}
    for d in DOMAINS:
        entry = stats["by_domain"][d]
        assert entry["leakage"]["total"] == {"heldout_docs": entry["docs_by_split"]["valid"]
                                             + entry["docs_by_split"]["test"], "leaked_docs": 0, "share": 0.0}
    fig = data_leakage(tmp_path / "out", "valid")
    assert fig["leaked_docs"] == 0 and fig["heldout_docs"] == lk["valid"]["heldout_docs"]


def test_leakage_not_measured_reads_as_such(tmp_path):
    assert leakage_line(data_leakage(tmp_path, "valid")) == (
        "leakage not measured (the data's stats.json has no held-out leakage figure)")
    (tmp_path / "stats.json").write_text(json.dumps({"stage": "tokenize", "leakage": {"measured": False}}))
    assert data_leakage(tmp_path, "test") is None
    with pytest.raises(CurateError, match="split_by_cluster needs the leakage check"):
        LeakageConfig(check=False, split_by_cluster=True)


def test_report_states_the_leakage_figure(planted, moved, tmp_path):
    from curate.report import build_report

    root, _, _ = planted
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "stats.json").write_text(json.dumps(
        {"stage": "ingest", "input_docs": 81, "kept_docs": 81, "removed_docs": 0, "by_domain": {}}))
    (tmp_path / "tokenize").mkdir()
    (tmp_path / "tokenize" / "stats.json").write_bytes((root / "moved" / "stats.json").read_bytes())
    page = build_report(tmp_path).read_text()
    total = moved["leakage"]["total"]["heldout_docs"]
    assert (f"Held-out leakage: 0 of {total} valid/test documents (0.00%) have a near-duplicate (Jaccard &gt;= 0.5) "
            "in train after split by cluster, which moved 7 documents (before: 6).") in page


def test_measuring_only_finds_the_figure_split_by_cluster_starts_from(spark, planted, moved, tmp_path):
    # Measuring only (nothing moves) on 1 partition: the figure split by cluster (2 partitions) started from.
    root, tok, plants = planted
    want = _expected(plants)
    cfg = _cfg(tok).model_copy(update={"partitions": 1})
    stats = run_tokenize(spark, cfg, [str(root / "raw")], str(tmp_path / "out"))
    lk = stats["leakage"]
    assert not lk["split_by_cluster"] and "before_move" not in lk
    assert lk["total"] == moved["leakage"]["before_move"]["total"]
    for d in DOMAINS:
        f = stats["by_domain"][d]["leakage"]
        assert [f[s]["leaked_docs"] for s in ("valid", "test")] == [want[d]["valid"], want[d]["test"]], d
    assert list(lk["excluded_domains"]) == ["tiny"]
