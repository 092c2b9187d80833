"""Proxy-training throughput on the present device, all in one run (the machine may be shared: read the ratios).

1. Our trainer vs a plain nanoGPT-style PyTorch loop, same model (2 layers, d 256, vocab 4096, ctx 256, batch 16):
   tokens/s, each in float32 and in bf16 autocast. Systems alternate in rounds; each system's best round counts.
2. Stacked training: StackedGPT with M = 1, 8, 32, 64 RegMix-size proxies (2 layers, d 256, MLP 512) vs the same M
   models trained one after another with our trainer. On a multi-core CPU also what `train_mixtures` runs there:
   M / cores models per core in worker processes, as stacks of at most `cpu_stack_size` models (4,096 tokens and
   2M parameters per stack), timed while all the workers run; the strict baseline is the faster of one model on all
   cores and one single-thread model per core at once (also timed running at once).
   Per-step times are measured over a few steps; models per hour are EXTRAPOLATED to 1,000-step runs (RegMix's
   proxy length) from those per-step times.
3. On CUDA only: MFU of a GPT-2-small-size proxy (bf16 autocast + torch.compile), 6N + attention FLOPs per token.

    python benchmarks/proxy.py --json out/proxy.json [--device auto] [--stacked-m 1 8 32 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness import ResourceMeter, device as device_name, process_peak_rss, write_json
from proxy_training.data import MixtureSampler, StackedSampler
from proxy_training.model import GPT, GPTConfig
from proxy_training.stacked import StackedGPT
from proxy_training.trainer import TrainConfig, Trainer, cpu_stack_size, resolve_device, resolve_precision

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
RUN_STEPS = 1000  # RegMix's proxy run length, for the models-per-hour extrapolation


# ---- the peer: a plain nanoGPT-style model and loop (github.com/karpathy/nanoGPT, model.py/train.py) ----------------
class PlainBlock(nn.Module):
    def __init__(self, d, n_head, d_mlp):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(d, d_mlp, bias=False), nn.Linear(d_mlp, d, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(c.padded_vocab, c.d_model), nn.Embedding(c.seq_len, c.d_model)
        self.h = nn.ModuleList(PlainBlock(c.d_model, c.n_head, c.mlp_hidden) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model, bias=False)
        self.lm_head = nn.Linear(c.d_model, c.padded_vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        self.apply(lambda m: nn.init.normal_(m.weight, 0, 0.02) if isinstance(m, (nn.Linear, nn.Embedding)) else None)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


class PlainLoop:
    """nanoGPT's train.py inner loop: get_batch, autocast forward, backward, clip, AdamW (fused on CUDA only)."""

    def __init__(self, config, data, batch_size, device, dtype):
        self.model = PlainGPT(config).to(device)
        self.data, self.B, self.T, self.device = data, batch_size, config.seq_len, device
        self.ctx = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                     fused=device.type == "cuda")

    def train_step(self):
        ix = torch.randint(len(self.data) - self.T, (self.B,))
        x = torch.stack([torch.from_numpy(self.data[i : i + self.T].astype(np.int64)) for i in ix]).to(self.device)
        y = torch.stack([torch.from_numpy(self.data[i + 1 : i + 1 + self.T].astype(np.int64)) for i in ix]).to(self.device)
        with self.ctx:
            loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss


# ---- timing ----------------------------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


CPU_TIME: dict = {}  # step_fn -> best process CPU seconds per step (less sensitive to other load than wall time)


