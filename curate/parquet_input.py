"""Raw Parquet input, read the way raw JSONL is: by Python inside Spark tasks, one file per task, with pyarrow.

Spark's own Parquet reader needs a reader and a union per file (a long plan for thousands of files), takes a file
name as a glob or URI (`br[1].parquet`, `x:y.parquet` fail), gives `_metadata.file_path` URL-encoded (`a b.parquet`
misses its listing entry), resolves column names (`a.b`, `_metadata` fail) and fails the whole job on one corrupt
file. Here each file is opened by its listed path, its columns are taken by position, a file that cannot be read
becomes one quarantine row, and memory stays flat whatever the file size (`iter_batches`).

What Spark did is kept: types are named as Spark names the Parquet types (in errors and the id check), the extra
columns become `meta` as Spark's `to_json` writes it, the id and domain columns are cast to strings as Spark casts,
and `key=value` directories below the input root become string columns, as Spark's partition discovery makes them.
"""

from __future__ import annotations

import base64
import math
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from curate.ingest_config import IngestConfig
from curate.sources import (_BATCH_ROWS, InputFile, _bad, _integral_or_string, _open_stream, read_files,
                            validate_record)

# ---------------------------------------------------------------------------------------------------------------------
# Types as Spark names them


def spark_type(t: pa.DataType, ltz: bool = False) -> str:
    """Spark's name (`DataType.simpleString`) for the type Spark reads a Parquet column of Arrow type `t` as.
    Unsigned integers widen (uint64 to decimal(20,0)); a timestamp without a time zone is timestamp_ntz unless it is
    an INT96 column (`ltz`), which Spark reads as a UTC instant."""
    if pa.types.is_dictionary(t):
        return spark_type(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_binary_view(t)):
        return "binary"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return {"int8": "tinyint", "int16": "smallint", "int32": "int", "int64": "bigint", "uint8": "smallint",
                "uint16": "int", "uint32": "bigint", "uint64": "decimal(20,0)"}[str(t)]
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "float"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz or ltz else "timestamp_ntz"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_null(t):
        return "void"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
        return f"array<{spark_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{spark_type(f.type)}" for f in t) + ">"
    if pa.types.is_map(t):
        return f"map<{spark_type(t.key_type)},{spark_type(t.item_type)}>"
    return str(t)


# ---------------------------------------------------------------------------------------------------------------------
# Values as Spark writes them: to_json (meta) and cast to string (id, domain)

# Java's Double.toString before JDK 19 (the JVMs Spark runs on) writes an integer-valued double below 2^63 with all
# its digits but these many of its last ones (FloatingDecimal's "easy" case), indexed by binary exponent minus
# significant bits minus one; Python's repr writes the shortest digits that round-trip.
_INSIGNIFICANT_DIGITS = (0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9,
                         9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15, 15, 16,
                         16, 16, 17, 17, 17, 18, 18, 18, 19)


def _decimal_digits(text: str) -> tuple[str, int]:
    """`text` (a float's repr, unsigned) as (significant digits, exponent): value = 0.DIGITS * 10**exponent."""
    mantissa, _, exp = text.lower().partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    lead = len(digits) - len(digits.lstrip("0"))
    return digits[lead:].rstrip("0"), len(whole) - lead + int(exp or 0)


def _java_layout(sign: str, digits: str, exp: int) -> str:
    """Java's Double.toString layout of 0.DIGITS * 10**exp: plain from 10^-3 up to 10^7, else d.dddE<n>."""
    if 0 < exp < 8:
        if len(digits) <= exp:
            return f"{sign}{digits}{'0' * (exp - len(digits))}.0"
        return f"{sign}{digits[:exp]}.{digits[exp:]}"
    if -3 < exp <= 0:
        return f"{sign}0.{'0' * -exp}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exp - 1}"


