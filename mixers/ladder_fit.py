"""Scaling-ladder statistics: fit a loss-vs-compute curve per mixture over the rungs, extrapolate it to the target
compute, and say with a seed bootstrap whether each mixture beats the baselines there; plus a leave-the-top-rung-out
self-check of the fit and the rank fidelity of each rung.

    result = ladder_verdict(compute, losses, names, target_compute=6 * N * D)   # losses [seeds, mixtures, rungs]
    Path("ladder.json").write_text(json.dumps(result, indent=2)); Path("ladder.md").write_text(verdict_table(result))

The curve family (see `fit_curves`) is L_m(C) = E + A_m * (C / c_ref) ** -alpha_m: one E for all mixtures and
either one exponent (parallel curves: each mixture is a constant effective-compute multiplier) or one per mixture.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

ALPHA_BOUNDS = (0.01, 3.0)
_GRID = 48  # log-spaced exponents scanned before the golden-section refinement
_GOLDEN_STEPS = 26  # shrinks the bracket (two grid steps of log alpha, 0.24) to ~1e-6
_CHUNK = 256  # bootstrap fits solved together; bounds the [chunk, grid, candidates, M] temporaries
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class LadderFit:
    """Fitted curves L_m(C) = E[m] + A[m] * (C / c_ref) ** -alpha[m]; E[m] is one value repeated when shared_E,
    alpha one float when shared_alpha."""

    alpha: float | np.ndarray
    E: np.ndarray  # [M]
    A: np.ndarray  # [M], >= 0
    c_ref: float
    shared_E: bool
    alpha_fixed: bool  # alpha was given, not fitted
    alpha_at_bound: bool  # the fitted exponent sits on ALPHA_BOUNDS: the rungs did not pin it down
    identified: bool  # no fewer observations than parameters and one best exponent, not a stretch of them
    rss: float
    n_obs: int
    n_params: int
    shared_alpha: bool = True

    def as_dict(self) -> dict:
        """JSON-able parameters."""
        return {
            "form": "L_m(C) = E" + ("" if self.shared_E else "_m") + " + A_m * (C / c_ref)^-alpha"
                    + ("" if self.shared_alpha else "_m"),
            "alpha": float(self.alpha) if self.shared_alpha else [float(v) for v in self.alpha],
            "shared_alpha": self.shared_alpha,
            "E": float(self.E[0]) if self.shared_E else [float(v) for v in self.E],
            "A": [float(v) for v in self.A],
            "c_ref": float(self.c_ref),
            "shared_E": self.shared_E,
            "alpha_fixed": self.alpha_fixed,
            "alpha_at_bound": self.alpha_at_bound,
            "identified": self.identified,
            "rss": float(self.rss),
            "rmse": float(math.sqrt(self.rss / self.n_obs)),
            "n_obs": self.n_obs,
            "n_params": self.n_params,
        }


def fit_curves(
    compute,
    losses_mean,
    shared_E: bool = True,
    alpha: float | None = None,
    alpha_bounds: tuple[float, float] = ALPHA_BOUNDS,
    shared_alpha: bool = True,
) -> LadderFit:
    """Least-squares fit of L_m(C) = E + A_m * (C / c_ref) ** -alpha to losses_mean [M, R] at compute [R].

    Why this form. A ladder scales parameters and tokens together, so each rung sits near the compute frontier where
    the Chinchilla law L(N, D) = E + A/N^a + B/D^b reduces to E + A * C^-alpha. A mixture changes how much each FLOP
    is worth: A_m = A * k_m^-alpha is a constant effective-compute multiplier k_m, so the curves are parallel in
    log(L - E) vs log C and share alpha. They share E because the irreducible loss is the entropy of the held-out
    text, which no training mixture changes once every domain is sampled. That leaves M + 2 parameters for M * R
    points, where a free 3-parameter curve per mixture would interpolate 3 rungs exactly and extrapolate wildly.
    The price: parallel curves never cross, so the fit cannot foresee a rank change (the self-check measures that).

    shared_E=False gives each mixture its own E_m (2M + 1 parameters; the curves may cross once and the gap at
    infinite compute is E_m - E_n). With few rungs over a 16x span, E_m and A_m trade off almost perfectly, so that
    gap is an extrapolation of noisy curvature: expect wide intervals, and with 2 rungs it is not identified unless
    alpha is fixed.

    Fitting: c_ref is the geometric mean of the rungs (centred log C keeps A_m at mid-ladder scale). Given alpha,
    the best E and A_m >= 0 with 0 <= E < min(loss) are found exactly (the problem is linear in them), so only the
    profile over alpha is searched: a log-spaced grid over alpha_bounds, then golden section around its minimum.
    No starting point to get wrong. A given `alpha` is held fixed.

    shared_alpha=False gives each mixture its own exponent (with one E: 2M + 1 parameters, identified from 3
    rungs). Why: a mixture changes more than how much a FLOP is worth. One that concentrates on few domains runs out
    of their new tokens and repeats them as the rungs grow (repeated tokens are worth less: Muennighoff et al. 2023),
    and a small model cannot use the diversity a larger one can, so the gaps between mixtures grow or shrink with
    scale and parallel curves miss it. Fitting: given E, each mixture's log(L - E) is a line in log C (least squares
    in log space, the exponent clipped to alpha_bounds); E is profiled on a grid dense near min(loss), then refined
    by golden section on the loss-space RSS.
    """
    compute, Y = _as_ladder(compute, losses_mean)
    M, R = Y.shape
    c_ref = float(np.exp(np.log(compute).mean()))
    if not shared_alpha:
        if not shared_E or alpha is not None:
            raise ValueError("a free exponent per mixture needs a shared E and no fixed alpha")
        E, a, A, rss = _fit_free_alpha(np.log(compute / c_ref), Y[None], alpha_bounds)
        return LadderFit(alpha=a[0], E=np.full(M, E[0]), A=A[0], c_ref=c_ref, shared_E=True, alpha_fixed=False,
                         alpha_at_bound=bool(np.any((a[0] <= alpha_bounds[0]) | (a[0] >= alpha_bounds[1]))),
                         identified=R >= 3, rss=float(rss[0]), n_obs=M * R, n_params=2 * M + 1, shared_alpha=False)
    a, E, A, rss, flat = _fit_batch(compute / c_ref, Y[None], shared_E, alpha, alpha_bounds)
    n_params = (M + 1 if shared_E else 2 * M) + (alpha is None)
    lo, hi = alpha_bounds
    return LadderFit(
        alpha=float(a[0]),
        E=E[0],
        A=A[0],
        c_ref=c_ref,
        shared_E=shared_E,
        alpha_fixed=alpha is not None,
        alpha_at_bound=alpha is None and not (lo * (1 + 1e-4) < a[0] < hi * (1 - 1e-4)),
        identified=M * R >= n_params and not bool(flat[0]),
        rss=float(rss[0]),
        n_obs=M * R,
        n_params=n_params,
    )


def predict(fit: LadderFit | dict, compute) -> np.ndarray:
    """Predicted loss per mixture: [M] at a scalar compute, [M, K] at K computes. `fit` may also be the
    `as_dict()` form (e.g. `ladder_verdict(...)["fit"]` read back from ladder.json)."""
    if isinstance(fit, dict):
        A = np.asarray(fit["A"], dtype=np.float64)
        E = np.broadcast_to(np.asarray(fit["E"], dtype=np.float64), A.shape)
        alpha, c_ref = fit["alpha"], fit["c_ref"]
    else:
        A, E, alpha, c_ref = fit.A, fit.E, fit.alpha, fit.c_ref
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), A.shape)
    c = np.asarray(compute, dtype=np.float64)
    if c.ndim:
        return E[:, None] + A[:, None] * (c[None, :] / c_ref) ** -alpha[:, None]
    return E + A * (c / c_ref) ** -alpha


def ladder_verdict(
    compute,
    losses,
    names,
    target_compute: float,
    baselines=("uniform", "natural"),
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    shared_E: bool = True,
    unit: str = "nats",
    shared_alpha: bool = True,
) -> dict:
    """Fit on the seed means, extrapolate to target_compute, and bootstrap over seeds for intervals and verdicts.

    losses [S, M, R]: seed s uses the same init and data order for every mixture, so each bootstrap draw resamples
    seed indices and applies them to all mixtures (pairing kept) before refitting. Intervals are percentile
    intervals widened by sqrt(S / (S - 1)) * t_{S-1} / z around the bootstrap median: the plain percentile
    bootstrap under-covers with a handful of seeds (it uses the plug-in variance and normal tails), and the
    widening makes it match the paired t-interval when the fit is linear in the data. With S = 1 there are no
    intervals and the verdicts say so. Gaps are mixture - best baseline (lowest predicted baseline loss in the point
    fit); negative = the mixture is better. Deterministic given `seed`.
    """
    compute, L = _as_ladder(compute, losses, seeds=True)
    S, M, R = L.shape
    names = _checked_names(compute, L, names, baselines, target_compute)
    fit = fit_curves(compute, L.mean(0), shared_E=shared_E, shared_alpha=shared_alpha)
    point = predict(fit, target_compute)
    base_idx = [names.index(b) for b in baselines]
    best = base_idx[int(np.argmin(point[base_idx]))]
    pairs = [(m, best) for m in range(M) if m not in base_idx] + list(combinations(base_idx, 2))

    draws, boot_alpha = (None, None) if S < 2 or n_boot <= 0 else _bootstrap(
        compute, L, fit, target_compute, n_boot, seed, shared_E, shared_alpha)

    def interval(p, d):
        return None if draws is None else _widened_interval(p, d, confidence, S)

    comparisons = [_comparison(names, a, b, point, draws, interval, base_idx, f"{_sci(target_compute)} FLOPs", unit)
                   for a, b in pairs]
    fidelity = proxy_fidelity(L.mean(0))
    fit_out = fit.as_dict()
    if draws is not None and shared_alpha:
        fit_out["alpha_interval"] = _widened_interval(fit.alpha, boot_alpha, confidence, S)
    return {
        "names": names,
        "compute": [float(c) for c in compute],
        "target_compute": float(target_compute),
        "extrapolation_factor": float(target_compute / compute[-1]),
        "n_seeds": S,
        "n_rungs": R,
        "unit": unit,
        "confidence": confidence,
        "n_boot": 0 if draws is None else int(n_boot),
        "interval_method": None if draws is None else
        "seed bootstrap (pairing kept), percentile interval widened by sqrt(S/(S-1)) * t_{S-1}/z",
        "note": "1 seed: no bootstrap, so no intervals; verdicts are point predictions" if S == 1 else None,
        "fit": fit_out,
        "baselines": list(baselines),
        "best_baseline": names[best],
        "predictions": {
            n: {"loss": float(point[m]), "interval": interval(float(point[m]), None if draws is None else draws[:, m])}
            for m, n in enumerate(names)
        },
        "comparisons": comparisons,
        "verdicts": [c["verdict"] for c in comparisons],
        "observed_mean": {n: [float(v) for v in L.mean(0)[m]] for m, n in enumerate(names)},
        "measured_top": measured_top(compute, L, names, baselines, confidence, unit),
        "proxy_fidelity": [None if np.isnan(v) else float(v) for v in fidelity],
        "self_check": self_check(compute, L, names, shared_E=shared_E, shared_alpha=shared_alpha),
    }


def measured_top(compute, L, names, baselines=("uniform", "natural"), confidence: float = 0.95,
                 unit: str = "nats") -> dict:
    """Each mixture against the best baseline as measured at the top rung, no curve: the mean paired difference
    over seeds with its t-interval, and a verdict line. The evidence that needs no extrapolation: ranking by the
    largest run one can afford predicted the 1B-scale winner in ~80% of pairs in DataDecide (Magnusson et al.
    2025), and none of the scaling-law methods tried there did better at equal compute."""
    from mixers.evaluation import t_interval

    compute, L = _as_ladder(compute, losses=L, seeds=True)
    names = [str(n) for n in names]
    base_idx = [names.index(b) for b in baselines]
    top = L[:, :, -1]  # [S, M]
    best = base_idx[int(np.argmin(top.mean(0)[base_idx]))]
    pairs = [(m, best) for m in range(len(names)) if m not in base_idx] + list(combinations(base_idx, 2))
    when = f"the top rung ({_sci(compute[-1])} FLOPs, measured)"
    out = []
    for a, b in pairs:
        stat = t_interval(top[:, a] - top[:, b], confidence)
        outcome, line = _verdict(names[a], names[b], stat["mean"], stat["ci95"], when, unit, measured=True)
        out.append({"mixture": names[a], "baseline": names[b], "gap": stat["mean"], "interval": stat["ci95"],
                    "outcome": outcome, "verdict": line})
    return {"compute": float(compute[-1]), "best_baseline": names[best], "comparisons": out,
            "verdicts": [c["verdict"] for c in out]}


# The smallest span of training compute the rungs may cover: over less, the curves' exponents are not pinned down.
MIN_SPAN = 16


def _checked_names(compute, L, names, baselines, target_compute: float) -> list[str]:
    """The mixture names as strings, once the ladder is one a verdict can come from (else a ValueError saying why)."""
    _, M, R = L.shape
    names = [str(n) for n in names]
    if len(names) != M or len(set(names)) != M:
        raise ValueError(f"names must be {M} distinct mixture names, got {names}")
    missing = [b for b in baselines if b not in names]
    if missing:
        raise ValueError(f"baseline mixtures {missing} are not among the names {names}")
    if R < 3 or compute[-1] / compute[0] < MIN_SPAN:
        raise ValueError(f"a ladder needs >= 3 rungs spanning >= {MIN_SPAN}x compute, got {R} spanning "
                         f"{compute[-1] / compute[0]:.3g}x")
    if not target_compute > 0:
        raise ValueError(f"target_compute must be positive, got {target_compute}")
    return names


def _bootstrap(compute, L, fit: LadderFit, target_compute, n_boot, seed, shared_E, shared_alpha):
    """Losses at the target [B, M] from refits on seed-resampled ladders (each draw's seeds applied to every
    mixture, keeping the pairing), and the draws' exponents."""
    S = L.shape[0]
    idx = np.random.default_rng(seed).integers(0, S, size=(n_boot, S))
    if shared_alpha:
        boot_alpha, boot_E, boot_A, _, _ = _fit_batch(compute / fit.c_ref, L[idx].mean(1), shared_E)
        return boot_E + boot_A * (target_compute / fit.c_ref) ** -boot_alpha[:, None], boot_alpha
    boot_E, boot_alpha, boot_A, _ = _fit_free_alpha(np.log(compute / fit.c_ref), L[idx].mean(1))
    return boot_E[:, None] + boot_A * (target_compute / fit.c_ref) ** -boot_alpha, boot_alpha


