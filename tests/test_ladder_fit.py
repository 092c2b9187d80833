"""Scaling-ladder statistics on synthetic ladders with a planted law L_m(C) = E_m + A_m * (C / c_ref)^-alpha."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixers.ladder_fit import (fit_curves, ladder_verdict, measured_top, predict, proxy_fidelity, self_check,
                               verdict_table)

NAMES = ["uniform", "natural", "regmix", "doremi"]


def _curves(compute, E, A, alpha=0.3, at=None):
    """Planted losses [M, R] at the rungs (or [M, K] at computes `at`); c_ref is the rungs' geometric mean."""
    compute = np.asarray(compute, dtype=np.float64)
    c_ref = np.exp(np.log(compute).mean())
    at = compute if at is None else np.atleast_1d(np.asarray(at, dtype=np.float64))
    return np.asarray(E, dtype=np.float64)[:, None] + np.asarray(A)[:, None] * (at / c_ref) ** -alpha


def _seeds(curves, rng, S, seed_noise, mixture_noise):
    """[S, M, R]: a per-seed shift shared by all mixtures (common random numbers) plus independent noise."""
    M, R = curves.shape
    return curves[None] + rng.normal(0, seed_noise, (S, 1, R)) + rng.normal(0, mixture_noise, (S, M, R))


def test_fit_recovers_planted_law_and_extrapolates_100x():
    compute = 1e15 * 4.0 ** np.arange(4)
    A = [0.4, 0.5, 0.6, 0.7]
    rng = np.random.default_rng(0)
    observed = _curves(compute, [1.8] * 4, A) + rng.normal(0, 1e-3, (4, 4))
    far = compute[-1] * 100
    truth = _curves(compute, [1.8] * 4, A, at=far)[:, 0]
    fit = fit_curves(compute, observed)
    assert abs(fit.alpha - 0.3) < 0.02
    assert abs(fit.E[0] - 1.8) < 0.02
    assert fit.identified and not fit.alpha_at_bound
    assert np.abs(predict(fit, far) - truth).max() < 0.01
    assert predict(fit, [compute[0], far]).shape == (4, 2)
    np.testing.assert_allclose(predict(json.loads(json.dumps(fit.as_dict())), far), predict(fit, far))
    # The per-mixture-E variant also contains the planted law.
    assert np.abs(predict(fit_curves(compute, observed, shared_E=False), far) - truth).max() < 0.01


def test_fit_holds_a_given_alpha_and_keeps_E_below_the_smallest_loss():
    compute = 1e15 * 4.0 ** np.arange(3)
    observed = _curves(compute, [1.8] * 3, [0.4, 0.5, 0.6])
    fit = fit_curves(compute, observed, alpha=0.5)
    assert fit.alpha == 0.5 and fit.alpha_fixed
    assert 0 <= fit.E[0] < observed.min()
    assert (fit.A >= 0).all()


def test_bootstrap_gap_interval_covers_truth_at_nominal_rate():
    compute = 1e15 * 4.0 ** np.arange(3)
    A = np.array([0.50, 0.60, 0.53])  # uniform, natural, regmix
    target = compute[-1] * 100
    at_target = _curves(compute, [1.8] * 3, A, at=target)[:, 0]
    true_gap = at_target[2] - at_target[0]
    rng = np.random.default_rng(123)
    covered = 0
    for rep in range(200):
        losses = _seeds(_curves(compute, [1.8] * 3, A), rng, S=5, seed_noise=0.01, mixture_noise=0.003)
        result = ladder_verdict(compute, losses, ["uniform", "natural", "regmix"], target, n_boot=100, seed=rep)
        assert result["best_baseline"] == "uniform"
        lo, hi = result["comparisons"][0]["interval"]
        covered += lo <= true_gap <= hi
    assert 0.85 <= covered / 200 <= 0.99


