"""Benchmark: `curate shards` (run_shards) writing training shards vs `cp` of the same bytes, in one run.

Corpus: benchmarks/text_corpus.py's "small" shape (real text from this machine: source files, headers, man pages,
licenses, changelogs, markdown, the language reference, a noise domain; byte-level BPE, vocab 4096), tokenized once
and kept under --work. Its train split is then scaled to about --mb MB of tokens by repeating each domain's train
`.bin` (and its document lengths) as many times as needed into one bigger MMIDIDX dataset per domain: the documents
keep the real corpus's count per token and its lengths, which is what the shards' cost depends on; their content
repeats.

Timed, in alternating rounds (each system keeps its fastest round: the cores are shared):
- `curate shards`: run_shards with the natural weights (each domain's share of the train tokens) and --tokens = all
  train tokens, so the shards hold the input's bytes once each, in the drawn order (plan, draw, gather, write, fsync,
  sha256 of every file, manifest);
- `cp`: the input `.bin` files copied to a fresh directory, and `cp + fsync`: the same followed by `sync FILE...` on
  the copies (run_shards fsyncs each shard before it publishes it).
Both read from the page cache (the input was just written). Printed: wall seconds, tokens/s and MB/s of each, the
ratios (goal: run_shards within 2x of cp's time), and run_shards' memory: peak RSS of the process, which counts the
memory-mapped input pages the kernel may drop at any time, and, in one more untimed run, the peak of the memory
run_shards allocates (tracemalloc: Python objects and numpy arrays), which must not grow with the corpus's tokens.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/shards.py [--mb 200] [--rounds 3] [--work DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
import tracemalloc
from pathlib import Path

from harness import MIB, ResourceMeter, device, write_json

MB = 1e6


def traced_peak(run) -> int:
    """Peak bytes of Python and numpy allocations (tracemalloc) while `run()` runs: memory-mapped input pages and
    the interpreter's own memory excluded. Slows allocation-heavy code, so it is measured in a run of its own."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def base_corpus(work: Path) -> Path:
    """text_corpus's "small" shape, built once under `work`."""
    import text_corpus

    base = work / "base"
    if not (base / "datasets.json").is_file():
        shutil.rmtree(base, ignore_errors=True)
        text_corpus.build_corpus(base, "small")
    return base


def scaled_corpus(base: Path, out: Path, mb: float) -> dict:
    """A tokenize output at `out` whose train split is each domain's base train data repeated to reach ~`mb` MB."""
    import numpy as np

    from proxy_training.megatron import MMIDIDXDataset, MMIDIDXWriter

    meta = json.loads((base / "datasets.json").read_text())
    # The manifest records the tokenizer's hash; text_corpus leaves it out.
    meta["tokenizer"]["sha256"] = hashlib.sha256((base / "tokenizer.json").read_bytes()).hexdigest()
    train = meta["splits"]["train"]
    sets = {d: [MMIDIDXDataset(base / p) for p in v["prefixes"]] for d, v in train.items()}
    base_bytes = sum(ds.bin_bytes for v in sets.values() for ds in v)
    copies = max(1, round(mb * MB / base_bytes))
    shutil.rmtree(out, ignore_errors=True)
    splits: dict = {"train": {}, "valid": {}, "test": {}}
    for d, datasets in sorted(sets.items()):
        prefix = f"train/{d}/part-00000"
        with MMIDIDXWriter(out / prefix, np.dtype(meta["tokenizer"]["dtype"])) as w:
            for _ in range(copies):
                for ds in datasets:
                    w.write_raw(Path(f"{ds.prefix}.bin").read_bytes())
                    w.add_lengths(np.asarray(ds.lengths))
        splits["train"][d] = {"prefixes": [prefix], "docs": w.docs, "tokens": w.tokens}
        for s in ("valid", "test"):
            splits[s][d] = {"prefixes": [], "docs": 0, "tokens": 0}
    (out / "datasets.json").write_text(json.dumps({"tokenizer": meta["tokenizer"], "splits": splits}))
    (out / "_SUCCESS").write_text("")
    return {"copies": copies, "tokens": sum(v["tokens"] for v in splits["train"].values()),
            "docs": sum(v["docs"] for v in splits["train"].values()),
            "bytes": sum((out / f"{v['prefixes'][0]}.bin").stat().st_size for v in splits["train"].values())}


