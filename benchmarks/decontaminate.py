"""Benchmark: our decontaminate stage (Spark, local[2]) against datatrove's n-gram decontamination
(NGramsDecontFilter under LocalPipelineExecutor, 2 workers, sharded input) on the same corpus and eval sets, in one run.

Text comes from this machine: paragraphs of the Python reference (pydoc_data) and of the standard library's
docstrings. 300 paragraphs are held out as three eval sets, one per layout: `quiz` (question + choices + answer),
`completion` (prompt + completion), `passages` (text). Corpus documents are 3-10 other paragraphs; any paragraph
sharing a 13-gram with an eval item is dropped from the corpus pool, so the only contamination is planted:
- verbatim: a document that is an eval item's text;
- case_punct: the same with words upper/title-cased and punctuation added, removed or changed;
- embedded: an eval item's text (a quiz item's question) inside a longer document;
- paraphrase (a negative): every 8th word of the item replaced, so no 13 words in a row survive: must be kept.
Both systems use word 13-grams and one match to remove. datatrove needs lighteval to build its index, so its
index is built by its own `NGramsDecontIndexer.compute_hashes` (simplify_text, spaCy words, xxhash64) called
directly, inside its timed run; ours reads the eval files and builds its table inside the stage, also timed.
`wall_s`: the decontamination (index + pass over the corpus + writing kept and removed); `process_s` adds
interpreter, imports and, for us, the JVM start.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/decontaminate.py --docs 20000 --json out/bench/decontaminate.json

Check the script on a tiny corpus with `--docs 300`: a few hundred documents measure Spark's fixed costs, not rates.
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import random
import re
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from harness import alternate_rounds, device, stage_decisions, write_json, write_jsonl_shards

N = 13
SETS = ("quiz", "completion", "passages")
KINDS = ("verbatim", "case_punct", "embedded", "paraphrase")
_FILLER = "something otherwise perhaps meanwhile instead largely".split()


# ---------------------------------------------------------------------------------------------------------------------
# Input


def paragraphs(enough: int = 6000) -> list[str]:
    """English paragraphs of >= 25 words from the Python reference and the standard library's docstrings (files in
    name order until there are about `enough`)."""
    from pydoc_data.topics import topics

    texts = list(topics.values())
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if sum(t.count("\n\n") + 1 for t in texts) > 2 * enough:
            break
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    texts.append(doc)
    out, seen = [], set()
    for text in texts:
        for para in re.split(r"\n\s*\n", text):
            para = " ".join(para.split())
            words = para.split()
            letters = sum(c.isalpha() for c in para)
            key = " ".join(re.findall(r"[a-z0-9]+", para.lower()))
            if len(words) >= 25 and letters > 0.7 * len(para) and key not in seen:
                seen.add(key)
                out.append(para)
    return out


def _grams(text: str) -> set[tuple[str, ...]]:
    from datatrove.utils.text import simplify_text

    w = simplify_text(text).split()
    return {tuple(w[i:i + N]) for i in range(len(w) - N + 1)}


def _case_punct(text: str, rng: random.Random) -> str:
    """The same words after normalization: case changed, punctuation between words added, removed or changed."""
    out = []
    for w in text.split():
        r = rng.random()
        if w.isascii():  # "ß".upper() is "SS": a case change outside ASCII can change the normalized word
            w = w.upper() if r < 0.15 else w.title() if r < 0.3 else w
        w = w.rstrip(".,;:") if rng.random() < 0.5 else w
        out.append(w + rng.choice(["", "", "", ",", ";", " -", "...", "!"]))
    return ("\"" if rng.random() < 0.5 else "") + " ".join(out)


def _paraphrase(text: str) -> str:
    words = text.split()
    return " ".join(_FILLER[i % len(_FILLER)] if i % 8 == 7 else w for i, w in enumerate(words))


def build_input(work: Path, docs: int, shards: int, seed: int = 0) -> dict:
    """JSONL corpus shards, the three eval sets (our files and the item texts datatrove indexes) and the planted
    cases with their expected decisions."""
    rng = random.Random(seed)
    paras = paragraphs()
    rng.shuffle(paras)
    held, pool = paras[:300], paras[300:]
    quiz = [{"id": f"quiz-{i}", "question": held[i], "answer": 0,
             "choices": [" ".join(held[(i + k * 37) % 100].split()[:6]) for k in range(4)]} for i in range(100)]
    completion = []
    for i in range(100):
        words = held[100 + i].split()
        completion.append({"id": f"completion-{i}", "prompt": " ".join(words[:len(words) // 2]),
                           "completion": " ".join(words[len(words) // 2:])})
    passages = [{"id": f"passages-{i}", "text": held[200 + i]} for i in range(100)]
    # The item texts as our layouts read them (datatrove indexes the same strings).
    items = {"quiz": [(r["id"], "\n".join([r["question"], *r["choices"]])) for r in quiz],
             "completion": [(r["id"], r["prompt"] + "\n" + r["completion"]) for r in completion],
             "passages": [(r["id"], r["text"]) for r in passages]}
    eval_grams = set().union(*(_grams(t) for v in items.values() for _, t in v))
    pool = [p for p in pool if not (_grams(p) & eval_grams)]

    rows = []
    for i in range(docs):
        text = "\n\n".join(rng.choice(pool) for _ in range(rng.randint(3, 10)))
        rows.append({"id": f"d{i:07d}", "domain": rng.choice(["web", "books"]), "text": text})
    per_kind = max(3, docs // 200)
    targets = rng.sample(range(docs), min(docs, per_kind * len(KINDS)))
    planted = {}
    for k, doc in enumerate(targets):
        kind = KINDS[k % len(KINDS)]
        name = SETS[(k // len(KINDS)) % len(SETS)]
        item_id, text = items[name][rng.randrange(100)]
        if kind == "case_punct":
            text = _case_punct(text, rng)
        elif kind == "embedded":
            inner = quiz[int(item_id.split("-")[1])]["question"] if name == "quiz" else text
            text = f"{rng.choice(pool)}\n\n{inner}\n\n{rng.choice(pool)}"
        elif kind == "paraphrase":
            text = _paraphrase(text)
        rows[doc]["text"] = text
        planted[rows[doc]["id"]] = {"kind": kind, "eval_set": None if kind == "paraphrase" else name}

    write_jsonl_shards(rows, work / "input", shards)
    evals = work / "evals"
    evals.mkdir(exist_ok=True)
    for name, records in (("quiz", quiz), ("completion", completion), ("passages", passages)):
        with open(evals / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    (work / "eval_items.json").write_text(json.dumps(items))
    (work / "planted.json").write_text(json.dumps(planted))
    size = sum(p.stat().st_size for p in (work / "input").glob("*.jsonl"))
    return {"docs": docs, "bytes": size, "chars": sum(len(r["text"]) for r in rows), "planted": len(planted),
            "eval_items": sum(len(v) for v in items.values())}


# ---------------------------------------------------------------------------------------------------------------------
# The two systems (each runs in a child process: `benchmarks/decontaminate.py --run ours|datatrove`)


def run_ours(work: str, out: str) -> dict:
    from curate.decontaminate.config import DecontamConfig
    from curate.decontaminate.stage import run_decontaminate
    from curate.spark import get_spark

    spark = get_spark(master="local[2]", conf={"spark.sql.shuffle.partitions": "4",
                                               "spark.default.parallelism": "4"})
    spark.range(1).count()  # session up before the clock starts
    cfg = DecontamConfig(against=[f"{work}/evals/{s}.jsonl" for s in SETS], ngram=N, output_partitions=1)
    t = time.perf_counter()
    run_decontaminate(spark, cfg, [f"{work}/input"], out)
    wall = time.perf_counter() - t
    decisions = stage_decisions(out, "eval_set")
    spark.stop()
    return {"wall_s": wall, "decisions": decisions}


def run_datatrove(work: str, out: str) -> dict:
    import types

    import numpy as np
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    cfg = NGramsDecontConfig(n_grams=N, find_query_ngrams=False, find_overlap_ngrams=False)
    items = json.loads(Path(f"{work}/eval_items.json").read_text())
    t = time.perf_counter()
    # The indexer's own hashing, called without the step (whose constructor requires lighteval).
    indexer = types.SimpleNamespace(config=cfg, tokenizer=load_word_tokenizer("en"),
                                    hash_func=create_hash_func(cfg.hash_config))
    os.makedirs(f"{out}/index", exist_ok=True)
    for name, texts in items.items():
        hashes = set()
        for _, text in texts:
            hashes.update(NGramsDecontIndexer.compute_hashes(indexer, text))
        np.array(sorted(hashes), dtype=cfg.hash_config.np_descr).tofile(f"{out}/index/{name}.index.hashes")
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(f"{work}/input", glob_pattern="*.jsonl", compression=None),
            NGramsDecontFilter(f"{out}/index", config=cfg,
                               exclusion_writer=JsonlWriter(f"{out}/removed", compression=None)),
            JsonlWriter(f"{out}/kept", compression=None),
        ],
        tasks=len(glob.glob(f"{work}/input/*.jsonl")),
        workers=2,
        logging_dir=f"{out}/logs",
    )
    executor.run()
    wall = time.perf_counter() - t
    decisions = {}
    for path in glob.glob(f"{out}/kept/*.jsonl"):
        for line in open(path, encoding="utf-8"):
            decisions[json.loads(line)["id"]] = None
    for path in glob.glob(f"{out}/removed/*.jsonl"):
        for line in open(path, encoding="utf-8"):
            d = json.loads(line)
            decisions[d["id"]] = d["metadata"].get("contaminated_task")
    return {"wall_s": wall, "decisions": decisions}


# ---------------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20000, help="corpus documents (default 20000, about 60 MB)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the two systems this many times; the table shows the median of each")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--run", choices=["ours", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        res = (run_ours if args.run == "ours" else run_datatrove)(args.work, args.out)
        Path(args.result).write_text(json.dumps(res))
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="curate-bench-decontaminate-"))
    info = build_input(work, args.docs, args.shards)
    planted = json.loads((work / "planted.json").read_text())
    mb = info["bytes"] / 1e6
    print(f"input: {info['docs']:,} documents, {mb:.1f} MB in {args.shards} JSONL shards; {info['eval_items']} eval "
          f"items in {len(SETS)} sets; {info['planted']} planted cases")
    results, runs = alternate_rounds(__file__, args.rounds, lambda system, k: (
        ["--run", system, "--work", str(work), "--out", str(work / f"{system}-{k}")], work / f"{system}-{k}"))
    ours, peer = results["ours"]["decisions"], results["datatrove"]["decisions"]
    assert len(peer) == info["docs"], f"datatrove saw {len(peer)} of {info['docs']} documents"
    assert len(ours) == info["docs"], f"ours saw {len(ours)} of {info['docs']} documents"
    # Per planted case: the expected eval set (None = kept), and each system's.
    by_kind: dict[str, dict[str, int]] = {}
    wrong = []
    for doc, case in sorted(planted.items()):
        k = by_kind.setdefault(case["kind"], {"cases": 0, "ours_right": 0, "datatrove_right": 0, "same": 0})
        k["cases"] += 1
        k["ours_right"] += ours[doc] == case["eval_set"]
        k["datatrove_right"] += peer[doc] == case["eval_set"]
        k["same"] += ours[doc] == peer[doc]
        if not ours[doc] == peer[doc] == case["eval_set"]:
            wrong.append({"id": doc, **case, "ours": ours[doc], "datatrove": peer[doc]})
    agree = sum(ours[i] == peer[i] for i in peer) / len(peer)
    unplanted = sum(v is not None for i, v in ours.items() if i not in planted), \
        sum(v is not None for i, v in peer.items() if i not in planted)
    rows = []
    for system, name in (("ours", "curate decontaminate (Spark local[2])"),
                         ("datatrove", "datatrove NGramsDecontFilter (2 workers)")):
        r = results[system]
        rows.append({"system": name, "wall_s": round(r["wall_s"], 2), "process_s": round(r["process_s"], 2),
                     "docs_per_s": round(info["docs"] / r["wall_s"], 1), "mb_per_s": round(mb / r["wall_s"], 3),
                     "peak_rss_mb": round(r["peak_rss_mb"], 1)})
    ratios = {"throughput_ours_over_datatrove": round(results["datatrove"]["wall_s"] / results["ours"]["wall_s"], 2),
              "process_throughput_ours_over_datatrove":
                  round(results["datatrove"]["process_s"] / results["ours"]["process_s"], 2),
              "peak_rss_ours_over_datatrove":
                  round(results["ours"]["peak_rss_mb"] / results["datatrove"]["peak_rss_mb"], 2)}
    print(f"{'system':<46}{'wall s':>9}{'process s':>11}{'docs/s':>9}{'MB/s':>8}{'peak RSS MB':>13}")
    for r in rows:
        print(f"{r['system']:<46}{r['wall_s']:>9.2f}{r['process_s']:>11.2f}{r['docs_per_s']:>9.1f}"
              f"{r['mb_per_s']:>8.3f}{r['peak_rss_mb']:>13.1f}")
    for kind, k in by_kind.items():
        print(f"planted {kind:<11} {k['cases']:>4} cases: ours right {k['ours_right']}, datatrove right "
              f"{k['datatrove_right']}, same decision {k['same']}")
    print(f"decision agreement on all documents: {agree:.2%}; removed outside the planted cases: ours {unplanted[0]}, "
          f"datatrove {unplanted[1]}")
    for w in wrong[:10]:
        print(f"  differs: {w}")
    print("ratios (ours / datatrove): " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
    if args.json:
        write_json(args.json, "decontaminate", device(), input=info, rows=rows, ratios=ratios, rounds=args.rounds,
                   all_wall_s={s: [round(r["wall_s"], 2) for r in rs] for s, rs in runs.items()},
                   planted=by_kind, planted_differences=wrong,
                   agreement={"all_documents": agree, "removed_outside_planted": {"ours": unplanted[0],
                                                                                 "datatrove": unplanted[1]}})
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
