"""Does one learning rate serve every width? An LR sweep at several widths under muP and under the standard
parameterization (SP), on real text.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/mup_sweep.py --work /tmp/mup-sweep --json /tmp/mup-sweep/sweep.json

Data: the demo corpus's raw text (standard-library code, pydoc topics, licenses, docstring prose) tokenized with a
ByteLevel BPE, exactly as benchmarks/doremi_eval.py builds it (`build_data`). Models: GPTs of fixed depth and head
count at each width, under SP, muP with `mup_base_width` = the smallest width (the same model as SP there), and muP
with a logit multiplier alpha (`mup:ALPHA`, `mup_output_mult`, tuned at the base width beforehand), trained with
AdamW + warmup + cosine on the natural mixture, scored by the mean held-out loss over domains on fixed `valid`
windows. Each (parameterization, width, LR) point is one `train_mixtures` call (its `--seeds` models, sharing the
data order across the grid: common random numbers), and the points run in parallel, one process per core at one
thread each. For each width the script prints the loss at every grid LR, the best grid LR and how many
grid steps (factors of `--lr-factor`) it lies from the best LR at the base width: muP transfers when that is ~0.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from doremi_eval import build_data
from harness import device, write_json
from proxy_training.data import TokenDatasets, evaluation_windows
from proxy_training.model import GPTConfig
from proxy_training.trainer import TrainConfig, train_mixtures


def best_index(losses: list[float]) -> int:
    """Index of the lowest loss; a diverged run (NaN or inf) counts as worst."""
    return int(np.argmin([x if math.isfinite(x) else math.inf for x in losses]))


def fitted_optimum(lrs: list[float], losses: list[float]) -> float:
    """The LR at the minimum of a parabola in log2(LR) through the best grid point and its neighbours (the grid
    point itself at an edge or when the three points are not convex)."""
    i = best_index(losses)
    if i == 0 or i == len(lrs) - 1 or not all(math.isfinite(losses[j]) for j in (i - 1, i, i + 1)):
        return lrs[i]
    y0, y1, y2 = losses[i - 1], losses[i], losses[i + 1]
    curvature = y0 - 2 * y1 + y2
    if curvature <= 0:
        return lrs[i]
    step = math.log2(lrs[i + 1] / lrs[i])
    return lrs[i] * 2 ** (step * 0.5 * (y0 - y2) / curvature)


def run_point(streams, weights, seeds, config, train, windows, batch_size) -> tuple[float, float]:
    """Mean held-out loss over seeds and domains of one grid point, and the CPU seconds it took (in a worker)."""
    c0 = time.process_time()
    runs = train_mixtures(streams, np.tile(weights, (len(seeds), 1)), seeds, config, train, windows, batch_size)
    return float(runs.eval_loss.mean()), time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="/tmp/mup-sweep")
    p.add_argument("--json", default=None)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--lr-center", type=float, default=4e-3)
    p.add_argument("--lr-factor", type=float, default=2.0)
    p.add_argument("--lr-points", type=int, default=7)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--windows", type=int, default=16, help="held-out windows per domain")
    p.add_argument("--params", nargs="+", default=["sp", "mup", "mup:8"],
                   help="sp, mup (logit multiplier 1 at the base width: SP there) or mup:ALPHA (mup_output_mult)")
    args = p.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = TokenDatasets(build_data(work, args.vocab))
    streams = data.streams("train")
    windows = evaluation_windows(data, "valid", args.seq_len, args.windows)
    natural = data.token_counts("train") / data.token_counts("train").sum()
    half = args.lr_points // 2
    lrs = [args.lr_center * args.lr_factor ** (k - half) for k in range(args.lr_points)]
    base = min(args.widths)
    seeds = list(range(args.seeds))
    print(f"data: {', '.join(data.domains)}; {int(data.token_counts('train').sum()):,} train tokens; "
          f"{args.steps} steps x {args.batch_size} x {args.seq_len} tokens per run; "
          f"{len(args.params) * len(args.widths) * len(lrs) * len(seeds)} runs")

    t0 = time.perf_counter()
    loss = {param: {width: [math.nan] * len(lrs) for width in args.widths} for param in args.params}
    # spawn, not fork (OpenMP); widest first so the slowest points do not end the run alone.
    pool = concurrent.futures.ProcessPoolExecutor(len(os.sched_getaffinity(0)),
                                                  mp_context=multiprocessing.get_context("spawn"))
    futures, cpu_s = {}, 0.0
    for width in sorted(args.widths, reverse=True):
        for param in args.params:
            mup = {} if param == "sp" else {"mup_base_width": base,
                                             "mup_output_mult": float(param.partition(":")[2] or 1.0)}
            config = GPTConfig(vocab_size=data.vocab_size, seq_len=args.seq_len, n_layer=args.layers,
                               n_head=args.heads, d_model=width, **mup)
            for j, lr in enumerate(lrs):
                train = TrainConfig(steps=args.steps, lr=lr, min_lr=lr / 10, warmup_steps=args.steps // 10,
                                    device="cpu", threads=1, workers=1, progress=False)
                future = pool.submit(run_point, streams, natural, seeds, config, train, windows, args.batch_size)
                futures[future] = (param, width, j)
    for future in concurrent.futures.as_completed(futures):
        param, width, j = futures[future]
        loss[param][width][j], cpu = future.result()
        cpu_s += cpu
        print(f"  {param} d {width} lr {lrs[j]:.2e}: {loss[param][width][j]:.4f}  ({time.perf_counter() - t0:.0f}s)",
              flush=True)
    pool.shutdown()
    wall = time.perf_counter() - t0

    rows = []
    print(f"\nheld-out loss (mean over {len(data.domains)} domains and {len(seeds)} seeds), "
          f"{args.layers} layers, {args.heads} heads; muP base width {base}; {wall:.0f}s wall, "
          f"{cpu_s:.0f} CPU s in the workers")
    print("param   width  " + "  ".join(f"{lr:8.1e}" for lr in lrs) + "   best LR  fitted  drift (grid steps)")
    for param in args.params:
        base_best = lrs[best_index(loss[param][base])]
        for width in args.widths:
            row = loss[param][width]
            i = best_index(row)
            drift = round(math.log(lrs[i] / base_best, args.lr_factor))
            fit = fitted_optimum(lrs, row)
            cells = "  ".join(f"{x:8.4f}" if math.isfinite(x) else f"{'nan':>8}" for x in row)
            print(f"{param:6}  {width:5}  {cells}   {lrs[i]:.1e}  {fit:.1e}  {drift:+d}")
            rows.append({"system": param, "width": width, "wall_s": round(wall, 1), "losses": row,
                         "best_lr": lrs[i], "fitted_lr": fit, "drift_grid_steps": drift})
    spread = {param: max(r["drift_grid_steps"] for r in rows if r["system"] == param)
              - min(r["drift_grid_steps"] for r in rows if r["system"] == param) for param in args.params}
    print("best-LR spread across widths (grid steps): " + ", ".join(f"{k} {v}" for k, v in spread.items()))
    if args.json:
        write_json(args.json, "mup_sweep", device("cpu"), rows=rows, ratios={}, lrs=lrs, widths=args.widths,
                   spread_grid_steps=spread, worker_cpu_s=round(cpu_s, 1), config=vars(args))


if __name__ == "__main__":
    main()