def java_float_str(v: float, single: bool = False) -> str:
    """`v` as Java's Double.toString (Float.toString when `single`) writes it; NaN and infinities as Java names them."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, v) < 0 else ""
    a = abs(v)
    if a == 0:
        return sign + "0.0"
    if a < 2**63 and a == int(a):
        ival = int(a)
        bin_exp = ival.bit_length() - 1
        excess = bin_exp - (24 if single else 53) - 1
        insignificant = _INSIGNIFICANT_DIGITS[excess] if 1 < excess < len(_INSIGNIFICANT_DIGITS) else 0
        exp = 0
        if insignificant:
            ival, rest = divmod(ival, 10**insignificant)
            ival += rest >= 10**insignificant // 2
            exp = insignificant
        s = str(ival)
        return _java_layout(sign, s.rstrip("0"), exp + len(s))
    if single:
        import numpy as np  # the shortest digits that round-trip through float32

        text = np.format_float_scientific(np.float32(a), unique=True, trim="-")
    else:
        text = repr(a)
    return _java_layout(sign, *_decimal_digits(text))


# Jackson (to_json) escapes control characters as orjson does, but with upper-case hex digits.
_LOWER_HEX_ESCAPE = re.compile(r"\\(\\|u00[0-9a-f]{2})")
_CONTROL = re.compile("[\x00-\x07\x0b\x0e-\x1f]")


def json_string(s: str) -> str:
    out = orjson.dumps(s).decode()
    if _CONTROL.search(s):
        out = _LOWER_HEX_ESCAPE.sub(lambda m: m.group(0) if m.group(1) == "\\" else "\\u" + m.group(1)[1:].upper(), out)
    return out


_UTC = timezone.utc


def _instant(v: datetime) -> datetime:
    return v.astimezone(_UTC) if v.tzinfo is not None else v


def _iso_millis(v: datetime) -> str:
    # Written by hand: strftime's %Y does not pad years below 1000 to four digits, Java's yyyy does.
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            f".{v.microsecond // 1000:03d}")


def _json_float(single: bool) -> Callable[[float], str]:
    def enc(v: float) -> str:
        s = java_float_str(v, single)
        return f'"{s}"' if s[-1] in "Ny" else s  # Jackson quotes NaN and the infinities

    return enc


def json_encoder(t: pa.DataType, ltz: bool = False) -> Callable[[Any], str]:
    """A function from a non-null Python value of Arrow type `t` to its JSON text as Spark's to_json writes it (with
    the session time zone UTC): a struct's null fields left out, a map's and a list's nulls kept."""
    if pa.types.is_dictionary(t):
        return json_encoder(t.value_type)
    kind = spark_type(t, ltz)
    if kind == "string":
        return json_string
    if kind == "binary":
        return lambda v: '"' + base64.b64encode(v).decode("ascii") + '"'
    if kind == "boolean":
        return lambda v: "true" if v else "false"
    if kind in ("tinyint", "smallint", "int", "bigint") or kind.startswith("decimal"):
        return str  # Decimal's str is Java's BigDecimal.toString (1E-8, 0E-10)
    if kind in ("float", "double"):
        return _json_float(kind == "float")
    if kind == "date":
        return lambda v: f'"{v.year:04d}-{v.month:02d}-{v.day:02d}"'
    if kind == "timestamp":
        return lambda v: '"' + _iso_millis(_instant(v)) + 'Z"'
    if kind == "timestamp_ntz":
        return lambda v: '"' + _iso_millis(v) + '"'
    if kind == "void":
        return lambda v: "null"
    if kind.startswith("array<"):
        item = json_encoder(t.value_type)
        return lambda v: "[" + ",".join("null" if x is None else item(x) for x in v) + "]"
    if kind.startswith("struct<"):
        fields = [(f.name, json_string(f.name) + ":", json_encoder(f.type)) for f in t]
        return lambda v: "{" + ",".join(k + e(v[n]) for n, k, e in fields if v[n] is not None) + "}"
    if kind.startswith("map<"):
        key, item = cast_encoder(t.key_type), json_encoder(t.item_type)
        return lambda v: "{" + ",".join(json_string(key(k)) + ":" + ("null" if x is None else item(x))
                                        for k, x in v) + "}"
    return lambda v: json_string(str(v))  # time of day: Spark reads no such Parquet column


