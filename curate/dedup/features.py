"""Per-document dedup features, computed in Spark's Python workers one Arrow batch at a time.

For each document: the exact-duplicate key (xxh3-128 of the normalized text), the number of shingles, the MinHash
LSH band keys (int64 per band) and what verification compares: the MinHash signature (num_perm little-endian uint64,
as bytes) for estimated Jaccard, or the sorted distinct shingle hashes for exact Jaccard (the other column is null:
these are the wide columns that verification shuffles). Every value depends on the document alone, never on the batch
it arrived in, so the features are the same however the input is partitioned.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from curate.dedup.lsh import band_keys
from curate.dedup.minhash import distinct_shingles, permutations, signatures, text_shingles
from curate.dedup.normalize import string_buffers

FEATURE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.StringType(), False),
        T.StructField("exact_key", T.BinaryType(), False),
        T.StructField("n_shingles", T.IntegerType(), False),
        T.StructField("sig", T.BinaryType(), True),
        T.StructField("band_keys", T.ArrayType(T.LongType()), False),
        T.StructField("shingles", T.BinaryType(), True),
    ]
)
_ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), False), pa.field("exact_key", pa.binary(), False),
        pa.field("n_shingles", pa.int32(), False), pa.field("sig", pa.binary(), True),
        pa.field("band_keys", pa.list_(pa.int64()), False),
        pa.field("shingles", pa.binary(), True),
    ]
)
# A text whose normalized form is empty (only punctuation, symbols, spaces) is keyed by its raw text instead, so
# "!!!" and "???" are not exact duplicates of each other.
_RAW_KEY_PREFIX = b"\x00raw\x00"


def _fixed_binary(data: np.ndarray, n: int) -> pa.Array:
    """n rows of equal-width bytes from one contiguous array, without a Python object per row."""
    width = data.nbytes // n if n else 0
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32) * width)
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(data.tobytes())])


def batch_features(batch: pa.RecordBatch, ngram: int, a: np.ndarray, b: np.ndarray, bands: int, rows: int,
                   with_shingles: bool) -> pa.RecordBatch:
    """The features of one batch of (id, text) rows."""
    n = batch.num_rows
    texts = batch.column("text")
    x, doc, norm, norm_offsets = text_shingles(texts, ngram)
    keys = _exact_keys(texts, norm, norm_offsets)
    counts = np.bincount(doc, minlength=n).astype(np.int32)
    has = counts > 0
    if with_shingles:
        # The minimum over a document's distinct shingles is the minimum over all of them: sign the distinct ones.
        flat, offsets = distinct_shingles(x, doc, n)
        sig = signatures(flat, np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets)), n, a, b)
        shingles = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer((offsets * 8).astype(np.int32)),
                                                           pa.py_buffer(flat.astype("<u8", copy=False).tobytes())])
    else:
        sig = signatures(x, doc, n, a, b)
        shingles = pa.nulls(n, pa.binary())
    keys_2d = band_keys(sig, bands, rows)
    key_counts = np.where(has, bands, 0)
    key_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(key_counts, out=key_offsets[1:])
    band_list = pa.ListArray.from_arrays(pa.array(key_offsets), pa.array(keys_2d[has].reshape(-1), pa.int64()))
    return pa.RecordBatch.from_arrays(
        [batch.column("id"), keys, pa.array(counts, pa.int32()),
         pa.nulls(n, pa.binary()) if with_shingles else _fixed_binary(sig.astype("<u8", copy=False), n), band_list,
         shingles],
        schema=_ARROW_SCHEMA,
    )


def _exact_keys(texts: pa.Array, norm: np.ndarray, norm_offsets: np.ndarray) -> pa.Array:
    """xxh3-128 of each normalized text, read from the one buffer (a text normalizing to nothing: of its raw text)."""
    raw, raw_offsets, valid = string_buffers(texts)
    norm_view, raw_view = memoryview(norm), memoryview(raw)
    keys = []
    for i in range(len(norm_offsets) - 1):
        lo, hi = norm_offsets[i], norm_offsets[i + 1]
        if hi > lo:
            keys.append(xxhash.xxh3_128_digest(norm_view[lo:hi]))
        else:
            text = raw_view[raw_offsets[i]: raw_offsets[i + 1]] if valid[i] else b""
            keys.append(xxhash.xxh3_128_digest(_RAW_KEY_PREFIX + bytes(text)))
    return _fixed_binary(np.frombuffer(b"".join(keys), dtype=np.uint8), len(keys))


def features_fn(ngram: int, num_perm: int, seed: int, bands: int, rows: int,
                with_shingles: bool) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    a, b = permutations(num_perm, seed)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for part in text_slices(batch, MAX_TEXT_BYTES_PER_BATCH):
                yield batch_features(part, ngram, a, b, bands, rows, with_shingles)

    return run


# A batch's shingle sets take up to 4 bytes per byte of text (8 per shingle, a shingle per word of at least one
# character and one separator), in one binary column with 32-bit offsets: long documents (books, papers) in a batch
# of thousands could pass 2 GiB, so features are computed over slices of at most this much text.
MAX_TEXT_BYTES_PER_BATCH = 64 * 1024 * 1024


def text_slices(batch: pa.RecordBatch, max_bytes: int) -> Iterator[pa.RecordBatch]:
    """Consecutive non-empty slices of `batch` with at most `max_bytes` of text each (a longer text alone)."""
    n = batch.num_rows
    if not n:
        return
    sizes = np.asarray(pc.fill_null(pc.binary_length(batch.column("text")), 0), dtype=np.int64)
    start, total = 0, 0
    for i in range(n):
        if total + sizes[i] > max_bytes and i > start:
            yield batch.slice(start, i - start)
            start, total = i, 0
        total += sizes[i]
    yield batch.slice(start, n - start)


def document_features(docs: DataFrame, ngram: int, num_perm: int, seed: int, bands: int, rows: int,
                      with_shingles: bool = False) -> DataFrame:
    """FEATURE_SCHEMA rows for a DataFrame with `id` and `text`."""
    fn = features_fn(ngram, num_perm, seed, bands, rows, with_shingles)
    return docs.select("id", "text").mapInArrow(fn, FEATURE_SCHEMA)


def similarity_fn(threshold: float, exact: bool) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: (u, v, a, b) -> (u, v, similarity) for pairs at or above `threshold`; a and b are
    signatures (estimate) or sorted shingle hashes (exact)."""
    from curate.dedup.minhash import estimated_jaccard, exact_jaccards

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            n = batch.num_rows
            if not n:
                continue
            if exact:
                sims = exact_jaccards(*_binary_flat(batch.column("a"), n, "<u8"),
                                      *_binary_flat(batch.column("b"), n, "<u8"))
            else:
                sims = estimated_jaccard(_binary_matrix(batch.column("a"), n), _binary_matrix(batch.column("b"), n))
            keep = sims >= threshold - 1e-12
            yield pa.RecordBatch.from_arrays(
                [batch.column("u").filter(pa.array(keep)), batch.column("v").filter(pa.array(keep)),
                 pa.array(sims[keep], pa.float64())],
                names=["u", "v", "similarity"],
            )

    return run


def _binary_flat(col: pa.Array, n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary values -> (all values' bytes as one `dtype` array, per-row offsets in elements), straight from the
    Arrow buffers (a null reads as empty)."""
    col = pc.fill_null(col.cast(pa.binary()), b"")
    item = np.dtype(dtype).itemsize
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32, count=n + 1, offset=col.offset * 4).astype(np.int64)
    buf = col.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8)[offsets[0]: offsets[-1]] if buf is not None else np.zeros(0, np.uint8)
    return data.view(dtype), (offsets - offsets[0]) // item


def _binary_matrix(col: pa.Array, n: int) -> np.ndarray:
    """Equal-width binary values -> an (n, width/8) uint64 matrix, straight from the Arrow buffers."""
    data, _ = _binary_flat(col, n, "<u8")
    return data.reshape(n, -1)


SIMILARITY_SCHEMA = "u string, v string, similarity double"
