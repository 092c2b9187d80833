"""DoReMi (Xie et al. 2023): domain weights from Group DRO of a proxy model against a reference model.

    weights = DoReMi(steps=300, rounds=1).fit("DATA")      # DomainWeights; .save("weights.json")
    curate mix --method doremi DATA --out weights.json --param rounds=2 --param model_size=regmix-1m

One round (Xie et al. 2023, Algorithm 1):
1. Train a reference model on the reference weights (uniform by default, natural token shares, a weights.json, or
   reuse a checkpoint written by `Trainer.save` via `reference_checkpoint`). The paper trains it on default weights,
   uniform or the data's own proportions; uniform is the default here because DoReMi's target is the worst domain:
   a natural-weight reference has seen little of a small domain, so its loss there is high, the proxy's excess loss
   there small, and the small domain is never upweighted however badly a model does on it.
2. Train a proxy of the same size with Group DRO. Proxy batches are sampled with UNIFORM domain weights and are
   stratified: every domain is in every batch (batch_size >= k). At step t, per domain i:
       lambda_t[i] = mean over domain i's tokens in the batch of max(loss_proxy - loss_ref, 0)
       log a'_t = log a_{t-1} + eta * lambda_t;  a_t = (1 - c) * softmax(log a'_t) + c / k
   then one optimizer step on sum_i a_t[i] * (mean proxy loss over domain i's tokens): the paper's per-domain
   normalization (Eq. 1), not the official repo's single normalizer over all tokens (its issues #9 and #33).
3. Output the average of a_t over all steps.
Each weight update uses lambda averaged over at least `dro_tokens` tokens per group (default 1,024), accumulated
over as many steps as that takes; `dro_tokens=0` updates every step as Algorithm 1 does. The paper's updates each see
~24k tokens per domain (512 x 1,024-token batches over 22 domains). A CPU proxy's 16 x 128-token batch gives a domain
~200 tokens a step, whose mean excess loss is mostly noise; with eta 1, 300 noisy updates move the log weights as a
random walk, and the output follows the walk instead of the domains (the near-one-hot weights users of the official
code report). Pooling steps keeps the expected direction and divides the walk.
Target domains (`target_domains`): the groups of the DRO. DoReMi minimizes the worst-case excess loss over the
groups it is given (Xie et al. 2023, Sec. 2); a domain outside them (planted noise, a domain kept only for coverage)
is not a group, so its weight is 0 from the start and stays there (the smoothing c spreads over the groups only).
Without this, a domain whose loss is learnable to a floor keeps a large weight for as long as the reference, which saw
more of it, is ahead there: the excess loss measures how far the proxy is behind, not whether the domain matters.
Iterated DoReMi (`rounds` > 1): each round's reference weights are the previous round's output; stop early when
no weight moves more than `tol` (max absolute change) between rounds.

A domain absent from a batch (only possible when stratification is off) gets lambda = 0, i.e. its log weight does
not move (it still loses relative weight when others gain), and it drops out of that step's loss, whose weights are
renormalized over the present domains so the loss scale does not depend on which domains happened to be drawn.

Everything is a function of (data, config, seed): same inputs and seed give identical weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mixers.diagnostics import Trajectory
from mixers.regmix import resolve_target
from mixers.weights import DomainWeights
from proxy_training.data import MixtureSampler, TokenDatasets, evaluation_windows
from proxy_training.model import GPT, GPTConfig, preset_config
from proxy_training.trainer import Trainer, TrainConfig, domain_mean_losses, load_weights, read_checkpoint

TRAJECTORY_POINTS = 200  # weight-trajectory samples kept per round in the diagnostics (for a plot)


def per_domain_excess(proxy_tok: torch.Tensor, ref_tok: torch.Tensor, domain_ids: torch.Tensor, num_domains: int):
    """lambda [k]: per-token max(proxy - ref, 0) averaged over each domain's tokens; 0 where a domain is absent.

    Also returns the presence mask [k] (bool). proxy_tok, ref_tok [B, T]; domain_ids [B].
    """
    excess = (proxy_tok.detach().float() - ref_tok.float()).clamp_min(0.0)
    means, counts = domain_mean_losses(excess, domain_ids, num_domains)
    present = counts > 0
    return torch.where(present, means, torch.zeros_like(means)), present


def doremi_update(weights, excess, eta: float = 1.0, smoothing: float = 1e-3, groups=None):
    """One exponentiated-gradient step in log space with uniform smoothing (pure: tensors or arrays in, out).

    a' = a * exp(eta * lambda) computed as log a + eta * lambda then normalized (softmax), so large excess losses
    never overflow; a = (1 - c) * a' + c / k. `groups` (bool [k], default all): the domains in the DRO; the others
    keep weight 0 and the smoothing spreads over the groups.
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    lam = torch.as_tensor(excess, dtype=torch.float64)
    mask = torch.ones_like(w, dtype=torch.bool) if groups is None else torch.as_tensor(groups, dtype=torch.bool)
    logits = torch.where(mask, torch.log(w) + eta * lam, torch.full_like(w, -math.inf))
    new = torch.softmax(logits, dim=-1)
    return torch.where(mask, (1.0 - smoothing) * new + smoothing / int(mask.sum()), torch.zeros_like(w))


