"""`curate shards verify`: every difference between a shard directory and its manifest, from the directory alone.

A shard directory is checked against what write.py recorded (the manifest's own hash, its keys and types, every
file's size and sha256, each shard's index structure, counts and token ids), so a copied or edited directory can be
trusted, or its problems listed, without the inputs it was drawn from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from curate.shards.write import DATA_PATH_FILE, MANIFEST, MANIFEST_SHA256, manifest_sha256_line
from curate.tokenize.tokenizer import file_sha256
from proxy_training.megatron import DTYPE_CODES, FormatError, MMIDIDXDataset

# Files of a shard directory that the manifest does not list by hash: itself and its hash (it cannot hash itself),
# stats.json (its wall time differs run to run), _SUCCESS, and the _FINGERPRINT the pipeline runner writes after the
# stage (curate.pipeline.FINGERPRINT_FILE; not imported: that module needs Spark).
UNHASHED = {MANIFEST, MANIFEST_SHA256, "stats.json", "_SUCCESS", "_FINGERPRINT"}

_COUNTS = {"docs": int, "tokens": int}
# Every key run_shards writes, with its type: a manifest that lacks one or holds another type is reported, and the
# checks below read only what was checked here.
_MANIFEST_KEYS: dict[str, Any] = {
    "format": str, "curate_version": str, "tokenizer": dict, "dtype": str, "seed": int, "tokens_requested": int,
    "tokens": int, "docs": int, "max_epochs": (int, float), "shard_tokens": int, "weights": dict, "data": dict,
    "paths_relative_to": str, "redistribution": list, "domains": dict, "shards": list, "files": dict,
    "megatron_data_path": str, "shards_data_path": str,
}
_TOKENIZER_KEYS = {"sha256": str, "vocab_size": int, "eos_id": int, "bos_id": (int, type(None)), "dtype": str}
_SHARD_KEYS = {"prefix": str, "docs": int, "tokens": int, "by_domain": dict, "files": dict}
_FILE_KEYS = {"bytes": int, "sha256": str}


def _type_problems(obj: Any, keys: dict[str, Any], where: str) -> list[str]:
    """One line per key of `keys` that `obj` lacks or holds with another type (a bool is not an int here)."""
    if not isinstance(obj, dict):
        return [f"{where}: {type(obj).__name__}, not an object"]
    problems = []
    for key, types in keys.items():
        types = types if isinstance(types, tuple) else (types,)
        if key not in obj:
            problems.append(f"{where}: no {key!r}")
        elif isinstance(obj[key], bool) or not isinstance(obj[key], types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"{where}: {key!r} is {type(obj[key]).__name__}, expected {want}")
    return problems


def _plain_name(name: str) -> bool:
    """A file directly in the shard directory (the manifest never names a path elsewhere)."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _manifest_problems(manifest: Any) -> list[str]:
    """Missing keys, wrong types and impossible names in a manifest; verify checks files only against a sound one."""
    problems = _type_problems(manifest, _MANIFEST_KEYS, MANIFEST)
    if problems:
        return problems
    problems += _type_problems(manifest["tokenizer"], _TOKENIZER_KEYS, f"{MANIFEST} tokenizer")
    try:
        dtype = np.dtype(manifest["dtype"])
    except TypeError:
        dtype = None
    if dtype not in DTYPE_CODES:
        problems.append(f"{MANIFEST}: dtype {manifest['dtype']!r} is not a Megatron token dtype")
    for name, entry in manifest["files"].items():
        if not _plain_name(name):
            problems.append(f"{MANIFEST} files: {name!r} is not a file name in this directory")
        problems += _type_problems(entry, _FILE_KEYS, f"{MANIFEST} files {name}")
    for i, shard in enumerate(manifest["shards"]):
        where = f"{MANIFEST} shard {i}"
        found = _type_problems(shard, _SHARD_KEYS, where)
        problems += found
        if found:
            continue
        if not _plain_name(shard["prefix"]):
            problems.append(f"{where}: prefix {shard['prefix']!r} is not a name in this directory")
        for ext in (".bin", ".idx"):
            if shard["prefix"] + ext not in manifest["files"]:
                problems.append(f"{where}: {shard['prefix'] + ext} is not in the manifest's files")
        for d, counts in shard["by_domain"].items():
            problems += _type_problems(counts, _COUNTS, f"{where} domain {d}")
    for d, counts in manifest["domains"].items():
        problems += _type_problems(counts, _COUNTS, f"{MANIFEST} domain {d}")
    return problems


def _unlisted(root: Path, listed: set[str]) -> list[str]:
    """Every file and directory under `root`, at any depth, that is neither listed nor one of the unhashed files."""
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root)
        dirnames.sort()
        for d in dirnames:
            problems.append(f"{(here / d).as_posix()}/: a directory, not in the manifest")
        for f in sorted(filenames):
            if here != Path(".") or f not in listed | UNHASHED:
                problems.append(f"{(here / f).as_posix()}: not in the manifest")
    return problems


