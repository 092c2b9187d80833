"""Scale benchmark (issue 18): the whole curate pipeline, one CLI stage after another, on corpora of 100 MB to 4 GB,
and datatrove's equivalent pipeline at 100 MB and 1 GB, on this machine's cores.

Per size and stage: wall seconds, CPU seconds, MB/s of the stage's input, peak RSS of the driver (the stage's Python
process) and of its workers (curate: the JVM and Spark's Python workers; datatrove: its executor's pool), measured on
the child process tree by harness.ResourceMeter. Each curate stage is `curate STAGE ...` in its own process, as a user
runs it, so every wall time includes interpreter, import and JVM start-up (`stage s`: the stage's own seconds from its
stats.json, without them):

    ingest RAW -> dedup -> filter --preset fineweb --lang en -> tokenizer-train (vocab 32000, 2M chars per domain)
    -> tokenize -> shards (natural weights, every train token once)

The filter is benchmarks/filter.py's (FineWeb's rules, English): most of this text (source, man pages, other
languages, short pieces) leaves at language ID or Gopher's first rules, so tokenize and shards see a small share of
the corpus; the table's footer gives it.

datatrove's equivalent, each stage its own LocalPipelineExecutor (one task per input file, 2 workers) in a child:
ingest = JsonlReader -> JsonlWriter (datatrove has no validation stage; read and rewrite is its nearest), dedup =
its four MinHash stages (signatures, buckets, clusters, filter; MinhashConfig defaults), filter = LanguageFilter (the
same lid.176.ftz, en > 0.65) -> GopherRepetition -> GopherQuality -> C4 (no terminal-punctuation rule) -> FineWeb
quality, as benchmarks/filter.py, tokenize = DocumentTokenizer with curate's tokenizer.json of that size, shards =
DocumentTokenizerMerger. tokenizer-train has no datatrove equivalent (it reuses curate's tokenizer) and is left out
of the pipeline totals: the issue's pipeline is the other five stages.

MB/s: ingest, dedup, filter, tokenizer-train and tokenize divide the text entering the stage (million characters,
nearly bytes for this mostly-ASCII text) by its wall time; shards divides the tokenize output's train `.bin` bytes
(datatrove: its `.ds` files).

The corpus: one seeded, endless stream of documents, cut off at the size asked, so a bigger corpus is a smaller one
plus more of the same recipe (its first 100 MB are the 100 MB corpus). The base pool is this machine's text, as
filter.py's "mixed" shape: 7 domains (books and manuals, Python source, man pages in English and in 9 other
languages, licenses, package docs, the language reference; `domain` field), up to POOL_CHARS_PER_DOMAIN characters of
files each, cut at line ends into documents of 100 to 12,000 characters and shuffled. Pass 0 over the pool emits the
documents as they are; every later pass emits each again with SWAP_SHARE of its words swapped for other words of the
same document (5-gram Jaccard with any other copy about 0.06: a new document at any dedup threshold that matters).
After any document, with probability FAMILY_SHARE, a near-duplicate family is planted: 1 or 2 copies, each verbatim
(10%), upper-cased (10%: the same normalized text) or edited by dedup.py's word edits to a 5-gram Jaccard drawn from
0.5..1.0. Documents go round-robin into max(4, MB / SHARD_MB) plain JSONL files; a corpus is kept under --work and
reused when its recipe matches.

Goals printed at the end, each met or not: pipeline time (t_4GB / t_1GB) / 4 <= 1.1 (the two largest sizes when 1 GB
and 4 GB are not both run); driver peak (the largest of any stage) max / min over sizes <= 1.2; every stage's wall
time at 1 GB (the largest datatrove size run) <= datatrove's.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py --work /tmp/scale --json out/bench/scale.json
    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py --sizes 10 25 --datatrove-sizes 10 --work /tmp/scale-small
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import MIB, ROOT, ResourceMeter, device, write_json

POOL_CHARS_PER_DOMAIN = 4_000_000
SWAP_SHARE = 0.2
FAMILY_SHARE = 0.05
SHARD_MB = 64
SEED = 0
RECIPE = 1  # bump when the corpus recipe changes: corpora kept under --work are rebuilt
WORKERS = 2
VOCAB = 32000
TOKENIZER_CHARS_PER_DOMAIN = 2_000_000
CURATE_STAGES = ("ingest", "dedup", "filter", "tokenizer-train", "tokenize", "shards")
PIPELINE = ("ingest", "dedup", "filter", "tokenize", "shards")  # the five: the totals and goals

# ---------------------------------------------------------------------------------------------------------------------
# Corpus


def _pool(rng: random.Random) -> list[tuple[str, str]]:
    """(domain, text) base documents: filter.py's mixed sources, cut into pieces of 100..12,000 characters."""
    import filter as filter_bench
    import text_corpus

    docs = []
    for domain in [*filter_bench.MIXED_SOURCES, "reference"]:
        files = text_corpus.read_texts(domain, POOL_CHARS_PER_DOMAIN, 200_000, 100_000, 200,
                                       sources=filter_bench.MIXED_SOURCES)
        for _, text in files:
            docs += [(domain, t) for t in filter_bench._cut(text, rng)]
    rng.shuffle(docs)
    return docs


