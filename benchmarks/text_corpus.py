"""Token corpora for the mixer benchmarks, built from text on this machine (no downloads), in several shapes.

Domains of different kinds: python (standard-library source), c (/usr/include headers), man (man pages, roff),
licenses (common licenses and package copyright files), changelogs (Debian package changelogs), markdown (README and
docs files of installed packages), reference (the Python language reference, pydoc_data), and noise: random
printable characters, which a model learns down to a floor (the character distribution) and no further, unlike
random token ids, which no model can learn at all.

Shapes (`SHAPES`): "standard" (a few MB per domain, files cut at 50k characters), "long" (about 100 long documents per
domain, each >= 8 KB: the corpus where per-domain held-out splits are scarce), "small" (a few hundred KB per domain).
A ByteLevel BPE (vocab 4096) is trained on the train documents; one file = one document; a hash of the path puts
~5% of documents in valid and ~5% in test, at least one of each per domain. The DATA directory follows the tokenize
contract and is written with proxy_training's Megatron writer.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/text_corpus.py --shape long --out /tmp/corpus-long
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import string
from pathlib import Path

SOURCES = {
    "python": [("/usr/lib/python3.11", "*.py")],
    "c": [("/usr/include", "*.h")],
    "man": [("/usr/share/man/man1", "*.gz"), ("/usr/share/man/man3", "*.gz"), ("/usr/share/man/man5", "*.gz")],
    "licenses": [("/usr/share/common-licenses", "*"), ("/usr/share/doc", "copyright")],
    "changelogs": [("/usr/share/doc", "changelog*.gz")],
    "markdown": [("/usr/lib/python3/dist-packages", "*.md"), ("/usr/share/doc", "*.md"), ("/usr/share/doc", "README*"),
                 ("/usr/local/lib", "*.md"), ("/usr/local/lib", "*.rst")],
}
# A second set of domains, none of them in SOURCES: a corpus for checking a method on text it was not tuned on.
OTHER_SOURCES = {
    "perl": [("/usr/share/perl5", "*.pm"), ("/usr/share/perl", "*.pm")],
    "pylib": [("/usr/lib/python3/dist-packages", "*.py")],
    "man78": [("/usr/share/man/man7", "*.gz"), ("/usr/share/man/man8", "*.gz")],
    "doctxt": [("/usr/share/doc", "*.txt")],
    "html": [("/usr/share/doc", "*.html")],
}
DOMAIN_SETS = {"default": None, "other": OTHER_SOURCES}
# shape -> (characters per domain, characters per document at most, documents per domain at most, min doc chars)
SHAPES = {
    "standard": (2_000_000, 50_000, 100_000, 200),
    "long": (3_000_000, 30_000, 110, 8_000),
    "small": (300_000, 20_000, 100_000, 200),
}
NOISE_CHARS = string.ascii_letters + string.digits + string.punctuation + " \n"


def read_texts(domain: str, max_chars: int, max_doc: int, max_docs: int, min_doc: int,
               sources: dict[str, list[tuple[str, str]]] | None = None) -> list[tuple[str, str]]:
    """(name, text) pairs of a domain, in a fixed order, up to the shape's limits; `sources` replaces SOURCES (the
    domain's (root, glob) list) for domains of a caller's own."""
    if domain == "reference":
        import pydoc_data.topics as topics

        items = sorted(topics.topics.items())
        docs = [(f"topics/{k}", v[:max_doc]) for k, v in items if len(v) >= min_doc]
        return docs[:max_docs]
    paths = []
    for root, pattern in (sources or SOURCES)[domain]:
        paths += [p for p in Path(root).rglob(pattern) if p.is_file() and not p.is_symlink()]
    out, total = [], 0
    for p in sorted(set(paths)):
        try:
            raw = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
        except (OSError, EOFError):
            continue
        text = raw.decode("utf-8", errors="replace")
        if len(text) < min_doc:
            continue
        out.append((str(p), text[:max_doc]))  # no single file dominates a domain
        total += len(out[-1][1])
        if total >= max_chars or len(out) >= max_docs:
            break
    return out


def noise_texts(n_docs: int, doc_chars: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"noise/{i}", "".join(rng.choices(NOISE_CHARS, k=doc_chars))) for i in range(n_docs)]


def split_of(name: str) -> str:
    h = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 100
    return "valid" if h < 5 else "test" if h < 10 else "train"


def _splits(docs: list[tuple[str, str]]) -> dict[str, list[int]]:
    """Document indices per split: by hash, then at least one valid and one test document per domain."""
    out = {"train": [], "valid": [], "test": []}
    for i, (name, _) in enumerate(docs):
        out[split_of(name)].append(i)
    for split in ("valid", "test"):
        if not out[split] and len(out["train"]) > 2:
            out[split].append(out["train"].pop())
    return out


def build_corpus(out: Path, shape: str = "standard", domains: list[str] | None = None, noise: bool = True,
                 vocab: int = 4096, copy_of: str | None = None,
                 sources: dict[str, list[tuple[str, str]]] | None = None) -> Path:
    """Write a DATA directory of `shape`; `copy_of` adds an exact copy of that domain named `<domain>_copy`;
    `sources` replaces SOURCES (e.g. OTHER_SOURCES; then `reference` is not added)."""
    from tokenizers import ByteLevelBPETokenizer

    from proxy_training.data import write_token_datasets

    max_chars, max_doc, max_docs, min_doc = SHAPES[shape]
    names = domains or ([*sources] if sources else [*SOURCES, "reference"])
    texts = {d: read_texts(d, max_chars, max_doc, max_docs, min_doc, sources) for d in names}
    if noise:
        per_doc = min(max_doc, 10_000)
        texts["noise"] = noise_texts(max(3, min(max_docs, max_chars // 4 // per_doc)), per_doc)
    if copy_of:
        texts[f"{copy_of}_copy"] = [(f"copy/{n}", t) for n, t in texts[copy_of]]
    splits = {d: _splits(docs) for d, docs in texts.items()}
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator((docs[i][1] for d, docs in texts.items() for i in splits[d]["train"]), vocab_size=vocab,
                            min_frequency=2, special_tokens=["<|endoftext|>"], show_progress=False)
    eos = tok.token_to_id("<|endoftext|>")
    documents: dict[str, dict[str, list]] = {"train": {}, "valid": {}, "test": {}}
    for d, docs in texts.items():
        encoded = tok.encode_batch([t for _, t in docs])
        for split, idx in splits[d].items():
            documents[split][d] = [encoded[i].ids + [eos] for i in idx]
    out.mkdir(parents=True, exist_ok=True)
    write_token_datasets(out, documents, vocab_size=tok.get_vocab_size(), eos_id=eos)
    tok.save(str(out / "tokenizer.json"))
    return out


def describe(data: Path) -> dict:
    meta = json.loads((data / "datasets.json").read_text())
    return {s: {d: {"docs": v["docs"], "tokens": v["tokens"]} for d, v in meta["splits"][s].items()}
            for s in meta["splits"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="standard", choices=sorted(SHAPES))
    ap.add_argument("--domains", default="default", choices=sorted(DOMAIN_SETS),
                    help="default: python, c, man, ...; other: perl, pylib, man78, doctxt, html")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    data = build_corpus(Path(args.out), args.shape, sources=DOMAIN_SETS[args.domains])
    print(json.dumps(describe(data), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
