"""The one reader of inputs: raw JSONL/Parquet files (local or any Hadoop path) and earlier stages' outputs.

Raw JSONL is parsed by Python inside Spark tasks, one file per task, streaming line by line, so every line keeps its
file and line number and a bad line, a bad byte or a truncated compressed stream becomes a quarantine row instead of
a failed job. Raw Parquet is read the same way, a row group at a time with pyarrow (curate.parquet_input): any file or
column name works, and a file that cannot be read is a quarantine row.
"""

from __future__ import annotations

import errno
import fnmatch
import gzip
import io
import os
import re
import stat
import unicodedata
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import orjson
import pyarrow as pa
import xxhash
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from rich.markup import escape

from curate.ingest_config import IngestConfig
from curate.console import console
from curate.errors import CurateError
from curate.fs import FileInfo, HadoopFS, is_local, local_path, qualify

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
RAW_PREVIEW_CHARS = 1000
GLOB = re.compile(r"[*?\[{]")
_DOMAIN_BAD = re.compile(r"[^\w.+-]")  # \w: letters and digits of every script, and `_`
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

# What a parsed input record becomes: a document (kind "doc"), a quarantined record ("bad") or a blank line ("blank").
RECORD_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("id", T.StringType(), True),
        T.StructField("id_generated", T.BooleanType(), True),
        T.StructField("domain", T.StringType(), True),
        T.StructField("text", T.StringType(), True),
        T.StructField("meta", T.StringType(), True),
        T.StructField("source", T.StringType(), False),
        T.StructField("line", T.LongType(), False),
        T.StructField("reason", T.StringType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("raw", T.StringType(), True),
    ]
)
DOC_COLUMNS = ["id", "domain", "text", "meta", "source", "line"]
QUARANTINE_COLUMNS = ["source", "line", "reason", "error", "raw"]


@dataclass(frozen=True)
class InputFile:
    path: str  # fully qualified URI
    rel: str  # path relative to the input argument it came from (stable across machines)
    fmt: str  # "jsonl" | "parquet"
    size: int
    mtime: int = 0


@dataclass(frozen=True)
class SkippedInput:
    """A path under the inputs that is not read: `reason` is the code stats count by, `detail` says why."""

    rel: str
    reason: str  # unknown_extension | not_a_regular_file | symlink_loop | duplicate | stage_output
    detail: str


@dataclass
class InputListing:
    files: list[InputFile] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return dict(sorted(counts.items()))

    def warn_skipped(self, stage: str) -> None:
        for s in self.skipped:
            console.print(f"[yellow]{stage}: skipped {escape(s.rel)}: {escape(s.detail)}[/]")


def file_format(path: str) -> str | None:
    low = path.lower()
    if low.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _hidden(rel: str) -> bool:
    # Hadoop's convention: names starting with _ or . are metadata (_SUCCESS, .crc), never data.
    return any(part.startswith(("_", ".")) for part in rel.split("/"))


# A skipped path before rels are known: (qualified path, reason, detail, the path the detail names or "").
_Skip = tuple[str, str, str, str]
# A listed file: (reached through a symbolic link, its real path, the file).
_Found = tuple[bool, str, FileInfo]
_STAGE_OUTPUT_DETAIL = "a curate stage output (holds _SUCCESS and stats.json): pass it as its own input"


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _local_stage_output(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "_SUCCESS")) and os.path.isfile(os.path.join(path, "stats.json"))


