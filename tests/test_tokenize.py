"""The tokenize stage: round trip, Megatron compatibility, determinism, dtype choice, EOS/BOS handling, held-out
splits in every domain."""

from __future__ import annotations

import json
import math
from itertools import chain
from pathlib import Path

import numpy as np
import pytest
from tokenize_data import train_small_bpe, tree_bytes, word_level_tokenizer, write_corpus

from curate.errors import CurateError
from curate.tokenize.config import TokenizeConfig
from proxy_training.megatron import MMIDIDXDataset
from curate.tokenize.stage import run_tokenize
from curate.tokenize.tokenizer import describe_tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok-corpus")
    docs = write_corpus(root / "raw", docs_per_domain=40)
    tok = train_small_bpe(root / "tokenizer.json", [t for d in docs.values() for t in d.values()])
    return root, docs, tok


def _tokenize(spark, corpus, out: Path, **kw):
    root, _, tok = corpus
    cfg = TokenizeConfig(tokenizer=str(kw.pop("tokenizer", tok)), valid_fraction=0.15, test_fraction=0.15,
                         part_tokens=kw.pop("part_tokens", 400), **kw)
    return run_tokenize(spark, cfg, [str(root / "raw")], str(out))


@pytest.fixture(scope="module")
def tokenized(spark, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok-out") / "data"
    stats = _tokenize(spark, corpus, out, partitions=3)
    return out, stats


def _all_docs(data: Path):
    meta = json.loads((data / "datasets.json").read_text())
    for split, domains in meta["splits"].items():
        for domain, entry in domains.items():
            for prefix in entry["prefixes"]:
                ds = MMIDIDXDataset(data / prefix)
                for i in range(len(ds)):
                    yield split, domain, prefix, i, np.array(ds[i])


def test_tokenize_round_trip_decodes_every_document_once(corpus, tokenized):
    _, docs, tok_path = corpus
    data, stats = tokenized
    tok = load_tokenizer(tok_path)
    eos = describe_tokenizer(tok_path).eos_id
    seen: dict[str, list[str]] = {d: [] for d in docs}
    splits_seen = set()
    for split, domain, _, _, ids in _all_docs(data):
        assert ids[-1] == eos and eos not in ids[:-1]
        seen[domain].append(tok.decode(ids[:-1].tolist(), skip_special_tokens=False))
        splits_seen.add(split)
    for domain, texts in docs.items():
        assert sorted(seen[domain]) == sorted(texts.values())
    assert splits_seen == {"train", "valid", "test"}
    assert stats["kept_docs"] == stats["input_docs"] == 120
    assert (data / "_SUCCESS").exists() and (data / "tokenizer.json").read_bytes() == Path(tok_path).read_bytes()


def test_datasets_json_follows_the_contract(tokenized):
    data, stats = tokenized
    meta = json.loads((data / "datasets.json").read_text())
    assert set(meta) == {"tokenizer", "splits"}
    assert set(meta["tokenizer"]) == {"path", "sha256", "vocab_size", "eos_id", "bos_id", "dtype"}
    assert meta["tokenizer"]["dtype"] == "uint16" and meta["tokenizer"]["bos_id"] is None
    assert set(meta["splits"]) == {"train", "valid", "test"}
    total = 0
    for split, domains in meta["splits"].items():
        for domain, entry in domains.items():
            sets = [MMIDIDXDataset(data / p) for p in entry["prefixes"]]
            assert all(p.startswith(f"{split}/{domain}/part-") for p in entry["prefixes"])
            assert entry["docs"] == sum(len(s) for s in sets)
            assert entry["tokens"] == sum(int(s.lengths.sum()) for s in sets)
            # Parts are cut before they pass part_tokens (400) unless one document alone is longer.
            assert all(int(s.lengths.sum()) <= 400 or len(s) == 1 for s in sets)
            assert all(not s.problems() for s in sets)
            total += entry["tokens"]
    assert total == stats["tokens"]
    assert len(meta["splits"]["train"]["web"]["prefixes"]) > 1


def test_megatron_core_reader_reads_our_datasets_doc_for_doc(tokenized):
    from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronIndexedDataset

    data, _ = tokenized
    meta = json.loads((data / "datasets.json").read_text())
    checked = 0
    for entry in (e for domains in meta["splits"].values() for e in domains.values()):
        for prefix in entry["prefixes"]:
            ours = MMIDIDXDataset(data / prefix)
            theirs = MegatronIndexedDataset(str(data / prefix), multimodal=False, mmap=True)
            assert len(theirs) == len(ours)
            assert theirs.index.dtype == np.uint16
            for i in range(len(ours)):
                assert np.array_equal(theirs[i], ours[i])
                checked += 1
    assert checked == 120


def test_split_is_by_id_and_does_not_depend_on_the_other_documents(spark, corpus, tokenized, tmp_path):
    root, docs, tok = corpus
    data, _ = tokenized
    # Drop the web domain: the documents left keep their split.
    sub = tmp_path / "raw"
    sub.mkdir()
    for d in ("code", "legal"):
        (sub / f"{d}.jsonl").write_bytes((root / "raw" / f"{d}.jsonl").read_bytes())
    cfg = TokenizeConfig(tokenizer=str(tok), valid_fraction=0.15, test_fraction=0.15, part_tokens=400)
    run_tokenize(spark, cfg, [str(sub)], str(tmp_path / "data"))
    for d in ("code", "legal"):
        for split in ("train", "valid", "test"):
            a = sorted(bytes(x[4].tobytes()) for x in _all_docs(data) if x[0] == split and x[1] == d)
            b = sorted(bytes(x[4].tobytes()) for x in _all_docs(tmp_path / "data") if x[0] == split and x[1] == d)
            assert a == b


def test_tokenize_is_byte_identical_across_partition_counts_and_reruns(spark, corpus, tokenized, tmp_path):
    data, _ = tokenized
    _tokenize(spark, corpus, tmp_path / "one", partitions=1)
    _tokenize(spark, corpus, tmp_path / "five", partitions=5)
    reference = tree_bytes(data)
    assert tree_bytes(tmp_path / "one") == reference
    assert tree_bytes(tmp_path / "five") == reference
    # ... and so are the training shards drawn from them.
    from curate.shards.config import ShardsConfig
    from curate.shards.stage import run_shards

    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"weights": {"code": 0.5, "legal": 0.25, "web": 0.25}}))
    for name, src in (("s-ref", data), ("s-one", tmp_path / "one"), ("s-five", tmp_path / "five")):
        run_shards(ShardsConfig(weights=str(weights), tokens=5000, shard_tokens=1500), str(src), str(tmp_path / name))
    skip = ("stats.json", "manifest.json", "manifest.json.sha256", "data_path.txt")
    shards_ref = tree_bytes(tmp_path / "s-ref", skip=skip)
    assert len(shards_ref) >= 6
    assert tree_bytes(tmp_path / "s-one", skip=skip) == shards_ref == tree_bytes(tmp_path / "s-five", skip=skip)
    # A different seed shuffles differently (and splits differently).
    _tokenize(spark, corpus, tmp_path / "other", partitions=1, seed=99)
    assert tree_bytes(tmp_path / "other") != reference


