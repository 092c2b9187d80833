"""DoReMi: the update rule by hand, and planted domains on synthetic Markov-chain token streams (tiny CPU models)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mixers import MIXERS
from mixers.doremi import DoReMi, doremi_update, per_domain_excess, weighted_domain_loss
from proxy_training.data import write_token_datasets

V = 64  # vocabulary of the synthetic corpora


def markov_docs(chain_seed: int, sample_seed: int, branching: int, docs: int = 40, doc_len: int = 200,
                vocab: int = V) -> list:
    """Documents from a first-order Markov chain over tokens [0, vocab): each token has `branching` equally likely
    successors. The chain (its transition table) depends on chain_seed only, so train/valid/test of a domain share it."""
    succ = np.random.default_rng(chain_seed).integers(0, vocab, size=(vocab, branching))
    rng = np.random.default_rng([chain_seed, sample_seed])
    out = []
    for _ in range(docs):
        t, doc = int(rng.integers(vocab)), []
        for choice in rng.integers(branching, size=doc_len):
            doc.append(t)
            t = int(succ[t, choice])
        out.append(doc)
    return out


def noise_docs(sample_seed: int, docs: int = 40, doc_len: int = 200, low: int = 0) -> list:
    """Uniformly random tokens from [low, V): nothing to learn beyond the unigram."""
    rng = np.random.default_rng([999, sample_seed])
    return [rng.integers(low, V, doc_len).tolist() for _ in range(docs)]


def make_data(path, domains: dict) -> str:
    """A DATA dir from {domain: fn(split_seed) -> docs}, written with the proxy package's Megatron writer."""
    splits = {split: {d: fn(s) for d, fn in domains.items()} for s, split in enumerate(("train", "valid", "test"))}
    return str(write_token_datasets(path, splits, V))


def fast(**kw) -> DoReMi:
    params = dict(steps=150, batch_size=12, seq_len=64, lr=3e-3, device="cpu", precision="fp32", threads=1,
                  eval_windows=4)
    return DoReMi(**{**params, **kw})


# -- the update rule, hand-computed ------------------------------------------------------------------------------


def test_update_rule_matches_hand_computed_step():
    # a = [.5, .25, .25], lambda = [1, 0, .5], eta 1: a' ∝ [.5e, .25, .25 e^.5] = [1.35914, .25, .41218] / 2.02132
    #   = [.672404, .123681, .203915]; c = .1: a = .9 a' + .1/3 = [.638497, .144646, .216857].
    got = doremi_update(torch.tensor([0.5, 0.25, 0.25]), torch.tensor([1.0, 0.0, 0.5]), eta=1.0, smoothing=0.1)
    assert got.tolist() == pytest.approx([0.638497, 0.144646, 0.216857], abs=5e-6)
    assert float(got.sum()) == pytest.approx(1.0)


def test_update_rule_is_stable_for_huge_excess_and_keeps_the_floor():
    # exp(1000) overflows; in log space the winner simply takes 1 - c + c/k and the others sit at the floor c/k.
    got = doremi_update(np.full(4, 0.25), np.array([1000.0, 0.0, 0.0, 0.0]), eta=1.0, smoothing=1e-3)
    assert got.tolist() == pytest.approx([1 - 1e-3 + 1e-3 / 4, 1e-3 / 4, 1e-3 / 4, 1e-3 / 4])


def test_update_rule_over_groups_keeps_other_domains_at_zero():
    # Groups {0, 2}: a' over them as in the hand-computed step with domain 1 left out, smoothing over 2 groups.
    got = doremi_update(torch.tensor([0.5, 0.0, 0.5]), torch.tensor([1.0, 7.0, 0.0]), eta=1.0, smoothing=0.1,
                        groups=[True, False, True])
    e = math.e / (math.e + 1)
    assert got.tolist() == pytest.approx([0.9 * e + 0.05, 0.0, 0.9 * (1 - e) + 0.05])


def test_excess_is_clipped_per_token_and_averaged_per_domain_with_absent_domains_at_zero():
    proxy = torch.tensor([[3.0, 1.0], [2.0, 2.0], [5.0, 5.0]])  # 3 sequences of 2 tokens
    ref = torch.tensor([[1.0, 2.0], [1.0, 1.0], [1.0, 9.0]])
    ids = torch.tensor([0, 0, 2])  # domain 1 absent
    excess, present = per_domain_excess(proxy, ref, ids, 3)
    # domain 0: max(2, 0), max(-1, 0), 1, 1 -> 4 / 4 tokens = 1; domain 2: 4, 0 -> 2 (not mean(proxy - ref) = 0).
    assert excess.tolist() == [1.0, 0.0, 2.0]
    assert present.tolist() == [True, False, True]


