"""Every mixer on one real corpus, judged by the scaling ladder: DoReMi, RegMix, the mixing law, uniform, natural.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/mixers_bench.py --work /tmp/mixers-bench --json /tmp/mixers-bench/bench.json

The corpus (benchmarks/text_corpus.py, shape --shape): 7 domains of different kinds, a planted noise domain of random
printable characters (learnable to a floor) and an exact copy of one domain under another name (--copy-of). Each
mixer runs with its CPU defaults (timed; RegMix and the mixing law share their proxy runs through the cache, so the
second one trains nothing) and targets the average over every domain but the noise. Then `curate ladder` on their
weights with --seeds paired seeds (the ladder adds uniform and natural) scores the average test loss over the real
domains (noise excluded). Printed: one table of weights, mixer time, per-domain and average test loss at each rung;
the ladder's verdicts and self-check; and the goals of the mixer issue: a mixer that beats both uniform and natural
at the top rung with a 95% interval excluding 0, noise weight <= 0.01, twin domains within 2x, DoReMi's worst-domain
loss no worse than uniform's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

import text_corpus
from harness import ResourceMeter, device, write_json


def run_mixers(data: Path, work: Path, device: str, targets: list[str]) -> tuple[dict, dict]:
    """Weights and seconds of each mixer with its defaults (weights files cached in `work`)."""
    from mixers.doremi import DoReMi
    from mixers.mixing_law import MixingLaw
    from mixers.regmix import RegMix

    makers = {
        "doremi": lambda: DoReMi(target_domains=targets, device=device, seed=0),
        "regmix": lambda: RegMix(target="average", target_domains=targets, device=device, seed=0),
        "mixing-law": lambda: MixingLaw(target="average", target_domains=targets, device=device, seed=0),
    }
    weights, seconds = {}, {}
    for name, make in makers.items():
        path = work / f"{name}.json"
        if not path.is_file():
            with ResourceMeter() as fitting:
                make().fit(data).save(path)
            seconds[name] = round(fitting.wall_s, 1)
            seconds[f"{name} cpu"] = round(fitting.cpu_s, 1)
            (work / f"{name}.seconds").write_text(json.dumps({k: seconds[k] for k in (name, f"{name} cpu")}))
        elif (work / f"{name}.seconds").is_file():
            seconds.update(json.loads((work / f"{name}.seconds").read_text()))
        weights[name] = json.loads(path.read_text())["weights"]
    return weights, seconds


def paired_gap(values: np.ndarray, a: int, b: int) -> tuple[float, float, float]:
    """Mean of values[:, a] - values[:, b] over seeds and its 95% t-interval (paired seeds)."""
    from scipy import stats

    d = values[:, a] - values[:, b]
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def goals(result: dict, noise: str, copy_pair: tuple[str, str]) -> list[str]:
    """The mixer issue's goals, each as one line with its figures."""
    names, domains = result["names"], result["domains"]
    L = np.asarray(result["domain_losses"])[:, :, -1, :]  # [S, M, k] at the top rung
    keep = [i for i, d in enumerate(domains) if d != noise]
    avg = L[..., keep].mean(-1)
    worst = L[..., keep].max(-1)
    lines = []
    for m, name in enumerate(names):
        if name in ("uniform", "natural"):
            continue
        vs = [paired_gap(avg, m, names.index(b)) for b in ("uniform", "natural")]
        wins = all(hi < 0 for _, _, hi in vs)
        lines.append(f"{name}: average test loss vs uniform {vs[0][0]:+.4f} [{vs[0][1]:+.4f}, {vs[0][2]:+.4f}], "
                     f"vs natural {vs[1][0]:+.4f} [{vs[1][1]:+.4f}, {vs[1][2]:+.4f}] -> "
                     f"{'beats both' if wins else 'does not beat both'}")
        w = result["mixtures"][name]
        a, b = (w.get(d, 0.0) for d in copy_pair)
        ratio = max(a, b) / min(a, b) if min(a, b) > 0 else math.inf
        lines.append(f"{name}: noise weight {w.get(noise, 0.0):.4f} ({'<=' if w.get(noise, 0) <= 0.01 else '>'} "
                     f"0.01); twins {copy_pair[0]} {a:.3f} / {copy_pair[1]} {b:.3f} (ratio {ratio:.2f}, "
                     f"{'within' if ratio <= 2 else 'beyond'} 2x)")
    if "doremi" in names:
        g = paired_gap(worst, names.index("doremi"), names.index("uniform"))
        lines.append(f"doremi: worst-domain test loss vs uniform {g[0]:+.4f} [{g[1]:+.4f}, {g[2]:+.4f}] "
                     f"({'no worse' if g[0] <= 0 or g[1] <= 0 else 'worse'})")
    return lines


