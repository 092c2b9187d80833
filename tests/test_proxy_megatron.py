"""Megatron MMIDIDX v1: our writer's bytes, our reader, and megatron-core's own reader agree."""

import struct

import numpy as np
import pytest

from proxy_training.megatron import MMIDIDXDataset, token_dtype, write_documents

DOCS = [[1, 2, 3, 0], [7, 0], [9, 9, 9, 9, 9, 0], [4, 0]]


def test_megatron_round_trip_returns_every_document(tmp_path):
    n = write_documents(tmp_path / "part", DOCS, np.uint16)
    ds = MMIDIDXDataset(tmp_path / "part")
    assert n == sum(map(len, DOCS)) == ds.num_tokens
    assert len(ds) == len(DOCS)
    assert [ds[i].tolist() for i in range(len(ds))] == DOCS
    assert ds.tokens.tolist() == sum(DOCS, [])


def test_megatron_idx_bytes_follow_the_v1_layout(tmp_path):
    write_documents(tmp_path / "part", DOCS, np.uint16)
    raw = (tmp_path / "part.idx").read_bytes()
    magic, version, code, n_seq, n_doc = struct.unpack("<9sQBQQ", raw[:34])
    assert (magic, version, code, n_seq, n_doc) == (b"MMIDIDX\x00\x00", 1, 8, 4, 5)
    body = raw[34:]
    lengths = np.frombuffer(body[: 4 * 4], np.int32)
    pointers = np.frombuffer(body[16 : 16 + 8 * 4], np.int64)
    doc_idx = np.frombuffer(body[48:], np.int64)
    assert lengths.tolist() == [4, 2, 6, 2]
    assert pointers.tolist() == [0, 8, 12, 24]  # byte offsets of uint16 tokens
    assert doc_idx.tolist() == [0, 1, 2, 3, 4]
    assert (tmp_path / "part.bin").stat().st_size == 14 * 2


def test_megatron_core_reads_our_files(tmp_path):
    pytest.importorskip("megatron.core")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    write_documents(tmp_path / "part", DOCS, np.int32)
    ds = IndexedDataset(str(tmp_path / "part"))
    assert len(ds) == len(DOCS)
    assert [ds[i].tolist() for i in range(len(DOCS))] == DOCS


def test_megatron_dtype_is_int32_for_large_vocabularies_and_ids_never_wrap(tmp_path):
    assert token_dtype(50_000) == np.uint16 and token_dtype(65_500) == np.int32
    with pytest.raises(ValueError, match="out of range"):
        write_documents(tmp_path / "bad", [[70_000]], np.uint16)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.idx").exists()


def test_megatron_reader_rejects_truncated_bin_and_reads_empty_dataset(tmp_path):
    write_documents(tmp_path / "part", DOCS, np.uint16)
    with open(tmp_path / "part.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(ValueError, match="size does not match"):
        MMIDIDXDataset(tmp_path / "part")
    write_documents(tmp_path / "empty", [], np.uint16)
    empty = MMIDIDXDataset(tmp_path / "empty")
    assert len(empty) == 0 and empty.tokens.size == 0


def test_megatron_module_loads_without_torch_spark_or_curate():
    # tokenize and shards (Spark side) and the proxy trainer (GPU side) share this one module.
    import subprocess
    import sys

    code = ("import sys, proxy_training.megatron; "
            "print(sorted(m for m in ('torch', 'pyspark', 'curate') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
