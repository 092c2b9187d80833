"""The cache of proxy runs that RegMix and the ladder share: one JSON file per run, keyed by what changes its result.

A key hashes the data fingerprint (datasets.json and the bytes of every shard the run reads), the domains, the
mixture (floats written exactly: json uses repr, which round-trips), the proxy's settings and the seed. Adding a
mixture, a seed or a rung trains only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def data_fingerprint(data_dir: str | os.PathLike, splits: tuple[str, ...] = ("train", "valid")) -> str:
    """xxh3-128 over datasets.json and the size and bytes of every shard of `splits` (what proxy runs read)."""
    import xxhash

    root = Path(data_dir)
    meta_bytes = (root / "datasets.json").read_bytes()
    h = xxhash.xxh3_128()
    h.update(meta_bytes)
    meta = json.loads(meta_bytes)
    for split in splits:
        for domain, entry in sorted(meta["splits"].get(split, {}).items()):
            for prefix in entry["prefixes"]:
                for ext in (".idx", ".bin"):
                    path = root / (prefix + ext)
                    h.update(f"{split}/{domain}/{prefix}{ext}:{path.stat().st_size}\n".encode())
                    with open(path, "rb") as f:
                        while chunk := f.read(1 << 24):
                            h.update(chunk)
    return h.hexdigest()


def run_key(fingerprint: str, domains: list[str], mixture: np.ndarray, proxy: dict, seed: int) -> str:
    """The cache key of one proxy run."""
    doc = {"version": CACHE_VERSION, "data": fingerprint, "domains": domains,
           "mixture": [float(v) for v in mixture], "proxy": proxy, "seed": seed}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class RunCache:
    """One JSON file per proxy run under `root`, written atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:  # a torn file from a crash before the rename existed: retrain
            return None

    def put(self, key: str, record: dict) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(record, sort_keys=True))
        tmp.replace(p)
