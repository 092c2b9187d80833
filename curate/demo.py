"""The embedded demo corpus: a few MB of multi-domain text built from what every Python installation has, with
planted near-duplicates, exact duplicates, spam, boilerplate, foreign-language pages and malformed lines whose
ground truth the builder records in `ground_truth.json`.

Domains (by directory, labelled by the pipeline's path rules):
  code/   standard-library modules (.jsonl.zst)
  docs/   the language reference topics shipped in `pydoc_data` (.jsonl)
  legal/  license files of the installed distributions (.parquet)
  web/    prose pages assembled from standard-library docstrings, plus the planted spam and boilerplate (.jsonl.gz)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import sysconfig
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

_FOREIGN = {
    "fr": [
        "La ville se réveille lentement sous un ciel gris, et les boulangers ouvrent leurs portes avant l'aube.",
        "Les enfants traversent la place pour aller à l'école pendant que les marchands installent leurs étals.",
        "Dans les cafés, on parle du temps qu'il fera demain et des nouvelles de la semaine passée.",
        "Le fleuve coule tranquillement entre les quais de pierre, où se promènent quelques touristes curieux.",
        "Le soir venu, les lumières s'allument une à une et la musique s'échappe des fenêtres ouvertes.",
    ],
    "de": [
        "Die Stadt erwacht langsam unter einem grauen Himmel, und die Bäcker öffnen ihre Türen vor dem Morgengrauen.",
        "Die Kinder überqueren den Platz auf dem Weg zur Schule, während die Händler ihre Stände aufbauen.",
        "In den Cafés spricht man über das Wetter von morgen und über die Nachrichten der vergangenen Woche.",
        "Der Fluss fließt ruhig zwischen den steinernen Ufern, an denen einige neugierige Touristen spazieren.",
        "Am Abend gehen die Lichter nacheinander an, und Musik dringt aus den offenen Fenstern.",
    ],
    "es": [
        "La ciudad despierta lentamente bajo un cielo gris, y los panaderos abren sus puertas antes del amanecer.",
        "Los niños cruzan la plaza camino de la escuela mientras los comerciantes montan sus puestos.",
        "En los cafés se habla del tiempo que hará mañana y de las noticias de la semana pasada.",
        "El río corre tranquilo entre los muelles de piedra, donde pasean algunos turistas curiosos.",
        "Al caer la tarde, las luces se encienden una a una y la música sale por las ventanas abiertas.",
    ],
}
_SPAM_WORDS = ["cheap", "casino", "bonus", "free", "pills", "winner", "click", "offer", "deal", "crypto", "loans"]
_BOILERPLATE = [
    "Home", "About us", "Contact", "Privacy policy", "Terms of use", "Cookie policy", "Login", "Register",
    "Share on Facebook", "Tweet", "Subscribe", "Next page", "Previous page", "Top", "Menu", "Search",
]


def _sid(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:16]


def _code_docs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    std = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in std.rglob("*.py")
        if "site-packages" not in p.parts and not any(part.startswith(("test", "idle")) for part in p.parts)
        and 2_000 <= p.stat().st_size <= 40_000
    )
    chosen = sorted(rng.sample(files, min(n, len(files))))
    return [{"id": _sid("code", str(p.relative_to(std))), "text": p.read_text(encoding="utf-8", errors="replace"),
             "path": str(p.relative_to(std))} for p in chosen]


def _docs_docs() -> list[dict[str, Any]]:
    import pydoc_data.topics as topics

    out = []
    for name in sorted(topics.topics):
        # Long topics are split at their section underlines so documents stay page-sized.
        sections = re.split(r"\n(?=[^\n]+\n[*=\-]{3,}\n)", topics.topics[name])
        for i, sec in enumerate(s.strip() for s in sections):
            if len(sec) >= 300:
                out.append({"id": _sid("docs", name, str(i)), "text": sec, "topic": name})
    return out


def _legal_docs() -> list[dict[str, Any]]:
    purelib = Path(sysconfig.get_paths()["purelib"])
    seen, out = set(), []
    for p in sorted(purelib.glob("*.dist-info/**/*")):
        base = p.name.upper()
        if p.is_file() and ("LICEN" in base or "COPYING" in base) and 500 <= p.stat().st_size <= 60_000:
            text = p.read_text(encoding="utf-8", errors="replace")
            dist = p.relative_to(purelib).parts[0]
            key = (dist.split("-")[0].lower(), base)
            if key in seen:
                continue
            seen.add(key)
            out.append({"id": _sid("legal", str(p.relative_to(purelib))), "text": text, "package": dist})
    return out


def _prose_paragraphs() -> list[str]:
    """Prose paragraphs from standard-library docstrings (read with `ast`, nothing imported)."""
    import ast

    std = Path(sysconfig.get_paths()["stdlib"])
    paras: set[str] = set()
    for path in sorted(std.rglob("*.py")):
        if "site-packages" in path.parts or any(p.startswith(("test", "idle")) for p in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                for para in re.split(r"\n\s*\n", doc):
                    flat = " ".join(para.split())
                    if len(flat.split()) >= 25 and flat.endswith(".") and sum(c in "{}[]()=<>_*" for c in flat) < 6:
                        paras.add(flat)
    return sorted(paras)


def _web_docs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    paras = _prose_paragraphs()
    rng.shuffle(paras)
    out, i = [], 0
    while len(out) < n and i < len(paras):
        k = rng.randint(3, 8)
        body = paras[i:i + k]
        i += k
        title = " ".join(body[0].split()[:6]).rstrip(".,;:")
        out.append({"id": _sid("web", str(len(out))), "text": title + "\n\n" + "\n\n".join(body),
                    "url": f"https://example.org/page/{len(out)}"})
    return out


def _spam_docs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:  # keyword stuffing: the same few words over and over
            words = [rng.choice(_SPAM_WORDS) for _ in range(rng.randint(80, 200))]
            text = " ".join(words)
        elif kind == 1:  # navigation boilerplate: many short lines, no sentences
            text = "\n".join(rng.choice(_BOILERPLATE) for _ in range(rng.randint(30, 60)))
        elif kind == 2:  # placeholder page
            text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * rng.randint(10, 30)
        else:  # one repeated promotional line
            line = f"Click here to win a free {rng.choice(_SPAM_WORDS)} {rng.choice(_SPAM_WORDS)} now!!!"
            text = "\n".join([line] * rng.randint(20, 40))
        out.append({"id": _sid("spam", str(i)), "text": text, "url": f"https://spam.example/{i}"})
    return out


def _foreign_docs(rng: random.Random, per_lang: int) -> list[dict[str, Any]]:
    out = []
    for lang, sents in sorted(_FOREIGN.items()):
        for i in range(per_lang):
            body = [" ".join(rng.sample(sents, len(sents))) for _ in range(rng.randint(3, 6))]
            out.append({"id": _sid("foreign", lang, str(i)), "text": "\n\n".join(body), "lang_truth": lang})
    return out


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    # datatrove's normalization: lowercase, accents stripped, digits to 0, punctuation to space.
    import string
    import unicodedata

    t = unicodedata.normalize("NFD", text.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = re.sub(r"\d", "0", t)
    t = t.translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    words = t.split()
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def shingle_jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of two texts' word 5-gram sets (the ground truth of the planted near-duplicates)."""
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def _perturb(text: str, rng: random.Random, rate: float) -> str:
    """A near-duplicate: a few words dropped or replaced, the kind of edit a re-crawl or a copy makes."""
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 2:
            continue
        out.append(w + "s" if r < rate else w)
    return " ".join(out)