def cast_encoder(t: pa.DataType, ltz: bool = False) -> Callable[[Any], str]:
    """A function from a non-null Python value of Arrow type `t` to the string Spark's cast to string makes of it."""
    if pa.types.is_dictionary(t):
        return cast_encoder(t.value_type)
    kind = spark_type(t, ltz)
    if kind == "string":
        return lambda v: v
    if kind == "binary":
        return lambda v: bytes(v).decode("utf-8", errors="replace")
    if kind == "boolean":
        return lambda v: "true" if v else "false"
    if kind in ("tinyint", "smallint", "int", "bigint"):
        return str
    if kind.startswith("decimal"):
        return lambda v: str(v) if isinstance(v, int) else format(v, "f")  # uint64 comes as int, decimals plain
    if kind in ("float", "double"):
        single = kind == "float"
        return lambda v: java_float_str(v, single)
    if kind == "date":
        return lambda v: f"{v.year:04d}-{v.month:02d}-{v.day:02d}"

    if kind in ("timestamp", "timestamp_ntz"):
        def timestamp(v: datetime) -> str:
            v = _instant(v)
            s = f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            return s + f".{v.microsecond:06d}".rstrip("0") if v.microsecond else s

        return timestamp
    if kind.startswith("array<"):
        item = cast_encoder(t.value_type)
        return lambda v: "[" + ", ".join("null" if x is None else item(x) for x in v) + "]"
    if kind.startswith("struct<"):
        fields = [(f.name, cast_encoder(f.type)) for f in t]
        return lambda v: "{" + ", ".join("null" if v[n] is None else e(v[n]) for n, e in fields) + "}"
    if kind.startswith("map<"):
        key, item = cast_encoder(t.key_type), cast_encoder(t.item_type)
        return lambda v: "{" + ", ".join(f"{key(k)} -> {'null' if x is None else item(x)}" for k, x in v) + "}"
    return str


def _pylist(column: pa.Array) -> list[Any]:
    """The column's values; strings that are not valid UTF-8 (Parquet does not check) with U+FFFD for bad bytes, as
    Spark shows them."""
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        t = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if spark_type(t) != "string":
            raise
        return [None if b is None else b.decode("utf-8", errors="replace")
                for b in column.cast(t).cast(pa.large_binary()).to_pylist()]


# ---------------------------------------------------------------------------------------------------------------------
# Reading one file

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def partition_values(rel: str) -> dict[str, str | None]:
    """The `key=value` directories of `rel` (a path below the input root) as Spark's partition discovery reads them:
    `%XX` unescaped, `__HIVE_DEFAULT_PARTITION__` null; a deeper directory's value wins."""
    def unescape(s: str) -> str:
        return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), s)

    out: dict[str, str | None] = {}
    for part in rel.split("/")[:-1]:
        key, eq, value = part.partition("=")
        if eq and key and value:
            out[unescape(key)] = None if value == _HIVE_NULL else unescape(value)
    return out


def _int96_columns(pf: pq.ParquetFile) -> set[str]:
    return {pf.schema.column(i).path for i in range(len(pf.schema)) if pf.schema.column(i).physical_type == "INT96"}