def loss_table(result: dict, seconds: dict, noise: str) -> str:
    """Markdown: per mixture, weights and time; then per rung, per-domain and average test loss (seed means)."""
    names, domains = result["names"], result["domains"]
    head = "| mixture | s | " + " | ".join(domains) + " |"
    rows = [head, "|" + "---|" * (len(domains) + 2)]
    for n in names:
        w = result["mixtures"][n]
        s = seconds.get(n)
        rows.append(f"| {n} | {'' if s is None else s} | " + " | ".join(f"{w[d]:.3f}" for d in domains) + " |")
    L = np.asarray(result["domain_losses"]).mean(0)  # [M, R, k]
    keep = [i for i, d in enumerate(domains) if d != noise]
    for r, rung in enumerate(result["rungs"]):
        rows += ["", f"rung {rung['name']} ({rung['params']:,} parameters, {rung['tokens']:,} tokens): test loss",
                 "| mixture | average | " + " | ".join(domains) + " |", "|" + "---|" * (len(domains) + 2)]
        for m, n in enumerate(names):
            rows.append(f"| {n} | {L[m, r, keep].mean():.4f} | " + " | ".join(f"{v:.3f}" for v in L[m, r]) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/mixers-bench")
    ap.add_argument("--shape", default="standard")
    ap.add_argument("--copy-of", default="markdown", help="the domain planted twice (as DOMAIN_copy)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--timed-seeds", type=int, default=3,
                    help="first train the ladder with this many seeds alone and time it (the default ladder's cost); "
                         "the --seeds ladder then reuses those runs")
    ap.add_argument("--rungs", nargs="*", default=None, help="SIZE:TOKENS (default: the CPU ladder's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from mixers.ladder import Ladder, parse_rung, write_ladder
    from mixers.ladder_fit import verdict_table

    work = Path(args.work)
    data = work / f"DATA-{args.shape}"
    if not (data / "datasets.json").is_file():
        text_corpus.build_corpus(data, args.shape, copy_of=args.copy_of)
    domains = sorted(json.loads((data / "datasets.json").read_text())["splits"]["train"])
    targets = [d for d in domains if d != "noise"]
    weights, seconds = run_mixers(data, work, args.device, targets)

    rungs = [parse_rung(r) for r in args.rungs] if args.rungs else None
    timed = {}
    if 0 < args.timed_seeds < args.seeds:
        first = Ladder(rungs=rungs, seeds=args.timed_seeds, exclude_domains=("noise",), device=args.device)
        with ResourceMeter() as timing:
            part = first.fit(data, weights)
        timed = {"seeds": args.timed_seeds, "wall_s": round(timing.wall_s, 1),
                 "cpu_s": round(timing.cpu_s, 1), "trained_runs": part["trained_runs"],
                 "train_s_per_rung": [round(r["train_seconds"], 1) for r in part["rungs"]]}
        print(f"ladder with {args.timed_seeds} seeds: {timed}", flush=True)
    ladder = Ladder(rungs=rungs, seeds=args.seeds, exclude_domains=("noise",), device=args.device)
    with ResourceMeter() as run:
        result = ladder.fit(data, weights)
    wall = run.wall_s
    write_ladder(result, work / "ladder")
    print(loss_table(result, seconds, "noise"))
    print()
    print(verdict_table(result["fit"]))
    checks = goals(result, "noise", (args.copy_of, f"{args.copy_of}_copy"))
    for line in checks:
        print(line)
    peak = run.peak_mib()
    print(f"mixers {seconds}; ladder {wall:.0f}s ({result['trained_runs']} runs trained, {result['cached_runs']} "
          f"cached) on {os.cpu_count()} cores; peak RSS driver {peak['driver']} MiB, workers {peak['workers']} MiB")
    if args.json:
        write_json(args.json, "mixers", device(args.device), mixer_seconds=seconds, ladder_seconds=round(wall, 1),
                   ladder_timed=timed, weights=result["mixtures"], verdicts=result["fit"]["verdicts"],
                   self_check=result["self_check"], goals=checks, rungs=result["rungs"],
                   domain_losses=result["domain_losses"], names=result["names"], domains=result["domains"],
                   peak_rss_mib=peak, config=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
