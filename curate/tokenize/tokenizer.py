"""Tokenizers: train a byte-level BPE on a domain-balanced sample, load any `tokenizer.json`, find its EOS/BOS.

Training reads a sample through Spark (each domain gets the same character budget, documents chosen by a seeded hash),
streams it to the driver with `toLocalIterator` (bounded by the budget, never the corpus) and trains
`tokenizers`' BpeTrainer with a ByteLevel pre-tokenizer, so every string round-trips, and `<|endoftext|>` as id 0.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer

from curate.errors import CurateError

END_OF_TEXT = "<|endoftext|>"
# End-of-document tokens of common tokenizers, in preference order (pretraining wants "end of text", not "end of turn").
EOS_CANDIDATES = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[EOS]", "<|im_end|>", "<|eot_id|>",
                  "<|end|>", "[SEP]"]


@dataclass(frozen=True)
class TokenizerInfo:
    """What the writers need to know about a tokenizer."""

    path: str
    sha256: str
    vocab_size: int  # with added tokens: every id the tokenizer can emit is < vocab_size
    eos_id: int
    eos_token: str
    bos_id: int | None  # the id the post-processor puts first, or None when it adds none
    adds_eos: bool  # the post-processor already ends every encoding with EOS


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """A `tokenizers` Tokenizer from a tokenizer.json on disk (a clear error when missing or not one)."""
    p = Path(path)
    if not p.is_file():
        raise CurateError(f"tokenizer file not found: {path}")
    try:
        return Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise CurateError(f"{path}: not a tokenizers tokenizer.json ({str(exc).splitlines()[0][:200]})") from None


def _special_tokens(tok: Tokenizer) -> dict[str, int]:
    return {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}


def describe_tokenizer(path: str | os.PathLike, eos_token: str | None = None) -> TokenizerInfo:
    """Find the end-of-document token (the given one, else a known name among the special tokens) and whether the
    post-processor adds a BOS/EOS; a tokenizer with no end token is a CurateError."""
    tok = load_tokenizer(path)
    specials = _special_tokens(tok)
    if eos_token is not None:
        eos_id = tok.token_to_id(eos_token)
        if eos_id is None:
            raise CurateError(f"{path}: the tokenizer has no token {eos_token!r} (eos_token)")
    else:
        found = next((t for t in EOS_CANDIDATES if t in specials), None)
        if found is None:
            raise CurateError(
                f"{path}: the tokenizer has no end-of-document token (none of {', '.join(EOS_CANDIDATES[:4])}, ... "
                f"among its special tokens); set eos_token to the one it uses")
        eos_token, eos_id = found, specials[found]
    probe = tok.encode("a", add_special_tokens=True).ids
    plain = tok.encode("a", add_special_tokens=False).ids
    bos_id = None
    if len(probe) > len(plain) and probe[0] != (plain[0] if plain else None):
        bos_id = probe[0]
    adds_eos = len(probe) > len(plain) and probe[-1] == eos_id
    return TokenizerInfo(
        path=str(path), sha256=file_sha256(path), vocab_size=tok.get_vocab_size(with_added_tokens=True),
        eos_id=int(eos_id), eos_token=eos_token, bos_id=None if bos_id is None else int(bos_id), adds_eos=adds_eos,
    )


def new_bpe_trainer(vocab_size: int, min_frequency: int = 2):
    """An untrained byte-level BPE tokenizer and its trainer; `<|endoftext|>` is special token 0."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    return tok, trainer


def train_bpe(texts: Iterator[str], vocab_size: int, out: str | os.PathLike, min_frequency: int = 2) -> TokenizerInfo:
    """Train a byte-level BPE on `texts` and save it as `out` (a tokenizer.json)."""
    if vocab_size < 257 + 1:
        raise CurateError(f"vocab_size {vocab_size} is too small: a byte-level BPE needs at least 258 (256 bytes + EOS)")
    tok, trainer = new_bpe_trainer(vocab_size, min_frequency)
    tok.train_from_iterator(texts, trainer=trainer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tok.save(str(tmp))
    os.replace(tmp, out)
    return describe_tokenizer(out)


def sample_texts(spark, inputs: list[str], chars_per_domain: int, seed: int) -> Iterator[str]:
    """Documents of every domain, each domain up to `chars_per_domain` characters, chosen by a seeded id hash and
    yielded in a fixed order (domain, hash, id), so the same corpus and seed train the same tokenizer."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from curate.sources import read_documents

    docs = read_documents(spark, inputs).select("id", "domain", "text")
    docs = docs.withColumn("_h", F.xxhash64(F.lit(seed), F.lit("tokenizer-sample"), F.col("id")))
    # A hash pre-filter (1.5x the budget's share of each domain) keeps the per-domain window below small.
    sizes = {r["domain"]: r["chars"] for r in docs.groupBy("domain").agg(F.sum(F.length("text")).alias("chars"))
             .collect()}
    keep = {d: min(1.0, 1.5 * chars_per_domain / max(c or 1, 1)) for d, c in sizes.items()}
    if not keep:
        raise CurateError(f"no documents to train a tokenizer on in {' '.join(inputs)}")
    frac = F.create_map(*[x for d, f in sorted(keep.items()) for x in (F.lit(d), F.lit(f))])
    uniform = (F.pmod(F.col("_h"), F.lit(1 << 30)) / F.lit(float(1 << 30)))
    docs = docs.where(uniform < frac[F.col("domain")])
    # Running characters per domain in hash order: keep the prefix that fits the budget (at least one document).
    w = Window.partitionBy("domain").orderBy("_h", "id").rowsBetween(Window.unboundedPreceding, -1)
    ranked = docs.withColumn("_before", F.coalesce(F.sum(F.length("text")).over(w), F.lit(0)))
    picked = ranked.where(F.col("_before") < chars_per_domain).orderBy("domain", "_h", "id").select("text")
    for row in picked.toLocalIterator(prefetchPartitions=True):
        yield row["text"]