def _seal_problems(root: Path, directory: str) -> list[str]:
    """A run that did not finish (no _SUCCESS), and a manifest edited after it was written (its own hash)."""
    problems = []
    if not (root / "_SUCCESS").exists():
        problems.append(f"{directory}: no _SUCCESS (the run did not finish)")
    sig = root / MANIFEST_SHA256
    if not sig.is_file():
        problems.append(f"{MANIFEST_SHA256}: missing (the manifest's own content cannot be checked)")
    elif sig.read_bytes() != manifest_sha256_line(root).encode():
        problems.append(f"{MANIFEST}: its sha256 differs from {MANIFEST_SHA256} (edited after it was written)")
    return problems


def _file_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Every listed file's presence, size and sha256, and data_path.txt against the manifest's megatron_data_path."""
    problems = []
    for name, want in sorted(manifest["files"].items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != want["bytes"]:
            problems.append(f"{name}: {size} bytes, manifest says {want['bytes']}")
        if file_sha256(path) != want["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest")
    data_path = root / DATA_PATH_FILE
    if data_path.is_file() and data_path.read_bytes() != (manifest["megatron_data_path"] + "\n").encode():
        problems.append(f"{DATA_PATH_FILE}: differs from the manifest's megatron_data_path")
    # The blend names the tokenize output's datasets relative to this directory: a copy or a move of either
    # leaves a data path Megatron cannot open.
    prefixes = manifest["megatron_data_path"].split()[1::2]
    gone = [p for p in prefixes if not all((root / f"{p}{ext}").is_file() for ext in (".bin", ".idx"))]
    if gone:
        problems.append(f"{DATA_PATH_FILE}: {len(gone)} of its {len(prefixes)} datasets are not at their paths "
                        f"(relative to this directory), e.g. {gone[0]}: was the shards directory or the tokenize "
                        f"output moved? (the shards themselves are shards_data_path)")
    return problems


def _shard_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Each shard's index structure, dtype, counts and token ids against the manifest, then every domain's counts
    summed over the shards against the manifest's domains."""
    problems = []
    dtype = np.dtype(manifest["dtype"])
    vocab = manifest["tokenizer"]["vocab_size"]
    by_domain: dict[str, dict[str, int]] = {}
    for s in manifest["shards"]:
        prefix = root / s["prefix"]
        try:
            ds = MMIDIDXDataset(prefix, verify=False)
        except FormatError as exc:
            problems.append(str(exc))
            continue
        if ds.dtype != dtype:
            problems.append(f"{s['prefix']}: dtype {ds.dtype}, manifest says {dtype}")
        problems += ds.problems()
        tokens = int(ds.lengths.astype(np.int64).sum())
        if len(ds) != s["docs"] or tokens != s["tokens"]:
            problems.append(f"{s['prefix']}: {len(ds)} docs / {tokens} tokens, "
                            f"manifest says {s['docs']} / {s['tokens']}")
        if ds.bin_bytes and not ds.problems() and int(ds.tokens.max()) >= vocab:
            problems.append(f"{s['prefix']}: token id {int(ds.tokens.max())} >= vocab_size {vocab}")
        if sum(v["docs"] for v in s["by_domain"].values()) != s["docs"] or \
                sum(v["tokens"] for v in s["by_domain"].values()) != s["tokens"]:
            problems.append(f"{s['prefix']}: per-domain counts do not add up to the shard's")
        for d, v in s["by_domain"].items():
            e = by_domain.setdefault(d, {"docs": 0, "tokens": 0})
            e["docs"] += v["docs"]
            e["tokens"] += v["tokens"]
    for d, v in manifest["domains"].items():
        got = by_domain.get(d, {"docs": 0, "tokens": 0})
        if got["docs"] != v["docs"] or got["tokens"] != v["tokens"]:
            problems.append(f"domain {d}: shards hold {got['docs']} docs / {got['tokens']} tokens, manifest says "
                            f"{v['docs']} / {v['tokens']}")
    return problems


def verify_shards(directory: str) -> list[str]:
    """Every difference between a shard directory and its manifest: the manifest's own hash, its keys and types,
    files not in it (at any depth), file hashes and sizes, index structure, counts and token ids; an empty list when
    all is well."""
    root = Path(directory)
    mpath = root / MANIFEST
    if not mpath.is_file():
        return [f"{directory}: no {MANIFEST}"]
    problems = _seal_problems(root, directory)
    try:
        manifest = json.loads(mpath.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problems + [f"{MANIFEST}: not JSON ({exc})"]
    found = _manifest_problems(manifest)
    if found:
        return problems + found
    return (problems + _unlisted(root, set(manifest["files"])) + _file_problems(root, manifest)
            + _shard_problems(root, manifest))
