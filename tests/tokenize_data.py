"""Small corpora and tokenizers built on the fly for the tokenize and shards tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from proxy_training.megatron import MMIDIDXWriter

WORDS = ("the of and river mountain café naïve 東京 日本語 emoji🙂 def return x=1; for i in range(10): "
         "print('hi') Σ λ → ∞ tabs\there newline\nthen  double  spaces").split(" ")


def write_corpus(root: Path, docs_per_domain: int = 40, seed: int = 0, sizes: dict[str, int] | None = None,
                 words: tuple[int, int] = (1, 120)) -> dict[str, dict[str, str]]:
    """JSONL files, one per domain (code, legal, web; or `sizes`: domain -> documents), each document `words` words
    long at random, with ids; returns {domain: {id: text}}."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str]] = {}
    sizes = sizes or {d: docs_per_domain for d in ("code", "legal", "web")}
    for domain, n in sizes.items():
        out[domain] = {}
        with open(root / f"{domain}.jsonl", "w", encoding="utf-8") as f:
            for i in range(n):
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))).strip() or "x"
                doc_id = f"{domain}-{i}"
                out[domain][doc_id] = text
                f.write(json.dumps({"id": doc_id, "domain": domain, "text": text}, ensure_ascii=False) + "\n")
    return out


def train_small_bpe(path: Path, texts: list[str], vocab_size: int = 400) -> Path:
    from curate.tokenize.tokenizer import train_bpe

    train_bpe(iter(texts), vocab_size, path)
    return path


def word_level_tokenizer(path: Path, vocab_size: int, specials: list[str] | None = None) -> Path:
    """A WordLevel tokenizer with `vocab_size` words `w0 ... wN` and the given special tokens at the top ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<|endoftext|>"] if specials is None else specials
    vocab = {f"w{i}": i for i in range(vocab_size - len(specials))}
    for j, s in enumerate(specials):
        vocab[s] = vocab_size - len(specials) + j
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(specials)
    tok.save(str(path))
    return path


def make_data(root: Path, lengths: dict[str, list[int]], vocab_size: int = 1000) -> Path:
    """A hand-made tokenize output: domain d's document j holds `lengths[d][j]` copies of a token naming it."""
    splits = {"train": {}, "valid": {}, "test": {}}
    for di, (domain, lens) in enumerate(sorted(lengths.items())):
        prefix = f"train/{domain}/part-00000"
        with MMIDIDXWriter(root / prefix, np.uint16) as w:
            for j, n in enumerate(lens):
                w.add_document(np.full(n, doc_token(di, j), np.uint16))
        splits["train"][domain] = {"prefixes": [prefix], "docs": len(lens), "tokens": int(sum(lens))}
        for s in ("valid", "test"):
            splits[s][domain] = {"prefixes": [], "docs": 0, "tokens": 0}
    meta = {"tokenizer": {"path": "tokenizer.json", "sha256": "0" * 64, "vocab_size": vocab_size, "eos_id": 0,
                          "bos_id": None, "dtype": "uint16"}, "splits": splits}
    (root / "datasets.json").write_text(json.dumps(meta))
    (root / "_SUCCESS").write_text("")
    return root


def doc_token(domain_index: int, doc: int) -> int:
    return 1 + domain_index * 300 + doc % 300


def write_weights(path: Path, weights: dict[str, float]) -> Path:
    path.write_text(json.dumps({"method": "test", "weights": weights}))
    return path


def tree_bytes(root: Path, skip: tuple[str, ...] = ("stats.json",)) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), except the named ones."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip}
