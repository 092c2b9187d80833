"""Text normalization and word splitting for dedup, vectorized over an Arrow batch with Arrow's (RE2) string kernels.

The rules follow datatrove's `simplify_text` (the normalization FineWeb deduplicated with): lowercase; every run of
digits (with an optional decimal part) becomes `0`; punctuation, symbols and control characters become spaces;
accents are stripped (NFD, combining marks dropped); whitespace is collapsed. Words are the whitespace-separated
pieces of the result. datatrove splits words with spaCy; after punctuation became spaces a whitespace split gives
the same words for ordinary prose at a small fraction of the cost.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER = r"\p{Nd}+([.,،٫⎖⎗⎘]\p{Nd}+)?"
_PUNCT_OR_SPACE = r"[\p{P}\p{S}\p{Cc}\p{Z}\s]+"
_COMBINING_MARK = r"\p{Mn}+"


def normalize_texts(texts: pa.Array) -> pa.Array:
    """Normalized form of each text (a string array of the same length; nulls stay null)."""
    x = pc.utf8_lower(texts)
    x = pc.replace_substring_regex(x, _NUMBER, "0")
    x = pc.replace_substring_regex(x, _PUNCT_OR_SPACE, " ")
    x = pc.utf8_normalize(x, "NFD")
    x = pc.replace_substring_regex(x, _COMBINING_MARK, "")
    return pc.utf8_trim_whitespace(x)


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