def test_verdicts_name_the_winner_and_baseline_pairs():
    compute = 1e15 * 4.0 ** np.arange(4)
    names = ["uniform", "natural", "regmix", "doremi", "same"]
    A = [0.55, 0.60, 0.45, 0.65, 0.55]  # regmix best, doremi worst, same = uniform
    losses = _seeds(_curves(compute, [1.8] * 5, A), np.random.default_rng(1), S=5, seed_noise=0.01,
                    mixture_noise=0.002)
    result = ladder_verdict(compute, losses, names, target_compute=1.2e19, n_boot=300)
    assert result["best_baseline"] == "uniform"
    by_name = {c["mixture"]: c for c in result["comparisons"]}
    assert by_name["regmix"]["verdict"].startswith("regmix beats uniform at 1.2e19 FLOPs by ")
    assert by_name["regmix"]["outcome"] == "better" and by_name["regmix"]["interval"][1] < 0
    assert by_name["doremi"]["verdict"].startswith("doremi loses to uniform at 1.2e19 FLOPs by ")
    assert by_name["same"]["verdict"].startswith("same is not distinguishable from uniform at 1.2e19 FLOPs (gap ")
    assert not by_name["same"]["distinguishable"]
    pair = by_name["uniform"]
    assert pair["kind"] == "baseline_pair" and pair["baseline"] == "natural"
    assert pair["verdict"].startswith("uniform beats natural at 1.2e19 FLOPs")
    assert result["verdicts"] == [c["verdict"] for c in result["comparisons"]]
    table = verdict_table(result)
    assert "regmix beats uniform" in table and "| regmix |" in table


def test_verdict_is_deterministic_given_seed_and_json_clean():
    compute = [1e15, 4e15, 1.6e16]
    losses = _seeds(_curves(compute, [1.8] * 4, [0.5, 0.55, 0.45, 0.6]), np.random.default_rng(2), 3, 0.01, 0.003)
    first = ladder_verdict(compute, losses, NAMES, 1e19, n_boot=200, seed=7)
    assert json.dumps(first, allow_nan=False) == json.dumps(ladder_verdict(compute, losses, NAMES, 1e19, n_boot=200,
                                                                          seed=7), allow_nan=False)
    other = ladder_verdict(compute, losses, NAMES, 1e19, n_boot=200, seed=8)
    assert other["comparisons"][0]["interval"] != first["comparisons"][0]["interval"]


def test_one_seed_gives_point_verdicts_without_intervals():
    compute = [1e15, 4e15, 1.6e16]
    losses = _curves(compute, [1.8] * 4, [0.5, 0.55, 0.45, 0.6])[None]
    result = ladder_verdict(compute, losses, NAMES, 1e19)
    assert result["n_boot"] == 0 and result["note"].startswith("1 seed")
    assert all(p["interval"] is None for p in result["predictions"].values())
    regmix = next(c for c in result["comparisons"] if c["mixture"] == "regmix")
    assert regmix["interval"] is None and regmix["outcome"] == "untested"
    assert regmix["verdict"].startswith("regmix is predicted to beat uniform") and "1 seed" in regmix["verdict"]
    assert result["self_check"]["pair_rule"].startswith("1 seed")
    assert "no intervals" in verdict_table(result)


def test_self_check_ranks_parallel_curves_right():
    compute = 1e15 * 4.0 ** np.arange(3)
    losses = _seeds(_curves(compute, [1.8] * 4, [0.5, 0.6, 0.4, 0.7]), np.random.default_rng(3), 4, 0.003, 1e-3)
    check = self_check(compute, losses, NAMES)
    assert check["alpha_source"] == "lower rungs" and check["note"] is None  # 2 rungs, M = 4: identified
    assert check["pairs_counted"] == check["pairs_total"] == 6
    assert check["accuracy"] == {"fit": 1.0, "smallest_rung": 1.0, "largest_fit_rung": 1.0}
    assert check["mean_abs_error"] < 0.01


def test_self_check_splits_an_error_common_to_every_mixture_from_the_error_on_gaps():
    compute = 1e15 * 4.0 ** np.arange(4)
    losses = _seeds(_curves(compute, [1.8] * 4, [0.5, 0.6, 0.4, 0.7]), np.random.default_rng(5), 4, 0.003, 1e-3)
    losses[:, :, -1] -= 0.1  # the top rung beats the curve by the same 0.1 nats for every mixture
    check = self_check(compute, losses, NAMES)
    assert check["mean_abs_error"] > 0.09 and abs(check["common_error"] - 0.1) < 0.01
    # The gaps the verdicts judge do not carry it.
    assert check["max_gap_error"] < 0.01 and check["accuracy"]["fit"] == 1.0


