"""A scaling ladder: does a mixture still win above the proxy's scale?

Every mixture (the ones given, plus `uniform` and `natural` computed from the data) is trained at each rung of a
ladder of model sizes, each with its token budget (a fixed number of tokens per parameter by default), for several
seeds. A seed is a common random number: at a rung, every mixture starts from the same initialization and draws its
data with the same random numbers, so differences between mixtures are paired. Each model is scored per domain on
fixed windows of the `test` split; a metric (the unweighted average over domains, the worst domain, or one domain,
optionally leaving domains out, such as a noise domain) turns those into one loss per run.

`mixers.ladder_fit` fits a scaling curve per mixture over the rungs' training compute, extrapolates it to the target
compute, bootstraps seeds for intervals, and checks itself by predicting the top rung from the others. Runs are
cached (mixers.run_cache) by data, mixture, rung, seed and hyperparameters: adding a mixture or a seed trains only
what is missing.

    ladder = Ladder(rungs=default_rungs("cpu"), seeds=3, target_params=1e9, target_tokens=2e10)
    result = ladder.fit("DATA", {"regmix": {...}, "doremi": {...}})   # result["verdicts"], result["self_check"]
    write_ladder(result, "out/ladder")                                 # ladder.json, ladder.md, ladder.png
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mixers.run_cache import RunCache, data_fingerprint, run_key

BASELINES = ("uniform", "natural")
# The fitted curve family (mixers.ladder_fit.fit_curves): one exponent per mixture, or one for all (parallel).
CURVES = ("free-exponent", "parallel")


@dataclass(frozen=True)
class Rung:
    """One model size of the ladder and its training tokens."""

    name: str
    d_model: int
    n_layer: int
    tokens: int
    n_head: int = 0  # 0 = d_model // 32, at least 2

    def model_config(self, vocab_size: int, seq_len: int, mup_base_width: int | None = None,
                     mup_output_mult: float = 1.0):
        """The rung's GPTConfig; under muP (`mup_base_width`) every rung keeps the same head count (4 unless the
        rung names one: the count benchmarks/mup_sweep.py tuned at), as muP's width scaling assumes."""
        from proxy_training.model import GPTConfig

        heads = self.n_head or (4 if mup_base_width else _heads(self.d_model))
        return GPTConfig(vocab_size=vocab_size, seq_len=seq_len, n_layer=self.n_layer, n_head=heads,
                         d_model=self.d_model, mup_base_width=mup_base_width, mup_output_mult=mup_output_mult)


