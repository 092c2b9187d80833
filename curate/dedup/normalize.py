"""Text normalization and word splitting for dedup, vectorized over an Arrow batch with Arrow's (RE2) string kernels.

The rules follow datatrove's `simplify_text` (the normalization FineWeb deduplicated with): lowercase; every run of
digits (with an optional decimal part) becomes `0`; punctuation, symbols and control characters become spaces;
accents are stripped (NFD, combining marks dropped); whitespace is collapsed. Words are the whitespace-separated
pieces of the result. datatrove splits words with spaCy; after punctuation became spaces a whitespace split gives
the same words for ordinary prose at a small fraction of the cost.

`scan_texts` computes the same normalized text and its word hashes in one pass over the UTF-8 bytes (numba), where
the Arrow path takes five passes with a string per word after them. ASCII needs no tables: every ASCII byte that is
not a letter or digit is punctuation, a symbol, a control or a space. A region of text holding non-ASCII bytes (a
maximal run of bytes that are not ASCII separators; `.` and `,` between two such bytes belong to it, so a number
never spans two regions) goes through the Arrow rules alone, padded with a space on each side: the pieces then join
with single spaces exactly as the whole text's separator runs would collapse (see `_assemble`).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.xxh64 import xxh64

_NUMBER = r"\p{Nd}+([.,،٫⎖⎗⎘]\p{Nd}+)?"
_PUNCT_OR_SPACE = r"[\p{P}\p{S}\p{Cc}\p{Z}\s]+"
_COMBINING_MARK = r"\p{Mn}+"


def normalize_texts(texts: pa.Array) -> pa.Array:
    """Normalized form of each text (a string array of the same length; nulls stay null)."""
    return pc.utf8_trim_whitespace(_normalize_untrimmed(texts))


def _normalize_untrimmed(texts: pa.Array) -> pa.Array:
    x = pc.utf8_lower(texts)
    x = pc.replace_substring_regex(x, _NUMBER, "0")
    x = pc.replace_substring_regex(x, _PUNCT_OR_SPACE, " ")
    x = pc.utf8_normalize(x, "NFD")
    return pc.replace_substring_regex(x, _COMBINING_MARK, "")


def normalize(text: str) -> str:
    """Normalized form of one text (the same function as `normalize_texts`, for tests and small tools)."""
    return normalize_texts(pa.array([text], pa.string()))[0].as_py()


def split_words(normalized: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Words of every normalized text, flattened, and the per-text word offsets (length n + 1).

    An empty normalized text has no words (Arrow's split would give one empty word)."""
    empty = pc.equal(pc.utf8_length(normalized), 0)
    lists = pc.utf8_split_whitespace(pc.if_else(empty, pa.scalar(None, pa.string()), normalized))
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    # flatten() of a sliced list array starts at offsets[0]; rebase so offsets index the flattened words.
    return lists.flatten(), offsets - offsets[0]


def words(text: str) -> list[str]:
    """Words of one text after normalization."""
    return normalize(text).split()