def self_check(compute, losses, names, shared_E: bool = True, shared_alpha: bool = True) -> dict:
    """Leave the top rung out, fit the rest, predict the top rung; compare ranking pairs with the smallest rung's.

    The error has a part common to every mixture (`common_error`, its mean) and the rest; verdicts are gaps between
    mixtures, where the common part cancels, so `max_gap_error` (the largest error of a predicted pairwise gap,
    max - min of the errors) is the error that bears on them.

    A pair counts when its observed top-rung gap exceeds seed noise (|mean paired difference| > 2 standard errors
    over seeds; with 1 seed every pair with a nonzero gap counts). With 2 rungs left the shared-E model is
    identified when M >= 2 (M + 2 parameters for 2M points); when it is not (per-mixture E, identical curves, or an
    exponent on its bound) alpha is taken from the full fit, which lets the top rung leak in, and `note` says so.
    A free exponent per mixture (shared_alpha=False) needs 3 rungs left; with 2 the check fits parallel curves and
    `note` says so.

    `local_power_law`: a second prediction of the top rung that shares none of the fit's assumptions about the
    low rungs, each mixture's power law with no irreducible term through the two highest rungs left (its local
    exponent in log L vs log C). Where the loss has an irreducible part the local exponent overstates the
    decrease still to come, so this prediction errs low; the fitted curve errs either way (on the laddered
    corpora of benchmarks/RESULTS.md it erred high, its low rungs on a steeper stretch). `bracketed`: for how many
    mixtures the observed loss fell between the two predictions; `midpoint_mean_abs_error`: the error of their
    mean.
    """
    compute, L = _as_ladder(compute, losses, seeds=True)
    S, M, R = L.shape
    names = [str(n) for n in names]
    if R < 3:
        raise ValueError(f"the self-check leaves the top rung out and needs >= 3 rungs, got {R}")
    mean = L.mean(0)
    source, note = "lower rungs", None
    if not shared_alpha and R - 1 < 3:
        shared_alpha, note = True, (f"a free exponent per mixture is not identified from {R - 1} rungs; the check "
                                    "fits parallel curves (one exponent)")
    fit = fit_curves(compute[:-1], mean[:, :-1], shared_E=shared_E, shared_alpha=shared_alpha)
    if shared_alpha and (not fit.identified or fit.alpha_at_bound):
        full_alpha = fit_curves(compute, mean, shared_E=shared_E).alpha
        why = "not identified" if not fit.identified else f"on its bound ({fit.alpha:.3g})"
        fit = fit_curves(compute[:-1], mean[:, :-1], shared_E=shared_E, alpha=full_alpha)
        source = "full fit"
        note = ((note + "; ") if note else "") + (
            f"the exponent from the {R - 1} lower rungs is {why}; alpha was taken from the full fit, "
            "so the top rung partly informs this check")
    pred = predict(fit, compute[-1])
    observed = mean[:, -1]
    error = pred - observed

    counted, right = 0, {"fit": 0, "smallest_rung": 0, "largest_fit_rung": 0}
    for i, j in combinations(range(M), 2):
        d = L[:, i, -1] - L[:, j, -1]
        gap = d.mean()
        se = d.std(ddof=1) / math.sqrt(S) if S > 1 else 0.0
        if gap == 0 or abs(gap) <= 2 * se:
            continue
        counted += 1
        truth = np.sign(gap)
        right["fit"] += np.sign(pred[i] - pred[j]) == truth
        right["smallest_rung"] += np.sign(mean[i, 0] - mean[j, 0]) == truth
        right["largest_fit_rung"] += np.sign(mean[i, -2] - mean[j, -2]) == truth
    rule = ("|mean paired top-rung difference| > 2 x its standard error over seeds" if S > 1 else
            "1 seed: every pair with a nonzero top-rung gap (no noise estimate)")
    return {
        "held_out_compute": float(compute[-1]),
        "fit_rungs": R - 1,
        "alpha": float(fit.alpha) if fit.shared_alpha else [float(v) for v in fit.alpha],
        "alpha_source": source,
        "note": note,
        "predicted": dict(zip(names, map(float, pred))),
        "observed": dict(zip(names, map(float, observed))),
        "error": dict(zip(names, map(float, error))),
        "mean_abs_error": float(np.abs(error).mean()),
        "common_error": float(error.mean()),
        "max_gap_error": float(error.max() - error.min()),
        "pairs_total": M * (M - 1) // 2,
        "pairs_counted": counted,
        "pair_rule": rule,
        "accuracy": {k: (float(v) / counted if counted else None) for k, v in right.items()},
        "local_power_law": _local_power_law_check(compute[:-1], mean[:, :-1], compute[-1], pred, observed, names),
    }


