"""The default CPU scaling ladder on a real corpus built from text on this machine: 5 mixtures x 3 rungs x 3 seeds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ladder.py --work /tmp/ladder-bench --json /tmp/ladder-bench/bench.json

The corpus (benchmarks/text_corpus.py, shape --shape): 7 domains of different kinds plus a planted noise domain of
random printable characters (learnable to a floor). Mixtures: uniform and natural (the ladder adds them), RegMix
(target: average), DoReMi (uniform reference) and a hand-made code-heavy mixture, each fitted or written here (timed
apart from the ladder). The ladder runs with its CPU defaults and scores the average test loss without the noise
domain. Printed: the verdicts at the target, the self-check (top rung predicted from the others: error per
mixture, pairwise decision accuracy beside ranking by the smallest rung alone), proxy fidelity per rung, the
ladder's wall time and peak memory. The ladder's peer is the single-scale ranking the self-check reports beside it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import text_corpus
from harness import ResourceMeter, device, write_json


def fit_mixtures(data: Path, work: Path, device: str) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """RegMix, DoReMi and a code-heavy mixture (each cached as a weights file in `work`); seconds per mixer."""
    from mixers.doremi import DoReMi
    from mixers.regmix import RegMix

    mixtures, seconds = {}, {}
    for name, make in (("regmix", lambda: RegMix(target="average", model_size="tiny", seq_len=128, batch_size=8,
                                                 steps=200, lr=2e-3, warmup_steps=20, device=device, seed=0)),
                       ("doremi", lambda: DoReMi(reference="uniform", device=device, seed=0))):
        path = work / f"{name}.json"
        if not path.is_file():
            with ResourceMeter() as fitting:
                make().fit(data).save(path)
            seconds[name] = round(fitting.wall_s, 1)
        mixtures[name] = json.loads(path.read_text())["weights"]
    domains = json.loads((data / "datasets.json").read_text())["splits"]["train"]
    code = {d: (0.35 if d in ("python", "c") else 0.3 / (len(domains) - 2)) for d in domains}
    mixtures["code-heavy"] = code
    return mixtures, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/ladder-bench")
    ap.add_argument("--shape", default="standard")
    ap.add_argument("--json", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rungs", nargs="*", default=None, help="SIZE:TOKENS (default: the CPU ladder's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fresh", action="store_true", help="drop the run cache first (time a cold ladder)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the ladder's)")
    ap.add_argument("--mup-base-width", type=int, default=None, help="muP base width (default: the recipe's; 0 = standard param.)")
    ap.add_argument("--mup-output-mult", type=float, default=None)
    ap.add_argument("--out-name", default="ladder", help="output directory under --work")
    ap.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the ladder's)")
    ap.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the ladder's)")
    ap.add_argument("--eval-windows", type=int, default=None, help="test windows per domain (default: the ladder's)")
    args = ap.parse_args()

    import shutil

    from mixers.ladder import Ladder, parse_rung, write_ladder
    from mixers.ladder_fit import verdict_table

    work = Path(args.work)
    data = work / f"DATA-{args.shape}"
    if not (data / "datasets.json").is_file():
        text_corpus.build_corpus(data, args.shape)
    print(json.dumps({s: {d: v["tokens"] for d, v in x.items()} for s, x in text_corpus.describe(data).items()}))
    mixtures, mixer_s = fit_mixtures(data, work, args.device)
    if args.fresh:
        shutil.rmtree(data / ".ladder-cache", ignore_errors=True)
    extra = {k: v for k in ("lr", "batch_size", "seq_len", "eval_windows") if (v := getattr(args, k)) is not None}
    ladder = Ladder(rungs=[parse_rung(r) for r in args.rungs] if args.rungs else None, seeds=args.seeds,
                    exclude_domains=("noise",), device=args.device, mup_base_width=args.mup_base_width,
                    mup_output_mult=args.mup_output_mult, **extra)
    with ResourceMeter() as run:
        result = ladder.fit(data, mixtures)
    wall = run.wall_s
    write_ladder(result, work / args.out_name)
    print(verdict_table(result["fit"]))
    peak = run.peak_mib()
    sc = result["self_check"]
    rows = [{"system": "ladder (fit over all rungs, extrapolated)", "wall_s": round(wall, 1),
             "trained_runs": result["trained_runs"], "cached_runs": result["cached_runs"],
             "self_check_pair_accuracy": sc["accuracy"]["fit"], "self_check_mean_abs_error": sc["mean_abs_error"],
             "pairs_counted": sc["pairs_counted"]},
            {"system": "smallest rung alone (single-scale ranking)",
             "self_check_pair_accuracy": sc["accuracy"]["smallest_rung"]}]
    for r in rows:
        print(json.dumps(r))
    for r in result["rungs"]:
        print(f"rung {r['name']}: {r['params']:,} parameters, {r['tokens']:,} tokens, {r['flops']:.2e} FLOPs, "
              f"{r['train_seconds']:.0f}s")
    print(f"proxy fidelity: {result['proxy_fidelity']}")
    print(f"ladder {wall:.0f}s on {os.cpu_count()} cores; mixers {mixer_s}; peak RSS driver {peak['driver']} MiB, "
          f"workers {peak['workers']} MiB")
    if args.json:
        write_json(args.json, "ladder", device(args.device), rows=rows, ratios={}, verdicts=result["fit"]["verdicts"],
                   self_check=sc, proxy_fidelity=result["proxy_fidelity"], rungs=result["rungs"],
                   mixer_seconds=mixer_s, peak_rss_mib=peak, config=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