def _kernel(fn):
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location
        return numba.njit(nogil=True)(fn)


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets rebased to 0, validity as bool) of a string array, without copying the bytes."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type == pa.large_string():
        arr = arr.cast(pa.string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    valid = np.asarray(arr.is_valid())
    return data, offsets, valid


def scan_texts(texts: pa.Array, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over a batch of texts: (normalized bytes, per-text offsets into them, xxh64 of every word in order
    with `seed`, per-text word offsets). Normalized text and words are exactly `normalize_texts` and `split_words`'s."""
    data, offsets, valid = string_buffers(texts)
    reg_start, reg_end = _regions(data, offsets, valid)
    if len(reg_start):
        padded, padded_offsets = _gather_padded(data, reg_start, reg_end)
        regions = pa.Array.from_buffers(pa.string(), len(reg_start),
                                        [None, pa.py_buffer(padded_offsets.astype(np.int32)), pa.py_buffer(padded)])
        u_data, u_offsets, _ = string_buffers(_normalize_untrimmed(regions))
    else:
        u_data, u_offsets = np.zeros(0, np.uint8), np.zeros(1, np.int64)
    return _assemble(data, offsets, valid, reg_start, reg_end, u_data, u_offsets, np.uint64(seed))


@_kernel
def _is_alnum(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)


@_kernel
def _plain_sep(c):
    return c < 128 and not _is_alnum(c)


@_kernel
def _is_sep(data, i, lo, hi):
    """An ASCII separator that bounds a region: not a letter or digit, and not `.`/`,` between two non-separators."""
    c = data[i]
    if not _plain_sep(c):
        return False
    if c == 46 or c == 44:
        return not (i > lo and i + 1 < hi and not _plain_sep(data[i - 1]) and not _plain_sep(data[i + 1]))
    return True


@_kernel
def _regions(data, offsets, valid):
    """Byte ranges of the regions holding non-ASCII bytes, in text order."""
    starts = []
    ends = []
    for d in range(offsets.shape[0] - 1):
        if not valid[d]:
            continue
        lo, hi = offsets[d], offsets[d + 1]
        i = lo
        while i < hi:
            if data[i] < 128:
                i += 1
                continue
            a = i
            while a > lo and not _is_sep(data, a - 1, lo, hi):
                a -= 1
            b = i
            while b < hi and not _is_sep(data, b, lo, hi):
                b += 1
            starts.append(a)
            ends.append(b)
            i = b
    out_s = np.empty(len(starts), dtype=np.int64)
    out_e = np.empty(len(ends), dtype=np.int64)
    for k in range(len(starts)):
        out_s[k] = starts[k]
        out_e[k] = ends[k]
    return out_s, out_e


@_kernel
def _gather_padded(data, starts, ends):
    """" " + region + " " for every region, as one buffer and offsets."""
    offsets = np.zeros(starts.shape[0] + 1, dtype=np.int64)
    for r in range(starts.shape[0]):
        offsets[r + 1] = offsets[r] + ends[r] - starts[r] + 2
    out = np.empty(offsets[-1], dtype=np.uint8)
    for r in range(starts.shape[0]):
        k = offsets[r]
        out[k] = 32
        out[k + 1: k + 1 + ends[r] - starts[r]] = data[starts[r]: ends[r]]
        out[offsets[r + 1] - 1] = 32
    return out, offsets


@_kernel
def _assemble(data, offsets, valid, reg_start, reg_end, u_data, u_offsets, seed):
    """Normalized texts and their word hashes. A text is a sequence of pieces (ASCII words, and each region's
    normalized core: its padded normalization less the two pad spaces; a region that normalized to one space was all
    separators and adds no piece) joined by one space and trimmed: what collapsing the whole text's separator runs
    gives, since a region's pads stand for the separators around it."""
    n = offsets.shape[0] - 1
    out = np.empty(data.shape[0] + u_data.shape[0] + n + 1, dtype=np.uint8)
    out_off = np.zeros(n + 1, dtype=np.int64)
    hashes = np.empty(data.shape[0] // 2 + u_data.shape[0] // 2 + n + 1, dtype=np.uint64)
    word_off = np.zeros(n + 1, dtype=np.int64)
    k, w, r = 0, 0, 0
    for d in range(n):
        if valid[d]:
            start = k
            k, r = _pieces(data, offsets[d], offsets[d + 1], reg_start, reg_end, u_data, u_offsets, r, out, k)
            k = _trim(out, start, k)
            w = _hash_words(out, start, k, hashes, w, seed)
        out_off[d + 1] = k
        word_off[d + 1] = w
    return out[:k], out_off, hashes[:w], word_off


@_kernel
def _pieces(data, lo, hi, reg_start, reg_end, u_data, u_offsets, r, out, k):
    """Write text data[lo:hi]'s pieces joined by single spaces at out[k:]; return the new end and next region."""
    first = True
    open_piece = False
    i = lo
    while i < hi:
        if r < reg_start.shape[0] and reg_start[r] == i:
            ulo, uhi = u_offsets[r], u_offsets[r + 1]
            if uhi - ulo >= 2:
                if not first:
                    out[k] = 32
                    k += 1
                out[k: k + uhi - ulo - 2] = u_data[ulo + 1: uhi - 1]
                k += uhi - ulo - 2
                first = False
            open_piece = False
            i = reg_end[r]
            r += 1
            continue
        c = data[i]
        if not _is_alnum(c):
            open_piece = False
            i += 1
            continue
        if not open_piece:
            if not first:
                out[k] = 32
                k += 1
            first = False
            open_piece = True
        if c <= 57:  # a digit run, with an optional decimal part, becomes 0
            while i < hi and 48 <= data[i] <= 57:
                i += 1
            if i + 1 < hi and (data[i] == 46 or data[i] == 44) and 48 <= data[i + 1] <= 57:
                i += 1
                while i < hi and 48 <= data[i] <= 57:
                    i += 1
            out[k] = 48
        else:
            out[k] = c + 32 if c <= 90 else c
            i += 1
        k += 1
    return k, r


@_kernel
def _trim(out, start, k):
    """Strip spaces at both ends of out[start:k] in place (a region's core may begin or end with one: a combining
    mark dropped next to a separator); return the new end."""
    a, b = start, k
    while a < b and out[a] == 32:
        a += 1
    while b > a and out[b - 1] == 32:
        b -= 1
    if a > start:
        out[start: start + b - a] = out[a:b].copy()
    return start + b - a


@_kernel
def _hash_words(out, start, k, hashes, w, seed):
    """xxh64 of each space-separated word of out[start:k] into hashes[w:]; return the new count."""
    j = start
    while j < k:
        if out[j] == 32:
            j += 1
            continue
        e = j
        while e < k and out[e] != 32:
            e += 1
        hashes[w] = xxh64(out, j, e, seed)
        w += 1
        j = e
    return w