def _swap(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    vocab = [w for w in words if w.isalpha()] or words
    return " ".join(rng.choice(vocab) if rng.random() < SWAP_SHARE else w for w in words)


def documents(seed: int = SEED):
    """The endless stream: (domain, text, family number or None)."""
    from dedup import _edit

    rng = random.Random(seed)
    pool = _pool(rng)
    family = 0
    for rnd in itertools.count():
        for domain, text in pool:
            if rnd:
                text = _swap(text, rng)
            fam = None
            if rng.random() < FAMILY_SHARE:  # this document and 1 or 2 copies of it
                family += 1
                fam = family
            yield domain, text, fam
            if fam:
                for _ in range(rng.randint(1, 2)):
                    kind = rng.random()
                    if kind < 0.1:
                        copy = text
                    elif kind < 0.2:
                        copy = text.upper()
                    else:
                        words = text.split(" ")
                        copy = " ".join(_edit(words, rng, rng.uniform(0.5, 1.0), [w for w in words if w.isalpha()]
                                              or words))
                    yield domain, copy, family


def build_corpus(out: Path, mb: float) -> dict:
    """About `mb` MB of JSONL in max(4, mb / SHARD_MB) files, streamed; kept and reused when the recipe matches."""
    info_path = out / "corpus.json"
    want = {"mb": mb, "seed": SEED, "recipe": RECIPE}
    if info_path.is_file() and json.loads(info_path.read_text())["recipe"] == want:
        return json.loads(info_path.read_text())
    shutil.rmtree(out, ignore_errors=True)
    raw = out / "raw"
    raw.mkdir(parents=True)
    shards = max(4, round(mb / SHARD_MB))
    files = [open(raw / f"part-{s:04d}.jsonl", "w", encoding="utf-8") for s in range(shards)]
    t = time.perf_counter()
    info = {"docs": 0, "bytes": 0, "chars": 0, "family_docs": 0, "by_domain": {}}
    families = set()
    for domain, text, family in documents():
        line = json.dumps({"id": f"s{info['docs']:09d}", "domain": domain, "text": text}, ensure_ascii=False) + "\n"
        files[info["docs"] % shards].write(line)
        info["docs"] += 1
        info["bytes"] += len(line.encode("utf-8"))
        info["chars"] += len(text)
        info["by_domain"][domain] = info["by_domain"].get(domain, 0) + 1
        if family is not None:
            families.add(family)
            info["family_docs"] += 1
        if info["bytes"] >= mb * 1e6:
            break
    for f in files:
        f.close()
    info.update(recipe=want, shards=shards, families=len(families), build_s=round(time.perf_counter() - t, 1))
    info_path.write_text(json.dumps(info, indent=1))
    return info


# ---------------------------------------------------------------------------------------------------------------------
# Measuring a child process


def measure(cmd: list[str], log: Path) -> dict:
    """Run `cmd` with its output in `log`; wall, CPU and peak RSS (driver, workers) of its process tree."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        with ResourceMeter(pid=proc.pid) as mem:
            rc = proc.wait()
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"{' '.join(map(str, cmd))} failed with exit code {rc}; the end of {log}:\n{tail}")
    return {"wall_s": round(mem.wall_s, 2), "cpu_s": round(mem.cpu_s, 1), "driver_mb": round(mem.driver / MIB),
            "workers_mb": round(mem.workers / MIB)}


def _row(stage: str, m: dict, input_mb: float) -> dict:
    row = {"stage": stage, **m, "input_mb": round(input_mb, 1), "mb_per_s": round(input_mb / m["wall_s"], 2)}
    print(f"  {stage:16} {m['wall_s']:8.1f} s  {row['mb_per_s']:7.2f} MB/s  driver {m['driver_mb']:,} MiB  "
          f"workers {m['workers_mb']:,} MiB", flush=True)
    return row


# ---------------------------------------------------------------------------------------------------------------------
# curate, stage by stage


def _stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def _stage_s(row: dict, out: Path) -> dict:
    """The stage's own seconds (stats.json: from reading its input to its outputs written), without the process's
    interpreter, import and JVM start-up that `wall_s` includes."""
    if (out / "stats.json").is_file():
        row["stage_s"] = round(_stats(out)["wall_seconds"], 2)
    return row


def _natural_weights(tokens: Path, path: Path) -> int:
    """Each domain's share of the train tokens (the `natural` mixture); returns all train tokens."""
    train = json.loads((tokens / "datasets.json").read_text())["splits"]["train"]
    total = sum(v["tokens"] for v in train.values())
    path.write_text(json.dumps({"method": "natural", "weights": {d: v["tokens"] / total for d, v in train.items()
                                                                 if v["tokens"]}}))
    return total


def run_curate(raw: Path, work: Path, corpus: dict) -> list[dict]:
    curate = str(Path(sys.executable).parent / "curate")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    logs = work / "logs"
    logs.mkdir()
    out = {s: work / s for s in CURATE_STAGES}
    tok = work / "tokenizer.json"
    rows = [_row("ingest", measure([curate, "ingest", str(raw), "--out", str(out["ingest"])], logs / "ingest.log"),
                 corpus["chars"] / 1e6)]
    for stage, prev, extra in (("dedup", "ingest", []), ("filter", "dedup", ["--preset", "fineweb", "--lang", "en"])):
        m = measure([curate, stage, str(out[prev]), "--out", str(out[stage]), *extra], logs / f"{stage}.log")
        rows.append(_row(stage, m, _stats(out[prev])["kept_chars"] / 1e6))
    rows[1]["removed_docs"] = _stats(out["dedup"])["removed_docs"]
    f = _stats(out["filter"])
    rows[2].update(kept_docs=f["kept_docs"], kept_share=round(f["kept_chars"] / f["input_chars"], 3))
    kept = f["kept_chars"] / 1e6
    m = measure([curate, "tokenizer-train", str(out["filter"]), "--vocab-size", str(VOCAB), "--out", str(tok),
                 "--chars-per-domain", str(TOKENIZER_CHARS_PER_DOMAIN)], logs / "tokenizer-train.log")
    rows.append(_row("tokenizer-train", m, kept))
    m = measure([curate, "tokenize", str(out["filter"]), "--tokenizer", str(tok), "--out", str(out["tokenize"])],
                logs / "tokenize.log")
    rows.append(_row("tokenize", m, kept))
    weights = work / "natural.json"
    tokens = _natural_weights(out["tokenize"], weights)
    bins = sum(p.stat().st_size for p in (out["tokenize"] / "train").rglob("*.bin"))
    m = measure([curate, "shards", str(out["tokenize"]), "--weights", str(weights), "--tokens", str(tokens),
                 "--out", str(out["shards"])], logs / "shards.log")
    rows.append(_row("shards", m, bins / 1e6))
    rows[-1]["tokens"] = tokens
    return [_stage_s(r, out[r["stage"]]) for r in rows]


# ---------------------------------------------------------------------------------------------------------------------
# datatrove, stage by stage (each in a child: `scale.py --dt-stage NAME ...`)


def _jsonl_chars(folder: Path) -> int:
    total = 0
    for p in sorted(folder.glob("*.jsonl*")):
        with (gzip.open(p, "rt", encoding="utf-8") if p.suffix == ".gz" else open(p, encoding="utf-8")) as f:
            total += sum(len(json.loads(line)["text"]) for line in f)
    return total


def _executor(pipeline: list, tasks: int, logs: Path, workers: int = WORKERS):
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logs),
                                 skip_completed=False)