def _local_power_law_check(compute, mean, at: float, pred, observed, names) -> dict:
    """The self-check's cross-check: each mixture's L = A * C^-a through its two highest rungs, at compute `at`,
    against the `observed` losses there and the fit's prediction `pred` (see `self_check`)."""
    slope = np.log(mean[:, -1] / mean[:, -2]) / math.log(compute[-1] / compute[-2])
    local = mean[:, -1] * np.exp(slope * math.log(at / compute[-1]))
    lo, hi = np.minimum(pred, local), np.maximum(pred, local)
    return {
        "predicted": dict(zip(names, map(float, local))),
        "error": dict(zip(names, map(float, local - observed))),
        "mean_abs_error": float(np.abs(local - observed).mean()),
        "bracketed": int(np.sum((lo <= observed) & (observed <= hi))),
        "midpoint_mean_abs_error": float(np.abs((pred + local) / 2 - observed).mean()),
    }


def proxy_fidelity(losses_mean) -> np.ndarray:
    """Spearman correlation of the mixtures' order at each rung with their order at the top rung: [R], nan where
    a rung (or the top rung) has no order (all losses equal)."""
    Y = np.asarray(losses_mean, dtype=np.float64)
    out = np.full(Y.shape[1], np.nan)
    for r in range(Y.shape[1]):
        if np.ptp(Y[:, r]) > 0 and np.ptp(Y[:, -1]) > 0 and Y.shape[0] >= 2:
            with warnings.catch_warnings():  # scipy warns on tiny samples; the value is still the right one
                warnings.simplefilter("ignore")
                out[r] = stats.spearmanr(Y[:, r], Y[:, -1]).statistic
    return out


