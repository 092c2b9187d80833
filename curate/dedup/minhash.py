"""MinHash signatures of word n-gram shingles, computed for a whole Arrow batch at once with numpy.

Shingle hashes: every distinct word of the batch is hashed once with xxhash64; an n-gram's 64-bit hash is a
polynomial fold of its words' hashes followed by a 64-bit finalizer (murmur3's fmix64), all vectorized over the
batch. A document with fewer than n words (but at least one) has one shingle made of all its words, so short
documents still match their exact copies; a document with no words has no shingles and no signature.

Permutations: `h_i(x) = (a_i * x + b_i) mod (2^61 - 1)`, with `a_i` in [1, 2^32) and `b_i` in [0, p) drawn from a
seeded generator and the product computed exactly (numpy has no 128-bit integers: x is split in 32-bit halves, so
a * x = a * x_lo + (a * x_hi) * 2^32 with both products below 2^64, reduced with 2^61 = 1 mod p). A 32-bit `a` halves
the multiplications of a full-width one: 15 array passes instead of 23, the signature kernel 1.58x faster (measured:
300k shingles x 128 permutations, 0.236 -> 0.150 s), the largest per-document cost of the stage. Every x != y still
maps to different values (p is prime and a != 0), and 2^32 slopes are far more than any signature uses. The
signature of a document is the minimum of each `h_i` over its shingles.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash

from curate.dedup.normalize import split_words

MERSENNE_61 = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_MASK29 = np.uint64((1 << 29) - 1)
_A_LIMIT = 1 << 32  # permutation slopes are below this (see the module docstring)
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # signature slot of a document with no shingles (never a permuted value)
_FOLD = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier for the polynomial fold of word hashes
_WORD_SEED = 0x5EED
# Shingles per chunk of the permutation step: chunk x num_perm uint64 values stay near the CPU's L2 cache.
_CHUNK = 512


def fmix64(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer: every input bit affects every output bit (in place on a copy)."""
    h = h.copy()
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB93FE53B3EC5)
    h ^= h >> np.uint64(33)
    return h


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded `(a, b)` of the `num_perm` permutations: 1 <= a < 2^32, 0 <= b < p, p = 2^61 - 1."""
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.integers(1, _A_LIMIT, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, MERSENNE_61, size=num_perm, dtype=np.uint64)
    return a, b


def affine_mod61(x: np.ndarray, a: np.ndarray, b: np.ndarray, work: "_Workspace | None" = None) -> np.ndarray:
    """`(a * x + b) mod (2^61 - 1)` for x (m,) below 2^61, a (k,) below 2^32 and b (k,) below 2^61: a (k, m) uint64
    array (permutations along rows, shingles contiguous, so a per-document minimum is a fast reduction along the last
    axis).

    The result is the residue r, except that r <= 2 may come out as r + p (the same class; chance 3 * 2^-61 per
    value, and the same input always gives the same output). Every step writes into preallocated buffers: fresh
    megabyte-sized temporaries cost more in page faults than the arithmetic itself."""
    if len(a) and int(a.max()) >= _A_LIMIT:
        raise ValueError("affine_mod61: slopes a must be below 2^32 (use permutations())")
    m = len(x)
    w = work if work is not None and work.fits(len(a), m) else _Workspace(len(a), m)
    p = MERSENNE_61
    x = x.reshape(1, -1)
    x_hi, x_lo = x >> np.uint64(32), x & _MASK32  # x_hi < 2^29
    a = a.reshape(-1, 1)
    b = b.reshape(-1, 1)
    lo, mid, s = w.lo[:, :m], w.mid[:, :m], w.s[:, :m]
    np.multiply(a, x_lo, out=lo)  # < 2^64
    np.multiply(a, x_hi, out=mid)  # < 2^61
    np.bitwise_and(lo, p, out=s)  # lo = (lo >> 61) * 2^61 + (lo & p) = (lo >> 61) + (lo & p) (mod p)
    lo >>= np.uint64(61)
    s += lo
    np.right_shift(mid, np.uint64(29), out=lo)  # mid * 2^32 = (mid >> 29) * 2^61 + (mid mod 2^29) * 2^32
    s += lo
    mid &= _MASK29
    mid <<= np.uint64(32)
    s += mid
    s += b  # s < 3 * 2^61 + 2^32 + 8 < 2^63: no overflow
    np.right_shift(s, np.uint64(61), out=lo)  # fold with 2^61 = 1 (mod p): s <= p + 3
    s &= p
    s += lo
    return s


class _Workspace:
    """Reusable buffers for `affine_mod61` (one per batch, sized for one chunk of shingles)."""

    def __init__(self, perms: int, shingles: int):
        self.perms, self.shingles = perms, shingles
        self.lo, self.mid, self.s = (np.empty((perms, shingles), dtype=np.uint64) for _ in range(3))

    def fits(self, perms: int, shingles: int) -> bool:
        return perms == self.perms and shingles <= self.shingles


def word_hashes(words: pa.Array) -> np.ndarray:
    """xxhash64 of every word (each distinct word of the batch hashed once)."""
    if len(words) == 0:
        return np.zeros(0, dtype=np.uint64)
    enc = words.dictionary_encode()
    uniq = enc.dictionary.to_pylist()
    table = np.fromiter((xxhash.xxh64_intdigest(w, _WORD_SEED) for w in uniq), dtype=np.uint64, count=len(uniq))
    return table[np.asarray(enc.indices, dtype=np.int64)]


def shingle_hashes(normalized: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """61-bit hashes of every document's word n-grams (in document order) and each one's document index."""
    words, offsets = split_words(normalized)
    wh = word_hashes(words)
    counts = np.diff(offsets)
    n_docs = len(counts)
    doc_of_word = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
    n = len(wh)
    parts_h, parts_d = [], []
    if n >= ngram:
        h = wh[: n - ngram + 1].copy()
        for j in range(1, ngram):
            h *= _FOLD
            h += wh[j: n - ngram + 1 + j]
        start = np.arange(n - ngram + 1)
        # An n-gram is valid when it ends inside the document it starts in.
        valid = doc_of_word[start] == doc_of_word[start + ngram - 1]
        parts_h.append(h[valid])
        parts_d.append(doc_of_word[: n - ngram + 1][valid])
    short = np.flatnonzero((counts > 0) & (counts < ngram))
    if len(short):
        hs = np.empty(len(short), dtype=np.uint64)
        for k, d in enumerate(short):  # few documents: shorter than one n-gram
            seq = wh[offsets[d]: offsets[d + 1]]
            acc = seq[:1].copy()  # a 1-element array: wrapping uint64 arithmetic without scalar overflow warnings
            for v in seq[1:]:
                acc *= _FOLD
                acc += v
            hs[k] = acc[0]
        parts_h.append(hs)
        parts_d.append(short.astype(np.int64))
    if not parts_h:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    h = np.concatenate(parts_h)
    d = np.concatenate(parts_d)
    order = np.argsort(d, kind="stable")
    return fmix64(h[order]) >> np.uint64(3), d[order]


def signatures(x: np.ndarray, doc: np.ndarray, n_docs: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n_docs, k) MinHash signatures from shingle hashes `x` grouped by ascending document index `doc`.

    Rows of documents without shingles are all 2^64 - 1."""
    sig = np.full((n_docs, len(a)), _EMPTY, dtype=np.uint64)
    work = _Workspace(len(a), min(_CHUNK, max(len(x), 1)))
    for lo in range(0, len(x), _CHUNK):
        hi = min(lo + _CHUNK, len(x))
        v = affine_mod61(x[lo:hi], a, b, work)
        d = doc[lo:hi]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        mins = np.minimum.reduceat(v, starts, axis=1)  # (k, documents in this chunk)
        rows = d[starts]
        sig[rows] = np.minimum(sig[rows], mins.T)
    return sig


def shingle_sets(x: np.ndarray, doc: np.ndarray, n_docs: int) -> list[np.ndarray]:
    """Each document's distinct shingle hashes, sorted (for exact Jaccard verification)."""
    bounds = np.searchsorted(doc, np.arange(n_docs + 1))
    return [np.unique(x[bounds[i]: bounds[i + 1]]) for i in range(n_docs)]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal signature slots, row by row: the MinHash estimate of Jaccard similarity."""
    return (sig_a == sig_b).mean(axis=1)


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted distinct hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
