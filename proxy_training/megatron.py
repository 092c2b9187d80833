"""Megatron indexed datasets (MMIDIDX v1): the one writer and reader of `.bin/.idx` pairs (numpy only).

`curate tokenize`, `curate shards` and the proxy trainer all read and write through this module. A dataset is a pair
of files sharing a prefix. `PREFIX.bin` is the raw little-endian token array (no header); `PREFIX.idx` is:

    9 bytes  magic b"MMIDIDX\\x00\\x00"
    8 bytes  <Q version = 1
    1 byte   <B dtype code (1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16)
    8 bytes  <Q sequence count S
    8 bytes  <Q document count D (= documents + 1)
    4*S      int32 sequence lengths
    8*S      int64 sequence pointers (byte offsets into .bin)
    8*D      int64 document indices (0, then the running sequence count after each document)

Here one document is one sequence, as Megatron's own preprocessing writes them.

    with MMIDIDXWriter("out/train/web/part-00000", token_dtype(vocab_size)) as w:
        w.add_document([5, 6, 7, eos])
    ds = MMIDIDXDataset("out/train/web/part-00000")
    ds[0], ds.tokens  # one document; every token of the file as one memory-mapped array

The writer streams tokens to `PREFIX.bin.tmp`, fsyncs, checks that the file holds exactly sum(lengths) * itemsize
bytes, writes `PREFIX.idx.tmp`, then renames `.bin` and `.idx` last: a present `.idx` always sits beside a complete
`.bin`, and a killed run leaves only `*.tmp` files.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

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


class FormatError(ValueError):
    """A `.bin/.idx` pair that is missing, malformed or does not agree with itself (one readable line)."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The token dtype Megatron picks for a vocabulary: uint16 below 65,500 ids, int32 otherwise."""
    return np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.int32)


def max_token_id(dtype: np.dtype) -> int:
    """The largest token id a dtype holds."""
    return int(np.iinfo(np.dtype(dtype)).max)


def encode_index(dtype: np.dtype, lengths: np.ndarray) -> bytes:
    """The `.idx` bytes for documents of the given lengths (one sequence per document)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
        raise FormatError("a document length does not fit the int32 length field of a Megatron index")
    n = int(lengths.size)
    # int64 pointers: a file past 2 GiB must not overflow them.
    pointers = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lengths[:-1] * np.dtype(dtype).itemsize, out=pointers[1:])
    doc_index = np.arange(n + 1, dtype=np.int64)
    header = _HEADER.pack(MAGIC, VERSION, DTYPE_CODES[np.dtype(dtype)], n, n + 1)
    return b"".join([header, lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     doc_index.astype("<i8").tobytes()])


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


class MMIDIDXWriter:
    """Write one `.bin`/`.idx` pair at `prefix`, documents appended in order; `close()` publishes it atomically.

    Holds only the document lengths in memory (the size of the `.idx` it will write). As a context manager, an
    exception inside the block removes the temporary files.
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype | str = np.uint16):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPE_CODES:
            raise FormatError(f"dtype {self.dtype} has no MMIDIDX code")
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.bin_tmp = Path(f"{self.prefix}.bin.tmp")
        self.idx_tmp = Path(f"{self.prefix}.idx.tmp")
        self._bin = open(self.bin_tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._lengths: list[np.ndarray] = []
        self.docs = 0
        self.tokens = 0

    def add_document(self, tokens) -> None:
        """Append one document (a sequence of token ids); ids that do not fit the dtype are an error, never wrapped."""
        arr = np.asarray(tokens)
        if arr.size and np.issubdtype(arr.dtype, np.integer) and np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            if int(arr.min()) < info.min or int(arr.max()) > info.max:
                raise FormatError(f"token id out of range for {self.dtype}: [{arr.min()}, {arr.max()}]")
        arr = np.ascontiguousarray(arr, dtype=self.dtype.newbyteorder("<"))
        self._bin.write(arr.data)
        self.add_lengths(np.array([arr.size], dtype=np.int64))

    def write_raw(self, data: bytes | memoryview) -> None:
        """Stream token bytes; pair with `add_lengths` for the documents they hold (checked at `close`)."""
        self._bin.write(data)

    def add_lengths(self, lengths: np.ndarray) -> None:
        """Record documents of these lengths, their tokens written by `write_raw`."""
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
            raise FormatError(f"{self.bin_tmp}: {actual} bytes written, expected {expected} (sum(lengths) x itemsize)")
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

    def __enter__(self) -> MMIDIDXWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_documents(prefix: str | os.PathLike, documents, dtype: np.dtype | str = np.uint16) -> int:
    """Write an iterable of token sequences as one MMIDIDX dataset; returns the number of tokens written."""
    with MMIDIDXWriter(prefix, dtype) as w:
        for doc in documents:
            w.add_document(doc)
    return w.tokens


def _memmap(path: str, dtype: np.dtype, offset: int, count: int) -> np.ndarray:
    # np.memmap refuses empty files and empty ranges; an empty dataset is still a valid dataset.
    if count == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))


