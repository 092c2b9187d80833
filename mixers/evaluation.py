"""Mix-eval: does a mixture actually help? Train one proxy per (mixture, seed) and compare held-out losses.

For each seed, all mixtures train at once as one StackedGPT whose models share that seed's initialization, and each
model's sampler uses that seed's random numbers (common random numbers: the same draws pick domains by each
mixture's weights and place the windows). Every model is scored on the same fixed windows of the `valid` (or `test`)
split. Per mixture we report per-domain losses, their unweighted average and the worst domain; between mixtures,
paired differences over seeds with 95% t-intervals (negative = the first mixture has lower loss).

    results = evaluate_mixtures("DATA", {"uniform": {...}, "doremi": {...}}, steps=200, seeds=[0, 1, 2],
                                out_dir="mix-eval")   # writes results.json, results.md, losses.png
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from itertools import combinations
from pathlib import Path

import numpy as np

from proxy_training.data import DataError, TokenDatasets, evaluation_windows
from proxy_training.model import GPTConfig, preset_config
from proxy_training.trainer import TrainConfig, train_mixtures


def t_interval(values, confidence: float = 0.95) -> dict:
    """Mean and two-sided t-interval of the mean; the interval is None with fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "ci95": None, "n": len(x)}
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": len(x)}


def evaluate_mixtures(
    data_dir: str | os.PathLike,
    mixtures: dict[str, dict[str, float]],
    steps: int,
    seeds: list[int] = (0, 1, 2),
    model_size: str | GPTConfig = "regmix-1m",
    batch_size: int = 16,
    seq_len: int = 256,
    split: str = "valid",
    eval_windows_per_domain: int = 32,
    train_config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
) -> dict:
    """Train every mixture with every seed, evaluate per domain, and (with out_dir) write results, table and plot.

    `train_config` supplies lr, schedule, device and precision; its `steps` is replaced by `steps`.
    """
    data = TokenDatasets(data_dir)
    names = list(mixtures)
    vectors = np.stack([mixture_vector(data, n, mixtures[n]) for n in names])  # [M, k]
    config = model_size if isinstance(model_size, GPTConfig) else preset_config(model_size, data.vocab_size, seq_len)
    cfg = TrainConfig(**{**asdict(train_config or TrainConfig()), "steps": steps})
    if cfg.warmup_steps >= steps:
        cfg.warmup_steps = max(1, steps // 10)
    windows = evaluation_windows(data, split, config.seq_len, eval_windows_per_domain)
    train_streams = data.streams("train")

    losses = np.empty((len(seeds), len(names), len(data.domains)))  # [seed, mixture, domain]
    train_final = np.empty((len(seeds), len(names)))
    device = None
    for s, seed in enumerate(seeds):
        # All mixtures of a seed train together: same init, same random numbers for the data order.
        runs = train_mixtures(train_streams, vectors, [seed] * len(names), config, cfg, windows, batch_size)
        losses[s], train_final[s], device = runs.eval_loss, runs.train_loss, runs.device

    results = _summarize(data, names, mixtures, vectors, seeds, losses, train_final)
    results.update(
        data=str(data_dir), split=split, steps=steps, batch_size=batch_size, device=device,
        tokens_per_model=steps * batch_size * config.seq_len,
        # A domain's held-out split can hold fewer windows than asked (a short one is scored as one window).
        eval_windows_per_domain=dict(zip(data.domains, np.bincount(windows.domain_ids.numpy(),
                                                                   minlength=len(data.domains)).tolist())),
        model=asdict(config) | {"params": config.num_params(), "non_embedding_params": config.num_params(False)},
        train=asdict(cfg), leakage=data_leakage(data_dir, split),
    )
    if out_dir is not None:
        write_results(results, out_dir)
    return results


def mixture_vector(data, name: str, weights: dict[str, float]) -> np.ndarray:
    """`data.weights_vector` of one named mixture; a bad one is a DataError naming the mixture."""
    try:
        return data.weights_vector(weights)
    except DataError as exc:
        raise DataError(f"mixture {name!r}: {exc}") from None


def data_leakage(data_dir: str | os.PathLike, split: str) -> dict | None:
    """The tokenize stage's leakage figure for `split` of DATA (its stats.json): held-out documents with a train
    near-duplicate, the worst domain, the threshold; None where it was not measured (an older output, or off)."""
    try:
        stats = json.loads((Path(data_dir) / "stats.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    lk = stats.get("leakage") if isinstance(stats, dict) else None
    if not isinstance(lk, dict) or not lk.get("measured") or split not in lk:
        return None
    shares = {d: e["leakage"][split]["share"] for d, e in sorted(stats.get("by_domain", {}).items())
              if split in e.get("leakage", {})}
    worst = max(sorted(shares), key=shares.__getitem__, default=None)  # ties: the first name
    return {**lk[split], "split": split, "threshold": lk["threshold"], "split_by_cluster": lk["split_by_cluster"],
            "moved_docs": lk.get("moved_docs", 0), "worst_domain": worst,
            "worst_share": shares[worst] if worst is not None else 0.0}


def leakage_line(leakage: dict | None) -> str:
    """One line saying how much of the scored held-out split has near-duplicates in train."""
    if leakage is None:
        return "leakage not measured (the data's stats.json has no held-out leakage figure)"
    line = (f"leakage: {leakage['leaked_docs']:,} of {leakage['heldout_docs']:,} {leakage['split']} documents "
            f"({100 * leakage['share']:.2f}%) have a near-duplicate (Jaccard >= {leakage['threshold']}) in train")
    if leakage["worst_share"] > 0:
        line += f"; most in {leakage['worst_domain']} ({100 * leakage['worst_share']:.2f}%)"
    if leakage["split_by_cluster"]:
        line += f" (split by cluster: {leakage['moved_docs']:,} documents moved)"
    return line


def _summarize(data, names, mixtures, vectors, seeds, losses, train_final) -> dict:
    domains = data.domains
    average = losses.mean(axis=2)  # [seed, mixture]: unweighted mean over domains
    worst = losses.max(axis=2)
    out = {"domains": domains, "seeds": list(seeds), "mixtures": {}, "paired_differences": {}}
    for m, name in enumerate(names):
        out["mixtures"][name] = {
            "weights": dict(zip(domains, vectors[m].tolist())),
            "per_seed": {
                str(seed): {
                    "domain_loss": dict(zip(domains, losses[s, m].tolist())),
                    "average": float(average[s, m]),
                    "worst": float(worst[s, m]),
                    "worst_domain": domains[int(losses[s, m].argmax())],
                    "final_train_loss": float(train_final[s, m]),
                }
                for s, seed in enumerate(seeds)
            },
            "domain_loss": {d: t_interval(losses[:, m, k]) for k, d in enumerate(domains)},
            "average": t_interval(average[:, m]),
            "worst": t_interval(worst[:, m]),
        }
    for a, b in combinations(range(len(names)), 2):
        out["paired_differences"][f"{names[a]} - {names[b]}"] = {
            "average": t_interval(average[:, a] - average[:, b]),
            "worst": t_interval(worst[:, a] - worst[:, b]),
            "domain_loss": {d: t_interval(losses[:, a, k] - losses[:, b, k]) for k, d in enumerate(domains)},
        }
    return out


def _fmt(stat: dict) -> str:
    if stat["ci95"] is None:
        return f"{stat['mean']:.4f}"
    return f"{stat['mean']:.4f} ± {(stat['ci95'][1] - stat['ci95'][0]) / 2:.4f}"


def results_table(results: dict) -> str:
    """Markdown tables: held-out loss per mixture (mean ± 95% half-width over seeds) and paired differences."""
    domains = results["domains"]
    lines = [
        f"Held-out loss on `{results['split']}` ({len(results['seeds'])} seeds, {results['steps']} steps, "
        f"{results['tokens_per_model']:,} tokens per model; mean ± 95% t half-width)",
        "",
        "| mixture | " + " | ".join(domains) + " | average | worst |",
        "|---" * (len(domains) + 3) + "|",
    ]
    for name, r in results["mixtures"].items():
        cells = [_fmt(r["domain_loss"][d]) for d in domains] + [_fmt(r["average"]), _fmt(r["worst"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["paired_differences"]:
        lines += ["", "Paired differences (A - B; negative = A better; * = 95% interval excludes 0)", "",
                  "| A - B | average | 95% CI | worst | 95% CI |", "|---|---|---|---|---|"]
        for pair, r in results["paired_differences"].items():
            cells = []
            for key in ("average", "worst"):
                ci = r[key]["ci95"]
                star = "*" if ci is not None and (ci[0] > 0 or ci[1] < 0) else ""
                cells += [f"{r[key]['mean']:+.4f}{star}", "n/a" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    if "leakage" in results:  # results written before the leakage guard have no such key
        lines += ["", leakage_line(results["leakage"])]
    return "\n".join(lines) + "\n"


def plot_results(results: dict, path: str | os.PathLike) -> None:
    """Grouped bars: per-domain, average and worst held-out loss per mixture, with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = results["domains"] + ["average", "worst"]
    names = list(results["mixtures"])
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(names) / 2)), 4))
    for i, name in enumerate(names):
        r = results["mixtures"][name]
        stats = [r["domain_loss"][d] for d in results["domains"]] + [r["average"], r["worst"]]
        means = [s["mean"] for s in stats]
        err = [0 if s["ci95"] is None else (s["ci95"][1] - s["ci95"][0]) / 2 for s in stats]
        ax.bar(np.arange(len(groups)) + i * width - 0.4 + width / 2, means, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=30, ha="right")
    ax.set_ylabel(f"held-out loss ({results['split']})")
    lo = min(s["mean"] for r in results["mixtures"].values() for s in r["domain_loss"].values())
    ax.set_ylim(bottom=max(0.0, lo - 0.5))
    ax.legend()
    ax.set_title(f"mix-eval: {len(results['seeds'])} seeds, {results['steps']} steps")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(results: dict, out_dir: str | os.PathLike) -> Path:
    """Write results.json, results.md and losses.png into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_table(results))
    plot_results(results, out / "losses.png")
    return out
