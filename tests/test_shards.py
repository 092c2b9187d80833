"""Training shards: budgets, epochs and redistribution on hand-computed cases, determinism, crash safety, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tokenize_data import make_data, tree_bytes, write_weights

import curate.shards.write as write_module
from curate.errors import CurateError
from curate.shards.config import ShardsConfig
from curate.shards.plan import DomainSource, draw, interleave, plan_budgets
from curate.shards.stage import run_shards
from curate.shards.verify import verify_shards
from curate.shards.write import read_spans
from proxy_training.megatron import MMIDIDXDataset, MMIDIDXWriter, write_documents

DOMAINS = ["a", "b", "c"]
# Files that name where the inputs were (or carry the wall time), and so differ between equal outputs.
SKIP = ("stats.json", "manifest.json", "manifest.json.sha256", "data_path.txt")


@pytest.fixture
def data(tmp_path):
    # a: 100 docs x 10 tokens, b: 10 docs x 10 tokens, c: 100 docs x 10 tokens.
    return make_data(tmp_path / "data", {"a": [10] * 100, "b": [10] * 10, "c": [10] * 100})


def _shards(data: Path, out: Path, weights: dict[str, float], **kw) -> dict:
    w = write_weights(out.parent / f"{out.name}-weights.json", weights)
    return run_shards(ShardsConfig(weights=str(w), **kw), str(data), str(out))


def _drawn(out: Path) -> list[tuple[str, int]]:
    """(domain, document) of every document in stream order, read back from the shards."""
    manifest = json.loads((out / "manifest.json").read_text())
    got = []
    for s in manifest["shards"]:
        ds = MMIDIDXDataset(out / s["prefix"])
        for i in range(len(ds)):
            token = int(ds[i][0])
            got.append((DOMAINS[(token - 1) // 300], (token - 1) % 300))
    return got


def test_budgets_follow_the_weights_when_every_domain_has_enough():
    plan = plan_budgets({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 1000, "b": 1000, "c": 1000}, 1000, 4)
    assert {d: b.tokens for d, b in plan.budgets.items()} == {"a": 500, "b": 300, "c": 200}
    assert plan.notes == []


def test_short_domain_is_capped_at_max_epochs_and_the_rest_redistributed_by_weight():
    # b wants 0.3 x 2000 = 600 but holds 100 x 2 epochs = 200; its 400 go to a and c as 5:2 -> +285.7 / +114.3.
    plan = plan_budgets({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 1000, "b": 100, "c": 1000}, 2000, 2)
    assert {d: b.tokens for d, b in plan.budgets.items()} == {"a": 1286, "b": 200, "c": 514}
    assert plan.budgets["b"].capped and not plan.budgets["a"].capped
    assert plan.budgets["a"].received == pytest.approx(2000 / 7)
    assert len(plan.notes) == 1 and plan.notes[0].startswith("b:") and "redistributed over a, c" in plan.notes[0]


def test_redistribution_cascades_when_the_receiving_domain_is_short_too():
    # Round 1: 333.3 each; b holds 50 x 2 = 100, so its 233.3 go to a and c: 450 each. Round 2: a holds 170 x 2 = 340,
    # so its 110 go to c: 560.
    plan = plan_budgets({"a": 1, "b": 1, "c": 1}, {"a": 170, "b": 50, "c": 10_000}, 1000, 2)
    assert {d: b.tokens for d, b in plan.budgets.items()} == {"a": 340, "b": 100, "c": 560}
    assert [n[0] for n in plan.notes] == ["b", "a"]
    assert "redistributed over a, c" in plan.notes[0] and "redistributed over c" in plan.notes[1]


def test_all_domains_short_is_an_error():
    with pytest.raises(CurateError, match="raise --max-epochs or lower --tokens"):
        plan_budgets({"a": 1, "b": 1}, {"a": 10, "b": 10}, 100, 4)
    # Weight only on domains with nothing to draw: no epochs setting helps, and the message says what does.
    with pytest.raises(CurateError, match="draw only from domains with no train tokens \\(b\\)"):
        plan_budgets({"b": 1}, {"a": 10, "b": 0}, 5, 4)
    # An empty domain given weight is not "capped": it is empty, and its share goes to the others.
    plan = plan_budgets({"a": 1, "b": 1}, {"a": 100, "b": 0}, 50, 4)
    assert not plan.budgets["b"].capped and plan.budgets["a"].tokens == 50


def test_shards_draw_the_budgets_with_whole_epochs(data, tmp_path):
    stats = _shards(data, tmp_path / "out", {"a": 0.5, "b": 0.3, "c": 0.2}, tokens=2000, max_epochs=2,
                    shard_tokens=300)
    dom = stats["domains"]
    # Whole 10-token documents: a 1286 -> 1290, b exactly 2 epochs of 100, c 514 -> 520.
    assert {d: v["tokens"] for d, v in dom.items()} == {"a": 1290, "b": 200, "c": 520}
    assert dom["b"]["epochs"] == 2.0 and dom["b"]["capped"] and dom["b"]["epochs_started"] == 2
    assert dom["a"]["epochs"] == pytest.approx(1.29) and dom["a"]["epochs_started"] == 2
    drawn = _drawn(tmp_path / "out")
    counts = Counter(drawn)
    # Each epoch draws every document once before any is drawn again.
    assert all(counts[("b", j)] == 2 for j in range(10))
    assert sorted(Counter(counts[("a", j)] for j in range(100)).items()) == [(1, 71), (2, 29)]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tokens"] == 2010 and manifest["redistribution"][0].startswith("b:")
    assert all(s["tokens"] <= 300 for s in manifest["shards"]) and len(manifest["shards"]) == 7


def test_domains_are_interleaved_through_every_shard(data, tmp_path):
    _shards(data, tmp_path / "out", {"a": 0.5, "c": 0.5}, tokens=1000, shard_tokens=200)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for s in manifest["shards"]:
        assert set(s["by_domain"]) == {"a", "c"}
        assert abs(s["by_domain"]["a"]["tokens"] - s["by_domain"]["c"]["tokens"]) <= 40
    assert "b" in manifest["domains"] and manifest["domains"]["b"]["tokens"] == 0
    assert "b: not in the weights, weight 0" in manifest["redistribution"]


def test_shards_are_byte_identical_on_rerun_and_seed_changes_the_order(data, tmp_path):
    w = {"a": 0.4, "b": 0.2, "c": 0.4}
    _shards(data, tmp_path / "one", w, tokens=1500, shard_tokens=250, seed=5)
    _shards(data, tmp_path / "two", w, tokens=1500, shard_tokens=250, seed=5)
    _shards(data, tmp_path / "other", w, tokens=1500, shard_tokens=250, seed=6)
    one = tree_bytes(tmp_path / "one", skip=SKIP)
    assert one == tree_bytes(tmp_path / "two", skip=SKIP)
    assert _drawn(tmp_path / "one") != _drawn(tmp_path / "other")


def test_megatron_core_reads_the_shards(data, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronIndexedDataset

    _shards(data, tmp_path / "out", {"a": 1, "b": 1, "c": 1}, tokens=900, shard_tokens=200)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for s in manifest["shards"]:
        ours = MMIDIDXDataset(tmp_path / "out" / s["prefix"])
        theirs = MegatronIndexedDataset(str(tmp_path / "out" / s["prefix"]), multimodal=False, mmap=True)
        assert len(theirs) == len(ours) == s["docs"]
        assert all(np.array_equal(theirs[i], ours[i]) for i in range(len(ours)))


def test_manifest_blend_string_carries_the_effective_weights(data, tmp_path):
    _shards(data, tmp_path / "out", {"a": 0.5, "b": 0.3, "c": 0.2}, tokens=2000, max_epochs=2)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    parts = manifest["megatron_data_path"].split()
    pairs = list(zip(parts[::2], parts[1::2]))
    by_domain = {Path(p).parent.name: float(w) for w, p in pairs}
    assert by_domain == pytest.approx(manifest["weights"]["effective"], abs=1e-9)
    assert by_domain == pytest.approx({"a": 1286 / 2000, "b": 0.1, "c": 514 / 2000}, abs=1e-9)
    assert all((tmp_path / "out" / (p + ".bin")).exists() for _, p in pairs)  # relative to the shards dir
    tok = manifest["tokenizer"]
    assert (tok["dtype"], tok["vocab_size"], tok["eos_id"], tok["bos_id"]) == ("uint16", 1000, 0, None)
    assert manifest["seed"] == 1234 and set(manifest["files"]) >= {"shard-00000.bin", "shard-00000.idx"}


def test_weights_naming_an_unknown_domain_is_an_error(data, tmp_path):
    with pytest.raises(CurateError, match="not in .*: zzz"):
        _shards(data, tmp_path / "out", {"a": 1, "zzz": 1}, tokens=100)


def test_verify_catches_a_flipped_byte(data, tmp_path):
    from curate.cli import main

    out = tmp_path / "out"
    _shards(data, out, {"a": 1, "c": 1}, tokens=600, shard_tokens=200)
    assert verify_shards(str(out)) == []
    assert main(["shards", "verify", str(out)]) == 0
    path = out / "shard-00001.bin"
    raw = bytearray(path.read_bytes())
    raw[7] ^= 0x01
    path.write_bytes(bytes(raw))
    problems = verify_shards(str(out))
    assert any("shard-00001.bin: sha256" in p for p in problems)
    assert main(["shards", "verify", str(out)]) == 1
    # A truncated index is caught too.
    idx = out / "shard-00000.idx"
    idx.write_bytes(idx.read_bytes()[:-8])
    assert any("shard-00000.idx" in p for p in verify_shards(str(out)))


@pytest.fixture
def shards_dir(data, tmp_path) -> Path:
    out = tmp_path / "out"
    _shards(data, out, {"a": 1, "c": 1}, tokens=600, shard_tokens=200)
    return out


def _reported(out: Path, expected: str) -> None:
    """`verify` names the problem, and `curate shards verify` fails."""
    from curate.cli import main

    problems = verify_shards(str(out))
    assert any(expected in p for p in problems), problems
    assert main(["shards", "verify", str(out)]) != 0


def _edit_manifest(out: Path, edit) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_verify_passes_on_a_fresh_shards_dir_and_beside_the_pipeline_fingerprint(shards_dir):
    from curate.cli import main

    assert verify_shards(str(shards_dir)) == []
    assert main(["shards", "verify", str(shards_dir)]) == 0
    (shards_dir / "_FINGERPRINT").write_text("0123abcd\n")  # what `curate run` writes after the stage
    assert verify_shards(str(shards_dir)) == []
    assert main(["shards", "verify", str(shards_dir)]) == 0


@pytest.mark.parametrize("edit", [
    lambda m: m["weights"]["requested"].update(a=0.9, c=0.1),
    lambda m: m.update(seed=m["seed"] + 1),
    lambda m: m["tokenizer"].update(vocab_size=m["tokenizer"]["vocab_size"] * 2),
    lambda m: m.update(megatron_data_path="1.0 /elsewhere/a_train"),
], ids=["weights", "seed", "vocab_size", "megatron_data_path"])
def test_verify_reports_any_edit_to_the_manifest(shards_dir, edit):
    _edit_manifest(shards_dir, edit)
    _reported(shards_dir, "manifest.json: its sha256 differs from manifest.json.sha256")


def test_verify_reports_a_missing_manifest_hash(shards_dir):
    (shards_dir / "manifest.json.sha256").unlink()
    _reported(shards_dir, "manifest.json.sha256: missing")


def test_verify_reports_files_and_directories_not_in_the_manifest_at_any_depth(shards_dir):
    (shards_dir / "extra").mkdir()
    (shards_dir / "extra" / "deeper").mkdir()
    (shards_dir / "extra" / "shard-00009.bin").write_bytes(b"\x01\x02")
    problems = verify_shards(str(shards_dir))
    assert "extra/: a directory, not in the manifest" in problems
    assert "extra/deeper/: a directory, not in the manifest" in problems
    assert "extra/shard-00009.bin: not in the manifest" in problems
    _reported(shards_dir, "extra/shard-00009.bin")


@pytest.mark.parametrize("edit, expected", [
    (lambda m: m.pop("dtype"), "manifest.json: no 'dtype'"),
    (lambda m: m["tokenizer"].pop("vocab_size"), "manifest.json tokenizer: no 'vocab_size'"),
    (lambda m: m["shards"][0].update(docs="12"), "manifest.json shard 0: 'docs' is str, expected int"),
    (lambda m: m["files"]["shard-00000.bin"].pop("sha256"), "manifest.json files shard-00000.bin: no 'sha256'"),
    (lambda m: m.update(shards={}), "manifest.json: 'shards' is dict, expected list"),
    (lambda m: m.update(dtype="complex128"), "is not a Megatron token dtype"),
], ids=["no-dtype", "no-vocab_size", "str-docs", "no-sha256", "shards-dict", "bad-dtype"])
def test_verify_reports_a_malformed_manifest_as_a_problem_not_a_traceback(shards_dir, edit, expected):
    _edit_manifest(shards_dir, edit)
    _reported(shards_dir, expected)


def test_verify_reports_a_manifest_that_is_not_json(shards_dir):
    (shards_dir / "manifest.json").write_text("{not json")
    _reported(shards_dir, "manifest.json: not JSON")


_KILLER = """
import os, signal, sys
from curate.shards.config import ShardsConfig
from curate.shards.stage import run_shards
calls = 0
def progress(tokens):
    global calls
    calls += 1
    if calls == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)