def test_both_engines_write_the_same_bytes(spark, corpus, tokenized, tmp_path):
    data, stats = tokenized
    assert stats["tokenizer"]["engine"]["name"] == "tiktoken"
    slow = _tokenize(spark, corpus, tmp_path / "hf", partitions=2, engine="tokenizers")
    assert slow["tokenizer"]["engine"]["name"] == "tokenizers"
    assert tree_bytes(tmp_path / "hf") == tree_bytes(data)


def test_vocabulary_over_65535_writes_int32(spark, tmp_path):
    tok = word_level_tokenizer(tmp_path / "big.json", 70_000)
    raw = tmp_path / "raw"
    raw.mkdir()
    texts = {"a": "w1 w65534 w69998", "b": "w66000 w5", "c": "w69000"}
    with open(raw / "x.jsonl", "w") as f:
        for i, t in texts.items():
            f.write(json.dumps({"id": i, "domain": "web", "text": t}) + "\n")
    cfg = TokenizeConfig(tokenizer=str(tok), valid_fraction=0, test_fraction=0)
    run_tokenize(spark, cfg, [str(raw)], str(tmp_path / "data"))
    meta = json.loads((tmp_path / "data" / "datasets.json").read_text())
    assert meta["tokenizer"]["dtype"] == "int32" and meta["tokenizer"]["vocab_size"] == 70_000
    ds = MMIDIDXDataset(tmp_path / "data" / meta["splits"]["train"]["web"]["prefixes"][0])
    assert ds.dtype == np.int32
    got = sorted(ds[i].tolist() for i in range(len(ds)))
    eos = 69_999
    assert got == sorted([[1, 65534, 69998, eos], [66000, 5, eos], [69000, eos]])

    # Forcing uint16 with ids that do not fit is one clear error, never a silent wrap.
    with pytest.raises(CurateError, match="does not fit uint16"):
        run_tokenize(spark, cfg.model_copy(update={"dtype": "uint16"}), [str(raw)], str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_tokenizer_without_end_token_is_a_clear_error(spark, tmp_path):
    tok = word_level_tokenizer(tmp_path / "noeos.json", 100, specials=[])
    with pytest.raises(CurateError, match="no end-of-document token"):
        describe_tokenizer(tok)
    from curate.cli import main

    (tmp_path / "d.jsonl").write_text('{"text": "w1"}\n')
    assert main(["tokenize", str(tmp_path / "d.jsonl"), "--tokenizer", str(tok), "--out", str(tmp_path / "o")]) == 2


def test_bos_added_by_the_post_processor_is_kept_and_eos_appended(spark, tmp_path):
    from tokenizers import Tokenizer, processors

    path = word_level_tokenizer(tmp_path / "llama_like.json", 50, specials=["<s>", "</s>"])
    tok = Tokenizer.from_file(str(path))
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tok.save(str(path))
    info = describe_tokenizer(path)
    assert (info.bos_id, info.eos_id, info.adds_eos) == (bos, eos, False)
    (tmp_path / "d.jsonl").write_text('{"id": "1", "text": "w3 w4"}\n{"id": "2", "text": "w7"}\n')
    cfg = TokenizeConfig(tokenizer=str(path), valid_fraction=0, test_fraction=0)
    run_tokenize(spark, cfg, [str(tmp_path / "d.jsonl")], str(tmp_path / "data"))
    meta = json.loads((tmp_path / "data" / "datasets.json").read_text())
    assert meta["tokenizer"]["bos_id"] == bos
    ds = MMIDIDXDataset(tmp_path / "data" / meta["splits"]["train"]["unknown"]["prefixes"][0])
    assert sorted(ds[i].tolist() for i in range(len(ds))) == sorted([[bos, 3, 4, eos], [bos, 7, eos]])


def test_tokenizer_training_is_deterministic_and_samples_every_domain(spark, corpus, tmp_path):
    from curate.tokenize.tokenizer import sample_texts, train_bpe

    root, docs, _ = corpus
    sample = list(sample_texts(spark, [str(root / "raw")], chars_per_domain=2000, seed=1))
    by_domain = {d: sum(t in texts.values() for t in sample) for d, texts in docs.items()}
    assert all(n > 0 for n in by_domain.values())
    # Each domain stops at its character budget (the document that crosses it is the last).
    for d, texts in docs.items():
        picked = [t for t in sample if t in texts.values()]
        assert sum(len(t) for t in picked[:-1]) < 2000
    a = train_bpe(iter(sample), 300, tmp_path / "a.json")
    b = train_bpe(iter(list(sample_texts(spark, [str(root / "raw")], 2000, 1))), 300, tmp_path / "b.json")
    assert a.sha256 == b.sha256 and a.vocab_size == 300 and a.eos_id == 0


# -- held-out splits in domains of few documents (issue 15) ----------------------------------------------------------

FEW = {"books": 5, "code": 12, "licenses": 20, "pair": 2, "single": 1}


@pytest.fixture(scope="module")
def few_docs(spark, tmp_path_factory):
    """Domains of 1 to 20 long documents, tokenized with the default fractions (1% valid, 1% test)."""
    root = tmp_path_factory.mktemp("tok-few")
    docs = write_corpus(root / "raw", sizes=FEW, words=(300, 800), seed=3)
    tok = train_small_bpe(root / "tokenizer.json", [t for d in docs.values() for t in d.values()])
    cfg = TokenizeConfig(tokenizer=str(tok), part_tokens=2000, partitions=2)
    stats = run_tokenize(spark, cfg, [str(root / "raw")], str(root / "data"))
    return root, docs, tok, cfg, stats


def _fraction_counts(spark, docs: dict[str, dict[str, str]], seed: int) -> dict[str, dict[str, int]]:
    from curate.tokenize.splits import split_column

    rows = [(d, i) for d, texts in docs.items() for i in texts]
    df = spark.createDataFrame(rows, "domain string, id string").select("domain", split_column(seed, 0.01, 0.01)
                                                                         .alias("split"))
    out = {d: {"valid": 0, "test": 0} for d in docs}
    for r in df.groupBy("domain", "split").count().collect():
        if r["split"] != "train":
            out[r["domain"]][r["split"]] = r["count"]
    return out


def test_every_domain_gets_valid_and_test_tokens_with_the_default_fractions(few_docs):
    root, docs, tok_path, _, stats = few_docs
    data = root / "data"
    meta = json.loads((data / "datasets.json").read_text())
    for domain in FEW:
        for split in ("train", "valid", "test"):
            assert meta["splits"][split][domain]["tokens"] > 0, (split, domain)
    # Whole documents: each one is in exactly one split. Tail-cut documents: train + valid + test pieces (the same
    # position in each split, since all three share the document's order key) give the document back.
    tok = load_tokenizer(tok_path)
    by_split: dict[tuple[str, str], list[str]] = {}
    for split, domain, _, _, ids in _all_docs(data):
        by_split.setdefault((domain, split), []).append(tok.decode(ids[:-1].tolist(), skip_special_tokens=False))
    for domain, texts in docs.items():
        got = [by_split[(domain, s)] for s in ("train", "valid", "test")]
        if len(texts) >= 3:
            assert sorted(chain.from_iterable(got)) == sorted(texts.values())
        else:
            assert all(len(g) == len(texts) for g in got)
            assert sorted(a + b + c for a, b, c in zip(*got)) == sorted(texts.values())
            for a, b, c in zip(*got):
                n = len(a + b + c)
                assert len(b) == len(c) == math.ceil(0.01 * n)


def test_stats_report_how_each_domain_was_split(spark, few_docs):
    root, docs, _, cfg, stats = few_docs
    on_disk = json.loads((root / "data" / "stats.json").read_text())
    assert on_disk["by_domain"] == stats["by_domain"]
    assert stats["input_docs"] == stats["kept_docs"] == sum(FEW.values())  # a cut document still counts once
    by_fraction = _fraction_counts(spark, docs, 1234)
    for domain, n in FEW.items():
        entry = stats["by_domain"][domain]
        assert entry["kept_docs"] == n
        assert set(entry["docs_by_split"]) == set(entry["tokens"]) == {"train", "valid", "test"}
        for split in ("valid", "test"):
            if n < 3:
                want = "tail"
            else:
                want = "fraction" if by_fraction[domain][split] >= cfg.min_heldout_docs else "minimum"
            assert entry["split_rule"][split] == want, (domain, split)
            if want == "minimum":
                assert entry["docs_by_split"][split] == cfg.min_heldout_docs
        if n < 3:
            assert entry["docs_by_split"] == {"train": n, "valid": n, "test": n}
        else:
            assert sum(entry["docs_by_split"].values()) == n
    assert any(r == "minimum" for e in stats["by_domain"].values() for r in e["split_rule"].values())


def test_split_rules_are_byte_identical_across_partition_counts(spark, few_docs):
    root, _, _, cfg, _ = few_docs
    reference = tree_bytes(root / "data")
    assert any(p.startswith("valid/single/") for p in reference) and any(p.startswith("test/books/") for p in reference)
    for n in (1, 5):
        run_tokenize(spark, cfg.model_copy(update={"partitions": n}), [str(root / "raw")], str(root / f"p{n}"))
        assert tree_bytes(root / f"p{n}") == reference


def test_minimum_leaves_one_train_document_when_the_fractions_take_more(spark):
    from curate.tokenize.splits import plan_splits

    # Fractions of 0.9 + 0.05 would send most of a three-document domain to valid.
    rows = [("tiny", f"t{i}", "x") for i in range(3)] + [("big", f"b{i}", "x") for i in range(50)]
    docs = spark.createDataFrame(rows, "domain string, id string, text string")
    for seed in (1, 2, 3):
        plan = plan_splits(docs, seed, 0.9, 0.05, min_heldout_docs=1)
        counts = {(r["domain"], r["split"]): r["count"] for r in plan.keyed(docs).groupBy("domain", "split")
                  .count().collect()}
        assert [counts.get(("tiny", s), 0) for s in ("train", "valid", "test")] == [1, 1, 1]
        assert all(counts.get(("big", s), 0) > 0 for s in ("train", "valid", "test"))
    # min_heldout_docs = 0 is the fraction rule alone.
    plan = plan_splits(docs, 1, 0.0, 0.05, min_heldout_docs=0)
    assert all(p.rule == {"valid": "none", "test": "fraction"} for p in plan.domains.values())
    # Fractions of 0.45 + 0.5 (or 0 + 0.99) that meet the minimum but take every document of a domain still leave
    # it one to train on, whatever the minimum.
    rows = [("mid", f"m{i}", "x") for i in range(30)] + [("four", f"f{i}", "x") for i in range(4)]
    docs = spark.createDataFrame(rows, "domain string, id string, text string")
    for (valid, test), least in (((0.45, 0.5), 0), ((0.45, 0.5), 1), ((0.0, 0.99), 0)):
        for seed in (1, 2, 3):
            counts = {(r["domain"], r["split"]): r["count"] for r in plan_splits(docs, seed, valid, test, least)
                      .keyed(docs).groupBy("domain", "split").count().collect()}
            assert all(counts.get((d, "train"), 0) >= 1 for d in ("mid", "four")), (valid, test, least, counts)
            assert sum(counts.values()) == 34


def test_a_tail_cut_document_too_short_for_three_pieces_is_split_not_copied(spark):
    from curate.tokenize.splits import DomainPlan, SplitPlan

    plan = SplitPlan(seed=1, fractions={"valid": 0.01, "test": 0.01},
                     domains={"d": DomainPlan(docs=3, rule={"valid": "tail", "test": "tail"})})
    docs = spark.createDataFrame([("d", "1", "x"), ("d", "2", "yz"), ("d", "3", "abc")],
                                 "domain string, id string, text string")
    pieces: dict[str, dict[str, str]] = {}
    for r in plan.keyed(docs).collect():
        pieces.setdefault(r["id"], {})[r["split"]] = r["text"]
    # Every character lands in exactly one split: test first, then valid, then train.
    assert pieces == {"1": {"test": "x"}, "2": {"valid": "y", "test": "z"},
                      "3": {"train": "a", "valid": "b", "test": "c"}}
