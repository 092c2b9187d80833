"""The mixing-law mixer: the law's fit on planted synthetic runs (no training), its search, and the mixer on RegMix's
cached proxy runs of the controlled setup (target / other / noise)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mixers.mixing_law import (BaggedLaw, LawFit, MixingLaw, average_argmin, bootstrap_laws, cross_validate_laws,
                               fit_law, fit_quality, law_target, minimize_law)
from mixers.regmix import RegMix, fit_regressor
from tests.test_regmix import FAST, make_controlled_data


def planted_runs(n=48, seed=0, noise=1e-3):
    """Mixtures over (a, b, noise) and losses from planted laws: a and b learn from their own share; noise has a high
    loss that falls steeply with its own share and helps nothing else, so it dominates a plain average."""
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.full(3, 0.8), n)
    planted = [
        LawFit(2.0, 1.0, np.array([-2.0, 1.0, 1.0]), 0.0),  # a
        LawFit(2.5, 0.8, np.array([0.5, -1.5, 1.0]), 0.0),  # b
        LawFit(4.0, 3.0, np.array([1.0, 1.0, -2.0]), 0.0),  # noise
    ]
    L = np.stack([law.predict(X) + rng.normal(0, noise, n) for law in planted], axis=1)
    return X, L, planted


def test_law_recovers_planted_coefficients():
    X, L, planted = planted_runs()
    for i, law in enumerate(planted):
        fit = fit_law(X, L[:, i], seed=0)
        assert fit.c == pytest.approx(law.c, abs=0.02)
        assert fit.k == pytest.approx(law.k, abs=0.02)
        np.testing.assert_allclose(fit.t, law.t, atol=0.03)
        assert fit.rmse < 2e-3
    # Deterministic with the seed.
    again = fit_law(X, L[:, 0], seed=0)
    assert again.c == fit_law(X, L[:, 0], seed=0).c and np.array_equal(again.t, fit_law(X, L[:, 0], seed=0).t)


def test_cross_validated_law_predicts_held_out_runs():
    X, L, _ = planted_runs(noise=5e-3)
    oof, fold_laws = cross_validate_laws(X, L, folds=5, seed=0, restarts=4)
    assert len(fold_laws) == 5 and all(len(laws) == 3 for laws in fold_laws)
    for i in range(3):
        q = fit_quality(oof[:, i], L[:, i])
        assert q["spearman"] > 0.95 and q["r2"] > 0.95 and q["mae"] < 0.02, q


def test_named_domain_average_changes_the_objective_and_keeps_noise_at_the_floor():
    X, L, _ = planted_runs()
    laws = [fit_law(X, L[:, i], seed=0) for i in range(3)]
    caps = np.ones(3)
    candidates = np.random.default_rng(1).dirichlet(np.ones(3), 2000)
    every, _ = minimize_law(laws, caps, candidates, refine=4)
    named, value = minimize_law(laws[:2], caps, candidates, refine=4)
    # The plain average is dominated by noise's steep law; averaged over a and b only, noise gets nothing.
    assert every[2] > 0.3, every
    assert named[2] < 1e-6, named
    assert named[0] > 0.3 and named[1] > 0.3
    assert value == pytest.approx(np.mean([law.predict(named[None])[0] for law in laws[:2]]))
    # SLSQP improves on the best candidate, never worsens it.
    best_candidate = min(np.mean([law.predict(candidates)[j] for law in laws[:2]]) for j in range(0, 2000, 97))
    assert value <= best_candidate + 1e-12


def test_search_respects_caps():
    X, L, _ = planted_runs()
    laws = [fit_law(X, L[:, i], seed=0) for i in range(3)]
    caps = np.array([0.3, 0.6, 1.0])
    candidates = np.random.default_rng(1).dirichlet(np.ones(3), 2000)
    candidates = candidates[(candidates <= caps).all(axis=1)]
    r, _ = minimize_law(laws[:2], caps, candidates, refine=4)
    assert (r <= caps + 1e-9).all() and r.sum() == pytest.approx(1.0)
    assert r[0] == pytest.approx(0.3, abs=1e-6)


def test_fold_average_splits_an_exact_copy_between_the_twins():
    # Domains a, a_copy (the same data: losses depend on r_a + r_copy only) and b; the noise decides which twin a
    # single fit prefers, and the mean over the fold fits' argmins shares the pair's weight (by how the coin fell:
    # it is not an even split).
    rng = np.random.default_rng(3)
    X = rng.dirichlet(np.full(3, 0.8), 40)
    pair = X[:, 0] + X[:, 1]
    L = np.stack([2.0 + np.exp(-2.0 * pair + 1.0 * X[:, 2]), 2.0 + np.exp(-2.0 * pair + 1.0 * X[:, 2]),
                  2.5 + np.exp(1.5 * pair - 1.5 * X[:, 2])], axis=1) + rng.normal(0, 0.02, (40, 3))
    full = [fit_law(X, L[:, i], seed=0) for i in range(3)]
    _, fold_laws = cross_validate_laws(X, L, folds=5, seed=0, restarts=4)
    candidates = np.random.default_rng(1).dirichlet(np.ones(3), 2000)
    mean, solutions = average_argmin([full, *fold_laws], np.ones(3), candidates, refine=4)
    assert solutions.shape == (6, 3) and mean.sum() == pytest.approx(1.0)
    # Each single fit gives one twin (nearly) all of the pair's share; the mean gives each at least a quarter of it.
    assert all(min(r[0], r[1]) < 1e-6 for r in solutions)
    assert mean[0] + mean[1] > 0.3
    assert min(mean[0], mean[1]) >= 0.25 * (mean[0] + mean[1]), solutions
    # Bootstrap refits join the average (the mixer's default): on these runs the resamples favour each twin about
    # equally, and the mean splits the pair's share within 1.5x where the six fits left it 2x apart.
    boots = bootstrap_laws(X, L, 32, seed=0, restarts=2, base=full)
    assert len(boots) == 32 and all(len(laws) == 3 for laws in boots)
    bagged, all_solutions = average_argmin([full, *fold_laws, *boots], np.ones(3), candidates, refine=4)
    assert all_solutions.shape == (38, 3)
    assert max(bagged[0], bagged[1]) <= 1.5 * min(bagged[0], bagged[1]), bagged
    assert max(mean[0], mean[1]) > 1.5 * min(mean[0], mean[1]), mean


def test_bootstrap_refits_are_seeded_and_start_from_the_all_runs_fit():
    X, L, planted = planted_runs(noise=5e-3)
    full = [fit_law(X, L[:, i], seed=0) for i in range(3)]
    a = bootstrap_laws(X, L, 4, seed=0, restarts=2, base=full)
    b = bootstrap_laws(X, L, 4, seed=0, restarts=2, base=full)
    assert all(np.array_equal(x.t, y.t) and x.c == y.c for la, lb in zip(a, b) for x, y in zip(la, lb))
    assert not np.array_equal(a[0][0].t, a[1][0].t)  # different resamples
    for laws in a:  # each resample still finds the planted law
        for law, truth in zip(laws, planted):
            np.testing.assert_allclose(law.t, truth.t, atol=0.15)


def test_bagged_law_regressor_keeps_noise_at_the_floor_where_trees_tie():
    # RegMix's regressor slot: the law fitted on the target domains' columns (a, b), bagged. Trees are piecewise
    # constant, so their lowest prediction is shared by a whole region of simulated mixtures; the law ranks inside
    # it, and its top-k keeps the noise domain (which only takes tokens from a and b) at the floor.
    X, L, _ = planted_runs(n=40, noise=5e-3)
    law = fit_regressor("mixing-law", X, L[:, :2], seed=0)
    assert isinstance(law, BaggedLaw) and len(law.fits_) == 17
    sim = np.random.default_rng(5).dirichlet(np.full(3, 0.5), 20_000)
    pred = law.predict(sim)
    np.testing.assert_allclose(pred, np.median([law_target(f)[2](sim) for f in law.fits_], axis=0))
    top = sim[np.argsort(pred, kind="stable")[:50]].mean(axis=0)
    assert top[2] < 0.01, top
    tree = fit_regressor("hgb", X, L[:, :2], seed=0)  # a 2-D y is the mean over its columns for the others
    tree_pred = tree.predict(sim)
    assert len(np.unique(np.round(tree_pred[np.argsort(tree_pred, kind="stable")[:50]], 9))) < 50


# -- the mixer on RegMix's proxy runs ------------------------------------------------------------------------------

# Cheaper proxies than test_regmix's (fewer, shorter runs): the law needs fewer runs than the trees.
RUNS = FAST | {"num_runs": 24, "steps": 40, "warmup_steps": 4}
LAW = {k: v for k, v in RUNS.items() if k not in ("num_simulated", "top_k")} | {"num_candidates": 5000, "refine": 4,
                                                                                 "restarts": 4}


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """The controlled data with RegMix's 24 runs in its cache."""
    data = make_controlled_data(tmp_path_factory.mktemp("mixlaw") / "DATA")
    regmix = RegMix(target="target", seed=0, **RUNS)
    regmix.fit(data)
    assert regmix.trained_runs_ == 24
    return data


