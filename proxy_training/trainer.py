"""The trainer: AdamW, warmup + cosine/WSD, gradient clipping, per-domain losses every step, evaluation, checkpoints.

It trains a `GPT` on batches [B, T] or a `StackedGPT` on batches [M, B, T] with the same code:

    trainer = Trainer(model, sampler, TrainConfig(steps=1000, lr=4e-4), loss_fn=None, eval_windows=windows)
    history = trainer.train()          # one record per step: lr, loss and per-domain loss (per model when stacked)
    losses = trainer.evaluate()        # per-domain held-out loss: [k], or [M, k] for a StackedGPT

The per-domain hook. Every step the model yields per-token losses [..., B, T] and the batch's domain ids [..., B];
`loss_fn(per_token_loss, batch) -> scalar` turns them into the loss that is backpropagated. The default is the mean
over tokens, summed over stacked models (a sum keeps each model's gradient its own). DoReMi passes a function that
reweights domains, e.g.

    def loss_fn(tok_loss, batch):
        means, counts = domain_mean_losses(tok_loss, batch.domain_ids, k)   # [k] (or [M, k])
        ... update weights a from the excess loss ...
        return (a * means.nan_to_num()).sum()

`batch` also carries x and y, so a reference model can score the same tokens. An optional
`on_step(trainer, record)` sees each step's record after the update (logging, early stopping via `trainer.stop`).

Many mixtures at once (RegMix): `train_mixtures(train_streams, weights [n, k], seeds, model_config, train_config,
windows)` trains them as StackedGPTs of up to `max_models` models and returns each model's held-out loss per domain.

Devices: `device="auto"` picks CUDA when present, else CPU. On CUDA: bf16 autocast, TF32, optional torch.compile.
On CPU: all cores as torch threads, and bf16 autocast where the CPU has native bf16 (`precision="auto"`: native
bf16 matmuls beat float32 ones); `precision="fp32"` gives exact float32.
Sampling is a function of (seed, step), so a checkpoint (model, optimizer, step, history) resumes exactly.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from proxy_training.data import Batch, EvalWindows, MixtureSampler, StackedSampler
from proxy_training.model import GPTConfig
from proxy_training.stacked import StackedGPT


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 4e-4  # RegMix's proxy learning rate
    min_lr: float = 4e-5
    warmup_steps: int = 100
    schedule: str = "cosine"  # "cosine" | "wsd" (warmup-stable-decay) | "constant"
    decay_fraction: float = 0.2  # WSD: the last fraction of steps decays linearly to min_lr
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    precision: str = "auto"  # "auto" | "fp32" | "bf16" (autocast)
    compile: bool = False
    threads: int | None = None  # CPU threads; None = 1 for models under 8M parameters, else every usable core
    workers: int | None = None  # train_mixtures' processes; None = on CPU, cores // threads for small models, else 1
    eval_every: int = 0  # 0 = evaluate only when asked
    eval_batch_size: int = 32
    checkpoint_path: str | None = None
    checkpoint_every: int = 0
    progress: bool | None = None  # None = only when stderr is a terminal


def resolve_device(name: str, cuda_available: bool | None = None) -> torch.device:
    """`auto` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda_available else "cpu")
    if name == "cuda" and not cuda_available:
        raise ValueError("device 'cuda' requested but no CUDA device is available (use --device auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matmuls (AVX-512 bf16 / AMX), where bf16 autocast pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device (None = plain float32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_bf16() else None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at a step: linear warmup, then cosine to min_lr, WSD (flat then linear decay) or constant."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "wsd":
        decay_start = cfg.steps - int(cfg.decay_fraction * cfg.steps)
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start) / max(1, cfg.steps - decay_start)
        return cfg.lr + (cfg.min_lr - cfg.lr) * min(1.0, progress)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose cosine, wsd or constant")


