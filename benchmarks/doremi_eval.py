"""DoReMi on a real tokenized corpus, then a paired mix-eval of uniform / natural / DoReMi weights.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/doremi_eval.py --work /tmp/doremi-eval --json /tmp/doremi-eval/eval.json

Steps: (1) the demo corpus's raw text (curate.demo.build_demo_corpus; no Spark), split per domain 90/5/5 by a hash
of the text (exact copies land in the same split), (2) a ByteLevel BPE (vocab 4096) trained on the train split,
(3) per-domain Megatron datasets in the DATA layout (proxy_training.data.write_token_datasets), (4) `DoReMi` with
its defaults, (5) `evaluate_mixtures` (what `curate mix-eval` runs) on target models larger than the proxy with the
same token budget per mixture and several seeds, scored on the fixed `test` windows.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import zstandard

from curate.demo import build_demo_corpus
from harness import ResourceMeter, device, write_json
from mixers.baselines import Natural, Uniform
from mixers.doremi import DoReMi
from mixers.weights import DomainWeights
from mixers.evaluation import evaluate_mixtures, results_table
from proxy_training.data import write_token_datasets
from proxy_training.model import GPTConfig
from proxy_training.trainer import TrainConfig


def read_raw(raw: Path) -> dict[str, list[str]]:
    """{domain: [text]} from the demo corpus files (malformed lines skipped)."""
    out: dict[str, list[str]] = {}
    for domain_dir in sorted(p for p in raw.iterdir() if p.is_dir()):
        texts = out.setdefault(domain_dir.name, [])
        for f in sorted(domain_dir.iterdir()):
            if f.suffix == ".parquet":
                texts += [t for t in pq.read_table(f, columns=["text"]).column("text").to_pylist() if t]
                continue
            if f.name.endswith(".zst"):
                data = zstandard.ZstdDecompressor().stream_reader(open(f, "rb")).read()
            elif f.name.endswith(".gz"):
                try:
                    data = gzip.open(f).read()
                except (EOFError, OSError):  # the planted truncated file: keep what decompresses
                    data = b""
                    with gzip.open(f) as g:
                        try:
                            for line in io.BufferedReader(g):
                                data += line
                        except (EOFError, OSError):
                            pass
            else:
                data = f.read_bytes()
            for line in data.splitlines():
                try:
                    doc = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("text"), str) and doc["text"].strip():
                    texts.append(doc["text"])
    return out


def split_of(text: str) -> str:
    h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100
    return "valid" if h < 5 else "test" if h < 10 else "train"


def build_data(work: Path, vocab_size: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    data = work / "DATA"
    if (data / "_SUCCESS").exists():
        return data
    build_demo_corpus(work / "corpus")
    texts = read_raw(work / "corpus" / "raw")
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "valid": {}, "test": {}}
    for domain, docs in texts.items():
        for t in docs:
            splits[split_of(t)].setdefault(domain, []).append(t)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((t for d in splits["train"].values() for t in d), trainer)
    eos = tok.token_to_id("<|endoftext|>")
    docs = {s: {d: [e.ids + [eos] for e in tok.encode_batch(ts)] for d, ts in by.items()} for s, by in splits.items()}
    write_token_datasets(data, docs, tok.get_vocab_size(), eos_id=eos)
    tok.save(str(data / "tokenizer.json"))
    return data


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="/tmp/doremi-eval")
    p.add_argument("--json", default=None)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--eval-steps", type=int, default=600)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--target-d", type=int, default=128)
    p.add_argument("--target-layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per training process (default: 1 for these small models, one process per core)")
    p.add_argument("--proxy-steps", type=int, default=300, help="DoReMi's reference and proxy training steps")
    p.add_argument("--references", default="natural,uniform",
                   help="DoReMi reference weights to run, comma-separated (each is one mixture in the evaluation)")
    p.add_argument("--reuse", action="store_true", help="reuse WORK/doremi-REF.json instead of running DoReMi again")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = build_data(work, args.vocab)
    index = json.loads((data / "datasets.json").read_text())
    print("tokens per split/domain:", {s: {d: v["tokens"] for d, v in by.items()} for s, by in index["splits"].items()})

    runs: dict[str, DomainWeights] = {}
    with ResourceMeter() as fitting:
        for ref in args.references.split(","):
            path = work / f"doremi-{ref}.json"
            if path.exists() and args.reuse:  # re-run only the evaluation
                runs[ref] = DomainWeights.load(path)
            else:
                runs[ref] = DoReMi(reference=ref, steps=args.proxy_steps, threads=args.threads).fit(data)
                runs[ref].save(path)
    doremi_s = fitting.wall_s
    uniform, natural = Uniform().fit(data), Natural().fit(data)
    for w in (uniform, natural):
        w.save(work / f"{w.method}.json")
    print(f"DoReMi ({len(runs)} runs, {args.proxy_steps} steps) {doremi_s:.0f}s")
    for ref, doremi in runs.items():
        print(f"  doremi-{ref}:", {d: round(v, 4) for d, v in doremi.weights.items()})
        rnd = doremi.diagnostics["rounds"][0]
        for key in ("mean_excess_loss", "reference_valid_loss", "proxy_valid_loss"):
            print(f"    {key}:", {d: round(v, 4) for d, v in rnd[key].items()})
    doremi = next(iter(runs.values()))

    proxy = doremi.config["model"]
    target = GPTConfig(vocab_size=proxy["vocab_size"], seq_len=proxy["seq_len"], n_layer=args.target_layers,
                       n_head=4, d_model=args.target_d)
    mixtures = {"uniform": uniform.weights, "natural": natural.weights,
                **{f"doremi-{ref}": w.weights for ref, w in runs.items()}}
    with ResourceMeter() as evaluation:
        results = evaluate_mixtures(
            data, mixtures, steps=args.eval_steps, seeds=list(range(args.seeds)), model_size=target, batch_size=16,
            seq_len=target.seq_len, split="test", eval_windows_per_domain=32,
            train_config=TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=60, threads=args.threads),
            out_dir=work / "mix-eval")
    eval_s = evaluation.wall_s
    print(f"target {target.num_params():,} params ({target.num_params(False):,} non-embedding) vs proxy "
          f"{proxy['params']:,} ({proxy['non_embedding_params']:,}); mix-eval {eval_s:.0f}s")
    print(results_table(results))
    if args.json:
        rows = [{"system": n, "wall_s": round(eval_s, 1), "average": r["average"]["mean"], "worst": r["worst"]["mean"]}
                for n, r in results["mixtures"].items()]
        write_json(args.json, "doremi_eval", device(results["device"]), rows=rows, ratios={},
                   doremi_wall_s=round(doremi_s, 1), weights=mixtures, target_params=target.num_params(),
                   proxy_params=proxy["params"], paired_differences=results["paired_differences"])


if __name__ == "__main__":
    main()