@pytest.fixture
def no_training(monkeypatch):
    """Make any proxy training an error: the mixing law must read RegMix's cached runs."""
    import proxy_training.trainer

    def fail(*args, **kwargs):
        raise AssertionError("proxy training was invoked")

    monkeypatch.setattr(proxy_training.trainer, "train_mixtures", fail)


def test_mixing_law_reuses_regmix_runs_and_puts_noise_at_the_floor(cached, no_training):
    mixer = MixingLaw(target="target", seed=0, **LAW)
    w = mixer.fit(cached)
    assert mixer.trained_runs_ == 0 and mixer.cached_runs_ == 24
    assert w.method == "mixing-law" and sum(w.weights.values()) == pytest.approx(1.0)
    assert w.weights["noise"] < 0.01, w.weights
    assert w.weights["target"] > 0.6, w.weights
    reg = w.diagnostics["regression"]
    assert reg["cv"]["mixing-law"]["spearman"] > 0.7, reg["cv"]
    assert set(reg["per_domain"]) == {"target", "other", "noise"}
    assert len(reg["out_of_fold"]["predicted"]["mixing-law"]) == 24
    pred = w.diagnostics["predicted_target_loss"]
    assert pred["mixing-law"] < pred["natural"] and pred["mixing-law"] < pred["uniform"]
    # Same data, parameters and seed: identical weights.
    assert MixingLaw(target="target", seed=0, **LAW).fit(cached).weights == w.weights


