"""Word n-grams as datatrove's decontamination sees them, hashed to 64 bits, and the eval sets' n-grams as one table.

Normalization is datatrove's own `simplify_text` (lowercase, digits -> 0, punctuation -> space, whitespace collapsed,
accents stripped), imported, not copied; text that is pure ASCII skips its accent step, which cannot change ASCII
(NFD of ASCII is itself and holds no combining marks), so the result is the same string. Words are the
whitespace-separated pieces of the normalized text (datatrove splits it again with spaCy, which also cuts a few
unpunctuated contractions such as "cannot" -> "can not"; both sides of the comparison are split the same way, so
only n-grams at the very edge of an overlap can differ).

An n-gram's hash: xxhash64 of each word, folded over the n words (h = h * K + w) and finished with murmur3's fmix64
(`curate.dedup.minhash`). The eval n-grams live in an open-addressing table (linear probing, load <= 1/2) of those
64-bit values beside the index of the first eval item (in the order the sets were given) that holds each. A corpus
n-gram matches when its hash is in the table: with E distinct eval n-grams, a corpus n-gram that is in no eval set
matches by chance with probability E / 2^64 (a full-length hash compare, no Bloom filter bits), i.e. 5.4e-14 per
n-gram for a million eval n-grams: about 0.05 false matches in 10^12 corpus n-grams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pyarrow as pa
from datatrove.utils.text import PUNCTUATION, TextNormConfig, simplify_text

from curate.dedup.minhash import fmix64, word_hashes
from curate.dedup.normalize import split_words

_FOLD = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.uint64(0)  # an empty table slot; an n-gram whose hash is 0 is stored as 1 (chance 2^-64)
_NORM = TextNormConfig()
_NORM_ASCII = TextNormConfig(norm_unicode_diacritics=False)


def normalize(text: str) -> str:
    """datatrove's `simplify_text` of `text` with its default settings (the ones its decontamination uses)."""
    return simplify_text(text, _NORM_ASCII if text.isascii() else _NORM)


def words_of(texts: list[str]) -> tuple[pa.Array, np.ndarray]:
    """The normalized words of every text, flattened, and per-text word offsets (length n + 1)."""
    return split_words(pa.array([normalize(t or "") for t in texts], pa.string()))


def _kernel(fn):
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location
        return numba.njit(nogil=True)(fn)


@_kernel
def _ngram_hash(wh, start, n):
    h = wh[start]
    for j in range(start + 1, start + n):
        h = h * _FOLD + wh[j]
    h = fmix64(h)
    return h if h != _EMPTY else np.uint64(1)


@_kernel
def _ngram_hashes_kernel(wh, offsets, n):
    """Hashes of every n-gram of every text, in text order, and the text of each."""
    total = 0
    for d in range(offsets.shape[0] - 1):
        total += max(offsets[d + 1] - offsets[d] - n + 1, 0)
    out = np.empty(total, dtype=np.uint64)
    doc = np.empty(total, dtype=np.int64)
    k = 0
    for d in range(offsets.shape[0] - 1):
        for start in range(offsets[d], offsets[d + 1] - n + 1):
            out[k] = _ngram_hash(wh, start, n)
            doc[k] = d
            k += 1
    return out, doc


@_kernel
def _insert_kernel(slots, owners, hashes, owner_of):
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(hashes.shape[0]):
        h = hashes[i]
        s = h & mask
        while slots[s] != _EMPTY and slots[s] != h:
            s = (s + np.uint64(1)) & mask
        if slots[s] == _EMPTY:  # the first (smallest) owner stays
            slots[s] = h
            owners[s] = owner_of[i]


@_kernel
def _lookup_kernel(wh, offsets, n, slots, owners):
    """For every word position: the owner of the n-gram starting there, or -1 (no match, or fewer than n words
    left in its text)."""
    out = np.full(wh.shape[0], -1, dtype=np.int32)
    mask = np.uint64(slots.shape[0] - 1)
    for d in range(offsets.shape[0] - 1):
        for start in range(offsets[d], offsets[d + 1] - n + 1):
            h = _ngram_hash(wh, start, n)
            s = h & mask
            while slots[s] != _EMPTY:
                if slots[s] == h:
                    out[start] = owners[s]
                    break
                s = (s + np.uint64(1)) & mask
    return out


def ngram_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of every text (in order) and the index of the text each comes from."""
    words, offsets = words_of(texts)
    return _ngram_hashes_kernel(word_hashes(words), offsets.astype(np.int64), np.int64(n))


@dataclass
class NgramTable:
    """The eval sets' n-gram hashes (open addressing, linear probing) and, per slot, the first item holding it."""

    n: int
    slots: np.ndarray  # uint64, a power of two long; 0 = empty
    owners: np.ndarray  # int32: the index of the eval item in `Items` order
    distinct: int
    per_item: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # n-grams of each item

    @classmethod
    def build(cls, texts: list[str], n: int) -> "NgramTable":
        """The table of every n-gram of `texts` (item i = texts[i]); a hash held by several items keeps the first."""
        hashes, doc = ngram_hashes(texts, n)
        uniq, first = np.unique(hashes, return_index=True)  # first occurrence = the smallest item index
        size = 1 << max(4, int(2 * max(len(uniq), 1) - 1).bit_length())
        slots = np.zeros(size, dtype=np.uint64)
        owners = np.full(size, -1, dtype=np.int32)
        _insert_kernel(slots, owners, uniq, doc[first].astype(np.int32))
        return cls(n, slots, owners, int(len(uniq)), np.bincount(doc, minlength=len(texts)).astype(np.int64))

    @property
    def false_match_rate(self) -> float:
        """Chance that an n-gram in no eval set matches (a 64-bit hash equal to one of the table's)."""
        return self.distinct / 2.0**64

    def owners_at(self, words: pa.Array, offsets: np.ndarray) -> np.ndarray:
        """Per word position of the flattened `words`: the eval item whose n-gram starts there, or -1."""
        return _lookup_kernel(word_hashes(words), offsets.astype(np.int64), np.int64(self.n), self.slots, self.owners)


# Word spans in the original text, for span mode: runs of characters that are neither whitespace nor datatrove's
# punctuation, a number with its decimal part kept whole (as simplify_text's number rule reads it).
_SEPARATORS = "".join(sorted(set(PUNCTUATION)))


def _segment_pattern():
    import regex

    sep = regex.escape(_SEPARATORS, special_only=False)
    return regex.compile(r"(?:\p{Nd}+(?:[.,،٫⎖⎗⎘]\p{Nd}+)?|[^\s" + sep + r"])+")


_SEGMENT = None


def word_spans(text: str, expected: list[str]) -> list[tuple[int, int]] | None:
    """The character span in `text` of each normalized word, or None when the pieces of `text` do not normalize to
    exactly `expected` (the words of the whole text), so a caller never cuts by a misaligned span."""
    global _SEGMENT
    if _SEGMENT is None:
        _SEGMENT = _segment_pattern()
    spans: list[tuple[int, int]] = []
    got: list[str] = []
    for m in _SEGMENT.finditer(text):
        for w in normalize(m.group()).split():
            got.append(w)
            spans.append(m.span())
    return spans if got == expected else None
