"""The DATA reader, the mixture sampler and the fixed evaluation windows."""

import numpy as np
import pytest
import torch

from proxy_training.data import (
    DataError,
    DomainStream,
    MixtureSampler,
    TokenDatasets,
    evaluation_windows,
    stratified_counts,
    write_token_datasets,
)

VOCAB = 300


def make_data(path, domains=("a", "b", "c"), docs=20, doc_len=50, split_ranges=True):
    """Each (split, domain) uses its own token range, so a window shows where it came from; with
    split_ranges=False the splits of a domain share its range (held-out data that training helps)."""
    rng = np.random.default_rng(0)
    documents = {}
    for s, split in enumerate(("train", "valid", "test")):
        for d, dom in enumerate(domains):
            base = 1 + 90 * d + (30 * s if split_ranges else 0)
            documents.setdefault(split, {})[dom] = [
                list(rng.integers(base, base + 30, doc_len)) + [0] for _ in range(docs)
            ]
    return write_token_datasets(path, documents, vocab_size=VOCAB, eos_id=0)


def token_range(split, d):
    base = 1 + 90 * d + 30 * ("train", "valid", "test").index(split)
    return base, base + 30


def test_data_reads_domains_and_tokens_from_datasets_json(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    assert data.domains == ["a", "b", "c"] and data.vocab_size == VOCAB
    assert data.token_counts("train").tolist() == [20 * 51] * 3
    assert data.weights_vector({"a": 2, "b": 2}).tolist() == [0.5, 0.5, 0.0]
    with pytest.raises(DataError, match="not in the data"):
        data.weights_vector({"zzz": 1})


def test_domain_stream_window_reads_across_parts():
    stream = DomainStream([np.arange(0, 5), np.arange(5, 7), np.arange(7, 20)])
    assert stream.window(3, 6).tolist() == [3, 4, 5, 6, 7, 8]
    assert stream.window(14, 6).tolist() == list(range(14, 20))


def test_sampler_is_reproducible_by_seed_and_step(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    s1 = MixtureSampler(data.streams("train"), [0.2, 0.3, 0.5], batch_size=8, seq_len=16, seed=3)
    s2 = MixtureSampler(data.streams("train"), [0.2, 0.3, 0.5], batch_size=8, seq_len=16, seed=3)
    other = MixtureSampler(data.streams("train"), [0.2, 0.3, 0.5], batch_size=8, seq_len=16, seed=4)
    b5 = s1.batch(5)
    s1.batch(0)  # order of calls does not matter: a batch is a function of (seed, step)
    assert np.array_equal(s1.batch(5).x, b5.x) and np.array_equal(s2.batch(5).x, b5.x)
    assert not np.array_equal(other.batch(5).x, b5.x)
    assert np.array_equal(b5.x[:, 1:], b5.y[:, :-1])


def test_sampler_windows_come_from_the_drawn_domain_and_follow_weights(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    s = MixtureSampler(data.streams("train"), [0.25, 0.0, 0.75], batch_size=64, seq_len=16, seed=0)
    ids = []
    for step in range(20):
        b = s.batch(step)
        for x, d in zip(b.x.numpy(), b.domain_ids.numpy()):
            lo, hi = token_range("train", d)
            assert np.all((x == 0) | ((x >= lo) & (x < hi)))
        ids.append(b.domain_ids.numpy())
    freq = np.bincount(np.concatenate(ids), minlength=3) / (20 * 64)
    assert freq[1] == 0
    assert abs(freq[0] - 0.25) < 0.05 and abs(freq[2] - 0.75) < 0.05


def test_stratified_batches_hold_every_domain_in_proportion(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    s = MixtureSampler(data.streams("train"), [0.5, 0.25, 0.25], batch_size=8, seq_len=16, seed=0, stratified=True)
    for step in range(5):
        assert np.bincount(s.batch(step).domain_ids.numpy(), minlength=3).tolist() == [4, 2, 2]
    # A tiny weight still gets one sequence per batch: every domain is in every batch.
    assert stratified_counts(np.array([0.9, 0.09, 0.01]), 10).tolist() == [8, 1, 1]
    with pytest.raises(DataError):
        stratified_counts(np.array([0.5, 0.25, 0.25]), 2)


def test_evaluation_windows_are_fixed_and_from_the_valid_split(tmp_path):
    path = make_data(tmp_path / "DATA")
    w1 = evaluation_windows(TokenDatasets(path), "valid", seq_len=16, per_domain=8)
    w2 = evaluation_windows(TokenDatasets(path), "valid", seq_len=16, per_domain=8)
    assert np.array_equal(w1.x, w2.x) and np.array_equal(w1.y, w2.y)
    assert np.bincount(w1.domain_ids.numpy()).tolist() == [8, 8, 8]
    for x, d in zip(w1.x.numpy(), w1.domain_ids.numpy()):
        lo, hi = token_range("valid", d)
        assert np.all((x == 0) | ((x >= lo) & (x < hi)))
    # Non-overlapping: 8 windows of a domain hold 8 * 17 distinct stream positions.
    stream = TokenDatasets(path).stream("valid", "a")
    starts = [np.flatnonzero([np.array_equal(stream.window(i, 16), x) for i in range(len(stream) - 16)])[0]
              for x in w1.x.numpy()[:8]]
    assert all(b - a >= 16 for a, b in zip(starts, starts[1:]))


def test_a_domain_shorter_than_a_window_is_read_around(tmp_path):
    # Five tokens, windows of 17: each window is the domain repeated from some offset (more epochs over it), and the
    # other domain's windows are drawn as before.
    rng = np.random.default_rng(0)
    long = rng.integers(0, 300, 400).tolist()
    data = TokenDatasets(write_token_datasets(tmp_path / "D", {"train": {"a": [long], "b": [[7, 8, 9, 10, 11]]}}, 300))
    sampler = MixtureSampler(data.streams("train"), [1, 1], batch_size=32, seq_len=16, seed=3)
    b = sampler.batch(0)
    rows = torch.cat([b.x, b.y[:, -1:]], dim=1)
    short = rows[b.domain_ids == 1]
    assert len(short) > 0 and len(short) < 32
    for r in short.tolist():
        k = [7, 8, 9, 10, 11].index(r[0])
        assert r == [[7, 8, 9, 10, 11][(k + i) % 5] for i in range(17)]
    stream = np.array(long)
    for r in rows[b.domain_ids == 0].tolist():
        assert any((stream[s:s + 17] == r).all() for s in range(400 - 16))
    assert torch.equal(sampler.batch(0).x, b.x)
