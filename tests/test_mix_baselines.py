"""Baseline mixers and the repetition cap, on hand-computed cases."""

from __future__ import annotations

import json

import pytest

from mixers.baselines import Natural, Uniform
from mixers.weights import DomainWeights, cap_by_epochs


def _index(tmp_path, tokens):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "datasets.json").write_text(json.dumps(
        {"splits": {"train": {d: {"tokens": t, "docs": 1, "prefixes": []} for d, t in tokens.items()}}}))
    return tmp_path


def test_uniform_and_natural_weights(tmp_path):
    data = _index(tmp_path, {"a": 300, "b": 100})
    assert Uniform().fit(data).weights == {"a": 0.5, "b": 0.5}
    assert Natural().fit(data).weights == {"a": 0.75, "b": 0.25}
    # A domain with no train tokens (all removed upstream, or all held out) gets nothing to draw, as natural does.
    data = _index(tmp_path / "empty", {"a": 300, "b": 100, "gone": 0})
    assert Uniform().fit(data).weights == {"a": 0.5, "b": 0.5, "gone": 0.0}


def test_cap_moves_excess_to_other_domains_by_weight():
    # budget 1000, max 2 epochs: a (100 tokens) may take at most 200 = 0.2; the other 0.3 goes to b and c 1:1.
    w = cap_by_epochs({"a": 0.5, "b": 0.25, "c": 0.25}, {"a": 100, "b": 10_000, "c": 10_000}, 1000, 2)
    assert w == pytest.approx({"a": 0.2, "b": 0.4, "c": 0.4})


def test_cap_that_cannot_be_met_is_an_error():
    with pytest.raises(ValueError, match="epochs"):
        cap_by_epochs({"a": 1.0}, {"a": 10}, 1000, 4)


def test_weights_json_has_blend_and_dataset_weights(tmp_path):
    w = DomainWeights("uniform", {"b": 1, "a": 3})
    w.save(tmp_path / "w.json", prefixes={"a": ["train/a/part-00000"], "b": ["train/b/part-00000"]})
    obj = json.loads((tmp_path / "w.json").read_text())
    assert obj["weights"] == {"a": 0.75, "b": 0.25}
    assert obj["megatron_blend"] == "0.75 train/a/part-00000 0.25 train/b/part-00000"
    assert obj["dataset_weights"] == [0.75, 0.25] and abs(sum(obj["dataset_weights"]) - 1) < 1e-12
    # A domain in several files: Megatron samples each file by its weight, so the domain's weight is split by the
    # files' tokens (an even split would draw the short file's tokens three times as often).
    w.save(tmp_path / "w2.json", prefixes={"a": [("train/a/part-00000", 300), ("train/a/part-00001", 100)],
                                           "b": [("train/b/part-00000", 50)]})
    blend = json.loads((tmp_path / "w2.json").read_text())["megatron_blend"]
    assert blend == "0.5625 train/a/part-00000 0.1875 train/a/part-00001 0.25 train/b/part-00000"


def test_mix_stage_writes_weights_with_blend_and_rejects_unknown_params(tmp_path):
    from curate.errors import CurateError
    from curate.mix_stage import MixConfig, run_mix

    data = _index(tmp_path / "data", {"a": 300, "b": 100})
    stats = run_mix(MixConfig(method="natural"), str(data), str(tmp_path / "mix"))
    obj = json.loads((tmp_path / "mix" / "weights.json").read_text())
    assert obj["weights"] == {"a": 0.75, "b": 0.25} == stats["weights"]
    assert (tmp_path / "mix" / "_SUCCESS").exists()
    with pytest.raises(CurateError, match=r"mix.params.etaa: natural has no parameter 'etaa'"):
        run_mix(MixConfig(method="natural", params={"etaa": 1}), str(data), str(tmp_path / "mix2"))
    with pytest.raises(CurateError, match="is not a mixer"):
        run_mix(MixConfig(method="magic"), str(data), str(tmp_path / "mix3"))


def test_cap_spreads_clipped_mass_over_zero_weight_domains_by_capacity():
    w = cap_by_epochs({"a": 1.0, "b": 0.0, "c": 0.0}, {"a": 100, "b": 300, "c": 600}, 1000, 2)
    # caps: a 0.2, b 0.6, c 1.0; the 0.8 left goes to b and c as 0.6 : 1.0.
    assert w == pytest.approx({"a": 0.2, "b": 0.3, "c": 0.5})
    assert sum(w.values()) == pytest.approx(1.0)
