"""LSH banding: how many bands of how many rows, the S-curve of that choice, and compact 64-bit band keys."""

from __future__ import annotations

import numpy as np

from curate.dedup.minhash import fmix64

_FOLD = np.uint64(0xC2B2AE3D27D4EB4F)


def choose_bands(candidate_threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) from datasketch's parameter search (equal false-positive and false-negative weights)."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(candidate_threshold, num_perm, 0.5, 0.5)
    return int(bands), int(rows)


def candidate_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """Chance that a pair with Jaccard `s` shares at least one band: 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def s_curve(bands: int, rows: int, step: float = 0.05) -> list[dict[str, float]]:
    """The S-curve as points {similarity, probability} from 0 to 1, for stats.json and the report's plot."""
    xs = np.round(np.arange(0.0, 1.0 + step / 2, step), 4)
    return [{"similarity": float(s), "probability": round(float(candidate_probability(s, bands, rows)), 6)}
            for s in xs]


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) int64 keys: each band's `rows` signature values folded into one 64-bit hash.

    A 64-bit key collides by chance about once in 2^64 pairs; verification against the full signature catches it."""
    n = sig.shape[0]
    block = sig[:, : bands * rows].reshape(n, bands, rows)
    key = block[:, :, 0].copy()
    for j in range(1, rows):
        key *= _FOLD
        key += block[:, :, j]
    return fmix64(key).view(np.int64)
