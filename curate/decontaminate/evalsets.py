"""Evaluation sets on disk -> items (set name, item id, text), read on the driver (eval sets are small).

An eval set is one `--against` path: a JSONL (.jsonl, .gz, .zst) or Parquet file, a directory or a glob of them, on
any file system Spark reads. The text of an item comes from its fields by layout:
- `fields`: the named text fields (default `text`), joined by newlines;
- `qa`: `question`, then every choice (`choices` as a list, or a `{"text": [...]}` table as ARC has), then `answer`
  when it is text (an integer answer indexes the choices, already read);
- `prompt_completion`: `prompt`, then `completion`;
- `auto` (default): `prompt_completion` if the set's first record has both, else `qa` if it has a `question`, else
  `fields`.
An item's id is its `id_field` value when present, else `<file>:<line>` (the row number in a Parquet file).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Iterator

import orjson
from pyspark.sql import SparkSession

from curate.decontaminate.config import DecontamConfig
from curate.errors import CurateError
from curate.fs import is_local, local_path

LAYOUT_FIELDS = {"qa": ("question", "choices", "answer"), "prompt_completion": ("prompt", "completion")}
_SUFFIXES = (".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".jsonl", ".json", ".ndjson", ".parquet")


@dataclass
class EvalSet:
    """One eval set as read: its name, path, layout, files, and its items' ids and texts (in file, line order)."""

    name: str
    path: str
    layout: str
    files: int
    ids: list[str]
    texts: list[str]


def set_names(paths: list[str]) -> list[str]:
    """A short unique name per eval set path: its last component without the data suffix, with as many parent
    directories as it takes to tell two sets apart (`mmlu/test`, `arc/test`)."""
    parts = []
    for p in paths:
        comps = [c for c in p.rstrip("/").split("/") if c and c != "."]
        last = comps[-1] if comps else p
        for suffix in _SUFFIXES:
            if last.lower().endswith(suffix):
                last = last[: -len(suffix)]
                break
        parts.append([*comps[:-1], last])
    names = []
    for i, comps in enumerate(parts):
        k = 1
        while k < len(comps) and any(j != i and parts[j][-k:] == comps[-k:] for j in range(len(parts))):
            k += 1
        names.append("/".join(comps[-k:]))
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise CurateError(f"--against: eval set {sorted(dup)[0]!r} is given twice")
    return names


def _records(spark: SparkSession, path: str, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number from 1, record) of one eval file."""
    from curate.sources import UTF8_BOM, _open_stream

    if is_local(path):
        with open(local_path(path), "rb") as f:
            content = f.read()
    else:
        content = bytes(spark.read.format("binaryFile").load(path).select("content").head()[0])
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # One thread: with pyarrow's pool running in the driver, an error exit (a bad --text-field) aborted with
        # "terminate called without an active exception", exit code 134, in about 1 run in 7.
        for i, rec in enumerate(pq.read_table(io.BytesIO(content), use_threads=False).to_pylist(), 1):
            yield i, rec
        return
    with _open_stream(path, content) as stream:
        for i, line in enumerate(stream, 1):
            if i == 1 and line.startswith(UTF8_BOM):
                line = line[len(UTF8_BOM):]
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise CurateError(f"eval set {path}:{i}: not a JSON record ({exc})") from None
            if not isinstance(rec, dict):
                raise CurateError(f"eval set {path}:{i}: not a JSON object")
            yield i, rec


def _layout_of(rec: dict[str, Any], cfg: DecontamConfig) -> str:
    if cfg.layout != "auto":
        return cfg.layout
    if cfg.text_fields:
        return "fields"
    if "prompt" in rec and "completion" in rec:
        return "prompt_completion"
    if "question" in rec:
        return "qa"
    return "fields"


def _text(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and "text" in value:  # ARC's {"text": [...], "label": [...]}
        return _text(value["text"])
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _text(v)]
    return []


def item_text(rec: dict[str, Any], layout: str, fields: list[str], where: str) -> str:
    """The text of one eval record in `layout`; a record without the layout's fields is a one-line error."""
    if layout == "fields":
        names = fields or ["text"]
        missing = [f for f in names if f not in rec]
        if len(missing) == len(names):
            raise CurateError(f"eval set {where}: no field {names[0]!r} (fields: {', '.join(sorted(rec)[:12])}); "
                              "name the text fields with --text-field, or pick --layout qa|prompt_completion")
        return "\n".join(t for f in names for t in _text(rec.get(f)))
    need = LAYOUT_FIELDS[layout]
    required = need[:1] if layout == "qa" else need
    missing = [f for f in required if f not in rec]
    if missing:
        raise CurateError(f"eval set {where}: layout {layout} needs field {missing[0]!r} "
                          f"(fields: {', '.join(sorted(rec)[:12])})")
    parts = []
    for f in need:
        parts.extend(_text(rec.get(f)))
    return "\n".join(parts)


def read_eval_sets(spark: SparkSession, cfg: DecontamConfig) -> list[EvalSet]:
    """Every eval set of `cfg.against`, in the order given; a set with no items is a one-line error."""
    from curate.sources import list_inputs

    if not cfg.against:
        raise CurateError("decontaminate: no eval sets given (--against EVAL ..., or [decontaminate] against = [...])")
    out = []
    for name, path in zip(set_names(cfg.against), cfg.against):
        listing = list_inputs(spark, [path])
        layout = None
        ids, texts = [], []
        for f in listing.files:
            for line, rec in _records(spark, f.path, f.fmt):
                layout = layout or _layout_of(rec, cfg)
                where = f"{name} ({f.rel}:{line})"
                texts.append(item_text(rec, layout, cfg.text_fields, where))
                given = rec.get(cfg.id_field)
                ids.append(str(given) if given is not None else f"{f.rel}:{line}")
        if not texts:
            raise CurateError(f"eval set {path} is empty: no records in {len(listing.files)} file(s)")
        out.append(EvalSet(name, path, layout or cfg.layout, len(listing.files), ids, texts))
    return out
