"""Megatron indexed datasets (MMIDIDX v1): a crash-safe writer and a memory-mapped reader.

`.bin` is the raw little-endian token array; `.idx` is a header, int32 sequence lengths, int64 byte pointers and int64
document indices (one sequence per document here). The writer streams tokens to `PREFIX.bin.tmp`, fsyncs, checks that
the file holds exactly sum(lengths) * itemsize bytes, writes `PREFIX.idx.tmp`, then renames `.bin` and `.idx` last:
a present `.idx` therefore always sits beside a complete `.bin`, and a killed run leaves only `*.tmp` files.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from curate.errors import CurateError, InternalError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# Megatron's DType codes (megatron/core/datasets/indexed_dataset.py); there is no uint32 code.
DTYPE_CODES = {
    np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
    np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8,
}
CODE_DTYPES = {code: dt for dt, code in DTYPE_CODES.items()}
# Megatron picks uint16 only below this cardinality (DType.optimal_dtype); we follow it exactly.
UINT16_VOCAB_LIMIT = 65500
_HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequence count, document count


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 when the vocabulary is < 65500 (Megatron's rule), else int32."""
    return np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.int32)


def dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).name


def max_token_id(dtype: np.dtype) -> int:
    return int(np.iinfo(np.dtype(dtype)).max)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def encode_index(dtype: np.dtype, lengths: np.ndarray) -> bytes:
    """The `.idx` bytes for documents of the given lengths (one sequence per document)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
        raise InternalError("a document length does not fit the int32 length field of a Megatron index")
    n = int(lengths.size)
    pointers = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lengths[:-1] * np.dtype(dtype).itemsize, out=pointers[1:])
    doc_index = np.arange(n + 1, dtype=np.int64)
    header = _HEADER.pack(MAGIC, VERSION, DTYPE_CODES[np.dtype(dtype)], n, n + 1)
    return b"".join([header, lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     doc_index.astype("<i8").tobytes()])


class MegatronWriter:
    """Write one `.bin`/`.idx` pair at `prefix`, documents appended in order; `close()` publishes it atomically.

    Holds only the document lengths in memory (4 bytes a document, the size of the `.idx` it will write).
    Use as a context manager: an exception inside the block removes the temporary files.
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPE_CODES:
            raise InternalError(f"dtype {self.dtype} has no Megatron code")
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.bin_tmp = Path(f"{self.prefix}.bin.tmp")
        self.idx_tmp = Path(f"{self.prefix}.idx.tmp")
        self._bin = open(self.bin_tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._lengths: list[np.ndarray] = []
        self.docs = 0
        self.tokens = 0

    def add_document(self, tokens: np.ndarray) -> None:
        """Append one document's tokens (already in this writer's dtype or castable without loss)."""
        arr = np.ascontiguousarray(tokens, dtype=self.dtype)
        self._bin.write(arr.astype(self.dtype.newbyteorder("<"), copy=False).data)
        self._lengths.append(np.array([arr.size], dtype=np.int64))
        self.docs += 1
        self.tokens += int(arr.size)

    def add_documents(self, data: bytes | memoryview | np.ndarray, lengths: np.ndarray) -> None:
        """Append many documents at once: `data` holds their tokens back to back (little-endian, this dtype)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        nbytes = memoryview(data).nbytes
        if nbytes != int(lengths.sum()) * self.dtype.itemsize:
            raise InternalError(f"{self.prefix}: {nbytes} token bytes for {int(lengths.sum())} tokens")
        self._bin.write(data)
        self._lengths.append(lengths)
        self.docs += int(lengths.size)
        self.tokens += int(lengths.sum())

    def write_raw(self, data: bytes | memoryview) -> None:
        """Stream token bytes; pair with `add_lengths` for the documents they hold (checked at `close`)."""
        self._bin.write(data)

    def add_lengths(self, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        self._lengths.append(lengths)
        self.docs += int(lengths.size)
        self.tokens += int(lengths.sum())

    def close(self) -> dict[str, int]:
        """fsync the `.bin`, check its size, write the `.idx`, rename both into place (`.idx` last)."""
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        expected = int(lengths.sum()) * self.dtype.itemsize
        actual = self.bin_tmp.stat().st_size
        if actual != expected:
            raise InternalError(f"{self.bin_tmp}: {actual} bytes written, expected {expected} (sum(lengths) x itemsize)")
        with open(self.idx_tmp, "wb") as f:
            f.write(encode_index(self.dtype, lengths))
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.bin_tmp, f"{self.prefix}.bin")
        os.replace(self.idx_tmp, f"{self.prefix}.idx")
        _fsync_dir(self.prefix.parent)
        return {"docs": self.docs, "tokens": self.tokens}

    def abort(self) -> None:
        """Drop the temporary files (nothing finished-looking is left)."""
        if not self._bin.closed:
            self._bin.close()
        for p in (self.bin_tmp, self.idx_tmp):
            p.unlink(missing_ok=True)

    def __enter__(self) -> MegatronWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class IndexedDataset:
    """Read-only view of one `.bin`/`.idx` pair: `len(ds)` documents, `ds[i]` a numpy array of token ids."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = str(prefix)
        idx_path, bin_path = f"{self.prefix}.idx", f"{self.prefix}.bin"
        if not os.path.exists(idx_path) or not os.path.exists(bin_path):
            raise CurateError(f"{self.prefix}: missing .bin or .idx")
        with open(idx_path, "rb") as f:
            head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise CurateError(f"{idx_path}: truncated header")
        magic, version, code, n_seq, n_doc = _HEADER.unpack(head)
        if magic != MAGIC or version != VERSION:
            raise CurateError(f"{idx_path}: not a Megatron MMIDIDX v1 index")
        if code not in CODE_DTYPES:
            raise CurateError(f"{idx_path}: unknown dtype code {code}")
        self.dtype = CODE_DTYPES[code]
        expected = _HEADER.size + 4 * n_seq + 8 * n_seq + 8 * n_doc
        size = os.path.getsize(idx_path)
        if size != expected:
            raise CurateError(f"{idx_path}: {size} bytes, expected {expected} for {n_seq} sequences")
        idx = np.memmap(idx_path, dtype=np.uint8, mode="r") if size else None
        off = _HEADER.size
        self.lengths = np.frombuffer(idx, dtype="<i4", count=n_seq, offset=off)
        off += 4 * n_seq
        self.pointers = np.frombuffer(idx, dtype="<i8", count=n_seq, offset=off)
        off += 8 * n_seq
        self.document_indices = np.frombuffer(idx, dtype="<i8", count=n_doc, offset=off)
        self.bin_bytes = os.path.getsize(bin_path)
        self._bin = (np.memmap(bin_path, dtype=self.dtype.newbyteorder("<"), mode="r")
                     if self.bin_bytes else np.zeros(0, dtype=self.dtype))

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._bin[start:start + int(self.lengths[i])]

    @property
    def tokens(self) -> np.ndarray:
        """The whole token array (memory-mapped)."""
        return self._bin

    def problems(self) -> list[str]:
        """Structural checks: sizes, pointers and document indices agree; empty list when the pair is sound."""
        out = []
        total = int(self.lengths.astype(np.int64).sum())
        if self.bin_bytes != total * self.dtype.itemsize:
            out.append(f"{self.prefix}.bin: {self.bin_bytes} bytes, index says {total * self.dtype.itemsize}")
        expect_ptr = np.zeros(len(self), dtype=np.int64)
        if len(self) > 1:
            np.cumsum(self.lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=expect_ptr[1:])
        if not np.array_equal(expect_ptr, self.pointers):
            out.append(f"{self.prefix}.idx: sequence pointers are not the running sum of lengths")
        if self.document_indices.size == 0 or self.document_indices[0] != 0 or \
                self.document_indices[-1] != len(self):
            out.append(f"{self.prefix}.idx: document indices do not cover the sequences")
        return out
