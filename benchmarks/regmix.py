"""RegMix on a real tokenized corpus built from text on this machine, then mix-eval against uniform and natural.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/regmix.py --work /tmp/regmix-eval --json /tmp/regmix-eval/bench.json

Domains: python (stdlib source), c (/usr/include headers), man (man pages, roff), licenses (common-licenses and
package copyright files), noise (uniform random token ids: the planted NOISE domain). A ByteLevel BPE (vocab 4096)
is trained on the fly; one file = one document; ~5% of documents go to valid and ~5% to test (by a hash of the path).
The DATA directory follows the tokenize contract and is written with proxy_training's Megatron writer.

Then: RegMix for each --targets entry (the proxy runs are shared through the cache: the second target trains
nothing), timed per phase; and `mix-eval` (mixers.evaluation.evaluate_mixtures) of every RegMix mixture, uniform and
natural, with --seeds seeds on the held-out `test` split, paired differences with 95% t-intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harness import ResourceMeter, device, write_json
from text_corpus import read_texts, split_of

SOURCES = {
    "python": [("/usr/lib/python3.11", "*.py")],
    "c": [("/usr/include", "*.h")],
    "man": [("/usr/share/man/man1", "*.gz"), ("/usr/share/man/man3", "*.gz")],
    "licenses": [("/usr/share/common-licenses", "*"), ("/usr/share/doc", "copyright")],
}


def build_data(out: Path, chars: dict[str, int], noise_tokens: int, vocab: int = 4096) -> Path:
    from tokenizers import ByteLevelBPETokenizer

    from proxy_training.data import write_token_datasets

    # At most 50,000 characters a file, so no single file dominates a domain.
    texts = {d: read_texts(d, n, 50_000, 10**9, 200, sources=SOURCES) for d, n in chars.items()}
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator((t for docs in texts.values() for p, t in docs if split_of(p) == "train"),
                            vocab_size=vocab, min_frequency=2, special_tokens=["<|endoftext|>"], show_progress=False)
    eos = tok.token_to_id("<|endoftext|>")
    documents: dict[str, dict[str, list]] = {"train": {}, "valid": {}, "test": {}}
    for d, docs in texts.items():
        for split in documents:
            documents[split][d] = []
        encoded = tok.encode_batch([t for _, t in docs])
        for (p, _), enc in zip(docs, encoded):
            documents[split_of(p)][d].append(enc.ids + [eos])
    rng = np.random.default_rng(0)
    for split, n in (("train", noise_tokens), ("valid", noise_tokens // 10), ("test", noise_tokens // 10)):
        documents[split]["noise"] = [list(rng.integers(0, vocab, 1000)) + [eos] for _ in range(max(1, n // 1000))]
    out.mkdir(parents=True, exist_ok=True)
    write_token_datasets(out, documents, vocab_size=tok.get_vocab_size(), eos_id=eos)
    tok.save(str(out / "tokenizer.json"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/regmix-eval")
    ap.add_argument("--json", default=None)
    ap.add_argument("--targets", nargs="+", default=["average", "man"])
    ap.add_argument("--model-size", default="tiny")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--num-runs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from mixers.baselines import Natural, Uniform
    from mixers.evaluation import evaluate_mixtures, results_table
    from proxy_training.trainer import TrainConfig

    work = Path(args.work)
    data = work / "DATA"
    with ResourceMeter() as building:
        if not (data / "datasets.json").is_file():
            build_data(data, {"python": 6_000_000, "c": 3_000_000, "man": 2_000_000, "licenses": 1_000_000}, 300_000)
    meta = json.loads((data / "datasets.json").read_text())
    tokens = {s: {d: v["tokens"] for d, v in meta["splits"][s].items()} for s in meta["splits"]}
    print(f"DATA {data}: vocab {meta['tokenizer']['vocab_size']}, tokens {json.dumps(tokens)} "
          f"({building.wall_s:.0f}s)")

    with ResourceMeter() as run:
        rows, mixtures = fit_regmix(args, data, work)
        mixtures["uniform"] = Uniform().fit(data).weights
        mixtures["natural"] = Natural().fit(data).weights
        cfg = TrainConfig(lr=args.lr, min_lr=args.lr / 10, device=args.device, threads=args.threads, progress=False)
        with ResourceMeter() as evaluation:
            results = evaluate_mixtures(data, mixtures, steps=args.eval_steps, seeds=list(range(args.seeds)),
                                        model_size=args.model_size, batch_size=args.batch_size, seq_len=args.seq_len,
                                        split="test", train_config=cfg, out_dir=work / "mix-eval")
    eval_s = evaluation.wall_s
    print(results_table(results))
    peak = run.peak_mib()
    print(f"mix-eval {eval_s:.0f}s; peak RSS driver {peak['driver']} MiB, workers {peak['workers']} MiB; "
          f"{device(args.device)}")
    if args.json:
        write_json(args.json, "regmix", device(args.device), data_tokens=tokens,
                   rows=rows + [{"system": "mix-eval", "wall_s": round(eval_s, 1)}],
                   mix_eval={"paired_differences": results["paired_differences"],
                             "mixtures": {n: {"average": r["average"], "domain_loss": r["domain_loss"],
                                              "weights": r["weights"]} for n, r in results["mixtures"].items()}},
                   ratios={}, peak_rss_mib=peak, config=vars(args))
    return 0


def fit_regmix(args, data: Path, work: Path) -> tuple[list[dict], dict[str, dict[str, float]]]:
    """RegMix for each --targets entry (weights saved in `work`): a result row and the weights of each."""
    from mixers.regmix import RegMix

    rows, mixtures = [], {}
    for target in args.targets:
        mixer = RegMix(target=target, model_size=args.model_size, seq_len=args.seq_len, batch_size=args.batch_size,
                       steps=args.steps, lr=args.lr, warmup_steps=max(1, args.steps // 10), device=args.device,
                       threads=args.threads, num_runs=args.num_runs, precision="auto", seed=0)
        with ResourceMeter() as fitting:
            w = mixer.fit(data)
        w.save(work / f"regmix-{target}.json")
        reg = w.diagnostics["regression"]
        rows.append({"system": f"regmix target={target}", "wall_s": round(fitting.wall_s, 1),
                     "trained_runs": mixer.trained_runs_, "cached_runs": mixer.cached_runs_,
                     **{k: round(v, 1) for k, v in mixer.timings_.items()},
                     "chosen": reg["chosen"],
                     **{f"cv_rho_{n}": round(r["spearman"], 3) for n, r in reg["cv"].items()},
                     **{f"cv_mae_{n}": round(r["mae"], 4) for n, r in reg["cv"].items()},
                     "weights": {d: round(v, 4) for d, v in w.weights.items()}})
        mixtures[f"regmix-{target}"] = w.weights
        print(json.dumps(rows[-1]))
    return rows, mixtures


if __name__ == "__main__":
    raise SystemExit(main())
