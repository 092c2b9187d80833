"""Megatron indexed datasets (MMIDIDX v1): a tiny, dependency-free writer and a memory-mapped reader.

A dataset is a pair of files sharing a prefix. `PREFIX.bin` is the raw little-endian token array (no header);
`PREFIX.idx` is:

    9 bytes  magic b"MMIDIDX\\x00\\x00"
    8 bytes  <Q version = 1
    1 byte   <B dtype code (1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16)
    8 bytes  <Q sequence count S
    8 bytes  <Q document count D (= documents + 1)
    4*S      int32 sequence lengths
    8*S      int64 sequence pointers (byte offsets into .bin)
    8*D      int64 document indices (0, then the running sequence count after each document)

Here one document is one sequence, as `curate tokenize` and Megatron's own preprocessing write them.

    with MMIDIDXWriter("out/train/web/part-00000", dtype=token_dtype(vocab_size)) as w:
        w.add_document([5, 6, 7, eos])
    ds = MMIDIDXDataset("out/train/web/part-00000")
    ds[0], ds.tokens  # one document; every token of the file as one memory-mapped array
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    6: np.dtype(np.float64),
    7: np.dtype(np.float32),
    8: np.dtype(np.uint16),
}
CODE_OF_DTYPE = {dtype: code for code, dtype in DTYPE_CODES.items()}
_HEADER = struct.Struct("<9sQBQQ")


def token_dtype(vocab_size: int) -> np.dtype:
    """The token dtype Megatron picks for a vocabulary: uint16 below 65,500 ids, int32 otherwise."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


class MMIDIDXWriter:
    """Write documents to `PREFIX.bin/.idx` atomically: temporary names, fsync, `.idx` renamed last."""

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype | str = np.uint16):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in CODE_OF_DTYPE:
            raise ValueError(f"dtype {self.dtype} has no MMIDIDX code")
        self._lengths: list[int] = []
        self._bin = None

    def __enter__(self) -> "MMIDIDXWriter":
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._bin = open(self._tmp(".bin"), "wb")
        return self

    def _tmp(self, suffix: str) -> Path:
        return self.prefix.with_name(self.prefix.name + suffix + ".tmp")

    def add_document(self, tokens) -> None:
        """Append one document (a sequence of token ids); ids that do not fit the dtype are an error, never wrapped."""
        arr = np.asarray(tokens)
        if arr.size and np.issubdtype(arr.dtype, np.integer) and np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            if int(arr.min()) < info.min or int(arr.max()) > info.max:
                raise ValueError(f"token id out of range for {self.dtype}: [{arr.min()}, {arr.max()}]")
        self._bin.write(arr.astype(self.dtype, copy=False).tobytes(order="C"))
        self._lengths.append(int(arr.size))

    def __exit__(self, exc_type, exc, tb) -> None:
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._bin.close()
        if exc_type is not None:
            os.unlink(self._tmp(".bin"))
            return
        lengths = np.asarray(self._lengths, dtype=np.int32)
        # int64 pointers: a shard past 2 GiB must not overflow (a known Megatron-format pitfall).
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        doc_idx = np.arange(len(lengths) + 1, dtype=np.int64)
        with open(self._tmp(".idx"), "wb") as f:
            f.write(_HEADER.pack(MAGIC, VERSION, CODE_OF_DTYPE[self.dtype], len(lengths), len(doc_idx)))
            f.write(lengths.tobytes())
            f.write(pointers.tobytes())
            f.write(doc_idx.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(self._tmp(".bin"), self.prefix.with_name(self.prefix.name + ".bin"))
        os.replace(self._tmp(".idx"), self.prefix.with_name(self.prefix.name + ".idx"))


def write_documents(prefix: str | os.PathLike, documents, dtype: np.dtype | str = np.uint16) -> int:
    """Write an iterable of token sequences as one MMIDIDX dataset; returns the number of tokens written."""
    total = 0
    with MMIDIDXWriter(prefix, dtype) as w:
        for doc in documents:
            w.add_document(doc)
            total += len(doc)
    return total


def _memmap(path: Path, dtype: np.dtype, offset: int = 0, count: int | None = None) -> np.ndarray:
    # np.memmap refuses empty files and empty ranges; an empty dataset is still a valid dataset.
    if count == 0 or path.stat().st_size - offset <= 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,) if count is not None else None)


class MMIDIDXDataset:
    """Memory-mapped reader of one `PREFIX.bin/.idx` pair; validates the header and the `.bin` size."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = Path(prefix)
        idx_path = self.prefix.with_name(self.prefix.name + ".idx")
        bin_path = self.prefix.with_name(self.prefix.name + ".bin")
        with open(idx_path, "rb") as f:
            head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise ValueError(f"{idx_path}: truncated header")
        magic, version, code, n_seq, n_doc = _HEADER.unpack(head)
        if magic != MAGIC or version != VERSION:
            raise ValueError(f"{idx_path}: not an MMIDIDX v1 index")
        if code not in DTYPE_CODES:
            raise ValueError(f"{idx_path}: unknown dtype code {code}")
        self.dtype = DTYPE_CODES[code]
        off = _HEADER.size
        self.lengths = _memmap(idx_path, np.int32, off, n_seq)
        off += 4 * n_seq
        self.pointers = _memmap(idx_path, np.int64, off, n_seq)
        off += 8 * n_seq
        self.document_indices = _memmap(idx_path, np.int64, off, n_doc)
        if n_doc == 0 or int(self.document_indices[-1]) != n_seq:
            raise ValueError(f"{idx_path}: document indices do not end at the sequence count")
        self.num_tokens = int(self.lengths.sum(dtype=np.int64))
        if bin_path.stat().st_size != self.num_tokens * self.dtype.itemsize:
            raise ValueError(f"{bin_path}: size does not match the index (corrupt or truncated shard)")
        # All sequences are contiguous in .bin, so one flat memmap serves both documents and windows.
        self.tokens = _memmap(bin_path, self.dtype, 0, self.num_tokens)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.lengths[i])]