class MMIDIDXDataset:
    """Memory-mapped reader of one `PREFIX.bin/.idx` pair: `len(ds)` documents, `ds[i]` a numpy array of token ids.

    Opening checks the header and the `.idx` size; with `verify=True` (the default) it also raises on the first of
    `problems()`, so a truncated `.bin` never reads as data. `verify=False` leaves the report to `problems()`.
    """

    def __init__(self, prefix: str | os.PathLike, verify: bool = True):
        self.prefix = Path(prefix)
        idx_path, bin_path = f"{self.prefix}.idx", f"{self.prefix}.bin"
        if not os.path.exists(idx_path) or not os.path.exists(bin_path):
            raise FormatError(f"{self.prefix}: missing .bin or .idx")
        n_seq, n_doc = self._read_header(idx_path)
        off = _HEADER.size
        self.lengths = _memmap(idx_path, np.dtype("<i4"), off, n_seq)
        off += 4 * n_seq
        self.pointers = _memmap(idx_path, np.dtype("<i8"), off, n_seq)
        off += 8 * n_seq
        self.document_indices = _memmap(idx_path, np.dtype("<i8"), off, n_doc)
        self.num_tokens = int(self.lengths.sum(dtype=np.int64))
        self.bin_bytes = os.path.getsize(bin_path)
        # Every sequence is contiguous in .bin, so one flat memmap serves both documents and windows.
        whole = self.bin_bytes // self.dtype.itemsize
        self.tokens = _memmap(bin_path, self.dtype.newbyteorder("<"), 0, whole)
        if verify:
            problems = self.problems()
            if problems:
                raise FormatError(problems[0])

    def _read_header(self, idx_path: str) -> tuple[int, int]:
        with open(idx_path, "rb") as f:
            head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise FormatError(f"{idx_path}: truncated header")
        magic, version, code, n_seq, n_doc = _HEADER.unpack(head)
        if magic != MAGIC or version != VERSION:
            raise FormatError(f"{idx_path}: not a Megatron MMIDIDX v1 index")
        if code not in CODE_DTYPES:
            raise FormatError(f"{idx_path}: unknown dtype code {code}")
        self.dtype = CODE_DTYPES[code]
        expected = _HEADER.size + 4 * n_seq + 8 * n_seq + 8 * n_doc
        size = os.path.getsize(idx_path)
        if size != expected:
            raise FormatError(f"{idx_path}: {size} bytes, expected {expected} for {n_seq} sequences")
        return n_seq, n_doc

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self.tokens[start:start + int(self.lengths[i])]

    def problems(self) -> list[str]:
        """Structural checks: sizes, pointers and document indices agree; empty list when the pair is sound."""
        out = []
        if self.bin_bytes != self.num_tokens * self.dtype.itemsize:
            out.append(f"{self.prefix}.bin: {self.bin_bytes} bytes, the index says "
                       f"{self.num_tokens * self.dtype.itemsize} (size does not match: corrupt or truncated)")
        expect_ptr = np.zeros(len(self), dtype=np.int64)
        if len(self) > 1:
            np.cumsum(self.lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=expect_ptr[1:])
        if not np.array_equal(expect_ptr, self.pointers):
            out.append(f"{self.prefix}.idx: sequence pointers are not the running sum of lengths")
        if self.document_indices.size == 0 or self.document_indices[0] != 0 or \
                self.document_indices[-1] != len(self):
            out.append(f"{self.prefix}.idx: document indices do not cover the sequences")
        return out