def time_steps(step_fn, steps: int, device) -> float:
    """Wall seconds per step, averaged over `steps` steps; also records the process CPU seconds per step."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step_fn()
    sync(device)
    cpu = (time.process_time() - c0) / steps
    CPU_TIME[step_fn] = min(cpu, CPU_TIME.get(step_fn, math.inf))
    return (time.perf_counter() - t0) / steps


def ours(model, sampler, device_name, precision, compile=False, threads=None):
    cfg = TrainConfig(steps=10**9, warmup_steps=10, device=device_name, precision=precision, compile=compile,
                      progress=False, threads=threads)
    return Trainer(model, sampler, cfg)


def pinned(step_fn, threads: int | None):
    """`step_fn` run at `threads` torch threads: the trainer sets the process-wide thread count when it is built,
    so without this one system would be timed at the thread count of the last trainer built."""
    if threads is None:
        return step_fn

    def run():
        torch.set_num_threads(threads)
        step_fn()

    run.__name__ = getattr(step_fn, "__name__", "step")
    return run


def bench_trainer_vs_loop(args, device, data) -> list[dict]:
    """Section 1: tokens/s of ours vs the plain loop, alternating systems round by round."""
    c = GPTConfig(vocab_size=4096, seq_len=256, n_layer=2, n_head=8, d_model=256)
    B = args.batch_size
    bf16 = resolve_precision("auto", device) or torch.bfloat16
    systems = {
        "nanogpt-loop fp32": PlainLoop(c, data, B, device, None).train_step,
        f"nanogpt-loop {str(bf16).split('.')[-1]} autocast": PlainLoop(c, data, B, device, bf16).train_step,
        "ours fp32": ours(GPT(c, 0), MixtureSampler([data], [1.0], B, c.seq_len), args.device, "fp32").train_step,
        "ours auto": ours(GPT(c, 0), MixtureSampler([data], [1.0], B, c.seq_len), args.device, "auto",
                          args.compile).train_step,
    }
    best = {name: math.inf for name in systems}
    for fn in systems.values():  # warm up (allocator, compile)
        fn()
    for _ in range(args.rounds):
        for name, fn in systems.items():
            best[name] = min(best[name], time_steps(fn, args.steps, device))
    auto_prec = resolve_precision("auto", device)
    rows = []
    for name, t in best.items():
        label = name + (f" ({'bf16' if auto_prec else 'fp32'} on this device)" if name == "ours auto" else "")
        rows.append({"system": label, "section": "trainer", "wall_s": t * args.steps, "s_per_step": t,
                     "cpu_s_per_step": CPU_TIME[systems[name]], "tokens_per_s": B * c.seq_len / t})
    return rows


STACKED_SIZES = {  # size -> (model preset, sequences per model on CPU, context)
    "regmix-1m": (dict(n_layer=2, n_head=8, d_model=256, d_mlp=512), 4, 256),
    "tiny": (dict(n_layer=2, n_head=4, d_model=64), 8, 128),  # what benchmarks/regmix.py trains on CPU
}


def _time_one_thread(c: GPTConfig, models: int, batch: int, steps: int, rounds: int, precision: str, data,
                     seed: int) -> float:
    """In a worker process: best seconds per step of a GPT (models=0) or a StackedGPT of `models` at one thread."""
    def sampler(i: int) -> MixtureSampler:
        return MixtureSampler([data], [1.0], batch, c.seq_len, seed=i)

    if models == 0:
        trainer = ours(GPT(c, seed), sampler(seed), "cpu", precision, threads=1)
    else:
        trainer = ours(StackedGPT(c, [seed + i for i in range(models)]),
                       StackedSampler([sampler(seed + i) for i in range(models)]), "cpu", precision, threads=1)
    torch.set_num_threads(1)
    trainer.train_step()  # warm up
    return min(time_steps(trainer.train_step, steps, torch.device("cpu")) for _ in range(rounds))


def concurrently(cores: int, *args) -> float:
    """Seconds per step when `cores` worker processes run `_time_one_thread(*args)` at the same time (each its own
    model or stack, as `train_mixtures` runs them): the slowest worker's time, with the real contention for memory
    bandwidth and caches between the cores."""
    from proxy_training.trainer import _pool

    pool = _pool(cores)
    futures = [pool.submit(_time_one_thread, *args[:-1], args[-1] + 1000 * w) for w in range(cores)]
    return max(f.result() for f in futures)


def bench_stacked(args, device, data) -> list[dict]:
    """Section 2: stacked M models per step vs the same M models one after another with our trainer.

    On CPU the sequential baseline is the faster of (a) one model at a time on every core and (b) one single-thread
    model per core at once, in worker processes running at the same time. Stacked: one StackedGPT of M on every core
    in this process, and what `train_mixtures` does on a multi-core CPU: one stack of M / cores models per core,
    one thread each, in worker processes running at the same time. Every system is timed at its own thread count."""
    cores = len(os.sched_getaffinity(0)) if device.type == "cpu" else None
    rows = []
    for size in args.stacked_sizes:
        preset, cpu_batch, ctx = STACKED_SIZES[size]
        c = GPTConfig(vocab_size=4096, seq_len=ctx, **preset)
        B = args.stacked_batch or (16 if device.type == "cuda" else cpu_batch)
        precision = args.precision if args.precision != "auto" or device.type == "cuda" else (
            "bf16" if resolve_precision("auto", device) else "fp32")
        for M in args.stacked_m:
            def sampler(i: int = 0) -> MixtureSampler:
                return MixtureSampler([data], [1.0], B, c.seq_len, seed=i)

            single = ours(GPT(c, 0), sampler(), args.device, args.precision, threads=cores)
            stacked = ours(StackedGPT(c, list(range(M))), StackedSampler([sampler(i) for i in range(M)]),
                           args.device, args.precision, threads=cores)
            fns = {"single": pinned(single.train_step, cores), "stacked": pinned(stacked.train_step, cores)}
            for fn in fns.values():
                fn()  # warm up
            best = {k: math.inf for k in fns}
            steps_m = max(1, min(args.steps, math.ceil(8 / M))) if device.type == "cpu" else args.steps
            for _ in range(args.rounds):
                for k, fn in fns.items():
                    best[k] = min(best[k], time_steps(fn, steps_m if k.startswith("stacked") else args.steps, device))
            if cores and cores > 1:
                best["single_1t"] = concurrently(cores, c, 0, B, args.steps, args.rounds, precision, data, 0)
                if M >= cores and M % cores == 0:
                    # What train_mixtures runs: M / cores models per core, as stacks of at most cpu_stack_size.
                    stack = cpu_stack_size(c, B, M // cores)
                    n_stacks = math.ceil(M // cores / stack)
                    # Per-core stacks are small (cpu_stack_size): time as many steps as the baselines, not steps_m.
                    best["stacked_per_core"] = n_stacks * concurrently(cores, c, stack, B, args.steps, args.rounds,
                                                                       precision, data, 0)
                    per_core_layout = f"{cores} x {n_stacks} stack(s) of {stack}"
            t1, how = best["single"], f"1 model x {cores or 1} threads"
            if "single_1t" in best and best["single_1t"] / cores < t1:
                t1, how = best["single_1t"] / cores, f"{cores} single-thread models at once"
            t_m = best["stacked"]
            common = {"section": "stacked", "size": size, "M": M, "batch_per_model": B, "seq_len": c.seq_len,
                      "precision": str(stacked.autocast_dtype or "fp32")}
            rows.append({"system": f"{size} sequential x{M} ({how})", **common, "wall_s": M * t1,
                         "s_per_step_all_models": M * t1, "models_per_hour_1000_steps": 3600 / (RUN_STEPS * t1),
                         "s_per_step_1_model_all_cores": best["single"],
                         "s_per_step_1_model_per_core_at_once": best.get("single_1t")})
            rows.append({"system": f"{size} stacked M={M}", **common, "wall_s": t_m, "s_per_step_all_models": t_m,
                         "cpu_s_per_step_all_models": CPU_TIME[fns["stacked"]],
                         "models_per_hour_1000_steps": 3600 / (RUN_STEPS * t_m) * M,
                         "speedup_vs_sequential": M * t1 / t_m,
                         "speedup_vs_one_after_another": M * best["single"] / t_m,
                         "peak_rss_gib": process_peak_rss() / 2**30})
            if "stacked_per_core" in best:
                t_all = best["stacked_per_core"]  # the cores run their stacks at once: one step of all M models
                rows.append({"system": f"{size} stacked {per_core_layout}, 1 thread each", **common,
                             "wall_s": t_all, "s_per_step_all_models": t_all,
                             "models_per_hour_1000_steps": 3600 / (RUN_STEPS * t_all) * M,
                             "speedup_vs_sequential": M * t1 / t_all,
                             "speedup_vs_one_after_another": M * best["single"] / t_all, "variant": "per_core"})
            del single, stacked, fns
    return rows


def bench_mfu(args, device) -> list[dict]:
    """Section 3 (CUDA): MFU of a ~124M-parameter proxy with bf16 autocast + torch.compile."""
    c = GPTConfig(vocab_size=50257, seq_len=1024, n_layer=12, n_head=12, d_model=768)
    data = np.random.default_rng(0).integers(0, c.vocab_size, 10_000_000).astype(np.int32)
    B = 16
    trainer = ours(GPT(c, 0), MixtureSampler([data], [1.0], B, c.seq_len), args.device, "auto", compile=True)
    for _ in range(3):
        trainer.train_step()
    t = min(time_steps(trainer.train_step, args.steps, device) for _ in range(args.rounds))
    flops_per_token = 6 * (c.num_params(embeddings=False) + c.padded_vocab * c.d_model) + 12 * c.n_layer * c.d_model * c.seq_len
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    tps = B * c.seq_len / t
    return [{"system": f"ours gpt2-124m bf16+compile ({c.num_params() / 1e6:.0f}M params)", "section": "mfu",
             "wall_s": t * args.steps, "tokens_per_s": tps, "mfu": tps * flops_per_token / peak if peak else None}]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results here")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="for the stacked section")
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best round counts")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--stacked-m", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--stacked-sizes", nargs="+", default=list(STACKED_SIZES), choices=list(STACKED_SIZES))
    p.add_argument("--stacked-batch", type=int, help="sequences per model in the stacked section (CPU 4, CUDA 16)")
    p.add_argument("--compile", action="store_true", help="torch.compile our trainer in section 1")
    p.add_argument("--skip", nargs="*", default=[], choices=["trainer", "stacked", "mfu"])
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    data = np.random.default_rng(0).integers(0, 4096, 2_000_000).astype(np.uint16)
    rows = []
    with ResourceMeter() as run:
        if "trainer" not in args.skip:
            rows += bench_trainer_vs_loop(args, device, data)
        if "stacked" not in args.skip:
            rows += bench_stacked(args, device, data)
        if device.type == "cuda" and "mfu" not in args.skip:
            rows += bench_mfu(args, device)

    by = {r["system"]: r for r in rows}
    ratios = {}
    auto = next((r for r in rows if r["system"].startswith("ours auto")), None)
    if auto:
        ratios["ours_auto_over_nanogpt_fp32_tokens_per_s"] = auto["tokens_per_s"] / by["nanogpt-loop fp32"]["tokens_per_s"]
        peer_bf16 = next(r for r in rows if r["system"].startswith("nanogpt-loop") and "autocast" in r["system"])
        ratios["ours_auto_over_nanogpt_autocast_tokens_per_s"] = auto["tokens_per_s"] / peer_bf16["tokens_per_s"]
        ratios["ours_fp32_over_nanogpt_fp32_tokens_per_s"] = by["ours fp32"]["tokens_per_s"] / by["nanogpt-loop fp32"]["tokens_per_s"]
    for r in rows:
        if "speedup_vs_sequential" in r:
            kind = "per_core_stacks" if r.get("variant") == "per_core" else "stacked"
            ratios[f"{r['size']}_{kind}_M{r['M']}_over_sequential_models_per_hour"] = r["speedup_vs_sequential"]
            ratios[f"{r['size']}_{kind}_M{r['M']}_over_one_after_another_models_per_hour"] = \
                r["speedup_vs_one_after_another"]

    where = device_name(str(device))
    if device.type == "cpu":
        where += f", bf16 autocast {'on' if resolve_precision('auto', device) else 'off'}"
    print(f"device: {where}; torch {torch.__version__}; steps/round {args.steps}, rounds {args.rounds} (best)")
    print(f"{'system':58} {'s/step':>9} {'cpu s/step':>10} {'tokens/s':>10} {'models/h@1k':>12} {'speedup':>8}")
    for r in rows:
        s = r.get("s_per_step", r.get("s_per_step_all_models", r["wall_s"]))
        cpu = r.get("cpu_s_per_step", r.get("cpu_s_per_step_all_models", math.nan))
        tps = f"{r['tokens_per_s']:,.0f}" if "tokens_per_s" in r else ""
        mph = f"{r['models_per_hour_1000_steps']:.2f}" if "models_per_hour_1000_steps" in r else ""
        sp = f"{r['speedup_vs_sequential']:.2f}x" if "speedup_vs_sequential" in r else ""
        mfu = f"  MFU {r['mfu']:.1%}" if r.get("mfu") else ""
        print(f"{r['system']:58} {s:9.3f} {cpu:10.3f} {tps:>10} {mph:>12} {sp:>8}{mfu}")
    for k, v in ratios.items():
        print(f"ratio {k}: {v:.2f}")
    peak = run.peak_mib()
    print(f"peak RSS driver {peak['driver']} MiB, workers {peak['workers']} MiB; total {run.wall_s:.0f} s"
          + ("" if device.type == "cuda" else "; models/h extrapolated from per-step times to 1,000-step runs"))
    if args.json:
        write_json(args.json, "proxy", where, rows=rows, ratios=ratios, peak_rss_mib=peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