def weighted_domain_loss(proxy_tok: torch.Tensor, domain_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i a_i * mean_i(proxy loss) over the domains present in the batch, weights renormalized over them."""
    means, counts = domain_mean_losses(proxy_tok, domain_ids, len(weights))
    present = counts > 0
    a = torch.where(present, weights.to(means), torch.zeros_like(means))
    return (a / a.sum() * torch.where(present, means, torch.zeros_like(means))).sum()


def _subsample(n: int, points: int = TRAJECTORY_POINTS) -> list[int]:
    """Indices of at most `points` evenly spaced steps, always including the first and last."""
    if n <= points:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, points).round().astype(int).tolist()))


class DoReMi:
    """The DoReMi mixer. Parameters (all exposed as `curate mix --method doremi --param k=v`):

    reference: "uniform" (default), "natural" (token shares), or a path to a weights.json.
    reference_checkpoint: a `Trainer.save` checkpoint to use as the first round's reference (must match the model).
    save_reference: write the first round's trained reference there (a checkpoint for `reference_checkpoint`).
    target_domains: the domains in the DRO (a list or "a,b,c"; default every domain); the others get weight 0.
    rounds, tol: iterated DoReMi: at most `rounds` rounds; stop when max |w_r - w_{r-1}| < tol.
    eta, smoothing: step size and uniform smoothing c of the weight update (paper: 1 and 1e-3).
    dro_tokens: tokens per group behind each weight update (steps pooled until every group has them; 0 = each step).
    steps, reference_steps: proxy and reference training steps (reference_steps default = steps).
    model_size: a proxy_training preset (tiny, regmix-1m, small, 60m, gpt2-124m); same for reference and proxy.
    batch_size, seq_len, lr, min_lr, warmup_steps, weight_decay, schedule: training knobs (seq_len is capped so
        every domain's valid split has a window).
    eval_windows: validation windows per domain for the reference/proxy per-domain losses.
    device (auto/cuda/cpu), precision (auto/fp32/bf16), compile, threads: where and how models train.
    seed: model init and data order; round r uses seed + r.
    """

    def __init__(
        self,
        reference: str = "uniform",
        reference_checkpoint: str | None = None,
        save_reference: str | None = None,
        target_domains: str | list[str] | None = None,
        rounds: int = 1,
        tol: float = 1e-3,
        eta: float = 1.0,
        smoothing: float = 1e-3,
        dro_tokens: int = 1024,
        steps: int = 300,
        reference_steps: int | None = None,
        model_size: str = "tiny",
        batch_size: int = 16,
        seq_len: int = 128,
        lr: float = 3e-3,
        min_lr: float | None = None,
        warmup_steps: int = 30,
        weight_decay: float = 0.1,
        schedule: str = "cosine",
        eval_windows: int = 16,
        device: str = "auto",
        precision: str = "auto",
        compile: bool = False,
        threads: int | None = None,
        seed: int = 0,
    ):
        if rounds < 1 or steps < 1 or (reference_steps is not None and reference_steps < 1):
            raise ValueError("rounds and steps must be at least 1")
        if dro_tokens < 0:
            raise ValueError("dro_tokens must be >= 0")
        if eta <= 0 or not 0 <= smoothing <= 1:
            raise ValueError("eta must be > 0 and smoothing in [0, 1]")
        params = dict(locals())
        del params["self"]
        self.params = params
        for k, v in params.items():
            setattr(self, k, v)

    # -- building blocks ------------------------------------------------------------------------------------------

    def _train_config(self, steps: int) -> TrainConfig:
        return TrainConfig(
            steps=steps, lr=self.lr, min_lr=self.min_lr if self.min_lr is not None else self.lr / 10,
            warmup_steps=min(self.warmup_steps, max(1, steps // 10)), schedule=self.schedule,
            weight_decay=self.weight_decay, device=self.device, precision=self.precision, compile=self.compile,
            threads=self.threads, progress=False,
        )

    def _model_config(self, data: TokenDatasets) -> GPTConfig:
        # A domain shorter than a window is read around in train and scored whole in valid (proxy_training.data),
        # so one small domain does not shorten every domain's context; it needs a token to predict in each.
        for split in ("train", "valid"):
            for d in data.domains:
                n = len(data.stream(split, d))
                if n < 2:
                    fix = ("every document of it is held out or was removed upstream" if split == "train" else
                           "re-tokenize with a larger held-out fraction, or without split-by-cluster")
                    raise ValueError(f"domain {d!r} has {n} tokens in {split}: too small for DoReMi (leave it out "
                                     f"of the data; {fix})")
        return preset_config(self.model_size, data.vocab_size, self.seq_len)

    def _reference_vector(self, data: TokenDatasets) -> np.ndarray:
        if self.reference == "natural":
            counts = data.token_counts("train").astype(np.float64)
            return counts / counts.sum()
        if self.reference == "uniform":
            return np.full(len(data.domains), 1.0 / len(data.domains))
        if Path(self.reference).is_file():
            return data.weights_vector(DomainWeights.load(self.reference).weights)
        raise ValueError(f"reference must be natural, uniform or a weights.json file, not {self.reference!r}")

    def train_reference(self, data, config, weights: np.ndarray, windows, seed: int):
        """A reference model trained on `weights` (its Trainer: `.model`, `.evaluate()`)."""
        sampler = MixtureSampler(data.streams("train"), weights, self.batch_size, config.seq_len, seed=seed)
        trainer = Trainer(GPT(config, seed=seed), sampler, self._train_config(self.reference_steps or self.steps),
                          eval_windows=windows)
        trainer.train()
        return trainer

    def load_reference(self, data, config, windows, path: str):
        state = read_checkpoint(path)
        saved = GPTConfig(**state["model_config"])
        if saved != config:
            diff = ", ".join(f"{k} {getattr(saved, k)} (proxy: {getattr(config, k)})"
                             for k in asdict(config) if getattr(saved, k) != getattr(config, k))
            raise ValueError(f"reference checkpoint {path}: its model differs from the proxy's: {diff}")
        # Same vocabulary size is not the same tokenizer: ids would mean other strings. Checkpoints written before
        # the tokenizer was recorded carry none and are taken as they are.
        theirs, ours = state.get("tokenizer_sha256"), data.meta["tokenizer"].get("sha256")
        if theirs and ours and theirs != ours:
            raise ValueError(f"reference checkpoint {path}: trained with another tokenizer (sha256 {theirs[:12]}..., "
                             f"the data's is {ours[:12]}...)")
        model = GPT(config)
        load_weights(model, state, path)
        # A zero-step trainer: the same device, precision and evaluation code as a trained reference.
        k = len(data.domains)
        sampler = MixtureSampler(data.streams("train"), np.full(k, 1.0 / k), self.batch_size, config.seq_len)
        return Trainer(model, sampler, self._train_config(1), eval_windows=windows)

    def train_proxy(self, data, config, ref: Trainer, windows, seed: int, groups: np.ndarray | None = None):
        """Group DRO of a proxy against `ref` over the domains in `groups` (bool [k], default all); returns (trainer,
        weights [steps, k], excess [steps, k])."""
        k = len(data.domains)
        groups = torch.ones(k, dtype=torch.bool) if groups is None else torch.as_tensor(groups, dtype=torch.bool)
        if self.batch_size < k:
            raise ValueError(f"batch_size {self.batch_size} < {k} domains: DoReMi needs every domain in every batch")
        sampler = MixtureSampler(data.streams("train"), np.full(k, 1.0 / k), self.batch_size, config.seq_len,
                                 seed=seed, stratified=True)
        ref_model = ref.model.eval()
        state = {"weights": groups.double() / groups.sum(), "sums": torch.zeros(k, dtype=torch.float64),
                 "tokens": torch.zeros(k, dtype=torch.float64)}
        weights_log, excess_log = [], []

        def group_dro_loss(tok_loss: torch.Tensor, batch) -> torch.Tensor:
            with torch.no_grad(), ref.autocast():
                ref_tok = ref_model.token_losses(batch.x, batch.y)
            excess, _ = per_domain_excess(tok_loss, ref_tok, batch.domain_ids, k)
            tokens = torch.bincount(batch.domain_ids.flatten(), minlength=k).double() * tok_loss.shape[-1]
            state["sums"] += (excess.double() * tokens.double()).cpu()
            state["tokens"] += tokens.double().cpu()
            if bool((state["tokens"][groups] >= max(self.dro_tokens, 1)).all()):
                pooled = torch.where(state["tokens"] > 0, state["sums"] / state["tokens"].clamp_min(1), 0.0)
                state["weights"] = doremi_update(state["weights"], pooled, self.eta, self.smoothing, groups)
                state["sums"].zero_()
                state["tokens"].zero_()
            weights_log.append(state["weights"].numpy().copy())
            excess_log.append(excess.double().cpu().numpy())
            return weighted_domain_loss(tok_loss.float(), batch.domain_ids, state["weights"])

        trainer = Trainer(GPT(config, seed=seed), sampler, self._train_config(self.steps), loss_fn=group_dro_loss,
                          eval_windows=windows)
        if trainer.device != ref.device:
            ref_model.to(trainer.device)
        trainer.train()
        return trainer, np.stack(weights_log), np.stack(excess_log)

    # -- the estimator --------------------------------------------------------------------------------------------

    def _check_reference_settings(self) -> None:
        """Settings that would be ignored or would destroy a file, refused before any training."""
        if self.reference_checkpoint and self.save_reference:
            raise ValueError("save_reference writes the reference DoReMi trains; with reference_checkpoint it "
                             "trains none: give one of them")
        if self.reference_checkpoint and self.reference != "uniform":
            raise ValueError(f"reference={self.reference!r} and reference_checkpoint both choose the first round's "
                             f"reference: give one of them")
        if self.save_reference:
            target = Path(self.save_reference)
            if target.is_dir():
                raise ValueError(f"save_reference {target} is a directory: name the checkpoint file to write")
            if target.exists():
                try:
                    read_checkpoint(target)
                except ValueError:
                    raise ValueError(f"save_reference {target} exists and is not a curate checkpoint: curate "
                                     f"replaces only its own files; choose another path or remove it yourself") from None

    def fit(self, data_dir: str | Path) -> DomainWeights:
        self._check_reference_settings()
        data = TokenDatasets(data_dir)
        domains = data.domains
        config = self._model_config(data)
        windows = evaluation_windows(data, "valid", config.seq_len, self.eval_windows)
        ref_weights = self._reference_vector(data)
        chosen = resolve_target("average", self.target_domains, domains, data_dir)
        groups = np.array([d in chosen for d in domains])
        rounds, seeds, output, converged = [], [], None, False
        self.timings_: dict[str, float] = {}
        for r in range(self.rounds):
            t0 = time.perf_counter()
            seed = self.seed + r
            if r == 0 and self.reference_checkpoint:
                ref = self.load_reference(data, config, windows, self.reference_checkpoint)
                ref_source = {"checkpoint": str(self.reference_checkpoint)}
            else:
                ref = self.train_reference(data, config, ref_weights, windows, seed)
                if r == 0 and self.save_reference:
                    ref.save(self.save_reference, tokenizer_sha256=data.meta["tokenizer"].get("sha256"))
                ref_source = {"weights": dict(zip(domains, ref_weights.tolist()))}
            ref_valid = ref.evaluate()
            proxy, traj, excess = self.train_proxy(data, config, ref, windows, seed, groups)
            proxy_valid = proxy.evaluate()
            new = traj.mean(axis=0)
            change = None if output is None else float(np.abs(new - output).max())
            idx = _subsample(len(traj))
            rounds.append({
                "round": r + 1,
                "reference": ref_source,
                "seeds": {"reference_model": seed, "reference_data": seed, "proxy_model": seed, "proxy_data": seed},
                "weights": dict(zip(domains, new.tolist())),
                "final_step_weights": dict(zip(domains, traj[-1].tolist())),
                "max_change_from_previous_round": change,
                "mean_excess_loss": dict(zip(domains, excess.mean(axis=0).tolist())),
                "reference_valid_loss": dict(zip(domains, ref_valid.tolist())),
                "proxy_valid_loss": dict(zip(domains, proxy_valid.tolist())),
                "proxy_final_train_loss": proxy.history[-1]["domain_loss"],
                "trajectory": Trajectory(steps=[i + 1 for i in idx], weights=traj[idx].round(6).tolist(),
                                         excess_loss=excess[idx].round(6).tolist()).model_dump(),
                "device": str(proxy.device),
            })
            # Wall times stay out of weights.json, which is byte-identical for the same data, config and seed.
            self.timings_[f"round_{r + 1}"] = round(time.perf_counter() - t0, 2)
            seeds.append(seed)
            output = new
            if change is not None and change < self.tol:
                converged = True
                break
            ref_weights = new
        config_out = dict(self.params)
        config_out["model"] = asdict(config) | {"params": config.num_params(),
                                                "non_embedding_params": config.num_params(False)}
        config_out["tokenizer"] = {key: data.meta["tokenizer"].get(key) for key in ("sha256", "vocab_size")}
        diagnostics = {
            "domains": domains,
            "target_domains": chosen,
            "rounds_run": len(rounds),
            "converged": converged,
            "seeds": seeds,
            "tokens_per_step": self.batch_size * config.seq_len,
            "rounds": rounds,
        }
        weights = {d: float(w) for d, w in zip(domains, output)}
        if not all(math.isfinite(w) for w in weights.values()):
            raise ValueError("DoReMi produced non-finite weights (diverged training?)")
        return DomainWeights("doremi", weights, config=config_out, diagnostics=diagnostics)
