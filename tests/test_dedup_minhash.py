"""MinHash pieces without Spark: exact modular permutations, normalization like datatrove, estimates vs exact Jaccard."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from curate.config import validate_config
from curate.dedup.config import DedupConfig
from curate.dedup.lsh import band_keys, candidate_probability, choose_bands
from curate.dedup.minhash import (MERSENNE_61, distinct_shingles, exact_jaccards, permutations, shingle_hashes,
                                  shingle_sets, signatures)
from curate.dedup.normalize import normalize, normalize_texts, words
from curate.errors import CurateError


def test_signatures_are_minima_of_exact_affine_maps_mod_mersenne_61():
    p = (1 << 61) - 1
    a, b = permutations(32, seed=7)
    rnd = random.Random(0)
    x = np.array([0, 1, p - 1, p - 2, 2**60, 2**61 - 1] + [rnd.getrandbits(61) for _ in range(300)], dtype=np.uint64)
    doc = np.sort(np.array([rnd.randrange(7) for _ in range(len(x))], dtype=np.int64))  # doc 7 has no shingles
    # Extreme slopes and offsets too: a = 1 and 2^32 - 1, b = 0 and p - 1.
    a = np.concatenate([a, np.array([1, 2**32 - 1, 2**32 - 1], dtype=np.uint64)])
    b = np.concatenate([b, np.array([0, p - 1, 0], dtype=np.uint64)])
    sig = signatures(x, doc, 8, a, b)
    for d in range(8):
        members = [int(v) for v, dd in zip(x, doc) if dd == d]
        for j in range(len(a)):
            got = int(sig[d, j])
            if not members:
                assert got == 2**64 - 1
                continue
            want = min((int(a[j]) * v + int(b[j])) % p for v in members)
            assert got == want or (want <= 2 and got == want + p)
    with pytest.raises(ValueError):
        signatures(x, doc, 8, np.array([2**32], dtype=np.uint64), np.array([0], dtype=np.uint64))


def test_shingle_sets_and_batched_exact_jaccard_agree_with_set_arithmetic():
    rnd = random.Random(5)
    texts = [" ".join(rnd.choice("abcdef") for _ in range(rnd.randint(0, 40))) for _ in range(200)]
    x, doc = shingle_hashes(normalize_texts(pa.array(texts, pa.string())), 3)
    flat, offsets = distinct_shingles(x, doc, len(texts))
    sets = [set(x[doc == i].tolist()) for i in range(len(texts))]
    for i, s in enumerate(sets):
        assert flat[offsets[i]: offsets[i + 1]].tolist() == sorted(s)
    pairs = [(rnd.randrange(200), rnd.randrange(200)) for _ in range(500)] + [(0, 0)]
    got = exact_jaccards(np.concatenate([flat[offsets[i]: offsets[i + 1]] for i, _ in pairs]),
                         np.r_[0, np.cumsum([offsets[i + 1] - offsets[i] for i, _ in pairs])],
                         np.concatenate([flat[offsets[j]: offsets[j + 1]] for _, j in pairs]),
                         np.r_[0, np.cumsum([offsets[j + 1] - offsets[j] for _, j in pairs])])
    for k, (i, j) in enumerate(pairs):
        union = len(sets[i] | sets[j])
        want = len(sets[i] & sets[j]) / union if union else 0.0
        assert got[k] == pytest.approx(want, abs=1e-15)


def test_permutations_are_seeded():
    assert np.array_equal(permutations(16, 1)[0], permutations(16, 1)[0])
    assert not np.array_equal(permutations(16, 1)[0], permutations(16, 2)[0])
    a, b = permutations(64, 3)
    assert (a >= 1).all() and (a < 2**32).all() and (b < MERSENNE_61).all()


@pytest.mark.parametrize("text", [
    "Hello, World!  It's 3.14 o'clock -- naïve café.",
    "Numbers 1,000 and 42 in a row: 7 8 9.",
    "Ünïcödé àccents; and—dashes… “quotes”",
])
def test_normalization_gives_datatrove_words(text):
    from datatrove.utils.text import simplify_text

    assert normalize(text).split() == simplify_text(text).split()


def test_empty_and_one_word_texts_have_documented_shingles():
    norm = normalize_texts(pa.array(["!!!", "Hello", "one two three", "a b c d e f"], pa.string()))
    x, doc = shingle_hashes(norm, 5)
    # no words -> no shingle; fewer words than n -> one shingle of all words; 6 words -> 2 five-grams
    assert np.bincount(doc, minlength=4).tolist() == [0, 1, 1, 2]
    assert words("!!!") == []


def test_signature_agreement_estimates_exact_jaccard():
    rnd = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    base = [rnd.choice(vocab) for _ in range(400)]
    texts = [" ".join(base)]
    for k in (5, 15, 40, 80):
        other = list(base)
        for pos in range(0, 400, 400 // k):
            other[pos] = rnd.choice(vocab)
        texts.append(" ".join(other))
    norm = normalize_texts(pa.array(texts, pa.string()))
    x, doc = shingle_hashes(norm, 5)
    a, b = permutations(256, 1)
    sig = signatures(x, doc, len(texts), a, b)
    sets = shingle_sets(x, doc, len(texts))
    for i in range(1, len(texts)):
        s0, si = set(sets[0].tolist()), set(sets[i].tolist())
        exact = len(s0 & si) / len(s0 | si)
        est = float((sig[0] == sig[i]).mean())
        assert abs(est - exact) < 0.1, (i, exact, est)


def test_signatures_do_not_depend_on_batch_composition():
    texts = ["the quick brown fox jumps over the lazy dog again and again", "lorem ipsum dolor sit amet " * 5]
    a, b = permutations(64, 1)
    both = shingle_hashes(normalize_texts(pa.array(texts)), 5)
    alone = shingle_hashes(normalize_texts(pa.array(texts[1:])), 5)
    sig_both = signatures(*both, 2, a, b)
    sig_alone = signatures(*alone, 1, a, b)
    assert np.array_equal(sig_both[1], sig_alone[0])
    assert np.array_equal(band_keys(sig_both, 8, 8)[1], band_keys(sig_alone, 8, 8)[0])


def test_band_search_centres_the_s_curve_below_the_threshold():
    cfg = DedupConfig()
    bands, rows = cfg.lsh_params()
    assert (bands, rows) == choose_bands(0.6, 128)
    assert bands * rows <= 128
    assert candidate_probability(0.8, bands, rows) > 0.98
    assert candidate_probability(0.3, bands, rows) < 0.01


def test_bands_without_rows_is_a_config_error():
    with pytest.raises(CurateError, match="bands and rows"):
        validate_config(DedupConfig, {"bands": 10}, "command line")
    with pytest.raises(CurateError, match="more than num_perm"):
        validate_config(DedupConfig, {"bands": 20, "rows": 10, "num_perm": 128}, "command line")


def test_features_of_text_slices_equal_features_of_the_whole_batch():
    from curate.dedup.features import batch_features, text_slices

    rnd = random.Random(9)
    texts = [" ".join(rnd.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rnd.randint(0, 60)))
             for _ in range(40)] + [None, "x" * 500]
    batch = pa.RecordBatch.from_pydict({"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    slices = list(text_slices(batch, 300))
    sizes = [sum(len((t or "").encode()) for t in s.column("text").to_pylist()) for s in slices]
    assert sum(s.num_rows for s in slices) == batch.num_rows and len(slices) > 5
    assert all(size <= 300 or s.num_rows == 1 for size, s in zip(sizes, slices))
    a, b = permutations(64, 1)
    for exact in (False, True):
        whole = pa.Table.from_batches([batch_features(batch, 5, a, b, 8, 8, exact)])
        parts = pa.Table.from_batches([batch_features(s, 5, a, b, 8, 8, exact) for s in slices])
        assert whole.equals(parts)


def test_xxh64_kernel_equals_xxhash_package():
    import numba
    import xxhash

    from curate.dedup.xxh64 import xxh64

    @numba.njit
    def prefixes(buf, seed):
        out = np.empty(buf.shape[0] + 1, np.uint64)
        for k in range(buf.shape[0] + 1):
            out[k] = xxh64(buf, 0, k, seed)
        return out

    raw = bytes(random.Random(4).getrandbits(8) for _ in range(100))
    for seed in (0, 0x5EED):
        got = prefixes(np.frombuffer(raw, np.uint8), np.uint64(seed))
        assert [int(h) for h in got] == [xxhash.xxh64_intdigest(raw[:k], seed) for k in range(101)]


def test_one_pass_scan_equals_arrow_normalization_and_word_hashes():
    import xxhash

    from curate.dedup.minhash import _WORD_SEED
    from curate.dedup.normalize import scan_texts, split_words

    # ASCII with numbers and separators, accents, lone combining marks next to separators, non-ASCII digits and
    # decimal separators, Unicode spaces, case mappings that change length or leave ASCII, emoji.
    alphabet = list("abcXYZ019 .,;-_!\t\n'\"()#") + [
        "é", "É", "\u0301", "\u0308", "—", "…", "“", "٣", "٫", "\u212a", "\u037e", "\u00a0", "\u2000", "ß", "İ", "Σ",
        "\u3000", "①", "½", "²", "ǅ", "ﬁ", "\u200b", "\u0085", "\U0001d7d9", "\U0001f642", "\U0001d165", "ا", "\u0670"]
    rnd = random.Random(1)
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30))) for _ in range(5000)]
    texts += [None, "", " ", "1.2.3", "1,234,567.89", "a.b", "é.1", "1.é", "x \u0301 y", "\u0301 x", "x —\u0301abc",
              "x \u0301—abc"]
    arr = pa.array(texts, pa.string())
    norm = normalize_texts(arr)
    flat_words, word_offsets = split_words(norm)
    out, out_offsets, hashes, hash_offsets = scan_texts(arr, _WORD_SEED)
    for i in range(len(texts)):
        assert bytes(out[out_offsets[i]: out_offsets[i + 1]]).decode() == (norm[i].as_py() or ""), repr(texts[i])
    assert np.array_equal(hash_offsets, word_offsets)
    assert hashes.tolist() == [xxhash.xxh64_intdigest(w, _WORD_SEED) for w in flat_words.to_pylist()]


def test_the_band_search_chooses_what_datasketch_chooses():
    # Our quadrature is exact for the S-curve's polynomials; datasketch integrates them with scipy's quad.
    from datasketch.lsh import _optimal_param

    for num_perm in (32, 112, 128):
        for t in (0.05, 0.2, 0.3, 0.45, 0.5, 0.6, 0.75, 0.9):
            assert choose_bands(t, num_perm) == tuple(_optimal_param(t, num_perm, 0.5, 0.5)), (t, num_perm)