def _heads(d_model: int) -> int:
    """Standard-parameterization heads: about one per 32 channels, at least 2 where the width allows, dividing it."""
    h = max(2, d_model // 32)
    while d_model % h:
        h -= 1
    return h


def training_flops(config, tokens: int) -> float:
    """Training compute of one model: 6 N D with N the parameters every token's forward and backward pass multiply
    by (the blocks and the LM head; the embedding lookups cost no FLOPs), plus attention's 6 n_layer seq_len d_model
    per token (Kaplan et al. 2020, Table 1: forward 2N + 2 n_layer n_ctx d_attn, training three times that)."""
    n = config.num_params(embeddings=False) + config.padded_vocab * config.d_model
    return 6.0 * n * tokens + 6.0 * config.n_layer * config.seq_len * config.d_model * tokens


# Widths at two layers, tokens per parameter fixed (N counted as training_flops counts it): compute grows 2-3x per
# rung at vocab 4096 (17x over the ladder; less at larger vocabularies, where the LM head dominates N). Four rungs, so
# that the self-check fits three when it leaves the top one out; none narrower than 32, where the mixtures' order
# still reflects what a tiny model can hold more than what the data is worth (benchmarks/ladder.py).
CPU_WIDTHS = (32, 48, 64, 100)
CPU_TOKENS_PER_PARAM = 2.5
# On a GPU: up to GPT-2 small (~124M parameters) at the Chinchilla ratio, four rungs as on the CPU.
CUDA_SIZES = ((256, 4), (384, 6), (512, 8), (768, 12))
CUDA_TOKENS_PER_PARAM = 20


@dataclass(frozen=True)
class Recipe:
    """How every rung trains: sequences per step, their length, the peak learning rate and the parameterization
    (muP with the base width and output multiplier the learning rate was tuned at; base width 0 = the standard
    parameterization)."""

    batch_size: int
    seq_len: int
    lr: float
    mup_base_width: int
    mup_output_mult: float


# muP with the learning rate and logit multiplier tuned at width 64 (benchmarks/mup_sweep.py: the best rate stayed
# on one grid point from width 64 to 256 under muP, and drifted 4 grid steps under the standard parameterization),
# with that sweep's batch shape: short sequences and small batches give the small rungs enough optimizer steps to
# leave the unigram plateau inside their token budget.
CPU_RECIPE = Recipe(batch_size=8, seq_len=128, lr=2e-3, mup_base_width=64, mup_output_mult=8.0)
# On a GPU, 16k-token batches keep the top rung (1.8B tokens) near 100k steps; the rate is the CPU sweep's, not
# re-tuned at this batch size.
CUDA_RECIPE = Recipe(batch_size=32, seq_len=512, lr=2e-3, mup_base_width=64, mup_output_mult=8.0)


def default_recipe(device: str) -> Recipe:
    """The training recipe of a device's default ladder ("cpu" or "cuda")."""
    return CUDA_RECIPE if device == "cuda" else CPU_RECIPE


def default_rungs(device: str, vocab_size: int = 4096, seq_len: int = 256) -> list[Rung]:
    """The default ladder for a device ("cpu" or "cuda"): >= 3 sizes spanning >= 16x in compute."""
    sizes = CUDA_SIZES if device == "cuda" else tuple((d, 2) for d in CPU_WIDTHS)
    ratio = CUDA_TOKENS_PER_PARAM if device == "cuda" else CPU_TOKENS_PER_PARAM
    rungs = []
    for d, layers in sizes:
        probe = Rung(f"d{d}x{layers}", d, layers, 0).model_config(vocab_size, seq_len)
        n = probe.num_params(embeddings=False) + probe.padded_vocab * probe.d_model
        rungs.append(Rung(f"d{d}x{layers}", d, layers, int(ratio * n)))
    return rungs


_SIZE = re.compile(r"d(\d+)(?:x(\d+))?")
_TOKENS = re.compile(r"(\d+(?:\.\d+)?)([kKmMbB]?)")


def parse_rung(spec: str) -> Rung:
    """`SIZE:TOKENS` -> Rung; SIZE is `dWIDTH` or `dWIDTHxLAYERS` (2 layers by default) or a proxy preset name,
    TOKENS a count with an optional k/M/B suffix (e.g. `d128x4:20M`)."""
    from proxy_training.model import PRESETS

    size, sep, tokens = spec.partition(":")
    t = _TOKENS.fullmatch(tokens.strip())
    if not sep or not t:
        raise ValueError(f"rung {spec!r}: expected SIZE:TOKENS, e.g. d128x4:20M")
    count = int(float(t.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "b": 1e9}[t.group(2).lower()])
    if count < 1:
        raise ValueError(f"rung {spec!r}: TOKENS must be at least 1")
    m = _SIZE.fullmatch(size.strip())
    if m:
        width, layers = int(m.group(1)), int(m.group(2) or 2)
        if width < 1 or layers < 1:
            raise ValueError(f"rung {spec!r}: width and layers must be at least 1")
        return Rung(size.strip(), width, layers, count)
    if size in PRESETS:
        p = PRESETS[size]
        if p.get("d_mlp"):
            raise ValueError(f"rung {spec!r}: preset {size} has its own MLP width; give dWIDTHxLAYERS instead")
        return Rung(size, p["d_model"], p["n_layer"], count, p["n_head"])
    raise ValueError(f"rung {spec!r}: size {size!r} is neither dWIDTH[xLAYERS] nor one of {', '.join(PRESETS)}")


def metric_values(losses: np.ndarray, domains: list[str], metric: str, exclude: tuple[str, ...] = ()) -> np.ndarray:
    """One loss per run from per-domain losses [..., k]: "average" (unweighted over domains), "worst", or a domain's
    name; `exclude` leaves domains out (a noise domain no mixture should be judged on)."""
    keep = [i for i, d in enumerate(domains) if d not in exclude]
    unknown = sorted(set(exclude) - set(domains))
    if unknown:
        raise ValueError(f"--exclude-domain: no domain {', '.join(unknown)} in the data")
    if not keep:
        raise ValueError("every domain is excluded: nothing to score")
    if metric == "average":
        return losses[..., keep].mean(axis=-1)
    if metric == "worst":
        return losses[..., keep].max(axis=-1)
    if metric in domains:
        return losses[..., domains.index(metric)]
    raise ValueError(f"--metric {metric!r}: choose average, worst or a domain ({', '.join(domains)})")


class Ladder:
    """Train every mixture at every rung and seed (cached), fit the curves, and judge the mixtures at the target.

    Parameters: rungs (None = `default_rungs` for the device); seeds (K: seeds 0..K-1); target_params and
    target_tokens (the team's model: target compute = training_flops at that size, with the top rung's shape ratio
    for the attention term); metric, exclude_domains (see `metric_values`); batch_size, seq_len, lr, mup_base_width
    and mup_output_mult: the training recipe (one learning rate for every rung; None = the device's default recipe,
    `default_recipe`: muP, its rate and logit multiplier tuned at the base width; mup_base_width 0 = the standard
    parameterization); eval_windows per domain of the test split; n_boot bootstrap resamples of the seeds; device,
    precision, threads as in TrainConfig; cache_dir (None = DATA/.ladder-cache); curve: "free-exponent" (an
    exponent per mixture, one E) or "parallel" (one exponent), see mixers.ladder_fit.fit_curves.
    After `fit`: `recipe_`, `trained_runs_`, `cached_runs_`, `timings_`.
    """

    def __init__(
        self,
        rungs: list[Rung] | None = None,
        seeds: int = 3,
        target_params: float = 1e9,
        target_tokens: float = 2e10,
        metric: str = "average",
        exclude_domains: tuple[str, ...] = (),
        batch_size: int | None = None,
        seq_len: int | None = None,
        lr: float | None = None,
        warmup_fraction: float = 0.1,
        eval_windows: int = 64,
        n_boot: int = 1000,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        cache_dir: str | None = None,
        mup_base_width: int | None = None,
        mup_output_mult: float | None = None,
        curve: str = "free-exponent",
        seed: int = 0,
        verbose: bool = True,
    ):
        self.rungs = rungs
        self.seeds = seeds
        self.target_params = target_params
        self.target_tokens = target_tokens
        self.metric = metric
        self.exclude_domains = tuple(exclude_domains)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.lr = lr
        self.warmup_fraction = warmup_fraction
        self.eval_windows = eval_windows
        self.n_boot = n_boot
        self.device = device
        self.precision = precision
        self.threads = threads
        self.cache_dir = cache_dir
        self.mup_base_width = mup_base_width
        self.mup_output_mult = mup_output_mult
        if curve not in CURVES:
            raise ValueError(f"curve {curve!r}: choose {' or '.join(CURVES)}")
        self.curve = curve
        self.seed = seed
        self.verbose = verbose

    def _log(self, msg: str) -> None:
        if self.verbose:
            import sys

            print(f"ladder: {msg}", file=sys.stderr, flush=True)

    def recipe(self, device: str) -> Recipe:
        """The device's default recipe with every setting given to the constructor in its place."""
        given = {k: getattr(self, k) for k in Recipe.__dataclass_fields__ if getattr(self, k) is not None}
        return Recipe(**{**asdict(default_recipe(device)), **given})

    def _train_config(self, steps: int):
        from proxy_training.trainer import TrainConfig

        lr = self.recipe_.lr
        return TrainConfig(steps=steps, lr=lr, min_lr=lr / 10,
                           warmup_steps=max(1, int(self.warmup_fraction * steps)), device=self.device,
                           precision=self.precision, threads=self.threads, progress=False)

    def fit(self, data_dir: str | os.PathLike, mixtures: dict[str, dict[str, float]]) -> dict:
        """Train what the cache lacks, fit, judge; the result is plain JSON data (see `write_ladder`)."""
        from mixers.ladder_fit import MIN_SPAN, ladder_verdict
        from proxy_training.data import TokenDatasets
        from proxy_training.trainer import resolve_device

        if self.seeds < 1:
            raise ValueError("seeds must be at least 1")
        t0 = time.perf_counter()
        data = TokenDatasets(data_dir)
        domains = data.domains
        names, vectors = self._mixtures(data, mixtures)
        device = resolve_device(self.device).type
        self.recipe_ = recipe = self.recipe(device)
        rungs = self.rungs or default_rungs(device, data.vocab_size, recipe.seq_len)
        if len(rungs) < 3:
            raise ValueError(f"a ladder needs at least 3 rungs, got {len(rungs)}")
        mup = recipe.mup_base_width or None
        configs = [r.model_config(data.vocab_size, recipe.seq_len, mup, recipe.mup_output_mult) for r in rungs]
        tokens_per_step = recipe.batch_size * recipe.seq_len
        steps = [max(1, math.ceil(r.tokens / tokens_per_step)) for r in rungs]
        compute = np.array([training_flops(c, s * tokens_per_step) for c, s in zip(configs, steps)])
        if not np.all(np.diff(compute) > 0):
            raise ValueError("rungs must grow in training compute (order them smallest first)")
        # Checked before any training, so a mistake costs nothing: the fit needs this span, the metric names
        # domains, and a target at or below the top rung is not an extrapolation.
        if compute[-1] / compute[0] < MIN_SPAN:
            raise ValueError(f"the rungs span {compute[-1] / compute[0]:.1f}x in training compute; a ladder needs "
                             f">= {MIN_SPAN}x (add a larger rung or more tokens at the top)")
        metric_values(np.zeros((1, len(domains))), domains, self.metric, self.exclude_domains)
        if self.metric in self.exclude_domains:
            raise ValueError(f"--metric {self.metric!r} is a domain --exclude-domain leaves out")
        top = configs[-1]
        target_compute = float(training_flops_at(self.target_params, self.target_tokens, top))
        if target_compute <= compute[-1]:
            raise ValueError(f"the target ({self.target_params:.3g} parameters x {self.target_tokens:.3g} tokens = "
                             f"{target_compute:.3g} FLOPs) is not above the top rung ({compute[-1]:.3g} FLOPs): a "
                             f"ladder predicts upward; name the model you will train")

        self.timings_ = {"setup_s": time.perf_counter() - t0}
        seeds = list(range(self.seeds))
        losses, seconds = self._train(data, data_dir, names, vectors, seeds, rungs, configs, steps, compute)
        self.timings_["train_s"] = float(seconds.sum())

        values = metric_values(losses, domains, self.metric, self.exclude_domains)  # [S, M, R]
        verdict = ladder_verdict(compute, values, names, target_compute, baselines=BASELINES, n_boot=self.n_boot,
                                 seed=self.seed, shared_alpha=self.curve == "parallel")
        return {
            "data": str(data_dir), "domains": domains, "names": names,  # the order of the mixture axis
            "mixtures": {n: dict(zip(domains, v.tolist())) for n, v in zip(names, vectors)},
            "metric": self.metric, "exclude_domains": list(self.exclude_domains), "seeds": seeds,
            "rungs": [{**asdict(rung), "params": c.num_params(), "steps": s, "tokens": s * tokens_per_step,
                       "flops": float(f), "train_seconds": float(sec)}
                      for rung, c, s, f, sec in zip(rungs, configs, steps, compute, seconds)],
            "target": {"params": self.target_params, "tokens": self.target_tokens, "flops": target_compute},
            "losses": values.tolist(), "domain_losses": losses.tolist(),
            "fit": verdict, "self_check": verdict["self_check"], "proxy_fidelity": verdict["proxy_fidelity"],
            "train": {**asdict(self._train_config(0)), "steps": None, "warmup_steps": None,
                      "warmup_fraction": self.warmup_fraction, **asdict(recipe)},
            "device": device, "trained_runs": self.trained_runs_, "cached_runs": self.cached_runs_,
            "warning": self_check_warning(verdict),
            "repetition": repetition(data.token_counts("train"), domains, names, vectors,
                                     [s * tokens_per_step for s in steps], [r.name for r in rungs]),
        }

    def _train(self, data, data_dir, names, vectors, seeds, rungs, configs, steps, compute):
        """Per-domain test losses [seed, mixture, rung, domain] from the cache or trained (a rung's missing runs in
        one `train_mixtures` call), and the training seconds per rung."""
        from proxy_training.data import evaluation_windows
        from proxy_training.trainer import train_mixtures

        domains = data.domains
        batch_size, seq_len = self.recipe_.batch_size, self.recipe_.seq_len
        tokens_per_step = batch_size * seq_len
        windows = evaluation_windows(data, "test", seq_len, self.eval_windows)
        fingerprint = data_fingerprint(data_dir, ("train", "test"))
        cache = RunCache(self.cache_dir or Path(data_dir) / ".ladder-cache")
        losses = np.full((len(seeds), len(names), len(rungs), len(domains)), np.nan)  # per-domain test loss
        seconds = np.zeros(len(rungs))
        self.trained_runs_ = self.cached_runs_ = 0
        train_streams = data.streams("train")
        for r, (rung, config, n_steps) in enumerate(zip(rungs, configs, steps)):
            cfg = self._train_config(n_steps)
            proxy = {"kind": "ladder", "model": asdict(config), "steps": n_steps, "batch_size": batch_size,
                     "eval_windows": self.eval_windows, "split": "test",
                     "train": {k: v for k, v in asdict(cfg).items() if k in _RESULT_KEYS}}
            todo = []
            for s, seed in enumerate(seeds):
                for m, vec in enumerate(vectors):
                    key = run_key(fingerprint, domains, vec, proxy, seed)
                    rec = cache.get(key)
                    if rec is None:
                        todo.append((s, m, key))
                    else:
                        losses[s, m, r] = rec["domain_loss"]
            self.cached_runs_ += len(seeds) * len(names) - len(todo)
            if not todo:
                continue
            self._log(f"rung {rung.name} ({config.num_params():,} parameters, {n_steps * tokens_per_step:,} tokens, "
                      f"{compute[r]:.2e} FLOPs): training {len(todo)} runs")
            t = time.perf_counter()
            runs = train_mixtures(train_streams, vectors[[m for _, m, _ in todo]], [seeds[s] for s, _, _ in todo],
                                  config, cfg, windows, batch_size)
            seconds[r] = time.perf_counter() - t
            for (s, m, key), row, final in zip(todo, runs.eval_loss, runs.train_loss):
                losses[s, m, r] = row
                cache.put(key, {"domain_loss": row.tolist(), "final_train_loss": float(final),
                                "seconds": seconds[r] / len(todo)})
            self.trained_runs_ += len(todo)
        return losses, seconds

    def _mixtures(self, data, mixtures: dict[str, dict[str, float]]) -> tuple[list[str], np.ndarray]:
        """uniform and natural (weights from the data's train tokens) plus the given mixtures, as vectors. A given
        mixture named like a baseline (`curate mix --method uniform` writes method "uniform") is that baseline when
        its weights are the baseline's, and a candidate of its own, renamed, when they are not."""
        from mixers.evaluation import mixture_vector

        counts = data.token_counts("train").astype(np.float64)
        present = counts > 0
        names, vectors = list(BASELINES), [present / present.sum(), counts / counts.sum()]
        for name, weights in mixtures.items():
            vec = mixture_vector(data, name, weights)
            if name in BASELINES and np.allclose(vec, vectors[names.index(name)], rtol=0, atol=1e-9):
                continue
            while name in names:
                name = f"{name} (given)"
            names.append(name)
            vectors.append(vec)
        return names, np.stack(vectors)


# TrainConfig fields that change a run's result (threads, workers, progress and the like do not).
_RESULT_KEYS = ("lr", "min_lr", "warmup_steps", "schedule", "decay_fraction", "weight_decay", "beta1", "beta2",
                "grad_clip", "precision", "compile")


# The self-check passes when the top rung's pair order is predicted right for at least this share of the pairs above
# the seed noise, and the prediction error is smaller than the largest gap the verdicts report.
SELF_CHECK_ACCURACY = 0.8


def self_check_warning(verdict: dict) -> str | None:
    """A one-line warning when the leave-top-rung-out check fails: the verdicts then extrapolate a fit that could
    not predict a rung it had not seen."""
    sc = verdict["self_check"]
    acc = sc["accuracy"]["fit"]
    gaps = [abs(c["gap"]) for c in verdict["comparisons"] if c["gap"] is not None]
    problems = []
    if acc is not None and acc < SELF_CHECK_ACCURACY:
        problems.append(f"it orders {100 * acc:.0f}% of the top rung's pairs right (< {100 * SELF_CHECK_ACCURACY:.0f}%): "
                        f"the mixtures' order changes between rungs in ways the fit does not follow")
    # Gaps are what the verdicts judge: an error common to every mixture cancels in them.
    if gaps and sc["max_gap_error"] > max(gaps):
        problems.append(f"its error on the gaps at the top rung (up to {sc['max_gap_error']:.3f} nats) exceeds every "
                        f"gap it judges at the target: those gaps are within the fit's own error")
    if not problems:
        return None
    return ("the self-check failed (" + "; ".join(problems) + "), so these verdicts are not reliable; add rungs or "
            "tokens per parameter, closer to the target")


# Above this many passes over a domain's train tokens, repeated data is worth less than fresh data (Muennighoff et
# al. 2023: up to ~4 epochs are almost as good as new, the loss bends upward after that); the note names the first
# repetition, so a reader knows the rungs left the unlimited-data regime the fitted power law assumes.
REPETITION_NOTE_EPOCHS = 1.0


def repetition(train_tokens, domains: list[str], names: list[str], vectors: np.ndarray, rung_tokens: list[int],
               rung_names: list[str]) -> dict:
    """The most passes any domain gets under each mixture at each rung (weight x tokens / the domain's train
    tokens), and a note when a mixture repeats a domain more than REPETITION_NOTE_EPOCHS times at a rung."""
    counts = np.asarray(train_tokens, dtype=np.float64)
    passes = np.asarray(vectors)[:, None, :] * np.asarray(rung_tokens, dtype=np.float64)[None, :, None]
    passes = np.divide(passes, counts, out=np.zeros_like(passes), where=counts > 0)  # [M, R, k]
    most = passes.max(-1)
    over = [(names[m], rung_names[r], domains[int(passes[m, r].argmax())], most[m, r])
            for m in range(len(names)) for r in range(len(rung_names)) if most[m, r] > REPETITION_NOTE_EPOCHS]
    note = None
    if over:
        first = {}
        for name, rung, domain, e in over:  # each mixture's first repeating rung
            first.setdefault(name, (rung, domain, e))
        note = ("data repeats: " + "; ".join(f"{n} passes over {d} {e:.1f} times at {r}"
                                             for n, (r, d, e) in first.items())
                + ": repeated tokens are worth less than new ones, so these mixtures' losses can bend up at the "
                "larger rungs and away from the fit")
    return {"max_epochs": {n: [round(float(v), 3) for v in most[m]] for m, n in enumerate(names)}, "note": note}


def training_flops_at(params: float, tokens: float, shape) -> float:
    """Training compute of a target model given its parameter count (as `training_flops` counts N) and tokens; the
    attention term uses the layers, width and context of `shape` scaled to that size (depth and width grow
    together: n_layer d_model^2 ~ N)."""
    n_layer_d = shape.n_layer * shape.d_model * math.sqrt(params / max(1, shape.num_params(False)))
    return 6.0 * params * tokens + 6.0 * n_layer_d * shape.seq_len * tokens


# What differs between two runs of the same ladder (wall times, and how many runs the cache held): kept in the
# in-memory result and the stage's stats.json, left out of ladder.json so that file is byte-identical across runs.
RUN_LOG_KEYS = ("trained_runs", "cached_runs")
RUNG_LOG_KEYS = ("train_seconds",)


def deterministic(result: dict) -> dict:
    """`result` without its run log (RUN_LOG_KEYS, RUNG_LOG_KEYS)."""
    out = {k: v for k, v in result.items() if k not in RUN_LOG_KEYS}
    out["rungs"] = [{k: v for k, v in r.items() if k not in RUNG_LOG_KEYS} for r in result["rungs"]]
    return out


def write_ladder(result: dict, out_dir: str | os.PathLike) -> Path:
    """ladder.json, ladder.md and ladder.png into `out_dir`."""
    from mixers.ladder_fit import verdict_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ladder.json").write_text(json.dumps(deterministic(result), indent=2, sort_keys=True) + "\n")
    (out / "ladder.md").write_text(ladder_markdown(result, verdict_table))
    plot_ladder(result, out / "ladder.png")
    return out


def ladder_markdown(result: dict, verdict_table) -> str:
    """The verdicts, the self-check and the per-rung losses as markdown."""
    names = result["names"]
    values = np.asarray(result["losses"])  # [S, M, R]
    lines = [f"# Scaling ladder: {result['metric']} test loss"
             + (f" (without {', '.join(result['exclude_domains'])})" if result["exclude_domains"] else ""), "",
             *([f"**Warning: {result['warning']}.**", ""] if result.get("warning") else []),
             f"{len(result['seeds'])} seeds, {len(result['rungs'])} rungs, target {result['target']['params']:.3g} "
             f"parameters x {result['target']['tokens']:.3g} tokens = {result['target']['flops']:.3g} FLOPs.", "",
             verdict_table(result["fit"]), "", "## Per rung (mean over seeds)", "",
             "| mixture | " + " | ".join(f"{r['name']} ({r['flops']:.2e} FLOPs)" for r in result["rungs"]) + " |",
             "|---" * (len(result["rungs"]) + 1) + "|"]
    for m, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values[:, m].mean(axis=0)) + " |")
    lines += ["", "Proxy fidelity (Spearman of each rung's order with the top rung's): "
              + ", ".join(f"{r['name']} {f:.2f}" if f is not None else f"{r['name']} n/a"
                          for r, f in zip(result["rungs"], result["proxy_fidelity"])), ""]
    rep = result.get("repetition")
    if rep and rep["note"]:
        lines += [f"Note: {rep['note']}.", ""]
    sc = result["self_check"]
    lines += ["## Self-check (top rung left out, predicted from the others)", "", "```",
              json.dumps(sc, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def plot_ladder(result: dict, path: str | os.PathLike) -> None:
    """ladder.png: `draw_ladder` on its own figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_ladder(ax, result)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_ladder(ax, result: dict) -> None:
    """Loss against compute, log-log: each mixture's points (min-max over seeds), its fit, the extrapolation to the
    target."""
    from mixers.ladder_fit import predict

    compute = np.array([r["flops"] for r in result["rungs"]])
    values = np.asarray(result["losses"])
    target = result["target"]["flops"]
    grid = np.geomspace(compute[0] / 1.5, max(target, compute[-1]) * 1.5, 200)
    curves = predict(result["fit"]["fit"], grid)  # [M, len(grid)]
    for m, name in enumerate(result["names"]):
        v = values[:, m]
        line = ax.errorbar(compute, v.mean(axis=0), yerr=[v.mean(axis=0) - v.min(axis=0),
                                                          v.max(axis=0) - v.mean(axis=0)],
                           fmt="o", capsize=3, label=name)
        ax.plot(grid, curves[m], "-", lw=1, color=line[0].get_color())
    ax.axvline(target, color="grey", ls=":", lw=1)
    ax.text(target, ax.get_ylim()[1], " target", va="top", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(f"{result['metric']} test loss (nats)")
    ax.legend(fontsize=8)
    ax.set_title("scaling ladder: points = rungs (min-max over seeds), lines = fit")