def _dt_filters() -> list:
    """benchmarks/filter.py's datatrove filter chain without its exclusion writers: curate writes its removed rows,
    so leaving datatrove's out errs in datatrove's favour."""
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter, LanguageFilter)

    from filter import LocalFT176

    lang = LanguageFilter(languages=["en"], language_threshold=0.65)
    lang.model = LocalFT176(["en"])
    return [lang, GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter()]


def _dt_dedup(inp: Path, out: Path, tasks: int) -> None:
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    cfg = MinhashConfig()
    _executor([JsonlReader(str(inp)), MinhashDedupSignature(output_folder=str(out / "sigs"), config=cfg)],
              tasks, out / "logs1").run()
    _executor([MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=cfg)],
              cfg.num_buckets, out / "logs2").run()
    _executor([MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove"), config=cfg)],
              1, out / "logs3").run()
    _executor([JsonlReader(str(inp)), MinhashDedupFilter(input_folder=str(out / "remove")),
               JsonlWriter(str(out / "kept"))], tasks, out / "logs4").run()


def dt_stage(stage: str, inp: Path, out: Path, tasks: int, tokenizer: str | None) -> None:
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer, DocumentTokenizerMerger
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.logging import logger

    logger.remove()  # its per-task progress and stats tables would fill the log
    logger.add(sys.stderr, level="WARNING")
    if stage == "ingest":
        _executor([JsonlReader(str(inp), glob_pattern="*.jsonl"), JsonlWriter(str(out / "kept"))], tasks,
                  out / "logs").run()
    elif stage == "dedup":
        _dt_dedup(inp, out, tasks)
    elif stage == "filter":
        _executor([JsonlReader(str(inp)), *_dt_filters(), JsonlWriter(str(out / "kept"))], tasks, out / "logs").run()
    elif stage == "tokenize":
        _executor([JsonlReader(str(inp)), DocumentTokenizer(output_folder=str(out / "tokens"),
                                                            tokenizer_name_or_path=tokenizer,
                                                            eos_token="<|endoftext|>", seed=1234)],
                  tasks, out / "logs").run()
    elif stage == "shards":
        _executor([DocumentTokenizerMerger(input_folder=str(inp), output_folder=str(out / "merged"),
                                           save_filename="shard", seed=1234)], 1, out / "logs").run()


def run_datatrove(raw: Path, work: Path, corpus: dict, tokenizer: Path) -> list[dict]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tasks = corpus["shards"]
    chain = (("ingest", raw), ("dedup", work / "ingest" / "kept"), ("filter", work / "dedup" / "kept"),
             ("tokenize", work / "filter" / "kept"), ("shards", work / "tokenize" / "tokens"))
    rows = []
    for stage, inp in chain:
        if stage == "ingest":
            input_mb = corpus["chars"] / 1e6
        elif stage == "shards":
            input_mb = sum(p.stat().st_size for p in inp.glob("*.ds")) / 1e6
        else:
            input_mb = _jsonl_chars(inp) / 1e6
        cmd = [sys.executable, __file__, "--dt-stage", stage, "--dt-in", str(inp), "--dt-out", str(work / stage),
               "--dt-tasks", str(tasks), "--dt-tokenizer", str(tokenizer)]
        rows.append(_row(stage, measure(cmd, work / f"{stage}.log"), input_mb))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Report


def _total(rows: list[dict]) -> float:
    return sum(r["wall_s"] for r in rows if r["stage"] in PIPELINE)


def print_table(size: dict) -> None:
    c = size["corpus"]
    print(f"\n# {size['mb']:g} MB: {c['docs']:,} documents, {c['bytes'] / 1e6:,.1f} MB in {c['shards']} JSONL files, "
          f"{c['families']:,} planted families ({c['family_docs']:,} documents); {size['device']}")
    print(f"{'system':10} {'stage':16} {'wall s':>9} {'stage s':>8} {'CPU s':>8} {'input MB':>9} {'MB/s':>8} "
          f"{'driver MiB':>11} {'workers MiB':>12}")
    for system in ("curate", "datatrove"):
        for r in size.get(system) or []:
            stage_s = f"{r['stage_s']:8.1f}" if "stage_s" in r else f"{'':8}"
            print(f"{system:10} {r['stage']:16} {r['wall_s']:9.1f} {stage_s} {r['cpu_s']:8.1f} {r['input_mb']:9.1f} "
                  f"{r['mb_per_s']:8.2f} {r['driver_mb']:11,} {r['workers_mb']:12,}")
        if size.get(system):
            t = _total(size[system])
            print(f"{system:10} {'pipeline (5)':16} {t:9.1f} {'':17} {c['chars'] / 1e6:9.1f} "
                  f"{c['chars'] / 1e6 / t:8.2f}")
    d, f = size["curate"][1], size["curate"][2]
    planted = c["family_docs"] - c["families"]
    print(f"curate: dedup removed {d['removed_docs']:,} documents (planted copies: {planted:,}, some edited below "
          f"the 0.8 threshold; this machine's files repeat text too); filter kept {f['kept_share']:.1%} of its input "
          f"text; shards wrote {size['curate'][-1]['tokens']:,} tokens")


def goals(sizes: list[dict]) -> dict:
    """The issue's three goals from the figures, each with its value, its bound and whether it is met."""
    out = {}
    by_mb = {s["mb"]: s for s in sizes}
    a, b = (1000, 4000) if {1000, 4000} <= set(by_mb) else sorted(by_mb)[-2:] if len(by_mb) > 1 else (None, None)
    if a is not None:
        ratio = _total(by_mb[b]["curate"]) / _total(by_mb[a]["curate"]) / (b / a)
        out["linearity"] = {"what": f"(t_{b:g}MB / t_{a:g}MB) / {b / a:g}", "value": round(ratio, 3), "bound": 1.1,
                            "met": ratio <= 1.1}
    peaks = [max(r["driver_mb"] for r in s["curate"]) for s in sizes]
    ratio = max(peaks) / min(peaks)
    out["driver_flat"] = {"what": "driver peak max / min over sizes " + ", ".join(f"{p:,} MiB" for p in peaks),
                          "value": round(ratio, 3), "bound": 1.2, "met": ratio <= 1.2}
    peer = [s for s in sizes if s.get("datatrove")]
    if peer:
        s = max(peer, key=lambda s: s["mb"])
        dt = {r["stage"]: r["wall_s"] for r in s["datatrove"]}
        per = {r["stage"]: round(r["wall_s"] / dt[r["stage"]], 3) for r in s["curate"] if r["stage"] in dt}
        out["vs_datatrove"] = {"what": f"curate wall / datatrove wall per stage at {s['mb']:g} MB", "value": per,
                               "bound": 1.0, "met": all(v <= 1.0 for v in per.values())}
    return out


def print_goals(g: dict) -> None:
    print("\n# goals")
    for name, v in g.items():
        val = ", ".join(f"{k} {x}" for k, x in v["value"].items()) if isinstance(v["value"], dict) else v["value"]
        print(f"{name}: {v['what']} = {val} (bound {v['bound']}): {'met' if v['met'] else 'NOT met'}")


# ---------------------------------------------------------------------------------------------------------------------


def bench_size(mb: float, work: Path, with_datatrove: bool) -> dict:
    t = time.perf_counter()
    corpus = build_corpus(work / f"corpus-{mb:g}", mb)
    print(f"\n{mb:g} MB corpus ready in {time.perf_counter() - t:.0f} s (built in {corpus['build_s']} s)", flush=True)
    print("curate:", flush=True)
    res = {"mb": mb, "corpus": corpus, "device": device()}
    res["curate"] = run_curate(work / f"corpus-{mb:g}" / "raw", work / f"curate-{mb:g}", corpus)
    if with_datatrove:
        print("datatrove:", flush=True)
        res["datatrove"] = run_datatrove(work / f"corpus-{mb:g}" / "raw", work / f"datatrove-{mb:g}", corpus,
                                         work / f"curate-{mb:g}" / "tokenizer.json")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[100, 400, 1000, 4000], help="corpus sizes in MB")
    ap.add_argument("--datatrove-sizes", type=float, nargs="*", default=[100, 1000],
                    help="sizes at which datatrove's pipeline runs too (default 100 1000)")
    ap.add_argument("--no-datatrove", action="store_true", help="skip datatrove at every size")
    ap.add_argument("--work", help="work directory; corpora are kept there and reused (default: a temporary one)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--dt-stage", help=argparse.SUPPRESS)
    ap.add_argument("--dt-in", help=argparse.SUPPRESS)
    ap.add_argument("--dt-out", help=argparse.SUPPRESS)
    ap.add_argument("--dt-tasks", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dt-tokenizer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dt_stage:
        dt_stage(args.dt_stage, Path(args.dt_in), Path(args.dt_out), args.dt_tasks, args.dt_tokenizer)
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = [bench_size(mb, work, not args.no_datatrove and mb in args.datatrove_sizes) for mb in args.sizes]
    for s in sizes:
        print_table(s)
    g = goals(sizes)
    print_goals(g)
    if args.json:
        write_json(args.json, "scale", device(), sizes=sizes, goals=g)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
