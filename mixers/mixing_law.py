"""The data mixing law (Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language Modeling
Performance", arXiv 2403.16952): per validation domain i, L_i(r) = c_i + k_i exp(sum_j t_ij r_j) over the mixture
proportions r, fitted on RegMix's proxy runs; then the target is minimized over the capped simplex.

    w = MixingLaw(target="average", target_domains="python,c").fit("DATA")
    curate mix --method mixing-law DATA --out weights.json --target-domains python,c

The procedure:
1. Proxy runs: RegMix's (`RegMix.proxy_runs`: the same sampler, proxies, seed and cache, DATA/.regmix-cache by
   default), so after a RegMix run with the same proxy settings this trains nothing, and the reverse.
2. Fit each domain's law. On the simplex exp(t.r + a) = e^a exp(t.r), so k and a shift of t are one degree of
   freedom: the fit pins it with sum_j t_ij = 0 (t in an orthonormal basis of that subspace) and reports k and t in
   that form. For fixed t the law is linear in (c, k), which come from linear least squares (variable projection);
   scipy's least_squares fits t from `restarts` starts: the log-linear fit of log(L - c0) for a few floors c0 below
   the smallest loss, then seeded random ones. The lowest residual wins.
3. Cross-validation: K-fold out-of-fold predictions of every domain's law; per domain and for the target (the mean
   of the target domains' predicted losses): Spearman rho, MAE and R^2, as RegMix reports its regressors'.
4. Minimize the target over {r: sum r = 1, 0 <= r_j <= cap_j}, cap_j = the sampler's repetition cap and
   `max_epochs` over a `budget_tokens` run (as RegMix): `num_candidates` mixtures from RegMix's prior, the `refine`
   best refined by SLSQP with the law's gradient. This is done for the laws fitted on all runs, for each fold's laws
   from step 3 (`average_folds`) and for `bootstrap` refits on runs resampled with replacement, and the mixtures are
   averaged (bagging the decision). Why: the argmin of one fit sits on a face of the simplex and is unstable where
   the runs cannot tell domains apart. An exact copy of a domain is the extreme case: each fit hands all of the
   pair's share to whichever twin its noise favours, and six fits (all runs and five folds) are too few to average
   that coin flip out (benchmarks/RESULTS.md). The average over resamples estimates the optimal mixture expected
   under the fit's sampling noise and, like RegMix's top-k mean, spreads what the runs cannot resolve. Weights
   under `min_weight` are then zeroed. Seeded: deterministic.

Olmix's log-linear regressor (Chen et al. 2026) fits exp(log c_i) + exp(t_i . r): the same family with c_i > 0 and
k_i > 0, so it cannot fit the runs better than this form; it is not a second form here.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixers.regmix import (PROXY_PARAMS, ProxyRuns, RegMix, RegMixWeights, _spearman, final_caps, mixer_config,
                           resolve_target, run_diagnostics, sample_mixtures, target_loss)
from mixers.weights import cap_by_epochs

# ---------------------------------------------------------------------------------------------------------------
# The law and its fit
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LawFit:
    """One domain's fitted law L(r) = c + k exp(t . r), with sum(t) = 0, and its root-mean-square training error."""

    c: float
    k: float
    t: np.ndarray
    rmse: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.c + self.k * np.exp(np.asarray(X, dtype=np.float64) @ self.t)


def sum_zero_basis(k: int) -> np.ndarray:
    """[k, k-1] orthonormal columns orthogonal to the all-ones vector (the Helmert basis)."""
    B = np.zeros((k, k - 1))
    for j in range(1, k):
        B[:j, j - 1] = 1.0
        B[j, j - 1] = -j
        B[:, j - 1] /= np.sqrt(j * (j + 1))
    return B