run_shards(ShardsConfig(weights=sys.argv[1], tokens=60000, shard_tokens=9000, max_epochs=40), sys.argv[2], sys.argv[3],
           progress=progress)
"""


def test_killed_run_leaves_nothing_finished_and_rerun_gives_the_same_files(tmp_path):
    data = make_data(tmp_path / "data", {"a": [7] * 900, "b": [13] * 400})
    weights = write_weights(tmp_path / "w.json", {"a": 0.6, "b": 0.4})
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # The progress hook fires after each chunk, here one per shard: the 4th call is inside the 4th shard's .bin.
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(weights), str(data), str(out), "4"], env=env)
    assert proc.returncode == -9
    assert not out.exists()
    (killed_tmp,) = tmp_path.glob(".out.shards.*.tmp")
    leftovers = sorted(p.name for p in killed_tmp.iterdir())
    assert "manifest.json" not in leftovers and any(n.endswith(".bin.tmp") for n in leftovers)
    assert all(n.endswith((".bin", ".idx")) and n.startswith("shard-") or n.endswith(".tmp") for n in leftovers)

    proc = subprocess.run([sys.executable, "-c", _KILLER, str(weights), str(data), str(out), "0"], env=env)
    assert proc.returncode == 0 and verify_shards(str(out)) == []
    clean = tmp_path / "clean"
    run_shards(ShardsConfig(weights=str(weights), tokens=60000, shard_tokens=9000, max_epochs=40), str(data),
               str(clean))
    assert tree_bytes(out, skip=SKIP) == tree_bytes(clean, skip=SKIP)
    # The rerun took over the dead run's lock and cleared its temporary directory.
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------------------------------
# The vectorized write path against the plain one


def _random_data(root: Path, seed: int, dtype: np.dtype, vocab: int) -> Path:
    """A tokenize output with random tokens, documents of 0 to 400 tokens, and 0 to 3 parts per domain."""
    rng = np.random.default_rng(seed)
    splits: dict = {"train": {}, "valid": {}, "test": {}}
    for domain, parts in (("code", 3), ("legal", 1), ("web", 2), ("none", 0)):
        prefixes, docs, tokens = [], 0, 0
        for p in range(parts):
            prefix = f"train/{domain}/part-{p:05d}"
            lengths = rng.integers(0, 400, int(rng.integers(20, 200)))
            lengths[rng.random(lengths.size) < 0.05] = 0
            with MMIDIDXWriter(root / prefix, dtype) as w:
                for n in lengths:
                    w.add_document(rng.integers(0, vocab, int(n)))
            prefixes.append(prefix)
            docs, tokens = docs + lengths.size, tokens + int(lengths.sum())
        splits["train"][domain] = {"prefixes": prefixes, "docs": docs, "tokens": tokens}
        for split in ("valid", "test"):
            splits[split][domain] = {"prefixes": [], "docs": 0, "tokens": 0}
    meta = {"tokenizer": {"path": "tokenizer.json", "sha256": "0" * 64, "vocab_size": vocab, "eos_id": 0,
                          "bos_id": None, "dtype": np.dtype(dtype).name}, "splits": splits}
    (root / "datasets.json").write_text(json.dumps(meta))
    (root / "_SUCCESS").write_text("")
    return root


def _reference_shards(data: Path, out: Path, weights: dict[str, float], tokens: int, shard_tokens: int,
                      seed: int) -> list[tuple[bytes, bytes]]:
    """The shards written the plain way, one document at a time in stream order, each shard cut before the document
    that would take it past `shard_tokens`: the .bin and .idx bytes of each."""
    meta = json.loads((data / "datasets.json").read_text())
    train, dtype = meta["splits"]["train"], np.dtype(meta["tokenizer"]["dtype"])
    domains = sorted(train)
    sources = {d: DomainSource(d, [MMIDIDXDataset(data / p) for p in train[d]["prefixes"]]) for d in domains}
    plan = plan_budgets(weights, {d: s.tokens for d, s in sources.items()}, tokens, 4.0)
    drawn = {d: draw(sources[d], plan.budgets[d].tokens, seed)[0] for d in domains}
    stream_dom, stream_pos = interleave([sources[d].lengths[drawn[d]] for d in domains], seed)
    shards: list[list[np.ndarray]] = []
    for i, j in zip(stream_dom.tolist(), stream_pos.tolist()):
        source = sources[domains[i]]
        part, local = source.locate(drawn[domains[i]][j:j + 1])
        doc = source.datasets[int(part[0])][int(local[0])]
        if not shards or (shards[-1] and sum(map(len, shards[-1])) + len(doc) > shard_tokens):
            shards.append([])
        shards[-1].append(doc)
    result = []
    for k, docs in enumerate(shards):
        write_documents(out / f"ref-{k}", docs, dtype)
        result.append(((out / f"ref-{k}.bin").read_bytes(), (out / f"ref-{k}.idx").read_bytes()))
    return result


@pytest.mark.parametrize("dtype, vocab", [(np.uint16, 1000), (np.int32, 70_000)], ids=["uint16", "int32"])
@pytest.mark.parametrize("chunk_bytes", [1 << 24, 40, 1000], ids=["default", "tiny-chunks", "small-chunks"])
def test_vectorized_shards_equal_a_per_document_writer(tmp_path, monkeypatch, dtype, vocab, chunk_bytes):
    # Chunks of 10 to 500 tokens split documents between gathers.
    monkeypatch.setattr(write_module, "_CHUNK_BYTES", chunk_bytes)
    data = _random_data(tmp_path / "data", 3, np.dtype(dtype), vocab)
    weights = {"code": 0.5, "legal": 0.3, "web": 0.2}
    ref = tmp_path / "ref"
    ref.mkdir()
    for tokens, shard_tokens, seed in ((20_000, 3_000, 1), (3_000, 150, 2)):  # 150: documents longer than a shard
        expected = _reference_shards(data, ref, weights, tokens, shard_tokens, seed)
        out = tmp_path / f"out-{seed}"
        _shards(data, out, weights, tokens=tokens, shard_tokens=shard_tokens, seed=seed)
        manifest = json.loads((out / "manifest.json").read_text())
        got = [((out / f"{s['prefix']}.bin").read_bytes(), (out / f"{s['prefix']}.idx").read_bytes())
               for s in manifest["shards"]]
        assert len(got) == len(expected) and got == expected
        assert verify_shards(str(out)) == []


def test_a_shard_filled_exactly_keeps_the_document_that_fills_it(data, tmp_path):
    # 10-token documents and 30-token shards: every shard ends exactly full, with zero-length documents nowhere.
    weights = {"a": 0.5, "b": 0.2, "c": 0.3}
    ref = tmp_path / "ref"
    ref.mkdir()
    expected = _reference_shards(data, ref, weights, 300, 30, 7)
    _shards(data, tmp_path / "out", weights, tokens=300, shard_tokens=30, seed=7)
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["tokens"] for s in manifest["shards"]] == [30] * 10
    got = [((out / f"{s['prefix']}.bin").read_bytes(), (out / f"{s['prefix']}.idx").read_bytes())
           for s in manifest["shards"]]
    assert got == expected


def test_read_spans_reads_every_span_in_order(tmp_path):
    rng = np.random.default_rng(7)
    arrays = [rng.integers(0, 60_000, n).astype("<u2") for n in (5_000, 1, 3_000)]
    files = []
    for i, a in enumerate(arrays):
        a.tofile(tmp_path / f"{i}.bin")
        files.append(os.open(tmp_path / f"{i}.bin", os.O_RDONLY))
    which = rng.integers(0, 3, 400)
    which[:3] = 1  # the one-token file
    lengths = np.array([min(int(rng.choice([0, 1, 2, 7, 1024, 2500])), arrays[w].size) for w in which], np.int64)
    starts = np.array([rng.integers(0, arrays[w].size - n + 1) for w, n in zip(which, lengths)], np.int64)
    got = np.empty(int(lengths.sum()), "<u2")
    try:
        read_spans(files, which, starts, lengths, got)
    finally:
        for fd in files:
            os.close(fd)
    expected = np.concatenate([arrays[w][s:s + n] for w, s, n in zip(which, starts, lengths)])
    assert np.array_equal(got, expected)
    with open(tmp_path / "0.bin", "r+b") as f:  # a file cut short while read: an error, never stale bytes
        f.truncate(100)
    fd = os.open(tmp_path / "0.bin", os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="short read"):
            read_spans([fd], np.array([0]), np.array([10]), np.array([500]), np.empty(500, "<u2"))
    finally:
        os.close(fd)


def test_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    import tracemalloc

    # Peak bytes allocated (Python objects and numpy arrays) while drawing 1 MB and 16 MB of tokens, the documents as
    # many: the same few chunks. A first untraced run pays the first-use imports.
    monkeypatch.setattr(write_module, "_CHUNK_BYTES", 1 << 16)
    peaks = []
    for n in (0, 12_500, 200_000):
        data = make_data(tmp_path / f"data-{n}", {"a": [max(n, 10)] * 20, "b": [max(n, 10)] * 20})
        tracemalloc.start()
        try:
            _shards(data, tmp_path / f"out-{n}", {"a": 1, "b": 1})
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[2] <= peaks[1] + 2**16 and peaks[2] < 4 * 2**20, peaks


def test_the_shards_command_starts_without_spark_or_the_other_commands(data, tmp_path):
    # shards reads token files only: its process start is the stage's cost at 1 GB (about 0.2 s of work).
    w = write_weights(tmp_path / "w.json", {"a": 0.5, "c": 0.5})
    code = ("import sys; from curate.cli import main; "
            f"code = main(['shards', {str(data)!r}, '--weights', {str(w)!r}, '--tokens', '500', "
            f"'--out', {str(tmp_path / 'out')!r}]); "
            "print(code, sorted(m for m in sys.modules if m == 'pyspark' or m.startswith('curate.commands.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 ['curate.commands.flags', " \
        "'curate.commands.shards', 'curate.commands.summaries']"
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["tokens"] == 500


def test_verify_reports_a_data_path_that_no_longer_reaches_its_datasets(shards_dir, tmp_path):
    import shutil

    # data_path.txt names the tokenize output relative to the shards directory: a copy elsewhere breaks it.
    copy = tmp_path / "elsewhere" / "deeper" / "shards"
    shutil.copytree(shards_dir, copy)
    _reported(copy, "data_path.txt: 2 of its 2 datasets are not at their paths")