def build_demo_corpus(out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write the demo corpus under `out_dir/raw/<domain>/` and its ground truth; return the ground truth."""
    rng = random.Random(seed)
    root = Path(out_dir)
    raw = root / "raw"
    domains = {
        "code": _code_docs(rng, 110),
        "docs": _docs_docs(),
        "legal": _legal_docs(),
        "web": _web_docs(rng, 320),
    }
    truth: dict[str, Any] = {"near_duplicates": [], "exact_duplicates": [], "spam": [], "foreign": [],
                             "malformed": {}}
    # Planted near-duplicates (a copy with a few words edited) and exact duplicates (a verbatim copy, new id).
    for name in ("web", "docs", "legal"):
        docs = domains[name]
        for d in rng.sample(docs, min(12, len(docs) // 5)):
            # 0.3-1.5% of words edited: word-5-gram Jaccard mostly 0.8-0.97; the exact value goes in the truth.
            dup = {**d, "id": d["id"] + "-near", "text": _perturb(d["text"], rng, rng.uniform(0.003, 0.015))}
            docs.append(dup)
            truth["near_duplicates"].append([d["id"], dup["id"], round(shingle_jaccard(d["text"], dup["text"]), 4)])
        for d in rng.sample(docs[: len(docs) // 2], 5):
            docs.append({**d, "id": d["id"] + "-copy"})
            truth["exact_duplicates"].append([d["id"], d["id"] + "-copy"])
    spam = _spam_docs(rng, 40)
    foreign = _foreign_docs(rng, 4)
    truth["spam"] = [d["id"] for d in spam]
    truth["foreign"] = [{"id": d["id"], "lang": d["lang_truth"]} for d in foreign]
    domains["web"] = domains["web"] + spam + foreign
    for name in domains:
        rng.shuffle(domains[name])
        (raw / name).mkdir(parents=True, exist_ok=True)

    def dump(path: Path, docs: list[dict[str, Any]], opener) -> None:
        with opener(path) as f:
            for d in docs:
                f.write((json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))

    code = domains["code"]
    half = len(code) // 2
    for i, part in enumerate((code[:half], code[half:])):
        dump(raw / "code" / f"part-{i}.jsonl.zst", part,
             lambda p: zstandard.ZstdCompressor(level=3).stream_writer(open(p, "wb"), closefd=True))
    dump(raw / "docs" / "topics.jsonl", domains["docs"], lambda p: open(p, "wb"))
    web = domains["web"]
    for i in range(3):
        # mtime=0: the same corpus gives the same bytes.
        dump(raw / "web" / f"crawl-{i}.jsonl.gz", web[i::3],
             lambda p: gzip.GzipFile(filename="", fileobj=open(p, "wb"), mode="wb", mtime=0))
    legal = domains["legal"]
    table = pa.table({"id": [d["id"] for d in legal], "text": [d["text"] for d in legal],
                      "package": [d["package"] for d in legal]})
    pq.write_table(table, raw / "legal" / "licenses.parquet")
    truth["malformed"] = _write_malformed(raw / "web")
    truth["docs_by_domain"] = {k: len(v) for k, v in sorted(domains.items())}
    (root / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth


def _write_malformed(web_dir: Path) -> dict[str, int]:
    """Lines every real crawl has: broken JSON, wrong types, bad bytes, a repeated id, a file cut off mid-stream."""
    lines = [
        b'{"id": "broken-1", "text": "this line was cut off',
        b'{"id": "broken-2", "title": "no text field"}',
        b'{"id": "broken-3", "text": 42}',
        b'{"id": "broken-4", "text": null}',
        b'{"id": "broken-5", "text": "   "}',
        b'{"id": "broken-6", "text": "Caf\xe9 latin-1 bytes are not UTF-8"}',
        b'["a", "list", "not", "an", "object"]',
        b'{"id": "dup-id", "text": "The first record with this id is kept."}',
        b'{"id": "dup-id", "text": "The second record with the same id is quarantined."}',
    ]
    (web_dir / "broken.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    good = b"".join(b'{"text": "record %d of a file that breaks off"}\n' % i for i in range(50))
    blob = gzip.compress(good, mtime=0)
    (web_dir / "cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    (web_dir / "empty.jsonl").write_bytes(b"")
    return {"invalid_json": 1, "missing_text": 1, "text_not_string": 1, "null_text": 1, "empty_text": 1,
            "invalid_utf8": 1, "not_an_object": 1, "duplicate_id": 1, "truncated_stream": 1}