def test_smallest_rung_ranking_fails_when_curves_cross():
    compute = 1e15 * 4.0 ** np.arange(4)
    # regmix starts behind uniform and ends ahead; doremi the reverse (crossings between rungs 1 and 2).
    curves = _curves(compute, [1.8, 1.8, 1.7, 1.85], [0.6, 0.7, 0.7, 0.55])
    losses = _seeds(curves, np.random.default_rng(4), 3, 0.01, 1e-3)
    check = self_check(compute, losses, NAMES, shared_E=False)
    assert check["pairs_counted"] == 6
    assert check["accuracy"]["smallest_rung"] == 0.5
    assert check["accuracy"]["fit"] == 1.0  # per-mixture E can bend the curves across each other
    # Parallel curves cannot cross, so the default model's self-check exposes the misfit.
    assert self_check(compute, losses, NAMES)["accuracy"]["fit"] < 1.0


def test_self_check_takes_alpha_from_the_full_fit_when_two_rungs_cannot_identify_it():
    compute = 1e15 * 4.0 ** np.arange(3)
    losses = _seeds(_curves(compute, [1.8, 1.8, 1.7, 1.85], [0.6, 0.7, 0.7, 0.55]), np.random.default_rng(5),
                    3, 0.01, 1e-3)
    check = self_check(compute, losses, NAMES, shared_E=False)  # 2M + 1 parameters, 2M points
    assert check["alpha_source"] == "full fit" and "top rung" in check["note"]


def test_proxy_fidelity_is_one_for_parallel_curves_and_lower_when_they_cross():
    compute = 1e15 * 4.0 ** np.arange(4)
    parallel = proxy_fidelity(_curves(compute, [1.8] * 4, [0.5, 0.6, 0.4, 0.7]))
    np.testing.assert_allclose(parallel, 1.0)
    crossing = proxy_fidelity(_curves(compute, [1.8, 1.8, 1.7, 1.85], [0.6, 0.7, 0.7, 0.55]))
    assert crossing[0] < 1.0 and crossing[-1] == 1.0
    flat = np.array([[2.0, 1.5, 1.2], [2.0, 1.6, 1.1], [2.0, 1.7, 1.3]])  # no order at the first rung
    assert np.isnan(proxy_fidelity(flat)[0])


@pytest.mark.parametrize(
    "compute, names, match",
    [
        ([1e15, 4e15], NAMES, "3 rungs"),
        ([1e15, 2e15, 4e15], NAMES, "16x"),
        ([1e15, 4e15, 1.6e16], ["uniform", "x", "regmix", "doremi"], "natural"),
    ],
)
def test_ladder_verdict_rejects_bad_ladders(compute, names, match):
    losses = np.full((2, 4, len(compute)), 2.0)
    with pytest.raises(ValueError, match=match):
        ladder_verdict(compute, losses, names, 1e19)


def test_fit_flags_an_exponent_that_identical_mixtures_on_two_rungs_cannot_pin():
    compute = [1e15, 4e15]
    assert not fit_curves(compute, [[3.0, 2.5], [3.0, 2.5]]).identified  # any steep enough alpha fits exactly
    assert fit_curves(compute, [[3.0, 2.5], [3.2, 2.6]]).identified  # M + 2 = 2M: one exact solution


def test_free_exponents_recover_crossing_curves_and_the_self_check_predicts_the_top_rung():
    compute = 1e12 * 2.6 ** np.arange(4)
    c_ref = np.exp(np.log(compute).mean())
    E, A, alpha = 3.0, np.array([2.0, 2.1, 1.9, 2.2]), np.array([0.35, 0.30, 0.25, 0.40])
    curves = E + A[:, None] * (compute / c_ref)[None] ** -alpha[:, None]
    rng = np.random.default_rng(1)
    observed = curves + rng.normal(0, 1e-4, curves.shape)
    fit = fit_curves(compute, observed, shared_alpha=False)
    assert abs(fit.E[0] - E) < 0.05 and np.abs(fit.alpha - alpha).max() < 0.02 and fit.identified
    far = compute[-1] * 100
    truth = E + A * (far / c_ref) ** -alpha
    assert np.abs(predict(fit, far) - truth).max() < 0.01
    np.testing.assert_allclose(predict(json.loads(json.dumps(fit.as_dict())), far), predict(fit, far))
    # Parallel curves cannot follow the crossing; the free exponents predict the left-out top rung.
    losses = _seeds(curves, rng, 3, 0.002, 0.001)
    free = self_check(compute, losses, NAMES, shared_alpha=False)
    parallel = self_check(compute, losses, NAMES)
    assert free["mean_abs_error"] < 0.01 < parallel["mean_abs_error"]
    assert free["accuracy"]["fit"] == 1.0 and free["note"] is None
    result = ladder_verdict(compute, losses, NAMES, far, n_boot=200, shared_alpha=False)
    assert "alpha per mixture" in verdict_table(result)
    lo, hi = result["predictions"]["doremi"]["interval"]
    assert lo < truth[3] < hi