def _list_local(path: str, top_stage_check: bool) -> tuple[list[_Found], list[_Skip]]:
    """Regular files under a local path as (reached through a symbolic link, real path, file), listed by Python:
    Hadoop's listing follows a link back to an ancestor until the OS gives up (~40 levels, each a copy of every
    file) and lists FIFOs and devices as files, which a reader then blocks on. Here each real directory is listed
    once, real subdirectories before linked ones (so a directory reachable both ways keeps its real name)."""
    files: list[_Found] = []
    skipped: list[_Skip] = []
    try:
        st = os.stat(path)
    except OSError as exc:
        return [], [("file:" + path, "not_a_regular_file", f"cannot read it: {exc.strerror}", "")]
    if not stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode):
            info = FileInfo("file:" + path, st.st_size, False, st.st_mtime_ns // 10**6)
            files.append((os.path.islink(path), os.path.realpath(path), info))
        else:
            skipped.append(("file:" + path, "not_a_regular_file", f"{_file_kind(st.st_mode)}, not a regular file", ""))
        return files, skipped
    if top_stage_check and _local_stage_output(path):
        return [], [("file:" + path, "stage_output", _STAGE_OUTPUT_DETAIL, "")]
    # (directory, {real path: name} of it and its ancestors, reached through a link)
    real_dirs = [(path, {os.path.realpath(path): path}, os.path.islink(path))]
    linked_dirs: list[tuple[str, dict[str, str], bool]] = []
    visited: dict[str, str] = {}
    while real_dirs or linked_dirs:
        d, ancestors, linked = real_dirs.pop() if real_dirs else linked_dirs.pop(0)
        real = os.path.realpath(d)
        if real in visited:
            skipped.append(("file:" + d, "duplicate", "the same directory as ", "file:" + visited[real]))
            continue
        visited[real] = d
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise CurateError(f"cannot list input directory {d}: {exc.strerror}") from None
        subdirs = []
        for e in entries:
            if e.name.startswith(("_", ".")):
                continue
            try:
                est = os.stat(e.path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    skipped.append(("file:" + e.path, "symlink_loop", "a symbolic link that resolves to itself", ""))
                else:
                    skipped.append(("file:" + e.path, "not_a_regular_file", f"a broken link ({exc.strerror})", ""))
                continue
            is_link = e.is_symlink()
            if stat.S_ISDIR(est.st_mode):
                target = os.path.realpath(e.path)
                if target in ancestors:
                    skipped.append(("file:" + e.path, "symlink_loop", "a symbolic-link loop back to ",
                                    "file:" + ancestors[target]))
                elif _local_stage_output(e.path):
                    skipped.append(("file:" + e.path, "stage_output", _STAGE_OUTPUT_DETAIL, ""))
                else:
                    item = (e.path, {**ancestors, target: e.path}, linked or is_link)
                    (linked_dirs if is_link else subdirs).append(item)
            elif stat.S_ISREG(est.st_mode):
                info = FileInfo("file:" + e.path, est.st_size, False, est.st_mtime_ns // 10**6)
                files.append((linked or is_link, os.path.realpath(e.path) if is_link else os.path.join(real, e.name),
                              info))
            else:
                skipped.append(("file:" + e.path, "not_a_regular_file",
                                f"{_file_kind(est.st_mode)}, not a regular file", ""))
        real_dirs.extend(reversed(subdirs))
    return files, skipped


def _list_hadoop(fs: HadoopFS, info: FileInfo, top_stage_check: bool) -> tuple[list[_Found], list[_Skip]]:
    """Files under a non-local path (object stores and HDFS have no links or FIFOs); curate stage outputs below it
    are left out whole."""
    if not info.is_dir:
        return [(False, info.path, info)], []
    files = fs.list_files(info.path)
    names = {f.path for f in files}
    stages = sorted({f.path.rsplit("/", 1)[0] for f in files if f.path.endswith("/_SUCCESS")
                     and f.path[: -len("_SUCCESS")] + "stats.json" in names})
    if not top_stage_check:
        stages = [d for d in stages if d != info.path.rstrip("/")]
    outer = [d for d in stages if not any(d.startswith(o + "/") for o in stages)]
    kept = [(False, f.path, f) for f in files if not any(f.path.startswith(o + "/") for o in outer)]
    return kept, [(d, "stage_output", _STAGE_OUTPUT_DETAIL, "") for d in outer]


def missing_input(raw: str) -> str:
    """The error for a local input path that does not exist; a relative one says what it was relative to (a
    pipeline file's paths resolve against the current directory, not the file's)."""
    where = "" if os.path.isabs(raw) or ":" in raw else f" (relative to {os.getcwd()})"
    return f"input path does not exist: {raw}{where}"


def list_inputs(spark: SparkSession, inputs: list[str]) -> InputListing:
    """Expand files, directories and globs into data files; a path that matches nothing is an error. FIFOs and
    other non-regular files, files no reader takes, a second name of one file or directory, symbolic-link loops
    and curate stage outputs inside an input directory are skipped, each listed in `skipped` with its reason."""
    if not inputs:
        raise CurateError("no input given")
    fs = HadoopFS(spark)
    listing = InputListing()
    seen_paths: set[str] = set()
    seen_real: dict[str, str] = {}  # a file's real path -> the rel it was first listed under
    for raw in inputs:
        arg = qualify(raw)
        local = is_local(arg)
        if GLOB.search(raw):
            root = qualify(GLOB.split(raw, 1)[0].rsplit("/", 1)[0] or ".")
            # Hadoop's glob syntax ({a,b}) is the documented one; each match is then listed like a directory's entry.
            matches = fs.glob(arg)
            if not matches:
                raise CurateError(f"input path does not exist: {raw} (the pattern matches nothing)")
            tops = [(m, True) for m in matches]
        elif local and not os.path.exists(local_path(arg)):
            raise CurateError(missing_input(raw))
        elif not local and not fs.exists(arg):
            raise CurateError(f"input path does not exist: {raw}")
        else:
            info = fs.info(arg) if not local else FileInfo(
                "file:" + os.path.abspath(local_path(arg)), 0, os.path.isdir(local_path(arg)))
            root = info.path if info.is_dir else info.path.rsplit("/", 1)[0]
            if info.is_dir and (_local_stage_output(local_path(arg)) if local else
                                fs.exists(f"{arg}/_SUCCESS") and fs.exists(f"{arg}/stats.json")):
                # Its stats.json would read as a JSONL record and its tables as raw documents.
                raise CurateError(f"input {raw} is a curate stage output, not raw files: give it to the stage after "
                                  f"it (ingest reads raw JSONL/Parquet only)")
            tops = [(info, False)]
        if local:
            root = "file:" + os.path.abspath(local_path(root))
        elif fs.exists(root):
            root = fs.info(root).path
        root = root.rstrip("/")
        candidates: list[_Found] = []
        skips: list[_Skip] = []
        for top, top_stage_check in tops:
            found, skipped = (_list_local(local_path(top.path), top_stage_check) if is_local(top.path)
                              else _list_hadoop(fs, top, top_stage_check))
            candidates.extend(found)
            skips.extend(skipped)

        def rel_of(path: str) -> str:
            if path == root:
                return "."
            return path[len(root) + 1:] if path.startswith(root + "/") else path.rsplit("/", 1)[1]

        for path, reason, detail, other in skips:
            if path not in seen_paths and not _hidden(rel_of(path)):
                seen_paths.add(path)
                listing.skipped.append(SkippedInput(rel_of(path), reason, detail + (rel_of(other) if other else "")))
        # A file reachable under two names is listed under its real one (not through a link), else the first by name.
        for _, real, f in sorted(candidates, key=lambda c: (c[0], c[2].path)):
            rel = rel_of(f.path)
            if f.path in seen_paths or _hidden(rel):
                continue
            seen_paths.add(f.path)
            if real in seen_real:
                listing.skipped.append(SkippedInput(rel, "duplicate", f"the same file as {seen_real[real]}"))
                continue
            seen_real[real] = rel
            fmt = file_format(f.path)
            if fmt is None:
                listing.skipped.append(SkippedInput(rel, "unknown_extension", "not .jsonl(.gz|.zst) or .parquet"))
            else:
                listing.files.append(InputFile(path=f.path, rel=rel, fmt=fmt, size=f.size, mtime=f.mtime))
    if not listing.files:
        raise CurateError(f"no .jsonl, .jsonl.gz, .jsonl.zst or .parquet files under: {' '.join(inputs)}")
    listing.files.sort(key=lambda f: (f.rel, f.path))
    listing.skipped.sort(key=lambda s: s.rel)
    return listing


# ---------------------------------------------------------------------------------------------------------------------
# Record validation (runs in Python workers)


def normalize_text(text: str) -> str:
    """NFC and Unix newlines: the same document typed on two systems gets the same id and the same tokens."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


# Whitespace and separators (Zs, Zl, Zp), controls (Cc: NUL, tab, newline, escape...) and format characters (Cf:
# zero-width space, BOM, soft hyphen): a document of only these shows nothing and trains a model on nothing, so it is
# as empty as "". Private-use and unassigned code points count as text: they may be real glyphs in some font.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def has_visible_text(text: str) -> bool:
    """True when `text` holds a character other than whitespace, control or format characters."""
    return any(unicodedata.category(c) not in _INVISIBLE for c in text)


def content_id(text: str) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def clean_domain(name: str) -> str:
    """Domains name directories and token files. Letters and digits of any script and `_ . + -` stay; any other
    character becomes `_`, as does a leading `.` (`.` and `..` would name the directory itself or its parent, and a
    hidden name is never read back). A changed name gets `-` and 6 hex digits of the label's hash, so that labels
    which differ only there (`a b`, `a/b` and `a_b`) stay three domains instead of merging silently."""
    label = unicodedata.normalize("NFC", name.strip())
    cleaned = _DOMAIN_BAD.sub("_", label)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if not cleaned:
        return "unknown"
    if cleaned != label or cleaned == _HIVE_NULL:  # the second is Spark's name for a null partition value
        cleaned += "-" + xxhash.xxh64_hexdigest(label.encode("utf-8"))[:6]
    return cleaned


def _domain_for(rel: str, value: Any, cfg: IngestConfig) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # as a Parquet integer column's label reads: `"domain": 7` is domain "7"
    if isinstance(value, str) and value.strip():
        return clean_domain(value)
    for rule in cfg.domain_rules:
        if fnmatch.fnmatch(rel, rule.pattern):
            return clean_domain(rule.domain)
    return clean_domain(cfg.default_domain)


def _bad(source: str, line: int, reason: str, error: str, raw: str | None) -> dict[str, Any]:
    return {"kind": "bad", "source": source, "line": line, "reason": reason, "error": error,
            "raw": None if raw is None else raw[:RAW_PREVIEW_CHARS]}


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def validate_record(
    text: Any, rid: Any, domain_value: Any, meta: str | None, source: str, line: int, cfg: IngestConfig, raw: str | None
) -> dict[str, Any]:
    """One candidate record -> a document row or a quarantine row (with a reason code and a readable error)."""
    tf = cfg.text_field
    if text is None:
        return _bad(source, line, "null_text", f"'{tf}' is null", raw)
    if not isinstance(text, str):
        return _bad(source, line, "text_not_string", f"'{tf}' is {_type_name(text)}, not a string", raw)
    text = normalize_text(text)
    if not has_visible_text(text):
        detail = "is empty" if not text else "holds only whitespace, control or format characters"
        return _bad(source, line, "empty_text", f"'{tf}' {detail}", raw)
    if len(text) > cfg.max_doc_chars:
        return _bad(source, line, "too_long",
                    f"'{tf}' has {len(text):,} characters, more than max_doc_chars={cfg.max_doc_chars:,}", raw)
    if rid is None:
        doc_id, generated = content_id(text), True
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return _bad(source, line, "bad_id", f"'{cfg.id_field}' is {_type_name(rid)}, not a string or integer", raw)
    else:
        doc_id, generated = str(rid), False
        if not doc_id.strip():
            return _bad(source, line, "bad_id", f"'{cfg.id_field}' is empty", raw)
    return {"kind": "doc", "id": doc_id, "id_generated": generated, "domain": _domain_for(source, domain_value, cfg),
            "text": text, "meta": meta, "source": source, "line": line}


# A UTF-8 byte order mark, as Windows tools write at the start of a text file; JSON parsers reject it.
UTF8_BOM = b"\xef\xbb\xbf"


def _parse_jsonl_line(data: bytes, source: str, line: int, cfg: IngestConfig) -> dict[str, Any]:
    if line == 1 and data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = data.decode("utf-8", errors="backslashreplace")
        return _bad(source, line, "invalid_utf8", f"invalid UTF-8 byte at offset {exc.start}", raw)
    if not decoded.strip():
        return {"kind": "blank", "source": source, "line": line}
    try:
        obj = orjson.loads(decoded)
    except orjson.JSONDecodeError as exc:
        return _bad(source, line, "invalid_json", f"not valid JSON: {exc}", decoded)
    if not isinstance(obj, dict):
        return _bad(source, line, "not_an_object", f"record is {_type_name(obj)}, not a JSON object", decoded)
    if cfg.text_field not in obj:
        return _bad(source, line, "missing_text", f"missing field '{cfg.text_field}'", decoded)
    text = obj.pop(cfg.text_field)
    rid = obj.pop(cfg.id_field, None)
    domain_value = obj.pop(cfg.domain_field, None)
    meta = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode() if obj else None
    return validate_record(text, rid, domain_value, meta, source, line, cfg, decoded)


def _open_stream(path: str, content: bytes | None) -> io.BufferedIOBase:
    raw: io.BufferedIOBase
    if content is not None:
        raw = io.BytesIO(content)
    else:
        # Opened without blocking and checked before reading: open() on a FIFO waits for a writer forever, and a
        # path listed as a regular file can have been replaced since.
        fd = os.open(local_path(path), os.O_RDONLY | os.O_NONBLOCK)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise OSError(f"{_file_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        raw = open(fd, "rb")  # noqa: SIM115
    low = path.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if low.endswith(".zst"):
        return io.BufferedReader(_ZstdFrames(raw), buffer_size=1 << 17)
    return raw


class _ZstdFrames(io.RawIOBase):
    """The zstd frames of `raw`, one after another, decompressed; a stream that ends inside a frame raises EOFError.
    Written by hand because zstandard's stream_reader returns end-of-file there instead of an error, and a cut
    .jsonl.zst would lose its tail without a quarantine row; its decompressobj says whether a frame completed."""

    def __init__(self, raw: io.BufferedIOBase):
        import zstandard

        self._raw, self._new = raw, zstandard.ZstdDecompressor().decompressobj
        self._frame: Any = None  # the decompressor of the frame being read
        self._out, self._pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._out):
            chunk = self._raw.read(1 << 17)
            if not chunk:
                if self._frame is not None and not self._frame.eof:
                    raise EOFError("the zstd stream ends inside a frame")
                return 0
            parts = []
            while chunk:
                if self._frame is None or self._frame.eof:
                    self._frame = self._new()
                parts.append(self._frame.decompress(chunk))
                chunk = self._frame.unused_data if self._frame.eof else b""
            self._out, self._pos = b"".join(parts), 0
        n = min(len(b), len(self._out) - self._pos)
        b[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def parse_jsonl_file(path: str, rel: str, cfg: IngestConfig, content: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Every line of one JSONL file as a record row; a stream that breaks off ends in one quarantine row."""
    line = 0
    try:
        stream = _open_stream(path, content)
    except OSError as exc:
        yield _bad(rel, 0, "unreadable_file", f"cannot open file: {exc}", None)
        return
    with stream:
        try:
            for data in stream:
                line += 1
                yield _parse_jsonl_line(data.rstrip(b"\r\n"), rel, line, cfg)
        except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
            yield _bad(rel, line + 1, "truncated_stream",
                       f"compressed stream is truncated or corrupt after line {line}: {exc}", None)
        except Exception as exc:  # zstandard.ZstdError has no common base with the others
            if type(exc).__name__ != "ZstdError":
                raise
            yield _bad(rel, line + 1, "truncated_stream",
                       f"compressed stream is truncated or corrupt after line {line}: {exc}", None)


def _rows_to_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    cols = {f.name: [r.get(f.name) for r in rows] for f in RECORD_SCHEMA.fields}
    return pa.RecordBatch.from_pydict(cols, schema=_ARROW_RECORD_SCHEMA)


_ARROW_RECORD_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), False), pa.field("id", pa.string()), pa.field("id_generated", pa.bool_()),
        pa.field("domain", pa.string()), pa.field("text", pa.string()), pa.field("meta", pa.string()),
        pa.field("source", pa.string(), False), pa.field("line", pa.int64(), False), pa.field("reason", pa.string()),
        pa.field("error", pa.string()), pa.field("raw", pa.string()),
    ]
)
_BATCH_ROWS = 2048
# Characters per batch in the wide string columns: at most 4 bytes each, so a batch of long documents stays far
# below the 2 GiB a string column's 32-bit offsets address.
_BATCH_CHARS = 64 * 1024 * 1024


