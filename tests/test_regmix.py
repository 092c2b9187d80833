"""RegMix on a controlled setup: a learnable target domain, another learnable domain and a NOISE domain."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest

from mixers.regmix import RegMix, sample_mixtures, sampling_caps
from proxy_training.data import write_token_datasets

VOCAB = 128


def _chain(rng, n, lo, hi, mult, add, noise=0.1):
    """A learnable stream on [lo, hi): next = (prev * mult + add) mod width, a random token with prob `noise`."""
    width = hi - lo
    out = np.empty(n, dtype=np.int64)
    t = int(rng.integers(width))
    for i in range(n):
        t = int(rng.integers(width)) if rng.random() < noise else (t * mult + add) % width
        out[i] = lo + t
    return out


def make_controlled_data(path, docs=24, doc_len=64):
    """target: a chain on tokens 1..63; other: another chain on 64..127; noise: uniform random tokens.
    Valid/test come from the same generators as train, so a domain's own training data is what helps it."""
    rng = np.random.default_rng(0)
    gens = {
        "target": lambda: _chain(rng, doc_len, 1, 64, 5, 3),
        "other": lambda: _chain(rng, doc_len, 64, 128, 7, 11),
        "noise": lambda: rng.integers(1, VOCAB, doc_len),
    }
    documents = {}
    for split, n in (("train", docs), ("valid", 8), ("test", 8)):
        documents[split] = {d: [list(g()) + [0] for _ in range(n)] for d, g in gens.items()}
    return write_token_datasets(path, documents, vocab_size=VOCAB, eos_id=0)


# Tiny proxies: 32 mixtures train as one StackedGPT in a few seconds on 2 CPU cores.
FAST = dict(model_size="tiny", seq_len=32, batch_size=8, steps=60, lr=3e-3, warmup_steps=6, precision="fp32",
            device="cpu", threads=1, eval_windows=8, num_runs=32, num_simulated=20_000, top_k=50, verbose=False)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("regmix")
    data = make_controlled_data(root / "DATA")
    mixer = RegMix(target="target", seed=0, **FAST)
    weights = mixer.fit(data)
    return root, data, mixer, weights


def test_noise_domain_is_pushed_to_the_floor_and_target_weighted_high(fitted):
    _, _, mixer, w = fitted
    assert mixer.trained_runs_ == 32 and mixer.cached_runs_ == 0
    assert w.weights["noise"] < 0.05, w.weights
    assert w.weights["target"] > 0.6, w.weights
    assert sum(w.weights.values()) == pytest.approx(1.0)


def test_cross_validated_rank_correlation_is_high(fitted):
    _, _, _, w = fitted
    reg = w.diagnostics["regression"]
    assert set(reg["cv"]) == {"linear", "hgb", "lightgbm", "mixing-law"}
    chosen = reg["chosen"]
    assert reg["cv"][chosen]["spearman"] == max(r["spearman"] for r in reg["cv"].values())
    assert reg["cv"][chosen]["spearman"] > 0.7, reg["cv"]
    assert len(reg["out_of_fold"]["actual"]) == 32 and len(reg["out_of_fold"]["predicted"][chosen]) == 32
    # The regression predicts the chosen mixture beats natural and uniform on the target.
    pred = w.diagnostics["predicted_target_loss"]
    assert pred["regmix"] < pred["natural"] and pred["regmix"] < pred["uniform"]


def test_refit_and_new_target_hit_the_cache_and_train_nothing(fitted):
    _, data, _, w = fitted
    again = RegMix(target="target", seed=0, **FAST)
    assert again.fit(data).weights == w.weights
    assert again.trained_runs_ == 0 and again.cached_runs_ == 32
    other = RegMix(target="average", seed=0, **FAST)
    avg = other.fit(data)
    assert other.trained_runs_ == 0
    assert avg.target == "average" and avg.weights != w.weights
    # More runs train only the new ones: the first 32 mixtures are the same draws.
    more = RegMix(target="target", seed=0, **{**FAST, "num_runs": 36})
    more.fit(data)
    assert more.trained_runs_ == 4 and more.cached_runs_ == 32


def test_fixed_seed_gives_identical_weights_without_the_cache(fitted, tmp_path):
    _, data, _, w = fitted
    fresh = RegMix(target="target", seed=0, cache_dir=str(tmp_path / "cache"), **FAST)
    w2 = fresh.fit(data)
    assert fresh.trained_runs_ == 32
    assert w2.weights == w.weights
    assert w2.diagnostics["proxy_runs"] == w.diagnostics["proxy_runs"]


def test_sampler_respects_the_cap_zeroes_tiny_weights_and_dedupes():
    natural = np.array([0.9, 0.09, 0.009, 0.001])
    caps = sampling_caps(natural, 15)
    assert caps.tolist() == pytest.approx([1.0, 1.0, 0.135, 0.015])
    p = sample_mixtures(natural, 2000, np.random.default_rng(0), caps=caps)
    assert p.shape == (2000, 4)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (p <= caps + 1e-12).all()
    assert not ((p > 0) & (p < 2e-4)).any()
    assert len(np.unique(np.round(p, 6), axis=0)) == 2000
    # Small concentrations make one-hot mixtures: without dedupe they repeat.
    raw = sample_mixtures(natural, 2000, np.random.default_rng(0), caps=caps, dedupe=False)
    assert len(np.unique(np.round(raw, 6), axis=0)) < 2000
    again = sample_mixtures(natural, 2000, np.random.default_rng(0), caps=caps)
    assert np.array_equal(p, again)