def _linear_ck(e: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(c, k, residuals) of the least-squares fit y ~ c + k e."""
    A = np.stack([np.ones_like(e), e], axis=1)
    (c, k), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(c), float(k), c + k * e - y


def _starts(Z: np.ndarray, y: np.ndarray, rng: np.random.Generator, restarts: int, bound: float) -> list[np.ndarray]:
    """Initial u (t = B u): log-linear fits of log(y - c0) for floors c0 below min(y), then random draws."""
    spread = max(float(np.ptp(y)), 1e-6)
    A = np.column_stack([np.ones(len(y)), Z])
    out = []
    for margin in (0.1, 0.5, 2.0):
        coef, *_ = np.linalg.lstsq(A, np.log(y - (y.min() - margin * spread)), rcond=None)
        out.append(coef[1:])
    out += [rng.normal(0.0, 2.0, Z.shape[1]) for _ in range(max(0, restarts - len(out)))]
    return [np.clip(u, -bound, bound) for u in out[: max(1, restarts)]]


def fit_law(X: np.ndarray, y: np.ndarray, seed: int = 0, restarts: int = 8, bound: float = 10.0,
            start: LawFit | None = None) -> LawFit:
    """Fit L(r) = c + k exp(t . r) to mixtures X [N, k] and losses y [N] (see the module docstring, step 2), with
    every |t_j| <= `bound` (t in the orthonormal sum-zero basis). `start` (a fit on similar data, e.g. all runs for
    a bootstrap resample) is tried first, before `restarts` - 1 of the usual starts."""
    from scipy.optimize import least_squares

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    B = sum_zero_basis(X.shape[1])
    Z = X @ B  # t . r = (B u) . r = u . (B^T r)

    def residuals(u):
        return _linear_ck(np.exp(Z @ u), y)[2]

    starts = _starts(Z, y, np.random.default_rng([seed, 7]), restarts, bound)
    if start is not None:
        starts = [np.clip(B.T @ start.t, -bound, bound)] + starts[: max(0, restarts - 1)]
    best = None
    for u0 in starts:
        res = least_squares(residuals, u0, bounds=(-bound, bound), method="trf")
        if best is None or res.cost < best.cost - 1e-15:
            best = res
    t = B @ best.x
    c, k, res = _linear_ck(np.exp(X @ t), y)
    return LawFit(c, k, t, float(np.sqrt(np.mean(res**2))))


def fit_quality(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Spearman rho, MAE and R^2 of predictions against actual values."""
    sst = float(np.sum((actual - actual.mean()) ** 2))
    r2 = 1.0 - float(np.sum((predicted - actual) ** 2)) / sst if sst > 0 else float("nan")
    return {"spearman": _spearman(predicted, actual), "mae": float(np.mean(np.abs(predicted - actual))), "r2": r2}


def cross_validate_laws(X: np.ndarray, L: np.ndarray, folds: int, seed: int, restarts: int,
                        bound: float = 10.0) -> tuple[np.ndarray, list[list[LawFit]]]:
    """Out-of-fold predictions [N, k] of every domain's law (K-fold, shuffled with `seed`, RegMix's splits), and
    each fold's laws (one list of k per fold)."""
    from sklearn.model_selection import KFold

    oof = np.empty_like(L, dtype=np.float64)
    fold_laws = []
    for f, (tr, te) in enumerate(KFold(n_splits=min(folds, len(X)), shuffle=True, random_state=seed).split(X)):
        fold_laws.append([fit_law(X[tr], L[tr, i], seed + f, restarts, bound) for i in range(L.shape[1])])
        for i, law in enumerate(fold_laws[-1]):
            oof[te, i] = law.predict(X[te])
    return oof, fold_laws


def bootstrap_laws(X: np.ndarray, L: np.ndarray, count: int, seed: int, restarts: int, bound: float = 10.0,
                   base: list[LawFit] | None = None) -> list[list[LawFit]]:
    """`count` bootstrap refits of every column's law: runs resampled with replacement (seeded), each fit started
    from `base` (the all-runs laws) and at most one usual start (a resample's optimum lies near the all-runs one, so
    `restarts` beyond 2 buy nothing but time). One list of L.shape[1] laws per resample."""
    rng = np.random.default_rng([seed, 11])
    restarts = min(restarts, 2)
    out = []
    for b in range(count):
        rows = rng.integers(0, len(X), len(X))
        out.append([fit_law(X[rows], L[rows, i], seed + b, restarts, bound, base[i] if base else None)
                    for i in range(L.shape[1])])
    return out


class BaggedLaw:
    """The mixing law as a RegMix regressor: per target domain, the law fitted on all rows and on `bootstrap`
    resamples of them; `predict` is the median over resamples of the mean over domains (bagging, Breiman 1996, with
    the median: a resample that lacks the runs near a corner can fit a steep exponent there and predict losses
    tens of nats off, which a mean passes on to RegMix's search).

    Fitted on Y [N, m] (the m target domains' losses, not their mean: each domain has its own law). Why bagged: the
    law's minimum sits on a face of the simplex, and which face is decided by noise where the runs cannot tell two
    domains apart (an exact copy of a domain: one fit hands all of the pair's share to whichever twin its noise
    favours); the bagged prediction is flatter there, so RegMix's top-k spreads the share."""

    def __init__(self, bootstrap: int = 16, seed: int = 0, restarts: int = 8, bound: float = 10.0):
        self.bootstrap, self.seed, self.restarts, self.bound = bootstrap, seed, restarts, bound

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "BaggedLaw":
        Y = np.asarray(Y, dtype=np.float64).reshape(len(X), -1)
        base = [fit_law(X, Y[:, i], self.seed, self.restarts, self.bound) for i in range(Y.shape[1])]
        self.fits_ = [base] + bootstrap_laws(X, Y, self.bootstrap, self.seed, self.restarts, self.bound, base)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.median([law_target(laws)[2](np.asarray(X, dtype=np.float64)) for laws in self.fits_], axis=0)


# ---------------------------------------------------------------------------------------------------------------
# The search over mixtures
# ---------------------------------------------------------------------------------------------------------------


def law_target(laws: list[LawFit]):
    """(f, grad) of the mean of `laws` at a mixture r, and a batched f over rows of a matrix."""
    c = np.array([law.c for law in laws])
    k = np.array([law.k for law in laws])
    T = np.stack([law.t for law in laws])  # [m, k]

    def f(r):
        return float(np.mean(c + k * np.exp(T @ r)))

    def grad(r):
        return (k * np.exp(T @ r)) @ T / len(laws)

    def batch(R):
        return (c + k * np.exp(R @ T.T)).mean(axis=1)

    return f, grad, batch


def minimize_law(laws: list[LawFit], caps: np.ndarray, candidates: np.ndarray, refine: int) -> tuple[np.ndarray, float]:
    """The mixture under `caps` with the lowest mean predicted loss: the `refine` best `candidates`, each refined by
    SLSQP on the capped simplex; the best result (or candidate, should SLSQP fail) wins."""
    from scipy.optimize import minimize

    f, grad, batch = law_target(laws)
    values = batch(candidates)
    order = np.argsort(values, kind="stable")[: max(1, refine)]
    best_r, best_v = candidates[order[0]], float(values[order[0]])
    bounds = list(zip(np.zeros(len(caps)), caps))
    simplex = {"type": "eq", "fun": lambda r: r.sum() - 1.0, "jac": lambda r: np.ones_like(r)}
    for r0 in candidates[order]:
        res = minimize(f, r0, jac=grad, method="SLSQP", bounds=bounds, constraints=[simplex],
                       options={"ftol": 1e-12, "maxiter": 500})
        r = np.clip(res.x, 0.0, caps)
        r = r / r.sum()
        if np.isfinite(f(r)) and f(r) < best_v - 1e-12:
            best_r, best_v = r, f(r)
    return best_r, best_v


def average_argmin(fits: list[list[LawFit]], caps: np.ndarray, candidates: np.ndarray,
                   refine: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean over `fits` (each a list of the target domains' laws) of each fit's argmin, and the argmins."""
    solutions = np.stack([minimize_law(laws, caps, candidates, refine)[0] for laws in fits])
    return solutions.mean(axis=0), solutions


# ---------------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------------


class MixingLaw:
    """Mixing-law mixer: `MixingLaw(**params).fit(DATA) -> DomainWeights` (the procedure: the module docstring).

    Parameters (`curate mix --method mixing-law --param KEY=VALUE`):
      target, target_domains: as RegMix (a domain, or "average" over every domain or the named ones).
      num_runs, model_size, seq_len, batch_size, steps, lr, warmup_steps, schedule, weight_decay, precision, device,
        stack_size, threads, eval_windows, temperature, sample_max_epochs, min_weight, cache_dir, seed: RegMix's
        proxy runs, with RegMix's defaults (CPU defaults on CPU), so the two share their cache.
      cv_folds (5): K of the cross-validation; restarts (8): least-squares starts per fit; t_bound (10): the
        largest |t| coordinate: a looser bound lets a fit put a steep exponent toward a corner no run covered,
        and the held-out predictions there and the search both trust that extrapolation.
      num_candidates (20,000), refine (8), average_folds (True), bootstrap (32: resampled refits whose argmins
        join the average; each starts from the all-runs fit, plus one usual start): the search; max_epochs (4),
        budget_tokens (None =
        the train corpus size): the repetition cap of the final mixture.
      verbose: progress lines on stderr.
    After `fit`: `laws_` (one LawFit per domain), `fold_laws_`, `solutions_` (the argmin of each fit, averaged),
    `trained_runs_`, `cached_runs_`, `timings_`.
    """

    def __init__(
        self,
        target: str = "average",
        target_domains: str | list[str] | None = None,
        num_runs: int | None = None,
        model_size: str | None = None,
        seq_len: int | None = None,
        batch_size: int | None = None,
        steps: int | None = None,
        lr: float | None = None,
        warmup_steps: int | None = None,
        schedule: str = "constant",
        weight_decay: float = 0.1,
        precision: str = "auto",
        device: str = "auto",
        stack_size: int | None = None,
        threads: int | None = None,
        eval_windows: int = 32,
        temperature: float = 0.5,
        sample_max_epochs: float = 15.0,
        min_weight: float = 2e-4,
        cv_folds: int = 5,
        restarts: int = 8,
        t_bound: float = 10.0,
        num_candidates: int = 20_000,
        refine: int = 8,
        average_folds: bool = True,
        bootstrap: int = 32,
        max_epochs: float = 4.0,
        budget_tokens: int | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        verbose: bool = True,
    ):
        self.params = {k: v for k, v in locals().items() if k != "self"}
        for k, v in self.params.items():
            setattr(self, k, v)
        if num_runs is not None and num_runs < 3:
            raise ValueError("num_runs must be at least 3 (cross-validation needs a few runs)")
        if restarts < 1 or num_candidates < 1 or bootstrap < 0:
            raise ValueError("need restarts >= 1, num_candidates >= 1 and bootstrap >= 0")
        self.trained_runs_ = 0
        self.cached_runs_ = 0
        self.timings_: dict[str, float] = {}

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"mixing-law: {msg}", file=sys.stderr, flush=True)

    def _fit_laws(self, runs: ProxyRuns, chosen: list[str]) -> tuple[list[LawFit], dict[str, Any]]:
        """Step 2-3: one law per domain on all runs (`laws_`), each fold's (`fold_laws_`), and the cross-validated
        fit quality."""
        X, L = runs.mixtures, runs.losses
        laws = [fit_law(X, L[:, i], self.seed, self.restarts, self.t_bound) for i in range(L.shape[1])]
        oof, self.fold_laws_ = cross_validate_laws(X, L, self.cv_folds, self.seed, self.restarts, self.t_bound)
        y = target_loss(L, runs.domains, chosen)
        y_oof = target_loss(oof, runs.domains, chosen)
        per_domain = {d: fit_quality(oof[:, i], L[:, i]) for i, d in enumerate(runs.domains)}
        quality = fit_quality(y_oof, y)
        self._log(f"target CV rho {quality['spearman']:.3f} MAE {quality['mae']:.4f} R2 {quality['r2']:.3f}; "
                  + ", ".join(f"{d} {q['spearman']:.2f}" for d, q in per_domain.items()))
        regression = {
            "chosen": "mixing-law",
            "cv_folds": min(self.cv_folds, len(y)),
            "cv": {"mixing-law": quality},
            "per_domain": per_domain,
            "out_of_fold": {"actual": y.tolist(), "predicted": {"mixing-law": y_oof.tolist()}},
        }
        return laws, regression

    def fit(self, data_dir: str | os.PathLike) -> RegMixWeights:
        from proxy_training.data import TokenDatasets

        t_start = time.perf_counter()
        data = TokenDatasets(data_dir)
        # Checked before any training: a misspelt domain must not cost the proxy runs.
        chosen = resolve_target(self.target, self.target_domains, data.domains, data_dir)
        runner = RegMix(**{k: self.params[k] for k in PROXY_PARAMS})
        runner.log_name = "mixing-law"
        runs = runner.proxy_runs(data)
        self.trained_runs_, self.cached_runs_ = runner.trained_runs_, runner.cached_runs_
        self.timings_ = dict(runner.timings_)
        t0 = time.perf_counter()
        self.laws_, regression = self._fit_laws(runs, chosen)
        self.timings_["law_fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        budget = int(self.budget_tokens or runs.tokens.sum())
        caps = final_caps(runs, self.max_epochs, budget)
        candidates = sample_mixtures(runs.natural, self.num_candidates, np.random.default_rng([self.seed, 3]),
                                     self.temperature, caps=caps, min_weight=self.min_weight)
        cols = [runs.domains.index(d) for d in chosen]
        fits = [[laws[i] for i in cols] for laws in [self.laws_] + (self.fold_laws_ if self.average_folds else [])]
        fits += bootstrap_laws(runs.mixtures, runs.losses[:, cols], self.bootstrap, self.seed, self.restarts,
                               self.t_bound, [self.laws_[i] for i in cols])
        best, self.solutions_ = average_argmin(fits, caps, candidates, self.refine)
        best = np.where(best < self.min_weight, 0.0, best)
        weights = cap_by_epochs(runs.as_map(best / best.sum()), dict(zip(runs.domains, runs.tokens.tolist())),
                                budget, self.max_epochs)
        self.timings_["search_s"] = time.perf_counter() - t0
        self.timings_["total_s"] = time.perf_counter() - t_start
        return RegMixWeights("mixing-law", weights, target=self.target,
                             config=mixer_config(self.params, runs.settings),
                             diagnostics=self._diagnostics(runs, chosen, regression, weights, budget))

    def _diagnostics(self, runs: ProxyRuns, chosen: list[str], regression: dict, weights: dict, budget: int) -> dict:
        f, _, _ = law_target([self.laws_[runs.domains.index(d)] for d in chosen])
        k = len(runs.domains)
        final = np.array([weights[d] for d in runs.domains])
        y = target_loss(runs.losses, runs.domains, chosen)
        return {
            **run_diagnostics(runs, y, chosen),
            "law": {"form": "L_i(r) = c_i + k_i exp(sum_j t_ij r_j), sum_j t_ij = 0",
                    "domains": {d: {"c": law.c, "k": law.k, "t": runs.as_map(law.t), "rmse": law.rmse}
                                for d, law in zip(runs.domains, self.laws_)}},
            "regression": regression,
            "search": {"num_candidates": self.num_candidates, "refine": self.refine, "bootstrap": self.bootstrap,
                       "average_folds": self.average_folds,
                       "solutions": [runs.as_map(r) for r in self.solutions_],
                       "std": runs.as_map(self.solutions_.std(axis=0))},
            "predicted_target_loss": {"mixing-law": f(final), "natural": f(runs.natural),
                                      "uniform": f(np.full(k, 1.0 / k))},
            "cap": {"max_epochs": self.max_epochs, "budget_tokens": budget},
        }