def verdict_table(result: dict) -> str:
    """Markdown summary of a `ladder_verdict` result: fit, predictions and gaps at the target, self-check."""
    unit, fit, conf = result["unit"], result["fit"], f"{result['confidence']:.0%}"
    seeds = f"{result['n_seeds']} seed" + ("s" if result["n_seeds"] != 1 else "")
    if fit.get("shared_alpha", True):
        alpha = f"alpha = {fit['alpha']:.3f}" + (f" {_ci(fit['alpha_interval'])}" if "alpha_interval" in fit else "")
    else:
        alpha = "alpha per mixture " + ", ".join(f"{n} {a:.3f}" for n, a in zip(result["names"], fit["alpha"]))
    E = f"E = {fit['E']:.3f}" if fit["shared_E"] else "E per mixture"
    lines = [
        f"## Ladder verdict at {_sci(result['target_compute'])} FLOPs",
        "",
        f"{result['extrapolation_factor']:.3g}x beyond the top rung; {result['n_rungs']} rungs, {seeds}"
        + (f", {conf} intervals from {result['n_boot']} seed-bootstrap refits." if result["n_boot"] else
           ", no intervals."),
        f"Fit: `{fit['form']}`, {alpha}, {E}, rmse {fit['rmse']:.4f} {unit}.",
        "",
        f"| mixture | loss at target ({unit}) | gap vs {result['best_baseline']} | verdict |",
        "|---|---|---|---|",
    ]
    gaps = {c["mixture"]: c for c in result["comparisons"] if c["kind"] == "vs_best_baseline"}
    for name, p in result["predictions"].items():
        c = gaps.get(name)
        gap = "" if c is None else f"{c['gap']:+.4f} {_ci(c['interval'])}".strip()
        verdict = "baseline" if c is None else c["outcome"]
        loss = f"{p['loss']:.4f} {_ci(p['interval'])}".strip()
        lines.append(f"| {name} | {loss} | {gap} | {verdict} |")
    lines += ["", *[f"- {v}" for v in result["verdicts"]]]
    top = result.get("measured_top")
    sc = result["self_check"]
    if top:
        below = sc["accuracy"]["largest_fit_rung"]
        lines += ["", f"Measured at the top rung ({_sci(top['compute'])} FLOPs), no extrapolation: the mean paired "
                  f"difference over seeds, {conf} t-intervals."
                  + ("" if below is None else f" How far such a ranking carries: the rung below it ordered "
                     f"{below:.0%} of the top rung's {sc['pairs_counted']} pairs above the seed noise right."), "",
                  *[f"- {v}" for v in top["verdicts"]]]
    acc = sc["accuracy"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines += [
        "",
        f"Self-check (top rung at {_sci(sc['held_out_compute'])} left out, alpha from the {sc['alpha_source']}): "
        f"mean |error| {sc['mean_abs_error']:.4f} {unit} ({sc['common_error']:+.4f} common to every mixture; "
        f"predicted gaps off by at most {sc['max_gap_error']:.4f}); pair order right: fit {fmt(acc['fit'])}, "
        f"smallest rung {fmt(acc['smallest_rung'])}, largest fitted rung {fmt(acc['largest_fit_rung'])} "
        f"over {sc['pairs_counted']} of {sc['pairs_total']} pairs ({sc['pair_rule']}).",
    ]
    lp = sc.get("local_power_law")
    if lp:
        lines.append(f"Cross-check: a local power law (no irreducible term) through the two highest fitted rungs "
                     f"predicts the top rung with mean |error| {lp['mean_abs_error']:.4f} {unit}; the observed loss "
                     f"lies between its prediction and the fit's for {lp['bracketed']} of {len(sc['error'])} "
                     f"mixtures" + (f"; their midpoint's mean |error| {lp['midpoint_mean_abs_error']:.4f} {unit}."
                                    if "midpoint_mean_abs_error" in lp else "."))
    if sc["note"]:
        lines.append(f"Note: {sc['note']}.")
    fid = ", ".join(f"{_sci(c)}: {fmt(v)}" for c, v in zip(result["compute"], result["proxy_fidelity"]))
    lines += [f"Proxy fidelity (Spearman vs the top rung): {fid}."]
    if result["note"]:
        lines.append(f"Note: {result['note']}.")
    return "\n".join(lines) + "\n"


# --- fitting core ---------------------------------------------------------------------------------------------


def _solve_given_alpha(z, Y, shared_E):
    """Exact least squares over E in [0, min loss) and A_m >= 0 for fixed z = x**-alpha.

    z [..., R] and Y [..., M, R] broadcast over leading dims; returns rss [...], E [..., M], A [..., M].
    After profiling out A_m = max(0, z.(y_m - E) / z.z), the RSS is convex and piecewise quadratic in E with kinks
    where some A_m hits 0; its minimum is a clipped stationary point of one piece, a kink or a bound, so evaluating
    all of those candidates and taking the least is exact (and vectorizes, unlike an iterative solver).
    """
    batch = np.broadcast_shapes(z.shape[:-1], Y.shape[:-2])
    M, R = Y.shape[-2:]
    z = np.broadcast_to(z, batch + (R,))
    Y = np.broadcast_to(Y, batch + (M, R))
    zz = (z * z).sum(-1)[..., None]  # [..., 1]
    sz = z.sum(-1)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if shared_E:
            mu = Y.mean((-2, -1))[..., None]  # centring keeps the RSS formula free of cancellation
            yc = Y - mu[..., None]
            lb, ub = -mu, Y.min((-2, -1))[..., None] * (1 - 1e-9) - mu
            s = (yc * z[..., None, :]).sum(-1)  # [..., M]
            # Stationary point when the k mixtures with the largest s are active (A > 0): one per piece.
            cums = np.concatenate([np.zeros(batch + (1,)), np.cumsum(-np.sort(-s, axis=-1), -1)], -1)
            k = np.arange(M + 1)
            stationary = -(sz / zz) * cums / (M * R - k * sz**2 / zz)
            cand = np.concatenate([stationary, s / sz, lb, ub], -1)  # [..., K]
            cand = np.clip(np.where(np.isfinite(cand), cand, lb), lb, ub)
            reduced = np.maximum(s[..., None, :] - cand[..., :, None] * sz[..., None], 0)  # [..., K, M]
            rss = (yc**2).sum((-2, -1))[..., None] + M * R * cand**2 - (reduced**2).sum(-1) / zz
            pick = rss.argmin(-1)[..., None]
            e = np.take_along_axis(cand, pick, -1)  # [..., 1]
            A = np.maximum(s - e * sz, 0) / zz
            return np.take_along_axis(rss, pick, -1)[..., 0], np.broadcast_to(e + mu, batch + (M,)), A
        # Per-mixture E: M independent two-parameter problems, same candidate scheme per mixture.
        mu = Y.mean(-1)  # [..., M]
        yc = Y - mu[..., None]
        lb, ub = -mu, Y.min(-1) * (1 - 1e-9) - mu
        s = (yc * z[..., None, :]).sum(-1)
        slope = s / (zz - sz**2 / R)
        cand = np.stack([-slope * sz / R, s / sz, lb, ub, np.zeros_like(s)], -1)  # OLS, kink, bounds, A = 0
        cand = np.clip(np.where(np.isfinite(cand), cand, lb[..., None]), lb[..., None], ub[..., None])
        reduced = np.maximum(s[..., None] - cand * sz[..., None], 0)
        rss = (yc**2).sum(-1)[..., None] + R * cand**2 - reduced**2 / zz[..., None]
        pick = rss.argmin(-1)[..., None]
        e = np.take_along_axis(cand, pick, -1)[..., 0]
        A = np.maximum(s - e * sz, 0) / zz
        return np.take_along_axis(rss, pick, -1)[..., 0].sum(-1), e + mu, A


def _fit_free_alpha(logx, Y, alpha_bounds=ALPHA_BOUNDS, grid: int = 96, steps: int = 40):
    """Shared E, one exponent per mixture, for B ladders at once: logx [R] = log(compute / c_ref), Y [B, M, R] ->
    E [B], alpha [B, M], A [B, M], rss [B]. See `fit_curves` (shared_alpha=False)."""
    Y = np.asarray(Y, dtype=np.float64)
    B = len(Y)
    xc = logx - logx.mean()
    lo_a, hi_a = alpha_bounds

    def solve(E):  # E [B, K] -> rss [B, K], alpha [B, K, M], A [B, K, M]
        Z = np.log(Y[:, None] - E[..., None, None])
        a = np.clip(-(Z * xc).sum(-1) / (xc**2).sum(), lo_a, hi_a)
        A = np.exp(Z.mean(-1) + a * logx.mean())
        pred = E[..., None, None] + A[..., None] * np.exp(-a[..., None] * logx)
        return ((pred - Y[:, None]) ** 2).sum((-2, -1)), a, A

    ymin = Y.min((1, 2))
    E = (1 - np.geomspace(1, 1e-4, grid))[None] * ymin[:, None]  # dense near min(loss), where curvature lives
    i = solve(E)[0].argmin(1)
    rows = np.arange(B)
    lo, hi = E[rows, np.maximum(i - 1, 0)], E[rows, np.minimum(i + 1, grid - 1)]
    for _ in range(steps):
        c, d = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
        left = solve(c[:, None])[0][:, 0] <= solve(d[:, None])[0][:, 0]
        hi, lo = np.where(left, d, hi), np.where(left, lo, c)
    e = (lo + hi) / 2
    rss, a, A = solve(e[:, None])
    return e, a[:, 0], A[:, 0], rss[:, 0]


def _fit_batch(x, Y, shared_E, alpha=None, alpha_bounds=ALPHA_BOUNDS):
    """Fit B ladders at once. x [R] = compute / c_ref, Y [B, M, R] -> alpha, E [B, M], A [B, M], rss, flat (all [B])."""
    parts = [_fit_chunk(np.log(x), Y[i:i + _CHUNK], shared_E, alpha, alpha_bounds) for i in range(0, len(Y), _CHUNK)]
    return tuple(np.concatenate(p) for p in zip(*parts))


def _fit_chunk(logx, Y, shared_E, alpha, alpha_bounds):
    B = len(Y)

    def profile(log_alpha):  # log_alpha [B] -> rss [B]
        return _solve_given_alpha(np.exp(-np.exp(log_alpha)[:, None] * logx), Y, shared_E)[0]

    flat = np.zeros(B, dtype=bool)
    if alpha is not None:
        la = np.full(B, math.log(alpha))
    else:
        grid = np.linspace(math.log(alpha_bounds[0]), math.log(alpha_bounds[1]), _GRID)
        rss_grid = _solve_given_alpha(np.exp(-np.exp(grid)[:, None] * logx)[None], Y[:, None], shared_E)[0]
        i = rss_grid.argmin(1)
        scale = ((Y - Y.mean((1, 2), keepdims=True)) ** 2).sum((1, 2))
        # Unidentified = a stretch of exponents fits equally well (e.g. identical mixtures on 2 rungs).
        near = rss_grid <= rss_grid.min(1, keepdims=True) + 1e-10 * np.maximum(scale, 1e-300)[:, None]
        flat = near.sum(1) >= 3
        lo, hi = grid[np.maximum(i - 1, 0)], grid[np.minimum(i + 1, _GRID - 1)]
        c, d = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
        fc, fd = profile(c), profile(d)
        for _ in range(_GOLDEN_STEPS):  # the surviving inner point is reused: one profile per step
            left = fc <= fd
            hi, lo = np.where(left, d, hi), np.where(left, lo, c)
            c, d = np.where(left, hi - _GOLDEN * (hi - lo), d), np.where(left, c, lo + _GOLDEN * (hi - lo))
            f = profile(np.where(left, c, d))
            fc, fd = np.where(left, f, fd), np.where(left, fc, f)
        la = (lo + hi) / 2
        # The profile is continuous but need not be unimodal inside the bracket: never do worse than the grid.
        la = np.where(profile(la) <= rss_grid[np.arange(B), i], la, grid[i])
    a = np.exp(la)
    rss, E, A = _solve_given_alpha(np.exp(-a[:, None] * logx), Y, shared_E)
    return a, np.array(E), A, rss, flat


# --- helpers ----------------------------------------------------------------------------------------------------


def _as_ladder(compute, losses, seeds=False):
    compute = np.asarray(compute, dtype=np.float64)
    L = np.asarray(losses, dtype=np.float64)
    want = 3 if seeds else 2
    if L.ndim != want:
        raise ValueError(f"losses must be {'[seeds, mixtures, rungs]' if seeds else '[mixtures, rungs]'}, "
                         f"got shape {L.shape}")
    if compute.ndim != 1 or len(compute) != L.shape[-1] or len(compute) < 2:
        raise ValueError(f"compute must list one value per rung ({L.shape[-1]}, at least 2), got {compute.shape}")
    if not (np.all(np.isfinite(compute)) and compute[0] > 0 and np.all(np.diff(compute) > 0)):
        raise ValueError(f"compute must be positive and strictly increasing, got {compute.tolist()}")
    if not (np.all(np.isfinite(L)) and np.all(L > 0)):
        raise ValueError("losses must be finite and positive")
    return compute, L


def _widened_interval(point, draws, confidence, S) -> list[float]:
    """Percentile interval of the bootstrap draws, stretched about their median by sqrt(S/(S-1)) * t_{S-1} / z."""
    q = (1 + confidence) / 2
    lo, med, hi = np.quantile(draws, [1 - q, 0.5, q])
    k = math.sqrt(S / (S - 1)) * stats.t.ppf(q, S - 1) / stats.norm.ppf(q)
    return [float(med - k * (med - lo)), float(med + k * (hi - med))]


def _comparison(names, a, b, point, draws, interval, base_idx, when, unit) -> dict:
    """Mixture a against baseline b at the target: the gap, its interval and the verdict line."""
    gap = float(point[a] - point[b])
    ci = interval(gap, None if draws is None else draws[:, a] - draws[:, b])
    outcome, line = _verdict(names[a], names[b], gap, ci, when, unit)
    return {"mixture": names[a], "baseline": names[b], "kind": "baseline_pair" if a in base_idx else "vs_best_baseline",
            "gap": gap, "interval": ci, "distinguishable": None if ci is None else outcome != "indistinguishable",
            "outcome": outcome, "verdict": line}


def _verdict(a, b, gap, ci, when, unit, measured: bool = False):
    if ci is None:
        if measured:
            side = "below" if gap < 0 else "above"
            return "untested", (f"{a} measured {abs(gap):.3f} {unit} {side} {b} at {when} "
                                "(1 seed: no interval, not tested against seed noise)")
        side = "beat" if gap < 0 else "lose to"
        return "untested", (f"{a} is predicted to {side} {b} at {when} by {abs(gap):.3f} {unit} "
                            "(1 seed: no interval, not tested against seed noise)")
    lo, hi = ci
    if hi < 0:
        return "better", f"{a} beats {b} at {when} by {-gap:.3f} {unit} [{-hi:.3f}, {-lo:.3f}]"
    if lo > 0:
        return "worse", f"{a} loses to {b} at {when} by {gap:.3f} {unit} [{lo:.3f}, {hi:.3f}]"
    return "indistinguishable", (f"{a} is not distinguishable from {b} at {when} "
                                 f"(gap {gap:.3f} {unit} [{lo:.3f}, {hi:.3f}])")


def _sci(x: float) -> str:
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _ci(ci) -> str:
    return "" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"
