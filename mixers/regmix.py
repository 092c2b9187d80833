"""RegMix (Liu et al. 2024, arXiv 2407.01492): many small proxy runs, a regression, the predicted-best mixture.

    w = RegMix(target="web", steps=1000).fit("DATA")     # -> DomainWeights; w.save("weights.json") also writes
                                                          #    weights.proxy_runs.csv (the proxy table)
    curate mix --method regmix DATA --out weights.json --target web --param steps=300 --param num_runs=64

The procedure (facts in shared/reference/mixers.md):
1. Sample N mixtures: p ~ Dirichlet(s * q) with q = natural token shares ** 0.5 (renormalized) and s drawn from 15
   log-spaced concentration scales in [0.1, 5]; reject p when some p_i > min(sample_max_epochs * natural_i, 1)
   (the paper's 15-epoch repetition cap at a corpus-sized budget); zero weights < 2e-4, renormalize, drop duplicates.
   N defaults to the paper's 512 on CUDA and to max(4 * (k + 1), 32) on CPU (k domains): Olmix asks for >= 3(k+1)
   runs, and 2 shared CPU cores cannot afford 512.
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
   scikit-learn's HistGradientBoostingRegressor and LightGBM (when installed). K-fold CV gives each one's
   out-of-fold Spearman rho and MAE. Boosting rounds are chosen on an inner split of the TRAINING folds only (the
   official notebook early-stops on its test set, a leak), then the model is refit on all training rows with those
   rounds. The regressor with the best CV rho (then MAE) is refit on all runs.
5. Simulate `num_simulated` distinct mixtures (default 100,000) from the same prior, predict, average the `top_k`
   (default 100) with the lowest predicted loss, clip with the max-epochs cap for a `budget_tokens` run (`cap_by_epochs`)
   and renormalize. Simulated mixtures already respect that cap (rejection), so the clip only guards round-off:
   clipping an uncapped top-k mean would hand the excess to whatever small weights it held.

Target: a domain name (its validation loss) or "average" (the unweighted mean over domains of validation loss).
Same data + parameters + seed + device give byte-identical weights.json (no wall times in it; see `timings_`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict
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
    """linear and hgb always; lightgbm when it can be imported."""
    names = ["linear", "hgb"]
    try:
        import lightgbm  # noqa: F401

        names.append("lightgbm")
    except ImportError:
        pass
    return names


def fit_regressor(name: str, X: np.ndarray, y: np.ndarray, seed: int):
    """Fit one regressor on (X, y) only; boosting rounds are chosen on an inner split of these rows, then the model
    is refit on all of them. Returns an object with `.predict`."""
    n = len(X)
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
    """Out-of-fold predictions, Spearman rho and MAE per regressor (K-fold, shuffled with `seed`)."""
    from sklearn.model_selection import KFold

    splits = list(KFold(n_splits=min(folds, len(X)), shuffle=True, random_state=seed).split(X))
    out = {}
    for name in names:
        oof = np.empty(len(y))
        for f, (tr, te) in enumerate(splits):
            oof[te] = fit_regressor(name, X[tr], y[tr], seed + f).predict(X[te])
        out[name] = {"spearman": _spearman(oof, y), "mae": float(np.mean(np.abs(oof - y))), "oof": oof}
    return out


def _better(a: dict, b: dict) -> bool:
    ra = -math.inf if math.isnan(a["spearman"]) else a["spearman"]
    rb = -math.inf if math.isnan(b["spearman"]) else b["spearman"]
    return ra > rb + 1e-12 or (abs(ra - rb) <= 1e-12 and a["mae"] < b["mae"])


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


class RegMix:
    """RegMix mixer: `RegMix(**params).fit(DATA) -> DomainWeights` (see the module docstring for the procedure).

    Parameters (all exposed as `curate mix --method regmix --param KEY=VALUE`):
      target: a domain name or "average" (default).
      num_runs: proxy runs N; None = 512 on CUDA, max(4 * (k + 1), 32) on CPU.
      model_size: proxy size preset (default "regmix-1m", the paper's 2-layer d256 proxy); seq_len, batch_size,
        steps, lr, warmup_steps, schedule ("constant" after warmup, as the paper), weight_decay: proxy training.
        The paper trains 1,000 steps x 512 x 2048 tokens; the CPU defaults here are 1,000 steps x 16 x 256.
      precision: "auto" | "fp32" | "bf16"; device: "auto" | "cpu" | "cuda"; stack_size: models per `train_mixtures`
        call (None = what fits 4 GiB on CPU / half the GPU's memory; on CPU each stack is further capped by
        `cpu_stack_size`); threads: CPU torch threads per worker process (None: 1 for proxies under 8M
        parameters, trained in one worker process per core, see `proxy_training.trainer.stack_workers`). Threads
        and stack size are not in the cache key: they change results only at float round-off.
      eval_windows: validation windows per domain (fixed, mixture-independent).
      temperature, sample_max_epochs, min_weight: the sampler (0.5, 15, 2e-4 as the paper).
      regressors: subset of linear, hgb, lightgbm (default: all available); cv_folds: K (default 5).
      num_simulated (100,000), top_k (100): the choice.
      max_epochs (4), budget_tokens (None = the train corpus size): the final repetition cap.
      cache_dir: None = DATA/.regmix-cache.  seed: mixtures, proxy init/data order, CV splits, simulation.
      verbose: progress lines on stderr.
    After `fit`: `trained_runs_`, `cached_runs_`, `timings_` (seconds per phase).
    """

    def __init__(
        self,
        target: str = "average",
        num_runs: int | None = None,
        model_size: str = "regmix-1m",
        seq_len: int = 256,
        batch_size: int = 16,
        steps: int = 1000,
        lr: float = 4e-4,
        warmup_steps: int = 100,
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

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"regmix: {msg}", file=sys.stderr, flush=True)

    # -- proxy configuration ------------------------------------------------------------------------------------
    def _proxy_setup(self, data):
        from proxy_training.model import preset_config
        from proxy_training.trainer import TrainConfig, resolve_device, resolve_precision

        device = resolve_device(self.device)
        autocast = resolve_precision(self.precision, device)
        model_config = preset_config(self.model_size, data.vocab_size, self.seq_len)
        # As mix-eval does: a warmup as long as the run would never reach the learning rate.
        warmup = self.warmup_steps if self.warmup_steps < self.steps else max(1, self.steps // 10)
        train_config = TrainConfig(
            steps=self.steps, lr=self.lr, min_lr=self.lr / 10, warmup_steps=warmup,
            schedule=self.schedule, weight_decay=self.weight_decay, device=device.type, precision=self.precision,
            threads=self.threads, progress=False)
        # Everything that changes a run's result (and nothing that does not) keys the cache.
        proxy = {
            "model": asdict(model_config),
            "train": {k: v for k, v in asdict(train_config).items()
                      if k in ("steps", "lr", "min_lr", "warmup_steps", "schedule", "decay_fraction", "weight_decay",
                               "beta1", "beta2", "grad_clip")},
            "device": device.type,
            "autocast": None if autocast is None else str(autocast).replace("torch.", ""),
            "batch_size": self.batch_size,
            "eval": {"split": "valid", "windows_per_domain": self.eval_windows},
            "sampler": "iid",
        }
        return device, model_config, train_config, proxy

    def _stack_size(self, model_config, device) -> int:
        if self.stack_size:
            return int(self.stack_size)
        import torch

        c = model_config
        tokens = self.batch_size * c.seq_len
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
    def fit(self, data_dir: str | os.PathLike) -> RegMixWeights:
        from proxy_training.data import TokenDatasets, evaluation_windows
        from proxy_training.trainer import cpu_stack_size, train_mixtures

        t_start = time.perf_counter()
        self.trained_runs_ = self.cached_runs_ = 0
        data = TokenDatasets(data_dir)
        domains = data.domains
        k = len(domains)
        if self.target != "average" and self.target not in domains:
            raise ValueError(f"target {self.target!r} is not a domain of {data_dir} "
                             f"(choose one of {', '.join(domains)} or 'average')")
        if k < 2:
            raise ValueError(f"{data_dir} has {k} domain(s); mixing needs at least 2")
        tokens = data.token_counts("train")
        natural = tokens / tokens.sum()
        device, model_config, train_config, proxy = self._proxy_setup(data)
        num_runs = self.num_runs or (512 if device.type == "cuda" else max(4 * (k + 1), 32))

        # 1. Mixtures. Rows are drawn in order, so a larger num_runs extends (and reuses) a smaller one's runs.
        caps = sampling_caps(natural, self.sample_max_epochs)
        mixtures = sample_mixtures(natural, num_runs, np.random.default_rng([self.seed, 1]), self.temperature,
                                   caps=caps, min_weight=self.min_weight)

        # 2-3. Proxy runs, from the cache where possible.
        t0 = time.perf_counter()
        fingerprint = data_fingerprint(data_dir)
        cache = RunCache(self.cache_dir or Path(data_dir) / ".regmix-cache")
        keys = [run_key(fingerprint, domains, m, proxy, self.seed) for m in mixtures]
        records: list[dict | None] = [cache.get(key) for key in keys]
        todo = [i for i, r in enumerate(records) if r is None]
        self.cached_runs_ = num_runs - len(todo)
        self.timings_["fingerprint_and_cache_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if todo:
            windows = evaluation_windows(data, "valid", model_config.seq_len, self.eval_windows)
            streams = data.streams("train")
            stack = self._stack_size(model_config, device)
            per_stack = cpu_stack_size(model_config, self.batch_size, stack) if device.type == "cpu" else stack
            layout = (f"in groups of {stack}, stacks of at most {per_stack} per CPU worker" if device.type == "cpu"
                      else f"in stacks of {stack} on {device.type}")
            self._log(f"{num_runs} mixtures over {k} domains: {self.cached_runs_} cached, training {len(todo)} "
                      f"({self.steps} steps x {self.batch_size} x {model_config.seq_len} tokens, {self.model_size}) "
                      f"{layout}")
            for lo in range(0, len(todo), stack):
                chunk = todo[lo : lo + stack]
                t_chunk = time.perf_counter()
                runs = train_mixtures(streams, mixtures[chunk], [self.seed] * len(chunk), model_config, train_config,
                                      windows, batch_size=self.batch_size, max_models=stack)
                for j, i in enumerate(chunk):
                    records[i] = {
                        "domains": domains,
                        "mixture": mixtures[i].tolist(),
                        "eval_loss": runs.eval_loss[j].tolist(),
                        "train_loss": float(runs.train_loss[j]),
                        "device": runs.device,
                        "proxy": proxy,
                        "seed": self.seed,
                    }
                    cache.put(keys[i], records[i])
                self.trained_runs_ += len(chunk)
                self._log(f"trained {self.trained_runs_}/{len(todo)} runs "
                          f"({time.perf_counter() - t_chunk:.1f}s for {len(chunk)})")
        else:
            self._log(f"{num_runs} mixtures over {k} domains: all cached, nothing to train")
        self.timings_["train_s"] = time.perf_counter() - t0

        losses = np.array([r["eval_loss"] for r in records])  # [N, k]
        y = losses.mean(axis=1) if self.target == "average" else losses[:, domains.index(self.target)]

        # 4. Regression with K-fold CV.
        t0 = time.perf_counter()
        names = [self.regressors] if isinstance(self.regressors, str) else list(self.regressors or available_regressors())
        from threadpoolctl import threadpool_limits

        # One thread: a few hundred rows gain nothing from OpenMP, and its barriers crawl on a loaded machine
        # (HistGradientBoosting took minutes instead of seconds on the shared 2-core box).
        with threadpool_limits(1):
            cv = cross_validate(names, mixtures, y, self.cv_folds, self.seed)
            chosen = names[0]
            for name in names[1:]:
                if _better(cv[name], cv[chosen]):
                    chosen = name
            model = fit_regressor(chosen, mixtures, y, self.seed)
        self.timings_["regression_s"] = time.perf_counter() - t0
        self._log(", ".join(f"{n}: CV rho {cv[n]['spearman']:.3f} MAE {cv[n]['mae']:.4f}" for n in names)
                  + f" -> {chosen}")

        # 5. Simulate, predict, average the top-k, cap. Simulated mixtures are deduplicated too: small concentrations
        # draw the same one-hot mixture thousands of times, and tree models predict ties, so without it the top-k
        # can be k copies of one mixture picked by sample order.
        t0 = time.perf_counter()
        budget = int(self.budget_tokens or tokens.sum())
        # Only mixtures the final cap allows compete: clipping the top-k mean afterwards would hand the clipped mass
        # to whatever the top-k happened to hold in small amounts (it gave NOISE 13% when the target hit its cap).
        # The mean of capped mixtures is capped, so cap_by_epochs below is then only a safety net.
        final_caps = np.minimum(caps, self.max_epochs * tokens / budget)
        if final_caps.sum() < 1.0:
            raise ValueError(f"a {budget:,}-token run needs more than {self.max_epochs} epochs of the corpus "
                             f"({int(tokens.sum()):,} tokens): lower budget_tokens or raise max_epochs")
        sim = sample_mixtures(natural, self.num_simulated, np.random.default_rng([self.seed, 2]), self.temperature,
                              caps=final_caps, min_weight=self.min_weight)
        pred = np.concatenate([model.predict(sim[i : i + 50_000]) for i in range(0, len(sim), 50_000)])
        top = np.argsort(pred, kind="stable")[: self.top_k]
        mean_top = sim[top].mean(axis=0)
        weights = cap_by_epochs(dict(zip(domains, mean_top.tolist())), dict(zip(domains, tokens.tolist())),
                                budget, self.max_epochs)
        final = np.array([weights[d] for d in domains])
        self.timings_["simulate_s"] = time.perf_counter() - t0
        self.timings_["total_s"] = time.perf_counter() - t_start

        def as_map(v):
            return dict(zip(domains, (float(x) for x in v)))

        uniform = np.full(k, 1.0 / k)
        predicted = model.predict(np.stack([final, natural, uniform]))
        diagnostics: dict[str, Any] = {
            "natural": as_map(natural),
            "train_tokens": dict(zip(domains, tokens.tolist())),
            "num_runs": num_runs,
            "proxy_runs": [
                {"mixture": as_map(mixtures[i]), "loss": as_map(losses[i]), "target_loss": float(y[i]),
                 "train_loss": records[i]["train_loss"]}
                for i in range(num_runs)
            ],
            "regression": {
                "chosen": chosen,
                "cv_folds": min(self.cv_folds, num_runs),
                "cv": {n: {"spearman": cv[n]["spearman"], "mae": cv[n]["mae"]} for n in names},
                "out_of_fold": {"actual": y.tolist(), "predicted": {n: cv[n]["oof"].tolist() for n in names}},
            },
            "top_k": {
                "k": self.top_k,
                "num_simulated": self.num_simulated,
                "predicted_loss": {"best": float(pred[top[0]]), "kth": float(pred[top[-1]]),
                                   "median_simulated": float(np.median(pred))},
                "mean": as_map(mean_top),
                "std": as_map(sim[top].std(axis=0)),
                "min": as_map(sim[top].min(axis=0)),
                "max": as_map(sim[top].max(axis=0)),
            },
            "predicted_target_loss": {"regmix": float(predicted[0]), "natural": float(predicted[1]),
                                      "uniform": float(predicted[2])},
            "best_proxy_run": {"mixture": as_map(mixtures[int(np.argmin(y))]), "target_loss": float(y.min())},
            "cap": {"max_epochs": self.max_epochs, "budget_tokens": budget, "clipped": bool(np.abs(final - mean_top).max() > 1e-9)},
            "data_fingerprint": fingerprint,
            "proxy": proxy | {"params": model_config.num_params(), "non_embedding_params": model_config.num_params(False),
                              "tokens_per_run": self.steps * self.batch_size * model_config.seq_len},
        }
        config = {k: v for k, v in self.params.items() if k not in ("verbose", "cache_dir", "threads", "stack_size")}
        config["num_runs"] = num_runs
        return RegMixWeights("regmix", weights, target=self.target, config=config, diagnostics=diagnostics)