def run_shards_once(data: Path, weights: Path, out: Path, tokens: int, shard_tokens: int | None) -> dict:
    from curate.shards.config import ShardsConfig
    from curate.shards.stage import run_shards

    shutil.rmtree(out, ignore_errors=True)
    extra = {"shard_tokens": shard_tokens} if shard_tokens else {}
    cfg = ShardsConfig(weights=str(weights), tokens=tokens, **extra)
    with ResourceMeter() as meter:
        stats = run_shards(cfg, str(data), str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    nbytes = sum(f["bytes"] for name, f in manifest["files"].items() if name.endswith(".bin"))
    return {"system": "curate shards", "wall_s": meter.wall_s, "cpu_s": meter.cpu_s, "tokens": stats["tokens"],
            "docs": stats["docs"], "shards": stats["shards"], "bytes": nbytes, "peak_rss_mb": meter.driver / MIB}


def cp_once(data: Path, out: Path, fsync: bool) -> dict:
    """`cp` of the train .bin files into a fresh directory (and `sync` of the copies), timed from a child's life."""
    sources = sorted(str(p) for p in (data / "train").rglob("*.bin"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    names = [str(out / f"{i:05d}.bin") for i in range(len(sources))]
    commands = [f"cp {s} {n}" for s, n in zip(sources, names)] + ([f"sync {' '.join(names)}"] if fsync else [])
    with ResourceMeter() as meter:
        subprocess.run(["sh", "-c", " && ".join(commands)], check=True)
    nbytes = sum(Path(n).stat().st_size for n in names)
    return {"system": "cp + fsync" if fsync else "cp", "wall_s": meter.wall_s, "bytes": nbytes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="MB of tokens to shard (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every system; each keeps its fastest")
    ap.add_argument("--shard-tokens", type=int, help="tokens per shard at most (default: the stage's default)")
    ap.add_argument("--work", help="work directory (the base corpus is kept there; default: a temporary one)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    from curate.shards.verify import verify_shards

    work = Path(args.work or tempfile.mkdtemp(prefix="shards-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "DATA"
    corpus = scaled_corpus(base_corpus(work), data, args.mb)
    train = json.loads((data / "datasets.json").read_text())["splits"]["train"]
    weights = work / "natural.json"
    weights.write_text(json.dumps({"method": "natural",
                                   "weights": {d: v["tokens"] / corpus["tokens"] for d, v in train.items()}}))
    print(f"corpus: {corpus['bytes'] / MB:,.1f} MB, {corpus['tokens']:,} tokens, {corpus['docs']:,} documents in "
          f"{len(train)} domains (the base train split x {corpus['copies']})")

    systems = [lambda: run_shards_once(data, weights, work / "shards", corpus["tokens"], args.shard_tokens),
               lambda: cp_once(data, work / "cp", fsync=False),
               lambda: cp_once(data, work / "cp", fsync=True)]
    runs: list[list[dict]] = [[] for _ in systems]
    for _ in range(args.rounds):
        for i, run in enumerate(systems):
            runs[i].append(run())
    problems = verify_shards(str(work / "shards"))
    allocated = traced_peak(systems[0])
    rows = []
    for results in runs:
        best = dict(min(results, key=lambda r: r["wall_s"]))
        best["wall_s_rounds"] = [round(r["wall_s"], 3) for r in results]
        best["mb_per_s"] = best["bytes"] / MB / best["wall_s"]
        best["tokens_per_s"] = best.get("tokens", corpus["tokens"]) / best["wall_s"]  # cp: the same tokens
        rows.append(best)
    ours, cp, cp_sync = rows
    ratios = {"ours_over_cp": ours["mb_per_s"] / cp["mb_per_s"],
              "ours_over_cp_fsync": ours["mb_per_s"] / cp_sync["mb_per_s"]}

    print(f"\n{'system':16} {'wall_s':>8} {'MB':>9} {'MB/s':>9} {'tokens/s':>14}   rounds (s)")
    for r in rows:
        print(f"{r['system']:16} {r['wall_s']:8.3f} {r['bytes'] / MB:9.1f} {r['mb_per_s']:9.1f} "
              f"{r['tokens_per_s']:14,.0f}   {r['wall_s_rounds']}")
    print(f"curate shards: {ours['tokens']:,} tokens, {ours['docs']:,} documents, {ours['shards']} shard(s), "
          f"CPU {ours['cpu_s']:.2f}s;\n  peak RSS {ours['peak_rss_mb']:,.0f} MiB (with the mapped input), "
          f"peak allocated {allocated / MIB:,.1f} MiB (tracemalloc, untimed run)")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f} (time: curate shards takes {1 / v:.2f}x the peer's; goal <= 2x)")
    print("verify: " + (f"{len(problems)} problem(s): {problems[0]}" if problems else "the shards match the manifest"))
    if args.json:
        write_json(args.json, "shards", device(), rows=rows, ratios=ratios, corpus=corpus,
                   allocated_peak_mb=allocated / MIB, verify_problems=problems)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