def test_free_exponents_with_two_rungs_left_check_with_parallel_curves_and_say_so():
    compute = 1e12 * 4.0 ** np.arange(3)
    losses = _seeds(_curves(compute, [3.0] * 4, [0.4, 0.5, 0.6, 0.7]), np.random.default_rng(2), 3, 0.002, 0.001)
    check = self_check(compute, losses, NAMES, shared_alpha=False)
    assert "not identified from 2 rungs" in check["note"] and isinstance(check["alpha"], float)


def test_the_local_power_law_cross_check_errs_low_where_the_loss_has_an_irreducible_part():
    compute = 1e15 * 3.0 ** np.arange(4)
    losses = _seeds(_curves(compute, [1.8] * 4, [0.5, 0.6, 0.4, 0.7]), np.random.default_rng(6), 3, 1e-3, 1e-4)
    check = self_check(compute, losses, NAMES)
    local, mean = check["local_power_law"], losses.mean(0)
    by_hand = mean[:, 2] * (mean[:, 2] / mean[:, 1]) ** (np.log(compute[3] / compute[2]) / np.log(3.0))
    assert np.allclose(list(local["predicted"].values()), by_hand)
    assert max(local["error"].values()) < -0.005 and check["mean_abs_error"] < 0.005  # the planted law's own form
    fit_pred = np.array(list(check["predicted"].values()))
    inside = (np.minimum(fit_pred, by_hand) <= mean[:, 3]) & (mean[:, 3] <= np.maximum(fit_pred, by_hand))
    assert local["bracketed"] == int(inside.sum())
    assert np.isclose(local["midpoint_mean_abs_error"], np.abs((fit_pred + by_hand) / 2 - mean[:, 3]).mean())
    assert "Cross-check" in verdict_table(ladder_verdict(compute, losses, NAMES, target_compute=1e20, n_boot=50))


def test_the_top_rung_as_measured_is_a_paired_t_interval_over_seeds():
    from scipy import stats

    compute = [1e10, 4e10, 1.6e11]
    rng = np.random.default_rng(3)
    base = rng.normal(0, 0.05, size=(4, 1, 3))  # a seed's shift, common to every mixture (common random numbers)
    L = 4.0 + base + np.array([[[0.0, 0.0, 0.0]], [[0.02, 0.02, 0.03]], [[0.1, -0.05, -0.08]], [[0.0, 0.0, 0.001]]]
                              ).transpose(1, 0, 2) + rng.normal(0, 0.004, size=(4, 4, 3))
    names = ["uniform", "natural", "better", "same"]
    top = measured_top(compute, L, names)
    assert top["best_baseline"] == "uniform"
    got = {c["mixture"]: c for c in top["comparisons"]}
    d = L[:, 2, -1] - L[:, 0, -1]
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert got["better"]["gap"] == pytest.approx(d.mean())
    assert got["better"]["interval"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert got["better"]["outcome"] == "better" and "beats uniform at the top rung" in got["better"]["verdict"]
    assert got["same"]["outcome"] == "indistinguishable"
    assert got["uniform"]["baseline"] == "natural" and got["uniform"]["outcome"] == "better"  # the baselines' pair
    # A ladder verdict carries it, and its table prints it.
    v = ladder_verdict(compute, L, names, 1e14, n_boot=50)
    assert v["measured_top"] == top and "Measured at the top rung" in verdict_table(v)
    # One seed: the measured difference, said as measured, with no interval.
    one = {c["mixture"]: c for c in measured_top(compute, L[:1], names)["comparisons"]}
    assert one["better"]["outcome"] == "untested" and one["better"]["interval"] is None
    assert one["better"]["verdict"].startswith("better measured ") and "below uniform" in one["better"]["verdict"]
    assert "predicted" not in one["better"]["verdict"]