def test_impossible_sampling_constraints_are_an_error():
    with pytest.raises(ValueError, match="distinct mixtures"):
        # Two domains, each capped at 0.5: only [0.5, 0.5] fits.
        sample_mixtures(np.array([0.5, 0.5]), 10, np.random.default_rng(0), caps=np.array([0.5, 0.5]))


def test_curate_mix_regmix_writes_weights_and_proxy_table(fitted, tmp_path):
    from curate.commands import mix

    _, data, _, w = fitted
    parser = argparse.ArgumentParser()
    mix.register(parser.add_subparsers())
    out = tmp_path / "weights.json"
    params = [f"--param={k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
              for k, v in FAST.items() if k not in ("device",)]
    args = parser.parse_args(["mix", str(data), "--method", "regmix", "--out", str(out), "--target", "target",
                              "--device", "cpu", "--seed", "0", *params])
    assert args.func(args) == 0
    obj = json.loads(out.read_text())
    assert obj["method"] == "regmix" and obj["target"] == "target"
    assert obj["weights"] == pytest.approx(w.weights, abs=0)
    assert obj["diagnostics"]["regression"]["chosen"] in obj["diagnostics"]["regression"]["cv"]
    rows = list(csv.DictReader(open(tmp_path / "weights.proxy_runs.csv")))
    assert len(rows) == 32 and {"weight_noise", "loss_target", "oof_predicted"} <= set(rows[0])


def test_unknown_target_is_a_readable_error(fitted):
    _, data, _, _ = fitted
    with pytest.raises(ValueError, match="not a domain"):
        RegMix(target="nope", **FAST).fit(data)


def test_a_binding_repetition_cap_keeps_noise_at_the_floor(fitted):
    _, data, _, _ = fitted
    # Budget = corpus size and at most 1.5 epochs: target may take at most 1.5 / 3 = 0.5. The clipped mass must go
    # to the useful domain, not to NOISE.
    mixer = RegMix(target="target", seed=0, max_epochs=1.5, **FAST)
    w = mixer.fit(data)
    assert mixer.trained_runs_ == 0
    assert w.weights["target"] == pytest.approx(0.5, abs=0.02)
    assert w.weights["noise"] < 0.05, w.weights


def test_named_target_domains_average_only_those_and_train_nothing(fitted):
    _, data, _, _ = fitted
    every = RegMix(target="average", seed=0, **FAST)
    w_every = every.fit(data)
    named = RegMix(target="average", target_domains=["target", "other"], seed=0, **FAST)
    w_named = named.fit(data)
    assert named.trained_runs_ == 0
    assert w_named.diagnostics["target_domains"] == ["other", "target"]
    run = w_named.diagnostics["proxy_runs"][0]
    assert run["target_loss"] == pytest.approx((run["loss"]["target"] + run["loss"]["other"]) / 2)
    actual = w_named.diagnostics["regression"]["out_of_fold"]["actual"]
    assert actual != w_every.diagnostics["regression"]["out_of_fold"]["actual"]
    assert w_named.weights["noise"] < 0.05, w_named.weights


def test_unknown_target_domain_is_one_line_before_training(fitted, tmp_path):
    _, data, _, _ = fitted
    mixer = RegMix(target="average", target_domains="target,typo", cache_dir=str(tmp_path / "empty"), **FAST)
    with pytest.raises(ValueError, match="'typo' not a domain") as err:
        mixer.fit(data)
    assert "\n" not in str(err.value) and mixer.trained_runs_ == 0


def test_cpu_defaults_are_the_documented_ones_and_cuda_keeps_the_papers():
    from mixers.regmix import CPU_DEFAULTS, CUDA_DEFAULTS, cpu_trade, proxy_settings
    from proxy_training.trainer import resolve_device

    assert CPU_DEFAULTS == {"model_size": "tiny", "seq_len": 128, "batch_size": 8, "steps": 500, "lr": 2e-3}
    assert CUDA_DEFAULTS == {"model_size": "regmix-1m", "seq_len": 256, "batch_size": 16, "steps": 1000, "lr": 4e-4}
    # What the docstring promises.
    assert "tiny d64 proxy, 500 steps x 8 x 128 tokens, lr 2e-3" in " ".join(RegMix.__doc__.split())
    cpu, applied = proxy_settings({}, resolve_device("auto", cuda_available=False).type, 8)
    assert cpu == {**CPU_DEFAULTS, "num_runs": 36, "warmup_steps": 50}
    assert applied == [*CPU_DEFAULTS, "num_runs"]
    cuda, applied = proxy_settings({}, resolve_device("auto", cuda_available=True).type, 8)
    assert cuda == {**CUDA_DEFAULTS, "num_runs": 512, "warmup_steps": 100} and applied == []
    # A user's setting wins and is not reported as a default.
    mine, applied = proxy_settings({"steps": 200, "model_size": "regmix-1m"}, "cpu", 3)
    assert mine["steps"] == 200 and mine["model_size"] == "regmix-1m" and mine["num_runs"] == 32
    assert "steps" not in applied and "model_size" not in applied
    line = cpu_trade(cpu, [*CPU_DEFAULTS, "num_runs"], 4096)
    assert "tiny proxy" in line and "500 steps x 8 x 128" in line and "36 runs (CUDA: 512)" in line