def _batched(rows: Iterator[dict[str, Any]]) -> Iterator[pa.RecordBatch]:
    buf: list[dict[str, Any]] = []
    chars = 0
    for r in rows:
        buf.append(r)
        chars += len(r.get("text") or "") + len(r.get("raw") or "") + len(r.get("meta") or "")
        if len(buf) >= _BATCH_ROWS or chars >= _BATCH_CHARS:
            yield _rows_to_batch(buf)
            buf, chars = [], 0
    if buf:
        yield _rows_to_batch(buf)


def _string_table(spark: SparkSession, **columns: list[str]) -> DataFrame:
    """A small table of string columns built from Arrow: the JVM reads it directly, where rows of Python tuples need
    a Python worker started to turn them into rows (about a second before a stage's first task)."""
    return spark.createDataFrame(pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()}))


def read_files(spark: SparkSession, files: list[InputFile],
               parse: Callable[[str, str, bytes | None], Iterator[dict[str, Any]]]) -> DataFrame:
    """RECORD_SCHEMA rows of `files`, each parsed by `parse(path, rel, content)` in a Spark task: local files one task
    per file, the worker streaming the file itself (memory stays flat whatever its size; `content` None); others
    through Spark's binaryFile source (object stores: any scheme Hadoop knows; `content` the file's bytes)."""
    local = [f for f in files if is_local(f.path)]
    remote = [f for f in files if not is_local(f.path)]
    frames = []
    if local:
        listing = _string_table(spark, path=[f.path for f in local], rel=[f.rel for f in local])
        listing = listing.repartition(min(len(local), max(spark.sparkContext.defaultParallelism, 1) * 4), "path")

        def parse_local(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                for path, rel in zip(batch.column("path").to_pylist(), batch.column("rel").to_pylist()):
                    yield from _batched(parse(path, rel, None))

        frames.append(listing.mapInArrow(parse_local, RECORD_SCHEMA))
    if remote:
        rel_of = {f.path: f.rel for f in remote}
        # binaryFile takes its paths as globs: escaped, `br[1].jsonl` names itself.
        blobs = spark.read.format("binaryFile").load([_HADOOP_GLOB.sub(r"\\\1", f.path) for f in remote])

        def parse_remote(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist()):
                    yield from _batched(parse(path, rel_of.get(path, path), content))

        frames.append(blobs.select("path", "content").mapInArrow(parse_remote, RECORD_SCHEMA))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


_HADOOP_GLOB = re.compile(r"([*?\[\]{}\\])")


def _read_jsonl(spark: SparkSession, files: list[InputFile], cfg: IngestConfig) -> DataFrame:
    return read_files(spark, files, lambda path, rel, content: parse_jsonl_file(path, rel, cfg, content))


_INTEGRAL_TYPES = ("tinyint", "smallint", "int", "bigint")


def _integral_or_string(spark_type: str) -> bool:
    """The id column types JSONL also takes: strings and integers. Spark reads Parquet's unsigned 64-bit integers as
    decimal(20,0), so a decimal without a fraction is an integer too; floats, booleans and nested values are not
    (cast to a string they would become ids like "1.5" or "true" that JSONL quarantines)."""
    return spark_type in ("string", *_INTEGRAL_TYPES) or bool(re.fullmatch(r"decimal\(\d+,0\)", spark_type))


def _read_parquet(spark: SparkSession, files: list[InputFile], cfg: IngestConfig) -> DataFrame:
    from curate.parquet_input import read_parquet  # imported here: it builds on this module's record checks

    return read_parquet(spark, files, cfg)


def read_records(spark: SparkSession, listing: InputListing, cfg: IngestConfig) -> DataFrame:
    """All input records with RECORD_SCHEMA: kind doc / bad / blank, each with its source file and line."""
    jsonl = [f for f in listing.files if f.fmt == "jsonl"]
    parquet = [f for f in listing.files if f.fmt == "parquet"]
    frames = []
    if jsonl:
        frames.append(_read_jsonl(spark, jsonl, cfg))
    if parquet:
        frames.append(_read_parquet(spark, parquet, cfg))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def resolve_duplicate_ids(docs: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Given ids: the first record (by source, line) keeps it, later ones are quarantined. Content ids of repeated
    texts get a `-2`, `-3` suffix instead, so exact duplicates reach the dedup stage, which is where they belong."""
    from pyspark.sql.window import Window

    w = Window.partitionBy("id").orderBy("source", "line")
    ranked = docs.withColumn("_rank", F.row_number().over(w)).withColumn(
        "_first", F.first(F.concat_ws(":", "source", F.col("line").cast("string"))).over(w)
    )
    dup_given = (F.col("_rank") > 1) & ~F.col("id_generated")
    kept = ranked.where(~dup_given).withColumn(
        "id", F.when(F.col("_rank") > 1, F.concat_ws("-", "id", F.col("_rank").cast("string"))).otherwise(F.col("id"))
    )
    quarantined = ranked.where(dup_given).select(
        "source", "line", F.lit("duplicate_id").alias("reason"),
        F.concat(F.lit("duplicate id '"), F.col("id"), F.lit("' (first at "), F.col("_first"), F.lit(")")).alias("error"),
        F.substring(F.col("text"), 1, RAW_PREVIEW_CHARS).alias("raw"),
    )
    return kept.select(*DOC_COLUMNS), quarantined


# Duplicate ids up to this many are broadcast to the tasks, and only their records are ranked with a shuffle.
BROADCAST_DUPLICATE_IDS = 200_000


def resolve_duplicate_ids_of_cached(docs: DataFrame) -> tuple[DataFrame, DataFrame]:
    """`resolve_duplicate_ids` for a persisted `docs` (ingest's): one small job counts the ids that occur more than
    once, shuffling the id column only; then only those ids' records go through the ranking window, and the others
    keep their ids without their text being shuffled. Corpora with unique ids (most) skip the window altogether.
    Same rows out as `resolve_duplicate_ids(docs)`."""
    dup_ids = docs.groupBy("id").agg(F.count(F.lit(1)).alias("_n")).where(F.col("_n") > 1).select("id")
    n_dup = dup_ids.count()
    if n_dup == 0:
        _, quarantined = resolve_duplicate_ids(docs.where(F.lit(False)))
        return docs.select(*DOC_COLUMNS), quarantined
    if n_dup > BROADCAST_DUPLICATE_IDS:
        return resolve_duplicate_ids(docs)
    small = F.broadcast(dup_ids)
    kept, quarantined = resolve_duplicate_ids(docs.join(small, "id", "left_semi"))
    return docs.join(small, "id", "left_anti").select(*DOC_COLUMNS).unionByName(kept), quarantined


# ---------------------------------------------------------------------------------------------------------------------
# Reading documents for the stages after ingest


DOCUMENT_SCHEMA = T.StructType(
    [T.StructField(c, T.LongType() if c == "line" else T.StringType(), c not in ("id", "domain", "text"))
     for c in DOC_COLUMNS]
)


def is_stage_output(spark: SparkSession, path: str) -> bool:
    fs = HadoopFS(spark)
    return fs.is_dir(f"{qualify(path)}/kept")


def _split_inputs(spark: SparkSession, inputs: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """([(stage output as given, its root)] for the stage outputs among `inputs`, the other inputs: raw files,
    directories, globs)."""
    stages = [p for p in inputs if is_stage_output(spark, p)]
    return [(p, qualify(p).rstrip("/")) for p in stages], [p for p in inputs if p not in stages]


def read_documents(spark: SparkSession, inputs: list[str], ingest: IngestConfig | None = None,
                   spread: int | None = None, count_unread: bool = True) -> DataFrame:
    """Documents (id, domain, text, meta, source, line, plus any annotation columns) from finished stages' `kept/`
    and, for raw files, validated as ingest would (what ingest would quarantine is left out, and with
    `count_unread` counted by reason and printed: one more job over the files).

    Inputs can mix the two: each stage output contributes its kept/ table only (never its removed/ rows, and its
    domains from the table's partition directories), the raw files are read together; annotation columns that
    only some inputs have are null elsewhere. `spread`: hash-partition the documents by id into that many
    partitions; raw files' records are shuffled once for it and for the ranking of duplicate ids together."""
    fs = HadoopFS(spark)
    stages, raw = _split_inputs(spark, inputs)
    frames = []
    for given, root in stages:
        if not fs.exists(f"{root}/_SUCCESS"):
            raise CurateError(f"{given} is an unfinished stage output (no _SUCCESS): rerun the stage that writes it")
        if any(f.path.endswith(".parquet") for f in fs.list_files(f"{root}/kept")):
            frames.append(spark.read.parquet(f"{root}/kept"))
    if raw:
        listing = list_inputs(spark, raw)
        listing.warn_skipped("input")
        all_records = read_records(spark, listing, ingest or IngestConfig())
        if count_unread:  # off for a second read of the same files (a pre-check), which would say it twice
            _warn_unread(all_records)
        records = all_records.where(F.col("kind") == "doc")
        if spread:
            records = records.repartition(spread, "id")  # the ranking window by id then needs no shuffle of its own
        frames.append(resolve_duplicate_ids(records)[0])
    if not frames:
        out = spark.createDataFrame([], DOCUMENT_SCHEMA)
        return out.repartition(spread, "id") if spread else out
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f, allowMissingColumns=True)
    return out.repartition(spread, "id") if spread and stages else out


def _warn_unread(records: DataFrame) -> dict[str, int]:
    """Count, by reason, the raw records a stage given raw files leaves out (those ingest would quarantine: bad
    records, and later records of a given id), and say so: they are in none of the stage's counts. One aggregate
    job over one parse of the files; its result is a row per reason."""
    given = (F.col("kind") == "doc") & ~F.col("id_generated")
    per_id = (records.where((F.col("kind") == "bad") | given)
              .groupBy(F.when(given, F.lit("duplicate_id")).otherwise(F.col("reason")).alias("reason"),
                       F.when(given, F.col("id")).alias("id"))
              .agg(F.count(F.lit(1)).alias("n")))
    rows = (per_id.groupBy("reason")
            .agg(F.sum(F.when(F.col("id").isNotNull(), F.col("n") - 1).otherwise(F.col("n"))).alias("n"))
            .where(F.col("n") > 0).collect())
    unread = {r["reason"]: int(r["n"]) for r in sorted(rows, key=lambda r: r["reason"])}
    if unread:
        console.print(f"[bold yellow]input: {sum(unread.values()):,} raw record(s) could not be read and are left "
                      f"out of this stage's counts ({', '.join(f'{k} {v:,}' for k, v in unread.items())}): "
                      f"`curate ingest` quarantines them with their file, line and reason[/]")
    return unread


def input_bytes(spark: SparkSession, inputs: list[str]) -> int:
    """Bytes of the input files (a stage output's kept/ included): sizes output files, never partitioning."""
    fs = HadoopFS(spark)
    stages, raw = _split_inputs(spark, inputs)
    total = sum(f.size for _, root in stages for f in fs.list_files(f"{root}/kept"))
    return total + (list_inputs(spark, raw).total_bytes if raw else 0)