def test_named_target_domains_on_cached_runs(cached, no_training):
    every = MixingLaw(target="average", seed=0, **LAW).fit(cached)
    named = MixingLaw(target="average", target_domains="target,other", seed=0, **LAW).fit(cached)
    assert named.diagnostics["target_domains"] == ["other", "target"]
    assert every.diagnostics["target_domains"] == ["noise", "other", "target"]
    runs = named.diagnostics["proxy_runs"]
    assert runs[0]["target_loss"] == pytest.approx((runs[0]["loss"]["target"] + runs[0]["loss"]["other"]) / 2)
    assert named.weights != every.weights
    assert named.weights["noise"] < 0.01, named.weights
    assert named.config["target_domains"] == ["target", "other"]


def test_unknown_target_domain_is_one_line_before_any_training(cached, no_training):
    with pytest.raises(ValueError, match="'nope' not a domain") as err:
        MixingLaw(target="average", target_domains=["target", "nope"], **LAW).fit(cached)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="goes with target 'average'"):
        MixingLaw(target="target", target_domains="other", **LAW).fit(cached)


def test_curate_mix_mixing_law_with_target_domains(cached, no_training, tmp_path):
    from curate.commands import mix

    parser = argparse.ArgumentParser()
    mix.register(parser.add_subparsers())
    out = tmp_path / "weights.json"
    params = [f"--param={k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
              for k, v in LAW.items() if k != "device"]
    args = parser.parse_args(["mix", str(cached), "--method", "mixing-law", "--out", str(out),
                              "--target-domains", "target,other", "--device", "cpu", "--seed", "0", *params])
    assert args.func(args) == 0
    obj = json.loads(out.read_text())
    assert obj["method"] == "mixing-law" and obj["diagnostics"]["target_domains"] == ["other", "target"]
    assert (tmp_path / "weights.proxy_runs.csv").is_file()
    from curate.errors import CurateError

    args = parser.parse_args(["mix", str(cached), "--method", "natural", "--out", str(tmp_path / "d.json"),
                              "--target-domains", "target"])
    with pytest.raises(CurateError, match="--target-domains: natural has no target"):
        args.func(args)


def test_mix_stage_config_takes_target_domains(cached, no_training, tmp_path):
    from curate.errors import CurateError
    from curate.mix_stage import MixConfig, run_mix

    cfg = MixConfig(method="mixing-law", target_domains="target, other", params=LAW)
    assert cfg.target_domains == ["target", "other"]
    stats = run_mix(cfg, str(cached), str(tmp_path / "mix"), seed=0)
    assert stats["weights"]["noise"] < 0.01
    # Its directory holds the proxy table too, and a rerun replaces it like any mix output.
    assert (tmp_path / "mix" / "weights.proxy_runs.csv").is_file()
    assert run_mix(cfg, str(cached), str(tmp_path / "mix"), seed=0)["weights"] == stats["weights"]
    with pytest.raises(CurateError, match="mix.target_domains: uniform has no target"):
        run_mix(MixConfig(method="uniform", target_domains=["target"]), str(cached), str(tmp_path / "mix2"))