class _FileColumns:
    """One file's columns (its own, then its partition directories' not among them) in the roles ingest gives them:
    text, id, domain, and the rest, which become `meta`."""

    def __init__(self, schema: pa.Schema, int96: set[str], rel: str, cfg: IngestConfig):
        self.rel, self.cfg = rel, cfg
        partitions = {k: v for k, v in partition_values(rel).items() if k not in schema.names}
        self.partitions = list(partitions.values())
        fields = [(f.name, f.type, f.name in int96) for f in schema] + [(k, pa.string(), False) for k in partitions]
        first = {}
        for i, (name, _, _) in enumerate(fields):
            first.setdefault(name, i)

        def role(name: str) -> tuple[int | None, str]:
            i = first.get(name)
            return (None, "missing") if i is None else (i, spark_type(fields[i][1], fields[i][2]))

        self.text, self.text_type = role(cfg.text_field)
        self.id, self.id_type = role(cfg.id_field)
        self.domain, _ = role(cfg.domain_field)
        self.id_cast = cast_encoder(fields[self.id][1]) if self.id is not None else None
        self.domain_cast = (cast_encoder(fields[self.domain][1], fields[self.domain][2])
                            if self.domain is not None else None)
        roles = (cfg.text_field, cfg.id_field, cfg.domain_field)
        # to_json(struct(sorted columns)): keys sorted by name, null values left out.
        self.meta = sorted(((name, i, json_string(name) + ":", json_encoder(t, ltz))
                            for i, (name, t, ltz) in enumerate(fields) if name not in roles), key=lambda m: m[0])

    def records(self, batch: pa.RecordBatch, first_line: int) -> list[dict[str, Any]]:
        n, cfg, src = batch.num_rows, self.cfg, self.rel
        columns = batch.columns + [pa.array([v] * n, pa.string()) for v in self.partitions]
        lines = range(first_line + 1, first_line + n + 1)
        if self.meta:
            parts = [[None if v is None else key + enc(v) for v in _pylist(columns[i])] for _, i, key, enc in self.meta]
            metas = ["{" + ",".join(p for p in row if p is not None) + "}" for row in zip(*parts)]
        else:
            metas = [None] * n
        tf = cfg.text_field
        if self.text is None:
            return [_bad(src, line, "missing_text", f"missing column '{tf}'", m) for line, m in zip(lines, metas)]
        if self.text_type != "string":
            return [_bad(src, line, "text_not_string", f"column '{tf}' is {self.text_type}, not a string", m)
                    for line, m in zip(lines, metas)]
        texts = self._texts(columns[self.text])
        if self.id is None:
            ids: list[Any] = [None] * n
            bad_ids = [False] * n
        elif _integral_or_string(self.id_type):
            ids = [None if v is None else self.id_cast(v) for v in _pylist(columns[self.id])]  # type: ignore[misc]
            bad_ids = [False] * n
        else:
            ids = [None] * n
            bad_ids = columns[self.id].is_valid().to_pylist()
        domains = ([None if v is None else self.domain_cast(v) for v in _pylist(columns[self.domain])]  # type: ignore
                   if self.domain is not None else [None] * n)
        rows = []
        for text, rid, bad_id, dom, meta, line in zip(texts, ids, bad_ids, domains, metas, lines):
            if isinstance(text, UnicodeDecodeError):
                rows.append(_bad(src, line, "invalid_utf8", f"invalid UTF-8 byte at offset {text.start}",
                                 text.object.decode("utf-8", errors="backslashreplace")))
                continue
            row = validate_record(text, rid, dom, meta, src, line, cfg, None)
            if bad_id and row["kind"] == "doc":  # the text's own problems are reported first, as in JSONL
                row = _bad(src, line, "bad_id", f"column '{cfg.id_field}' is {self.id_type}, not a string or integer",
                           None)
            rows.append(row)
        return rows

    @staticmethod
    def _texts(column: pa.Array) -> list[Any]:
        """The text column's values; a value that is not valid UTF-8 is its UnicodeDecodeError (quarantined as
        invalid_utf8, as a JSONL line would be)."""
        try:
            return column.to_pylist()
        except UnicodeDecodeError:
            t = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
            out: list[Any] = []
            for b in column.cast(t).cast(pa.large_binary()).to_pylist():
                try:
                    out.append(None if b is None else b.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    out.append(exc)
            return out


def parse_parquet_file(path: str, rel: str, cfg: IngestConfig,
                       content: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Every row of one Parquet file as a record row (line = 1-based row number); a file that cannot be opened is one
    unreadable_file row, and one that breaks off (a corrupt page) keeps the rows before and ends in one."""
    try:
        stream = _open_stream(path, content)  # its non-blocking regular-file check: a FIFO would block pyarrow
    except OSError as exc:
        yield _bad(rel, 0, "unreadable_file", f"cannot open file: {exc}", None)
        return
    with stream:
        try:
            pf = pq.ParquetFile(stream, coerce_int96_timestamp_unit="us")
            columns = _FileColumns(pf.schema_arrow, _int96_columns(pf), rel, cfg)
        except (OSError, pa.ArrowException) as exc:
            yield _bad(rel, 0, "unreadable_file", f"cannot read file as Parquet: {exc}", None)
            return
        line = 0
        try:
            # A row group at a time (a batch would span them, and a corrupt one would take the rows before it
            # down too); one thread, as Spark already runs a task per core.
            for group in range(pf.num_row_groups):
                for batch in pf.iter_batches(batch_size=_BATCH_ROWS, row_groups=[group], use_threads=False):
                    rows = columns.records(batch, line)
                    line += batch.num_rows
                    yield from rows
        except (OSError, pa.ArrowException) as exc:
            yield _bad(rel, line + 1, "unreadable_file", f"Parquet file is corrupt after row {line}: {exc}", None)


# ---------------------------------------------------------------------------------------------------------------------
# Reading many files in Spark tasks

def read_parquet(spark: SparkSession, files: list[InputFile], cfg: IngestConfig) -> DataFrame:
    """All rows of the Parquet `files` as RECORD_SCHEMA rows, read as JSONL is (curate.sources.read_files)."""
    return read_files(spark, files, lambda path, rel, content: parse_parquet_file(path, rel, cfg, content))
