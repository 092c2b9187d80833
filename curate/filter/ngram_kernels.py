"""Gopher's n-gram repetition numbers for one document's words, in compiled loops over the code points of the joined
words; the same numbers as datatrove's `find_top_duplicate` / `find_all_duplicate`, or -1 where they cannot vouch
for that (then the caller computes the number with strings).

The n-gram at word i is a slice of the joined text, so one polynomial prefix hash of the text gives every n-gram's
hash in O(1), for every n. Equal hashes are not taken on trust: the top n-gram's group is compared character by
character, and so is every duplicate the sequential scan finds; two different n-grams under one hash answer -1.
Written by hand because no library counts substrings of one text at word boundaries; imported only for documents
long enough to repay numba's import.
"""

from __future__ import annotations

import numpy as np

from curate.dedup.minhash import _kernel, fmix64

_BASE = np.uint64(0x100000001B3)  # odd: powers never vanish mod 2^64
_LEN_MIX = np.uint64(0x9E3779B97F4A7C15)


@_kernel
def _prefix(cps):
    """Polynomial prefix hashes of `cps` (mod 2^64) and the base's powers, both of length len(cps) + 1."""
    n = len(cps)
    h = np.empty(n + 1, np.uint64)
    p = np.empty(n + 1, np.uint64)
    h[0] = 0
    p[0] = 1
    for i in range(n):
        h[i + 1] = h[i] * _BASE + np.uint64(cps[i]) + np.uint64(1)
        p[i + 1] = p[i] * _BASE
    return h, p


@_kernel
def _gram(h, p, s, e):
    x = h[e] - h[s] * p[e - s]
    return fmix64(x ^ (np.uint64(e - s) * _LEN_MIX))


@_kernel
def _same(cps, s1, s2, length):
    for k in range(length):
        if cps[s1 + k] != cps[s2 + k]:
            return False
    return True


@_kernel
def top_duplicate(cps, h, p, offsets, n, sep):
    """Length x count of the most common n-gram, the first seen among equally common ones (datatrove's
    `find_top_duplicate` of `get_n_grams`); -2 when there is no n-gram, -1 when a hash collision blurs the answer.
    The n-gram at word i is cps[offsets[i] : offsets[i + n] - sep]."""
    m = len(offsets) - n
    if m <= 0:
        return -2
    keys = np.empty(m, np.uint64)
    for i in range(m):
        keys[i] = _gram(h, p, offsets[i], offsets[i + n] - sep)
    order = np.argsort(keys, kind="mergesort")  # stable: each group lists its positions in text order
    best_count, best_first, best_start = 0, m, 0
    g = 0
    while g < m:
        e = g + 1
        while e < m and keys[order[e]] == keys[order[g]]:
            e += 1
        count, first = e - g, order[g]
        if count > best_count or (count == best_count and first < best_first):
            best_count, best_first, best_start = count, first, g
        g = e
    s0 = offsets[best_first]
    length = offsets[best_first + n] - sep - s0
    for k in range(best_start + 1, best_start + best_count):
        j = order[k]
        if offsets[j + n] - sep - offsets[j] != length or not _same(cps, s0, offsets[j], length):
            return -1
    return length * best_count


@_kernel
def all_duplicate(cps, h, p, offsets, n):
    """datatrove's `find_all_duplicate`: scan the n-grams (joined without a separator) left to right; one seen
    before adds its length and jumps n words, a new one is remembered. -1 when two different n-grams share a hash."""
    m = len(offsets) - n
    if m <= 0:
        return 0
    size = 1
    while size < 2 * m:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.zeros(size, np.uint64)  # 0 = empty slot (a key of 0 is stored as 1)
    where = np.empty(size, np.int64)
    repeated, idx = 0, 0
    while idx < m:
        s, e = offsets[idx], offsets[idx + n]
        key = _gram(h, p, s, e)
        if key == 0:
            key = np.uint64(1)
        slot = key & mask
        found = False
        while table[slot] != 0:
            if table[slot] == key:
                t = where[slot]
                if offsets[t + n] - offsets[t] != e - s or not _same(cps, offsets[t], s, e - s):
                    return -1
                found = True
                break
            slot = (slot + np.uint64(1)) & mask
        if found:
            repeated += e - s
            idx += n
        else:
            table[slot] = key
            where[slot] = idx
            idx += 1
    return repeated


class JoinedWords:
    """One document's words joined without and with a space, as code points and prefix hashes."""

    def __init__(self, plain: str, plain_offsets: list[int], spaced: str, spaced_offsets: list[int]):
        self.plain = np.frombuffer(plain.encode("utf-32-le"), np.uint32)
        self.plain_offsets = np.asarray(plain_offsets, np.int64)
        self.plain_h, self.plain_p = _prefix(self.plain)
        self.spaced = np.frombuffer(spaced.encode("utf-32-le"), np.uint32)
        self.spaced_offsets = np.asarray(spaced_offsets, np.int64)
        self.spaced_h, self.spaced_p = _prefix(self.spaced)

    def top_duplicate(self, n: int) -> int:
        return int(top_duplicate(self.spaced, self.spaced_h, self.spaced_p, self.spaced_offsets, n, 1))

    def all_duplicate(self, n: int) -> int:
        return int(all_duplicate(self.plain, self.plain_h, self.plain_p, self.plain_offsets, n))
