"""RegMix (Liu et al. 2024, arXiv 2407.01492): many small proxy runs, a regression, the predicted-best mixture.

    w = RegMix(target="web", steps=1000).fit("DATA")     # -> DomainWeights; w.save("weights.json") also writes
                                                          #    weights.proxy_runs.csv (the proxy table)
    curate mix --method regmix DATA --out weights.json --target web --param steps=300 --param num_runs=64

The procedure (facts in shared/reference/mixers.md):
1. Sample N mixtures: p ~ Dirichlet(s * q) with q = natural token shares ** 0.5 (renormalized) and s drawn from 15
   log-spaced concentration scales in [0.1, 5]; reject p when some p_i > min(sample_max_epochs * natural_i, 1)
   (the paper's 15-epoch repetition cap at a corpus-sized budget); zero weights < 2e-4, renormalize, drop duplicates.
   N defaults to the paper's 512 on CUDA and to max(4 * (k + 1), 32) on CPU (k domains): Olmix asks for >= 3(k+1)
   runs, and 2 shared CPU cores cannot afford 512. The proxy likewise: the paper's regmix-1m for 1,000 steps on
   CUDA, a tiny d64 proxy for 500 shorter steps on CPU (`CPU_DEFAULTS`; the trade is printed when they apply).
2. Train one proxy per mixture with the stacked trainer (`proxy_training.trainer.train_mixtures`: up to `stack_size`
   models per call, the default fitting a fixed memory budget; on CUDA one StackedGPT per call, on a multi-core CPU
   one worker process per core training its share as stacks of at most `cpu_stack_size`). Every run uses the same
   init and data-order seed (common random numbers), so loss differences between runs come from the mixtures, not
   from init noise.
   Each run records its held-out loss per domain on the fixed `valid` windows, which do not depend on the mixture.
3. Cache: one JSON file per run, keyed by sha256 of (data fingerprint, mixture, proxy config, seed). The data
   fingerprint hashes datasets.json and the content of every train/valid shard. Re-fitting, a new target or a larger
   N trains only what is missing. Default cache: DATA/.regmix-cache (or `cache_dir`).
4. Regress target loss on the mixture with a linear model (ridge, alpha by leave-one-out on the training rows),
   scikit-learn's HistGradientBoostingRegressor, LightGBM (when installed) and the data mixing law (Ye et al. 2024:
   one law per target domain, bagged over bootstrap resamples; `mixers.mixing_law.BaggedLaw`). The paper treats
   the regressor as pluggable; the law earns its place on few runs: trees predict a constant over whole regions
   of the simplex, so with a few dozen runs thousands of simulated mixtures tie for the lowest prediction and the
   top-k mean below is the prior's mean inside that region, whatever the tree could not resolve (a noise domain's
   share among them) left at the prior's share. The smooth law ranks within such regions. K-fold CV gives each one's
   out-of-fold Spearman rho and MAE. Boosting rounds are chosen on an inner split of the TRAINING folds only (the
   official notebook early-stops on its test set, a leak), then the model is refit on all training rows with those
   rounds. The regressor with the best CV rho (then MAE) is refit on all runs.
5. Simulate `num_simulated` distinct mixtures (default 100,000) from the same prior, predict, average the `top_k`
   (default 100) with the lowest predicted loss, clip with the max-epochs cap for a `budget_tokens` run (`cap_by_epochs`)
   and renormalize. Simulated mixtures already respect that cap (rejection), so the clip only guards round-off:
   clipping an uncapped top-k mean would hand the excess to whatever small weights it held.

Target: a domain name (its validation loss) or "average" (the unweighted mean of validation loss over every domain,
or over the `target_domains` a user names, so that a noise domain or one kept only for coverage does not steer it).
Same data + parameters + seed + device give byte-identical weights.json (no wall times in it; see `timings_`).
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixers.run_cache import RunCache, data_fingerprint, run_key
from mixers.weights import DomainWeights, cap_by_epochs

SCALES = np.logspace(math.log10(0.1), math.log10(5.0), 15)  # the paper's 15 Dirichlet concentration scales


# ---------------------------------------------------------------------------------------------------------------
# 1. Mixture sampling
# ---------------------------------------------------------------------------------------------------------------

def sampling_caps(natural: np.ndarray, max_epochs: float = 15.0) -> np.ndarray:
    """Largest weight each domain may take in a sampled mixture: min(max_epochs * natural share, 1)."""
    return np.minimum(max_epochs * np.asarray(natural, dtype=np.float64), 1.0)


def sample_mixtures(
    natural: np.ndarray,
    n: int,
    rng: np.random.Generator,
    temperature: float = 0.5,
    scales: np.ndarray = SCALES,
    caps: np.ndarray | None = None,
    min_weight: float = 2e-4,
    dedupe: bool = True,
) -> np.ndarray:
    """`n` mixtures [n, k] from Dirichlet(s * natural**temperature) with s drawn from `scales`.

    Weights below `min_weight` are zeroed and the rest renormalized; mixtures with some weight above `caps` are
    rejected; with `dedupe`, mixtures equal after rounding to 1e-6 are kept once (small concentrations put
    almost all mass on one domain, so one-hot duplicates are common). Raises ValueError when the constraints leave
    fewer than `n` distinct mixtures after many tries.
    """
    natural = np.asarray(natural, dtype=np.float64)
    natural = natural / natural.sum()
    q = natural**temperature
    q = q / q.sum()
    caps = sampling_caps(natural) if caps is None else np.asarray(caps, dtype=np.float64)
    out: list[np.ndarray] = []
    seen: set[bytes] = set()
    total = 0
    for _ in range(200):
        m = max(1024, 2 * (n - total))
        s = rng.choice(scales, size=m)
        # Dirichlet with a per-row concentration: normalized Gamma draws (numpy's dirichlet takes one alpha).
        g = rng.standard_gamma(s[:, None] * q[None, :])
        sums = g.sum(axis=1, keepdims=True)
        ok = sums[:, 0] > 0  # tiny shapes can underflow every component to 0
        p = g[ok] / sums[ok]
        p[p < min_weight] = 0.0
        p = p[p.sum(axis=1) > 0]
        p = p / p.sum(axis=1, keepdims=True)
        p = p[(p <= caps[None, :] + 1e-12).all(axis=1)]
        if dedupe:
            keep = []
            for i, row in enumerate(np.round(p, 6)):
                key = row.tobytes()
                if key not in seen:
                    seen.add(key)
                    keep.append(i)
            p = p[keep]
        p = p[: n - total]
        out.append(p)
        total += len(p)
        if total >= n:
            return np.concatenate(out)
    raise ValueError(
        f"could only sample {total} distinct mixtures of the {n} asked for under the repetition cap "
        f"(caps {np.round(caps, 4).tolist()}): ask for fewer runs or raise sample_max_epochs"
    )


# 3. The run cache: mixers.run_cache (shared with the ladder).


# ---------------------------------------------------------------------------------------------------------------
# 4. Regression with honest cross-validation
# ---------------------------------------------------------------------------------------------------------------

def _inner_split(n: int, seed: int, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n])
    perm = rng.permutation(n)
    n_val = max(2, int(round(fraction * n)))
    return perm[n_val:], perm[:n_val]


def _min_leaf(n: int) -> int:
    # Library defaults (20) forbid any split on a few dozen runs; scale the leaf size with the data instead.
    return max(2, min(20, n // 8))


def available_regressors() -> list[str]:
    """linear, hgb and mixing-law always; lightgbm when it can be imported."""
    names = ["linear", "hgb", "mixing-law"]
    try:
        import lightgbm  # noqa: F401

        names.append("lightgbm")
    except ImportError:
        pass
    return names


def fit_regressor(name: str, X: np.ndarray, y: np.ndarray, seed: int):
    """Fit one regressor on (X, y) only; boosting rounds are chosen on an inner split of these rows, then the model
    is refit on all of them. Returns an object with `.predict` (of the target: the mean over y's columns).

    y is the target loss [N] or the target domains' losses [N, m]: the mixing law fits one law per domain, the
    others the mean."""
    n = len(X)
    y = np.asarray(y, dtype=np.float64)
    if name == "mixing-law":
        from mixers.mixing_law import BaggedLaw

        return BaggedLaw(seed=seed).fit(X, y.reshape(n, -1))
    if y.ndim == 2:
        y = y.mean(axis=1)
    if name == "linear":
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=np.logspace(-6, 1, 15)).fit(X, y)
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingRegressor

        def make(max_iter):
            return HistGradientBoostingRegressor(
                learning_rate=0.05, max_iter=max_iter, max_leaf_nodes=8, min_samples_leaf=_min_leaf(n),
                early_stopping=False, random_state=seed)

        rounds = 200
        if n >= 10:
            fit_rows, val_rows = _inner_split(n, seed)
            probe = make(500).fit(X[fit_rows], y[fit_rows])
            errors = [np.mean((p - y[val_rows]) ** 2) for p in probe.staged_predict(X[val_rows])]
            rounds = int(np.argmin(errors)) + 1
        return make(rounds).fit(X, y)
    if name == "lightgbm":
        import lightgbm as lgb

        def make(n_estimators):
            # The paper's settings (lr 0.01, up to 1,000 rounds); deterministic, one thread (results stay the same).
            return lgb.LGBMRegressor(
                objective="regression", learning_rate=0.01, n_estimators=n_estimators, num_leaves=15,
                min_child_samples=_min_leaf(n), min_data_in_bin=1, random_state=seed, deterministic=True,
                force_row_wise=True, n_jobs=1, verbose=-1)

        rounds = 300
        if n >= 10:
            fit_rows, val_rows = _inner_split(n, seed)
            probe = make(1000).fit(X[fit_rows], y[fit_rows], eval_X=(X[val_rows],), eval_y=(y[val_rows],),
                                   callbacks=[lgb.early_stopping(100, verbose=False)])
            rounds = max(1, int(probe.best_iteration_ or 1000))
        return make(rounds).fit(X, y)
    raise ValueError(f"unknown regressor {name!r}; choose from {', '.join(available_regressors())}")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def cross_validate(names: list[str], X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> dict[str, dict]:
    """Out-of-fold predictions, Spearman rho, MAE and R^2 per regressor (K-fold, shuffled with `seed`); y as in
    `fit_regressor`, the scores against its row means."""
    from sklearn.model_selection import KFold

    splits = list(KFold(n_splits=min(folds, len(X)), shuffle=True, random_state=seed).split(X))
    Y = np.asarray(y, dtype=np.float64)
    y = Y.mean(axis=1) if Y.ndim == 2 else Y
    out = {}
    for name in names:
        oof = np.empty(len(y))
        for f, (tr, te) in enumerate(splits):
            oof[te] = fit_regressor(name, X[tr], Y[tr], seed + f).predict(X[te])
        sst = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum((oof - y) ** 2)) / sst if sst > 0 else float("nan")
        out[name] = {"spearman": _spearman(oof, y), "mae": float(np.mean(np.abs(oof - y))), "r2": r2, "oof": oof}
    return out


def _better(a: dict, b: dict) -> bool:
    ra = -math.inf if math.isnan(a["spearman"]) else a["spearman"]
    rb = -math.inf if math.isnan(b["spearman"]) else b["spearman"]
    return ra > rb + 1e-12 or (abs(ra - rb) <= 1e-12 and a["mae"] < b["mae"])


# ---------------------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------------------

def parse_domain_list(value: str | list[str] | None) -> list[str] | None:
    """`"a,b,c"` or `["a", "b", "c"]` -> a list of names; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def resolve_target(target: str, target_domains: str | list[str] | None, domains: list[str],
                   where: Any = "the data") -> list[str]:
    """The domains whose mean validation loss is the objective: [target] for a domain target; for "average", the
    named `target_domains` (default: every domain). An unknown or misplaced name is a one-line ValueError."""
    names = parse_domain_list(target_domains)
    if target != "average":
        if target not in domains:
            raise ValueError(f"target {target!r} is not a domain of {where} "
                             f"(choose one of {', '.join(domains)} or 'average')")
        if names is not None:
            raise ValueError(f"target_domains goes with target 'average', not with the domain target {target!r}")
        return [target]
    if names is None:
        return list(domains)
    unknown = [d for d in names if d not in domains]
    if unknown:
        raise ValueError(f"target_domains: {', '.join(map(repr, unknown))} not a domain of {where} "
                         f"(domains: {', '.join(domains)})")
    if not names:
        raise ValueError("target_domains is empty: name at least one domain")
    return [d for d in domains if d in names]


def target_loss(losses: np.ndarray, domains: list[str], chosen: list[str]) -> np.ndarray:
    """Mean loss over the `chosen` domains, per row of `losses` [N, k]."""
    return losses[:, [domains.index(d) for d in chosen]].mean(axis=1)


# ---------------------------------------------------------------------------------------------------------------
# Proxy defaults per device
# ---------------------------------------------------------------------------------------------------------------

# The paper's proxy (regmix-1m, 1,000 steps, lr 4e-4, warmup 100) at a 16 x 256-token batch, 512 runs.
CUDA_DEFAULTS = {"model_size": "regmix-1m", "seq_len": 256, "batch_size": 16, "steps": 1000, "lr": 4e-4}
# The paper's setting costs hours per 8 domains on 2 CPU cores; these finish in minutes: a d64 proxy with 1/8 of the
# tokens per run. The price is fidelity: Olmix (Chen et al. 2026) found 1M-parameter proxies rank mixtures like 1B
# models at Spearman 0.73, proxies from 15M up at > 0.89. The higher learning rate is the one the ladder and
# benchmarks train d24-d96 models at: at 4e-4 so short a run stays near the unigram plateau.
CPU_DEFAULTS = {"model_size": "tiny", "seq_len": 128, "batch_size": 8, "steps": 500, "lr": 2e-3}


def default_num_runs(device_type: str, k: int) -> int:
    """512 runs on CUDA (the paper); max(4 (k + 1), 32) on CPU (Olmix asks for >= 3 (k + 1))."""
    return 512 if device_type == "cuda" else max(4 * (k + 1), 32)


def proxy_settings(params: dict[str, Any], device_type: str, k: int) -> tuple[dict[str, Any], list[str]]:
    """The proxy settings on a device: model_size, seq_len, batch_size, steps, lr, warmup_steps and num_runs from
    `params` where set, else the device's defaults; plus the names that took a CPU default."""
    base = CUDA_DEFAULTS if device_type == "cuda" else CPU_DEFAULTS
    out = {key: params[key] if params.get(key) is not None else value for key, value in base.items()}
    out["num_runs"] = params.get("num_runs") or default_num_runs(device_type, k)
    warmup = params.get("warmup_steps")
    # A warmup as long as the run would never reach the learning rate (as mix-eval does).
    out["warmup_steps"] = warmup if warmup is not None and warmup < out["steps"] else max(1, out["steps"] // 10)
    applied = [] if device_type == "cuda" else [key for key in (*base, "num_runs") if params.get(key) is None]
    return out, applied


def cpu_trade(settings: dict[str, Any], applied: list[str], vocab_size: int) -> str:
    """One line on what the CPU defaults give up against the CUDA (paper) defaults."""
    from proxy_training.model import preset_config

    ours = preset_config(settings["model_size"], vocab_size, settings["seq_len"])
    paper = preset_config(CUDA_DEFAULTS["model_size"], vocab_size, CUDA_DEFAULTS["seq_len"])
    tokens = settings["steps"] * settings["batch_size"] * settings["seq_len"]
    paper_tokens = CUDA_DEFAULTS["steps"] * CUDA_DEFAULTS["batch_size"] * CUDA_DEFAULTS["seq_len"]
    return (f"CPU defaults for {', '.join(applied)}: a {settings['model_size']} proxy of "
            f"{ours.num_params() / 1e6:.2f}M "
            f"parameters (CUDA: {CUDA_DEFAULTS['model_size']}, {paper.num_params() / 1e6:.2f}M), "
            f"{settings['steps']} steps x {settings['batch_size']} x {settings['seq_len']} tokens = "
            f"{tokens / 1e6:.2f}M per run (CUDA: {paper_tokens / 1e6:.1f}M), lr {settings['lr']:g}, "
            f"{settings['num_runs']} runs (CUDA: 512). Smaller, shorter proxies rank mixtures less like large models "
            f"(Olmix: Spearman 0.73 for 1M-parameter proxies, > 0.89 from 15M); set these with --param to trade "
            f"time back for fidelity")


# ---------------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------------

class RegMixWeights(DomainWeights):
    """DomainWeights that also write the proxy table as `<stem>.proxy_runs.csv` next to weights.json."""

    def csv_path(self, path: str | Path) -> Path:
        p = Path(path)
        return p.with_name(p.stem + ".proxy_runs.csv")

    def save(self, path: str | Path, prefixes: dict[str, list[str]] | None = None) -> None:
        super().save(path, prefixes)
        runs = self.diagnostics["proxy_runs"]
        domains = list(self.weights)
        target_col = f"loss_{self.target}" if self.target != "average" else "loss_average"
        header = (["run"] + [f"weight_{d}" for d in domains] + [f"loss_{d}" for d in domains]
                  + ([target_col] if self.target == "average" else []) + ["oof_predicted"])
        chosen = self.diagnostics["regression"]["chosen"]
        oof = self.diagnostics["regression"]["out_of_fold"]["predicted"][chosen]
        out = self.csv_path(path)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i, r in enumerate(runs):
                row = [i] + [r["mixture"][d] for d in domains] + [r["loss"][d] for d in domains]
                if self.target == "average":
                    row.append(r["target_loss"])
                w.writerow(row + [oof[i]])
        tmp.replace(out)


@dataclass
class ProxyRuns:
    """One configuration's proxy runs: mixtures [N, k] and held-out losses [N, k], with what produced them."""

    domains: list[str]
    tokens: np.ndarray  # train tokens per domain
    mixtures: np.ndarray
    losses: np.ndarray
    train_loss: np.ndarray
    caps: np.ndarray  # the sampler's repetition caps
    fingerprint: str
    proxy: dict[str, Any]  # what keys the cache, plus parameter and token counts
    settings: dict[str, Any]  # model_size, seq_len, batch_size, steps, lr, warmup_steps, num_runs as used

    @property
    def natural(self) -> np.ndarray:
        return self.tokens / self.tokens.sum()

    def as_map(self, v) -> dict[str, float]:
        return dict(zip(self.domains, (float(x) for x in v)))

    def table(self, y: np.ndarray) -> list[dict[str, Any]]:
        """The runs as diagnostics rows: mixture, loss per domain, target loss, final training loss."""
        return [{"mixture": self.as_map(self.mixtures[i]), "loss": self.as_map(self.losses[i]),
                 "target_loss": float(y[i]), "train_loss": float(self.train_loss[i])} for i in range(len(y))]


# The parameters that decide which proxy runs exist (shared with the mixing-law mixer, which reads the same runs).
PROXY_PARAMS = ("num_runs", "model_size", "seq_len", "batch_size", "steps", "lr", "warmup_steps", "schedule",
                "weight_decay", "precision", "device", "stack_size", "threads", "eval_windows", "temperature",
                "sample_max_epochs", "min_weight", "cache_dir", "seed", "verbose")


def final_caps(runs: ProxyRuns, max_epochs: float, budget: int) -> np.ndarray:
    """Largest weight per domain in the final mixture: the sampler's cap and `max_epochs` over a `budget`-token run."""
    caps = np.minimum(runs.caps, max_epochs * runs.tokens / budget)
    if caps.sum() < 1.0:
        raise ValueError(f"a {budget:,}-token run needs more than {max_epochs} epochs of the corpus "
                         f"({int(runs.tokens.sum()):,} tokens): lower budget_tokens or raise max_epochs")
    return caps


class RegMix:
    """RegMix mixer: `RegMix(**params).fit(DATA) -> DomainWeights` (see the module docstring for the procedure).

    Parameters (all exposed as `curate mix --method regmix --param KEY=VALUE`):
      target: a domain name or "average" (default); target_domains: with "average", the domains to average (a list
        or "a,b,c"; default all), so that a domain kept only for coverage (or noise) does not steer the weights.
      num_runs: proxy runs N; None = 512 on CUDA, max(4 * (k + 1), 32) on CPU.
      model_size, seq_len, batch_size, steps, lr, warmup_steps (None = steps // 10): proxy training; None takes the
        device's default, `CUDA_DEFAULTS` (the paper's regmix-1m proxy, 1,000 steps x 16 x 256 tokens, lr 4e-4) or
        `CPU_DEFAULTS` (tiny d64 proxy, 500 steps x 8 x 128 tokens, lr 2e-3; printed when applied).
        schedule ("constant" after warmup, as the paper), weight_decay.
      precision: "auto" | "fp32" | "bf16"; device: "auto" | "cpu" | "cuda"; stack_size: models per `train_mixtures`
        call (None = what fits 4 GiB on CPU / half the GPU's memory; on CPU each stack is further capped by
        `cpu_stack_size`); threads: CPU torch threads per worker process (None: 1 for proxies under 8M
        parameters, trained in one worker process per core, see `proxy_training.trainer.stack_workers`). Threads
        and stack size are not in the cache key: they change results only at float round-off.
      eval_windows: validation windows per domain (fixed, mixture-independent).
      temperature, sample_max_epochs, min_weight: the sampler (0.5, 15, 2e-4 as the paper).
      regressors: subset of linear, hgb, lightgbm, mixing-law (default: all available); cv_folds: K (default 5).
      num_simulated (100,000), top_k (100): the choice.
      max_epochs (4), budget_tokens (None = the train corpus size): the final repetition cap.
      cache_dir: None = DATA/.regmix-cache.  seed: mixtures, proxy init/data order, CV splits, simulation.
      verbose: progress lines on stderr.
    After `fit`: `trained_runs_`, `cached_runs_`, `timings_` (seconds per phase).
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
        regressors: list[str] | None = None,
        cv_folds: int = 5,
        num_simulated: int = 100_000,
        top_k: int = 100,
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
        if top_k < 1 or num_simulated < top_k:
            raise ValueError("need 1 <= top_k <= num_simulated")
        self.trained_runs_ = 0
        self.cached_runs_ = 0
        self.timings_: dict[str, float] = {}

    log_name = "regmix"  # the prefix of progress lines (the mixing-law mixer runs RegMix's proxies under its name)

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"{self.log_name}: {msg}", file=sys.stderr, flush=True)

    # -- proxy configuration ------------------------------------------------------------------------------------
    def _proxy_setup(self, data, device, settings: dict[str, Any]):
        from proxy_training.model import preset_config
        from proxy_training.trainer import TrainConfig, resolve_precision

        autocast = resolve_precision(self.precision, device)
        model_config = preset_config(settings["model_size"], data.vocab_size, settings["seq_len"])
        train_config = TrainConfig(
            steps=settings["steps"], lr=settings["lr"], min_lr=settings["lr"] / 10,
            warmup_steps=settings["warmup_steps"], schedule=self.schedule, weight_decay=self.weight_decay,
            device=device.type, precision=self.precision, threads=self.threads, progress=False)
        # Everything that changes a run's result (and nothing that does not) keys the cache.
        proxy = {
            "model": asdict(model_config),
            "train": {k: v for k, v in asdict(train_config).items()
                      if k in ("steps", "lr", "min_lr", "warmup_steps", "schedule", "decay_fraction", "weight_decay",
                               "beta1", "beta2", "grad_clip")},
            "device": device.type,
            "autocast": None if autocast is None else str(autocast).replace("torch.", ""),
            "batch_size": settings["batch_size"],
            "eval": {"split": "valid", "windows_per_domain": self.eval_windows},
            "sampler": "iid",
        }
        return model_config, train_config, proxy

    def _stack_size(self, model_config, device, batch_size: int) -> int:
        if self.stack_size:
            return int(self.stack_size)
        import torch

        c = model_config
        tokens = batch_size * c.seq_len
        # float32 params + grads + 2 AdamW moments, plus saved activations (~(12 d + 2 mlp) floats per token and layer,
        # the embeddings and a cache-sized LM-head chunk): a rough upper bound per stacked model.
        per_model = 16 * c.num_params() + 4 * tokens * (c.n_layer * (12 * c.d_model + 2 * c.mlp_hidden) + 4 * c.d_model)
        if device.type == "cuda":
            budget = torch.cuda.get_device_properties(device).total_memory // 2
            per_model += 4 * tokens * c.padded_vocab * 2  # all logits at once on CUDA
        else:
            budget = 4 << 30
        return int(max(1, min(128, budget // per_model)))

    # -- the procedure ------------------------------------------------------------------------------------------
    def proxy_runs(self, data) -> ProxyRuns:
        """Steps 1-3: sample the mixtures, train the proxies the cache lacks. `data` is a TokenDatasets."""
        from proxy_training.trainer import resolve_device

        self.trained_runs_ = self.cached_runs_ = 0
        domains, k = data.domains, len(data.domains)
        if k < 2:
            raise ValueError(f"{data.root} has {k} domain(s); mixing needs at least 2")
        tokens = data.token_counts("train")
        device = resolve_device(self.device)
        settings, applied = proxy_settings(self.params, device.type, k)
        if applied:
            self._log(cpu_trade(settings, applied, data.vocab_size))
        model_config, train_config, proxy = self._proxy_setup(data, device, settings)
        num_runs = settings["num_runs"]
        # Rows are drawn in order, so a larger num_runs extends (and reuses) a smaller one's runs.
        caps = sampling_caps(tokens / tokens.sum(), self.sample_max_epochs)
        mixtures = sample_mixtures(tokens / tokens.sum(), num_runs, np.random.default_rng([self.seed, 1]),
                                   self.temperature, caps=caps, min_weight=self.min_weight)
        t0 = time.perf_counter()
        fingerprint = data_fingerprint(data.root)
        cache = RunCache(self.cache_dir or Path(data.root) / ".regmix-cache")
        keys = [run_key(fingerprint, domains, m, proxy, self.seed) for m in mixtures]
        records: list[dict | None] = [cache.get(key) for key in keys]
        self.cached_runs_ = sum(r is not None for r in records)
        self.timings_["fingerprint_and_cache_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._train_missing(data, mixtures, records, keys, cache, (model_config, train_config, proxy), device, settings)
        self.timings_["train_s"] = time.perf_counter() - t0
        described = proxy | {"params": model_config.num_params(),
                             "non_embedding_params": model_config.num_params(False),
                             "tokens_per_run": settings["steps"] * settings["batch_size"] * model_config.seq_len}
        return ProxyRuns(domains, tokens, mixtures, np.array([r["eval_loss"] for r in records]),
                         np.array([r["train_loss"] for r in records]), caps, fingerprint, described, settings)

    def _train_missing(self, data, mixtures, records, keys, cache, setup, device, settings) -> None:
        """Train the runs whose record is None, in stacks, writing each to the cache and into `records`."""
        from proxy_training.data import evaluation_windows
        from proxy_training.trainer import cpu_stack_size, train_mixtures

        model_config, train_config, proxy = setup
        todo = [i for i, r in enumerate(records) if r is None]
        summary = f"{len(mixtures)} mixtures over {len(data.domains)} domains"
        if not todo:
            self._log(f"{summary}: all cached, nothing to train")
            return
        batch_size = settings["batch_size"]
        windows = evaluation_windows(data, "valid", model_config.seq_len, self.eval_windows)
        streams = data.streams("train")
        stack = self._stack_size(model_config, device, batch_size)
        per_stack = cpu_stack_size(model_config, batch_size, stack) if device.type == "cpu" else stack
        layout = (f"in groups of {stack}, stacks of at most {per_stack} per CPU worker" if device.type == "cpu"
                  else f"in stacks of {stack} on {device.type}")
        self._log(f"{summary}: {self.cached_runs_} cached, training {len(todo)} ({settings['steps']} steps x "
                  f"{batch_size} x {model_config.seq_len} tokens, {settings['model_size']}) {layout}")
        for lo in range(0, len(todo), stack):
            chunk = todo[lo : lo + stack]
            t_chunk = time.perf_counter()
            runs = train_mixtures(streams, mixtures[chunk], [self.seed] * len(chunk), model_config, train_config,
                                  windows, batch_size=batch_size, max_models=stack)
            for j, i in enumerate(chunk):
                records[i] = {"domains": data.domains, "mixture": mixtures[i].tolist(),
                              "eval_loss": runs.eval_loss[j].tolist(), "train_loss": float(runs.train_loss[j]),
                              "device": runs.device, "proxy": proxy, "seed": self.seed}
                cache.put(keys[i], records[i])
            self.trained_runs_ += len(chunk)
            self._log(f"trained {self.trained_runs_}/{len(todo)} runs "
                      f"({time.perf_counter() - t_chunk:.1f}s for {len(chunk)})")

    def _regress(self, X: np.ndarray, y: np.ndarray):
        """Step 4: K-fold CV of every regressor; the best (CV rho, then MAE) refit on all runs -> (model, name, cv).
        y: the target domains' losses [N, m] (or the target [N])."""
        names = ([self.regressors] if isinstance(self.regressors, str)
                 else list(self.regressors or available_regressors()))
        from threadpoolctl import threadpool_limits

        # One thread: a few hundred rows gain nothing from OpenMP, and its barriers crawl on a loaded machine
        # (HistGradientBoosting took minutes instead of seconds on the shared 2-core box).
        with threadpool_limits(1):
            cv = cross_validate(names, X, y, self.cv_folds, self.seed)
            chosen = names[0]
            for name in names[1:]:
                if _better(cv[name], cv[chosen]):
                    chosen = name
            model = fit_regressor(chosen, X, y, self.seed)
        self._log(", ".join(f"{n}: CV rho {cv[n]['spearman']:.3f} MAE {cv[n]['mae']:.4f}" for n in names)
                  + f" -> {chosen}")
        return model, chosen, cv

    def _choose(self, runs: ProxyRuns, model, budget: int):
        """Step 5: simulate capped mixtures, average the top-k predicted, cap. -> (weights, mean_top, top rows, pred)"""
        # Only mixtures the final cap allows compete: clipping the top-k mean afterwards would hand the clipped mass
        # to whatever the top-k happened to hold in small amounts (it gave NOISE 13% when the target hit its cap).
        # The mean of capped mixtures is capped, so cap_by_epochs below is then only a safety net. Simulated
        # mixtures are deduplicated too: small concentrations draw the same one-hot mixture thousands of times, and
        # tree models predict ties, so without it the top-k can be k copies of one mixture picked by sample order.
        sim = sample_mixtures(runs.natural, self.num_simulated, np.random.default_rng([self.seed, 2]),
                              self.temperature, caps=final_caps(runs, self.max_epochs, budget),
                              min_weight=self.min_weight)
        pred = np.concatenate([model.predict(sim[i : i + 50_000]) for i in range(0, len(sim), 50_000)])
        top = np.argsort(pred, kind="stable")[: self.top_k]
        mean_top = sim[top].mean(axis=0)
        weights = cap_by_epochs(runs.as_map(mean_top), dict(zip(runs.domains, runs.tokens.tolist())), budget,
                                self.max_epochs)
        return weights, mean_top, sim[top], pred[top], float(np.median(pred))

    def fit(self, data_dir: str | os.PathLike) -> RegMixWeights:
        from proxy_training.data import TokenDatasets

        t_start = time.perf_counter()
        data = TokenDatasets(data_dir)
        # Checked before any training: a misspelt domain must not cost the proxy runs.
        chosen_domains = resolve_target(self.target, self.target_domains, data.domains, data_dir)
        runs = self.proxy_runs(data)
        target_columns = runs.losses[:, [runs.domains.index(d) for d in chosen_domains]]
        y = target_columns.mean(axis=1)
        t0 = time.perf_counter()
        model, chosen, cv = self._regress(runs.mixtures, target_columns)
        self.timings_["regression_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        budget = int(self.budget_tokens or runs.tokens.sum())
        weights, mean_top, top_rows, top_pred, median = self._choose(runs, model, budget)
        self.timings_["simulate_s"] = time.perf_counter() - t0
        self.timings_["total_s"] = time.perf_counter() - t_start
        final = np.array([weights[d] for d in runs.domains])
        k = len(runs.domains)
        predicted = model.predict(np.stack([final, runs.natural, np.full(k, 1.0 / k)]))
        as_map = runs.as_map
        diagnostics: dict[str, Any] = {
            **run_diagnostics(runs, y, chosen_domains),
            "regression": {
                "chosen": chosen,
                "cv_folds": min(self.cv_folds, len(y)),
                "cv": {n: {"spearman": r["spearman"], "mae": r["mae"], "r2": r["r2"]} for n, r in cv.items()},
                "out_of_fold": {"actual": y.tolist(), "predicted": {n: r["oof"].tolist() for n, r in cv.items()}},
            },
            "top_k": {
                "k": self.top_k, "num_simulated": self.num_simulated,
                "predicted_loss": {"best": float(top_pred[0]), "kth": float(top_pred[-1]), "median_simulated": median},
                "mean": as_map(mean_top), "std": as_map(top_rows.std(axis=0)),
                "min": as_map(top_rows.min(axis=0)), "max": as_map(top_rows.max(axis=0)),
            },
            "predicted_target_loss": {"regmix": float(predicted[0]), "natural": float(predicted[1]),
                                      "uniform": float(predicted[2])},
            "cap": {"max_epochs": self.max_epochs, "budget_tokens": budget,
                    "clipped": bool(np.abs(final - mean_top).max() > 1e-9)},
        }
        return RegMixWeights("regmix", weights, target=self.target, config=mixer_config(self.params, runs.settings),
                             diagnostics=diagnostics)


def run_diagnostics(runs: ProxyRuns, y: np.ndarray, chosen_domains: list[str]) -> dict[str, Any]:
    """The diagnostics every mixer on proxy runs shares: the data, the target, the runs and the proxy."""
    return {
        "natural": runs.as_map(runs.natural),
        "train_tokens": dict(zip(runs.domains, runs.tokens.tolist())),
        "target_domains": chosen_domains,
        "num_runs": len(y),
        "proxy_runs": runs.table(y),
        "best_proxy_run": {"mixture": runs.as_map(runs.mixtures[int(np.argmin(y))]), "target_loss": float(y.min())},
        "data_fingerprint": runs.fingerprint,
        "proxy": runs.proxy,
    }


def mixer_config(params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """weights.json's config: the parameters with the device defaults filled in, without the ones that change no
    result (verbosity, cache place, threads, stack size)."""
    config = {k: v for k, v in params.items() if k not in ("verbose", "cache_dir", "threads", "stack_size")}
    config.update(settings)
    config["target_domains"] = parse_domain_list(params.get("target_domains"))
    return config