def test_proxy_loss_is_weighted_sum_of_per_domain_means_not_one_token_average():
    tok = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [4.0, 4.0]])
    ids = torch.tensor([0, 0, 0, 1])  # domain 0 has 3x the tokens of domain 1
    loss = weighted_domain_loss(tok, ids, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert float(loss) == pytest.approx(0.5 * 1.0 + 0.5 * 4.0)  # the paper; the repo's normalizer would give 1.75
    # An absent domain drops out and the present weights are renormalized.
    loss = weighted_domain_loss(tok[:3], ids[:3], torch.tensor([0.2, 0.8], dtype=torch.float64))
    assert float(loss) == pytest.approx(1.0)


# -- planted domains ---------------------------------------------------------------------------------------------


def test_noise_domain_is_pushed_to_the_floor(tmp_path):
    # Random bytes tokenize into tokens that text rarely uses, so a model tells a noise context from a text one; here
    # the learnable chains use tokens 0-31 and the noise 32-63. (With noise over the chains' own tokens a 0.1M-param
    # model cannot tell the contexts apart: learning the chains makes it worse on noise than the reference, and Group
    # DRO keeps giving noise weight to close that gap, ~0.2 on average. A capacity artefact, not the algorithm's.)
    half = V // 2
    data = make_data(tmp_path / "DATA", {
        "a": lambda s: markov_docs(1, s, branching=2, vocab=half),
        "b": lambda s: markov_docs(2, s, branching=4, vocab=half),
        "noise": lambda s: noise_docs(s, low=half),
    })
    w = fast().fit(data)
    floor = 1e-3 / 3  # c / k
    rnd = w.diagnostics["rounds"][0]
    steps = np.array(rnd["trajectory"]["weights"])[:, 2]
    # The output averages every step from uniform on, and the weights move once per 1,024 tokens a domain (every ~4
    # steps here): measured 0.010 on seeds 0-1 (0.002-0.005 when every step moves them), with the median step at
    # ~6x the floor (the proxy keeps just enough noise to match the reference).
    assert w.weights["noise"] < 0.02, w.weights
    assert np.median(steps) < 10 * floor, np.median(steps)
    assert rnd["mean_excess_loss"]["noise"] < min(rnd["mean_excess_loss"]["a"], rnd["mean_excess_loss"]["b"])


def test_target_domains_are_the_groups_and_the_rest_get_zero(tmp_path):
    # Noise over the chains' own tokens: learnable to a floor the reference reaches first, so without target domains
    # the DRO keeps weight on it (see above); as a non-group domain it gets none, and the groups share everything.
    data = make_data(tmp_path / "DATA", {
        "a": lambda s: markov_docs(1, s, branching=2),
        "b": lambda s: markov_docs(2, s, branching=4),
        "noise": lambda s: noise_docs(s),
    })
    w = fast(steps=60, target_domains="a,b").fit(data)
    assert w.weights["noise"] == 0.0
    assert w.weights["a"] + w.weights["b"] == pytest.approx(1.0)
    assert w.diagnostics["target_domains"] == ["a", "b"]
    traj = np.array(w.diagnostics["rounds"][0]["trajectory"]["weights"])
    assert np.all(traj[:, 2] == 0.0) and np.all(traj[:, :2] >= 1e-3 / 2 - 1e-12)
    with pytest.raises(ValueError, match="not a domain"):
        fast(steps=2, target_domains="a,zzz").fit(data)


def test_weight_updates_pool_steps_until_every_group_has_dro_tokens(tmp_path):
    data = make_data(tmp_path / "DATA", {"a": lambda s: markov_docs(1, s, branching=2),
                                         "b": lambda s: markov_docs(2, s, branching=4)})

    def changes(**kw) -> int:
        traj = np.array(fast(steps=30, **kw).fit(data).diagnostics["rounds"][0]["trajectory"]["weights"])
        return int((np.abs(np.diff(traj, axis=0)).max(axis=1) > 0).sum())

    # 12 sequences of 64 tokens a step over 2 domains: a domain holds at most 11 of them (stratified), >= 1.
    assert changes(dro_tokens=0) == 29  # every step moves the weights (step 1's update is the first row)
    assert 1 <= changes(dro_tokens=2048) <= 30 * 11 * 64 // 2048


def test_duplicate_domain_ends_near_its_twin(tmp_path):
    data = make_data(tmp_path / "DATA", {
        "a": lambda s: markov_docs(1, s, branching=2),
        "b": lambda s: markov_docs(2, s, branching=4),
        "dup": lambda s: markov_docs(1, s, branching=2),  # byte-identical copy of a
    })
    # eta 0.2: the log weights random-walk by eta * (per-step excess noise) * sqrt(steps) where the data cannot tell
    # two domains apart, and this test's batches hold ~100x fewer tokens per domain than the paper's (so ~10x the
    # noise); at eta 1 twins still split weight but land 30-40% apart on some seeds.
    w = fast(eta=0.2).fit(data).weights
    assert abs(w["dup"] - w["a"]) < 0.2 * max(w["dup"], w["a"]), w


def test_identical_domains_end_near_uniform(tmp_path):
    data = make_data(tmp_path / "DATA", {d: (lambda s: markov_docs(7, s, branching=3)) for d in "abc"})
    w = fast(eta=0.2).fit(data).weights  # eta: see test_duplicate_domain_ends_near_its_twin
    assert max(abs(v - 1 / 3) for v in w.values()) < 0.04, w


# -- determinism, rounds, checkpoints, outputs -------------------------------------------------------------------


@pytest.fixture
def small_data(tmp_path):
    return make_data(tmp_path / "DATA", {
        "a": lambda s: markov_docs(1, s, branching=2, docs=10),
        "b": lambda s: markov_docs(2, s, branching=4, docs=10),
        "noise": lambda s: noise_docs(s, docs=10),
    })


def test_fixed_seed_gives_identical_weights_and_another_seed_differs(small_data):
    a = fast(steps=15, seed=3).fit(small_data)
    b = fast(steps=15, seed=3).fit(small_data)
    c = fast(steps=15, seed=4).fit(small_data)
    assert a.weights == b.weights
    assert a.diagnostics["rounds"][0]["trajectory"] == b.diagnostics["rounds"][0]["trajectory"]
    assert a.weights != c.weights


def test_output_is_the_average_of_the_per_step_weights(small_data):
    w = fast(steps=12).fit(small_data)
    traj = np.array(w.diagnostics["rounds"][0]["trajectory"]["weights"])  # 12 steps: nothing subsampled
    assert traj.shape == (12, 3)
    assert list(w.weights.values()) == pytest.approx(traj.mean(axis=0).tolist(), abs=1e-5)
    assert math.isclose(sum(w.weights.values()), 1.0)


def test_iterated_rounds_use_the_previous_output_as_reference(small_data):
    w = fast(steps=10, rounds=3, tol=0.0).fit(small_data)
    rounds = w.diagnostics["rounds"]
    assert len(rounds) == 3 and not w.diagnostics["converged"]
    for prev, cur in zip(rounds, rounds[1:]):
        assert cur["reference"]["weights"] == prev["weights"]
        assert cur["max_change_from_previous_round"] is not None
    assert w.weights == pytest.approx(rounds[-1]["weights"])
    # A loose tolerance stops after the second round.
    assert fast(steps=10, rounds=3, tol=1.0).fit(small_data).diagnostics["rounds_run"] == 2


def test_reference_checkpoint_is_reused_and_gives_the_same_result(small_data, tmp_path):
    ckpt = tmp_path / "ref.pt"
    first = fast(steps=10, save_reference=str(ckpt)).fit(small_data)
    again = fast(steps=10, reference_checkpoint=str(ckpt)).fit(small_data)
    assert again.diagnostics["rounds"][0]["reference"] == {"checkpoint": str(ckpt)}
    assert again.weights == first.weights
    with pytest.raises(ValueError, match=r"its model differs from the proxy's: .*d_model 64 \(proxy: 256\)"):
        fast(steps=10, model_size="regmix-1m", reference_checkpoint=str(ckpt)).fit(small_data)


def test_a_reference_of_another_tokenizer_or_a_users_file_is_refused_before_training(small_data, tmp_path):
    import json
    import shutil

    def with_tokenizer(name: str, sha: str) -> str:
        copy = tmp_path / name
        shutil.copytree(small_data, copy)
        meta = json.loads((copy / "datasets.json").read_text())
        meta["tokenizer"]["sha256"] = sha
        (copy / "datasets.json").write_text(json.dumps(meta))
        return str(copy)

    ckpt = tmp_path / "ref.pt"
    fast(steps=2, save_reference=str(ckpt)).fit(with_tokenizer("a", "a" * 64))
    # The same vocabulary size, another tokenizer: its ids mean other strings.
    with pytest.raises(ValueError, match="trained with another tokenizer"):
        fast(steps=2, reference_checkpoint=str(ckpt)).fit(with_tokenizer("b", "b" * 64))
    mine = tmp_path / "notes.txt"
    mine.write_text("keep")
    for settings, message in ((dict(save_reference=str(mine)), "exists and is not a curate checkpoint"),
                              (dict(save_reference=str(tmp_path)), "is a directory"),
                              (dict(save_reference=str(ckpt), reference_checkpoint=str(ckpt)), "give one of them"),
                              (dict(reference="natural", reference_checkpoint=str(ckpt)), "give one of them")):
        doremi = fast(steps=2, **settings)
        with pytest.raises(ValueError, match=message):
            doremi.fit(small_data)
        assert not hasattr(doremi, "timings_")  # refused before any round trained
    assert mine.read_text() == "keep"


class TouchOnLoad:
    """Unpickling this calls Path.touch(marker): a stand-in for any code a crafted checkpoint could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_reference_checkpoint_never_runs_code_and_a_bad_file_is_one_line_error(small_data, tmp_path, capsys):
    from curate.cli import main

    good = tmp_path / "ref.pt"
    fast(steps=2, save_reference=str(good)).fit(small_data)
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    torch.save({"model": TouchOnLoad(marker), "model_config": {}}, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"hello, not a checkpoint")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    state = torch.load(good, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3)
    wrong_shape = tmp_path / "wrong_shape.pt"
    torch.save(state, wrong_shape)
    not_a_dict = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_a_dict)
    capsys.readouterr()
    for path, why in ((evil, "refused"), (garbage, "not a torch checkpoint"), (truncated, "not a torch checkpoint"),
                      (wrong_shape, "do not fit"), (not_a_dict, "not a checkpoint dict"),
                      (tmp_path / "missing.pt", "no such file"), (tmp_path, "cannot read")):
        code = main(["mix", small_data, "--method", "doremi", "--out", str(tmp_path / "w.json"), "--device", "cpu",
                     "--param", "steps=2", "--param", "seq_len=64", "--param", "threads=1",
                     "--param", f"reference_checkpoint={path}"])
        err = capsys.readouterr().err
        assert code == 2, (path, err)
        assert err.startswith("curate: error: ") and err.count("\n") == 1 and str(path) in err and why in err, err
    assert not marker.exists()
    assert not (tmp_path / "w.json").exists()


def test_batch_smaller_than_domain_count_is_refused(small_data):
    with pytest.raises(ValueError, match="every domain in every batch"):
        fast(steps=2, batch_size=2).fit(small_data)


def test_curate_mix_doremi_writes_weights_json_with_diagnostics(small_data, tmp_path):
    from curate.commands import mix

    assert MIXERS["doremi"] is DoReMi
    parser = argparse.ArgumentParser()
    mix.register(parser.add_subparsers())
    out = tmp_path / "weights.json"
    args = parser.parse_args(["mix", small_data, "--method", "doremi", "--out", str(out), "--device", "cpu",
                              "--seed", "1", "--param", "steps=5", "--param", "seq_len=32", "--param", "threads=1",
                              "--param", "reference=uniform", "--param", "eval_windows=2"])
    assert args.func(args) == 0
    doc = json.loads(out.read_text())
    assert doc["method"] == "doremi" and set(doc["weights"]) == {"a", "b", "noise"}
    assert sum(doc["weights"].values()) == pytest.approx(1.0)
    rnd = doc["diagnostics"]["rounds"][0]
    assert rnd["reference"]["weights"] == pytest.approx({"a": 1 / 3, "b": 1 / 3, "noise": 1 / 3})
    assert set(rnd["reference_valid_loss"]) == set(rnd["proxy_valid_loss"]) == {"a", "b", "noise"}
    assert doc["config"]["eta"] == 1.0 and doc["config"]["smoothing"] == 1e-3 and doc["config"]["seed"] == 1
    assert doc["diagnostics"]["seeds"] == [1]


def test_a_domain_shorter_than_a_window_keeps_the_context_length(tmp_path):
    # A domain of two short documents (a sample the filters mostly removed): DoReMi trains at its seq_len, reading
    # that domain around in train and scoring its 3 valid tokens whole, instead of shortening every window to fit.
    tiny = {"train": [[5, 6, 7, 8, 9, 10]], "valid": [[11, 12, 13]], "test": [[14, 15, 16]]}
    splits = {s: {"a": markov_docs(1, k, 4), "tiny": tiny[s]} for k, s in enumerate(("train", "valid", "test"))}
    data = str(write_token_datasets(tmp_path / "DATA", splits, V))
    mixer = fast(steps=4)
    w = mixer.fit(data)
    assert set(w.weights) == {"a", "tiny"} and sum(w.weights.values()) == pytest.approx(1.0)
    assert w.config["model"]["seq_len"] == 64
