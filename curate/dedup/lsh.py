"""LSH banding: how many bands of how many rows, the S-curve of that choice, and compact 64-bit band keys."""

from __future__ import annotations

import numpy as np

from curate.dedup.minhash import fmix64

_FOLD = np.uint64(0xC2B2AE3D27D4EB4F)


def choose_bands(candidate_threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) by datasketch's parameter search (`datasketch.lsh._optimal_param`, equal false-positive and
    false-negative weights): the (b, r) with b * r <= num_perm that minimizes the area under the S-curve below the
    threshold plus the area above it beyond. Written out here because importing datasketch.lsh loads
    scipy.integrate, 0.7 s of every dedup and tokenize driver; the integrands are polynomials of degree
    b * r <= num_perm, so Gauss-Legendre quadrature with num_perm // 2 + 1 nodes gives their integrals exactly, where
    datasketch calls scipy's quad. The test checks the choice equals datasketch's."""
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    t = float(candidate_threshold)
    below, w_below = t * (x + 1) / 2, w * t / 2  # nodes and weights on [0, t]
    above, w_above = t + (1 - t) * (x + 1) / 2, w * (1 - t) / 2  # on [t, 1]
    best, choice = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1, dtype=np.float64)[:, None]
        false_pos = (1.0 - (1.0 - below ** r) ** b) @ w_below
        false_neg = ((1.0 - above ** r) ** b) @ w_above
        error = 0.5 * false_pos + 0.5 * false_neg
        k = int(np.argmin(error))  # the first of equal errors, as datasketch's strict `<` keeps
        if error[k] < best:
            best, choice = float(error[k]), (b, k + 1)
    return choice


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