def domain_mean_losses(per_token_loss: torch.Tensor, domain_ids: torch.Tensor, num_domains: int):
    """Mean loss per domain and token counts per domain: ([..., k] with NaN where a domain is absent, [..., k]).

    per_token_loss is [..., B, T], domain_ids [..., B]; differentiable, so a loss_fn can weight the means.
    """
    T = per_token_loss.shape[-1]
    lead = per_token_loss.shape[:-2]
    seq_sums = per_token_loss.sum(-1)  # [..., B]
    sums = seq_sums.new_zeros(*lead, num_domains).scatter_add(-1, domain_ids, seq_sums)
    counts = seq_sums.new_zeros(*lead, num_domains).scatter_add(-1, domain_ids, torch.full_like(seq_sums, T))
    return sums / counts, counts


def default_loss(per_token_loss: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean token loss per model, summed over stacked models (each model's gradient stays its own)."""
    return per_token_loss.mean(dim=(-2, -1)).sum()


def _tolist(a: torch.Tensor):
    return [None if math.isnan(v) else v for v in a.tolist()] if a.dim() == 1 else [_tolist(r) for r in a]


# Below this many parameters a step is too small to split across cores: the threads' synchronisation costs more than
# the second core buys, and far more when another process holds that core.
SMALL_MODEL_PARAMS = 8_000_000


def default_cpu_threads(model: torch.nn.Module) -> int:
    """1 thread for small models (synchronisation costs more than it buys), else every core this process may use."""
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        return 1
    return len(os.sched_getaffinity(0))


class Trainer:
    """Trains one GPT or a StackedGPT on a sampler's batches; see the module docstring for the hooks."""

    def __init__(
        self,
        model,
        sampler,
        config: TrainConfig | None = None,
        loss_fn: Callable[[torch.Tensor, Batch], torch.Tensor] | None = None,
        eval_windows: EvalWindows | None = None,
        on_step: Callable[["Trainer", dict], None] | None = None,
    ):
        self.config = cfg = config or TrainConfig()
        self.device = resolve_device(cfg.device)
        self.autocast_dtype = resolve_precision(cfg.precision, self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads or default_cpu_threads(model))
        else:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.model = model.to(self.device)
        self.stacked = isinstance(model, StackedGPT)
        self.sampler = sampler
        self.num_domains = sampler.num_domains
        self.loss_fn = loss_fn or default_loss
        self.eval_windows = eval_windows
        self.on_step = on_step
        self.optimizer = self._make_optimizer()
        # Compile the loss function only: the module and its state_dict stay plain for checkpoints and unstack().
        self._token_losses = torch.compile(model.token_losses) if cfg.compile else model.token_losses
        self.step = 0
        self.history: list[dict] = []
        self.evals: list[dict] = []
        self.stop = False

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the model's parameter groups; each group's "lr_mult" (muP's per-layer LR scaling, 1 under SP)
        multiplies the scheduled LR, here and at every step."""
        cfg = self.config
        groups = [{**g, "lr": cfg.lr * g.get("lr_mult", 1.0)} for g in self.model.optim_groups(cfg.weight_decay)]
        kwargs = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError):  # no fused kernel for this device/build
            return torch.optim.AdamW(groups, **kwargs)

    def autocast(self):
        """The autocast context of this trainer's precision (a no-op in float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self) -> dict:
        """One optimizer step; returns its record (step, lr, loss, domain_loss, grad_norm)."""
        cfg = self.config
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        batch = self.sampler.batch(self.step).to(self.device, non_blocking=True)
        self.model.train()
        with self.autocast():
            tok_loss = self._token_losses(batch.x, batch.y)
        loss = self.loss_fn(tok_loss, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms = self.model.clip_grad_norm_(cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.optimizer.step()
        with torch.no_grad():
            per_model = tok_loss.detach().mean(dim=(-2, -1)).float().reshape(-1)
            dom, _ = domain_mean_losses(tok_loss.detach().float(), batch.domain_ids, self.num_domains)
        record = {
            "step": self.step,
            "lr": lr,
            "loss": per_model.cpu().tolist(),  # one entry per model ([1] for a GPT)
            "domain_loss": _tolist(dom.cpu()),  # [k] or [M][k]; None where the batch had no such domain
            "grad_norm": norms.float().cpu().tolist(),
        }
        self.step += 1
        self.history.append(record)
        return record

    def train(self, steps: int | None = None) -> list[dict]:
        """Train until `steps` (default config.steps) optimizer steps have been taken in total."""
        cfg = self.config
        end = cfg.steps if steps is None else steps
        show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        bar = _ProgressBar(end, self.step) if show else None
        try:
            while self.step < end and not self.stop:
                record = self.train_step()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.eval_windows is not None:
                    self.evals.append({"step": self.step, "domain_loss": self.evaluate().tolist()})
                if cfg.checkpoint_every and cfg.checkpoint_path and self.step % cfg.checkpoint_every == 0:
                    self.save(cfg.checkpoint_path)
                if self.on_step is not None:
                    self.on_step(self, record)
                if bar:
                    bar.update(self.step, float(np.mean(record["loss"])))
        finally:
            if bar:
                bar.close()
        return self.history

    @torch.no_grad()
    def evaluate(self, windows: EvalWindows | None = None, batch_size: int | None = None) -> np.ndarray:
        """Mean held-out loss per domain over fixed windows: [k] for a GPT, [M, k] for a StackedGPT."""
        windows = windows or self.eval_windows
        if windows is None:
            raise ValueError("no evaluation windows given")
        batch_size = batch_size or self.config.eval_batch_size
        self.model.eval()
        window_losses = []
        for i in range(0, len(windows.x), batch_size):
            x = windows.x[i : i + batch_size].to(self.device)
            y = windows.y[i : i + batch_size].to(self.device)
            if self.stacked:  # every model scores the same windows
                m = self.model.num_models
                x, y = x.expand(m, *x.shape), y.expand(m, *y.shape)
            with self.autocast():
                tok = self._token_losses(x, y).float()  # [..., b, T]
            if windows.mask is None:
                window_losses.append(tok.mean(-1))  # [..., b]
            else:
                scored = windows.mask[i : i + batch_size].to(self.device, tok.dtype)
                window_losses.append((tok * scored).sum(-1) / scored.sum(-1))
        per_window = torch.cat(window_losses, dim=-1)
        ids = windows.domain_ids.to(self.device).expand(per_window.shape)
        # Full windows have equal length and a short (masked) one is its domain's only window, so the mean of
        # window means is the token mean per domain.
        sums = per_window.new_zeros(*per_window.shape[:-1], len(windows.domains)).scatter_add(-1, ids, per_window)
        counts = torch.bincount(windows.domain_ids, minlength=len(windows.domains)).to(sums)
        return (sums / counts).cpu().numpy()

    def save(self, path: str | os.PathLike, tokenizer_sha256: str | None = None) -> None:
        """Write model, optimizer, step and history atomically (temporary file, then rename); `tokenizer_sha256`
        names the tokenizer whose ids the model learned, so a loader can refuse one of another tokenizer."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "tokenizer_sha256": tokenizer_sha256,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "history": self.history,
            "evals": self.evals,
            "train_config": asdict(self.config),
            "model_config": asdict(self.model.config),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by `save` into this trainer (same model shape and sampler); a checkpoint of
        another model or a malformed one is a one-line ValueError."""
        state = read_checkpoint(path, map_location=self.device, keys=("optimizer", "step", "history"))
        saved = GPTConfig(**state["model_config"])
        if saved != self.model.config:
            raise ValueError(f"checkpoint {path}: model {saved} does not match this trainer's {self.model.config}")
        load_weights(self.model, state, path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"checkpoint {path}: optimizer state does not fit this model ({_one_line(exc)})") from None
        if not isinstance(state["step"], int) or not isinstance(state["history"], list):
            raise ValueError(f"checkpoint {path}: 'step' is not an int or 'history' is not a list")
        self.step = state["step"]
        self.history = state["history"]
        self.evals = state.get("evals", [])

    def resume(self) -> bool:
        """Load config.checkpoint_path if it exists; returns whether it did."""
        path = self.config.checkpoint_path
        if path and Path(path).is_file():
            self.load(path)
            return True
        return False


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = " ".join(lines[:2]).strip() if lines else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    keys: tuple[str, ...] = ()) -> dict:
    """A checkpoint written by `Trainer.save`, read as tensors and plain data only: a file that would need any other
    Python object (and so could run code) is refused. Anything unreadable or malformed is a one-line ValueError
    naming the file; the result has a state dict "model", a dict "model_config" that builds a GPTConfig, and `keys`."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"checkpoint {path}: cannot read it ({exc.strerror or exc})") from None
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise ValueError(f"checkpoint {path}: holds Python objects other than tensors and plain data; refused "
                             f"(loading it could run code)") from None
        raise ValueError(f"checkpoint {path}: not a torch checkpoint ({_one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - torch's zip and pickle readers raise many types on a damaged file
        raise ValueError(f"checkpoint {path}: not a torch checkpoint, or truncated ({_one_line(exc)})") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path}: holds a {type(state).__name__}, not a checkpoint dict")
    missing = [k for k in ("model", "model_config", *keys) if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path}: no {', '.join(map(repr, missing))} (not written by a curate trainer)")
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        raise ValueError(f"checkpoint {path}: 'model' is not a state dict of named tensors")
    try:
        GPTConfig(**state["model_config"])
    except TypeError as exc:
        raise ValueError(f"checkpoint {path}: 'model_config' is not a GPTConfig ({_one_line(exc)})") from None
    return state


def load_weights(model: torch.nn.Module, state: dict, path: str | os.PathLike) -> None:
    """Load `state["model"]` (from `read_checkpoint`) into `model`; missing, extra or wrong-shape tensors are a
    one-line ValueError."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        # torch lists every mismatch on its own line; the second line names the first one.
        raise ValueError(f"checkpoint {path}: weights do not fit the model ({_one_line(exc)})") from None


@dataclass
class MixtureRuns:
    """Results of `train_mixtures`: held-out loss per model and domain [n, k], final training loss per model [n]."""

    eval_loss: np.ndarray
    train_loss: np.ndarray
    device: str


def _train_stack(train_streams, weights, seeds, model_config, train_config, windows, batch_size, stratified):
    """Train one StackedGPT of len(seeds) models; (held-out loss [M, k], final training loss [M], device)."""
    samplers = [MixtureSampler(train_streams, w, batch_size, model_config.seq_len, seed=s, stratified=stratified)
                for w, s in zip(weights, seeds)]
    trainer = Trainer(StackedGPT(model_config, list(seeds)), StackedSampler(samplers), train_config,
                      eval_windows=windows)
    history = trainer.train()
    return trainer.evaluate(), np.asarray(history[-1]["loss"]), str(trainer.device)


def stack_workers(model_config: GPTConfig, train_config: TrainConfig, num_models: int) -> int:
    """Processes `train_mixtures` uses: on CPU, one per core (each training its share of the models as one stack at
    one thread) for models small enough that a step gains little from a second thread; otherwise 1. One stack on
    several cores would synchronise its threads inside every small matmul."""
    if train_config.workers is not None:
        return max(1, min(train_config.workers, num_models))
    if resolve_device(train_config.device).type != "cpu" or model_config.num_params() >= SMALL_MODEL_PARAMS:
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores // (train_config.threads or 1), num_models))


# CPU stacks are capped in tokens per step and in parameters: a CPU step is compute-bound, and stacking saves only
# per-op overhead, which matters for small models; past these sizes the activations outgrow the caches.
CPU_STACK_TOKENS = 4096
CPU_STACK_PARAMS = 2_000_000


def cpu_stack_size(model_config: GPTConfig, batch_size: int, max_models: int) -> int:
    """Models per StackedGPT on CPU: at most CPU_STACK_TOKENS tokens per step and CPU_STACK_PARAMS parameters, at
    least one model."""
    by_tokens = CPU_STACK_TOKENS // (batch_size * model_config.seq_len)
    by_params = CPU_STACK_PARAMS // model_config.num_params()
    return max(1, min(max_models, by_tokens, by_params))


_POOLS: dict[int, "concurrent.futures.ProcessPoolExecutor"] = {}


def _pool(workers: int):
    """A process pool kept for the life of the process (spawned workers import torch once, not per call)."""
    import concurrent.futures
    import multiprocessing

    if workers not in _POOLS:
        # spawn, not fork: forking a process whose OpenMP runtime has started can deadlock the child.
        context = multiprocessing.get_context("spawn")
        _POOLS[workers] = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
    return _POOLS[workers]


def train_mixtures(
    train_streams: list,
    weights: np.ndarray,
    seeds: list[int],
    model_config: GPTConfig,
    train_config: TrainConfig,
    windows: EvalWindows,
    batch_size: int = 16,
    stratified: bool = False,
    max_models: int = 64,
) -> MixtureRuns:
    """Train one proxy per row of `weights` (model i: init and sampling seed `seeds[i]`), up to `max_models` at a
    time as one StackedGPT, and evaluate each on the same fixed windows.

    On a multi-core CPU the models are split into one contiguous group per worker process (`stack_workers`), each
    trained at one thread as stacks of at most `cpu_stack_size` models; every model's result depends only on its own
    mixture and seed, so the split changes no result beyond float round-off in the batched matmuls."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(seeds) != len(weights):
        raise ValueError(f"{len(weights)} mixtures but {len(seeds)} seeds")
    n = len(weights)
    eval_loss = np.empty((n, len(windows.domains)))
    train_loss = np.empty(n)
    workers = stack_workers(model_config, train_config, n)
    if resolve_device(train_config.device).type == "cpu":
        max_models = cpu_stack_size(model_config, batch_size, max_models)
    groups = [g for g in np.array_split(np.arange(n), workers) if len(g)]
    chunks = [(int(g[lo]), int(g[min(lo + max_models, len(g)) - 1]) + 1)
              for g in groups for lo in range(0, len(g), max_models)]
    device = ""
    if workers == 1:
        for lo, hi in chunks:
            eval_loss[lo:hi], train_loss[lo:hi], device = _train_stack(
                train_streams, weights[lo:hi], seeds[lo:hi], model_config, train_config, windows, batch_size,
                stratified)
        return MixtureRuns(eval_loss, train_loss, device)
    from concurrent.futures.process import BrokenProcessPool

    worker_config = TrainConfig(**{**asdict(train_config), "threads": train_config.threads or 1, "progress": False,
                                   "workers": 1})
    pool = _pool(workers)
    try:
        futures = [(lo, hi, pool.submit(_train_stack, train_streams, weights[lo:hi], list(seeds[lo:hi]), model_config,
                                        worker_config, windows, batch_size, stratified)) for lo, hi in chunks]
        for lo, hi, future in futures:
            eval_loss[lo:hi], train_loss[lo:hi], device = future.result()
    except BrokenProcessPool:
        _POOLS.pop(workers, None)
        raise RuntimeError("a proxy-training worker process died (out of memory?); rerun with fewer models per "
                           "stack or workers=1") from None
    return MixtureRuns(eval_loss, train_loss, device)


class _ProgressBar:
    """A rich progress bar (imported lazily: only terminals see one)."""

    def __init__(self, total: int, done: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=done, loss="-")

    def update(self, step: int, loss: float) -> None:
        self._progress.update(self._task, completed=step, loss=f"{loss:.3f}")

    def close(self) -> None:
        self._progress.stop()
