"""Flags shared by the commands, and what they build: a stage's config from the flags a user set (each flag's help
and default read from the model's field), and the Spark session from --master/--conf."""

from __future__ import annotations

import argparse
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from curate.config_model import DEFAULT_SEED, StrictModel, validate_config
from curate.console import console

# Flags made by add_field keep their value under this prefix + the field's dotted path.
_FIELD = "field:"


def _field(model: type[BaseModel], path: str) -> FieldInfo:
    *outer, name = path.split(".")
    for part in outer:
        model = _plain(model.model_fields[part].annotation)
    return model.model_fields[name]


def _plain(annotation: Any) -> Any:
    """`X | None` -> X; anything else as it is."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _shown(value: Any) -> str | None:
    if value is None or value == [] or isinstance(value, bool):
        return None
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:_}"  # as a flag takes it: int() reads underscores
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_field(p: argparse.ArgumentParser | argparse._ActionsContainer, model: type[BaseModel], path: str,
              *flags: str, help: str | None = None, default_text: str | None = None, **kw: Any) -> None:
    """A flag for the field `path` of `model` ("name", or "table.name" in a nested model). It is None unless given,
    so an unset flag leaves the model's default; its type, choices and help (with the default) come from the field."""
    info = _field(model, path)
    kind = _plain(info.annotation)
    if "action" not in kw or kw["action"] == "append":
        if get_origin(kind) is list:
            kind = get_args(kind)[0]
        if get_origin(kind) is Literal:
            kw.setdefault("choices", get_args(kind))
            kind = type(get_args(kind)[0])
        if kind in (int, float, str):
            kw.setdefault("type", kind)
        if "choices" not in kw:
            kw.setdefault("metavar", path.rsplit(".", 1)[-1].upper())
    text = help if help is not None else (info.description or "")
    if ("action" not in kw or kw["action"] == "append") and not kw.get("required"):
        shown = default_text or _shown(info.get_default(call_default_factory=True))
        if shown:
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
    names = flags or (f"--{path.rsplit('.', 1)[-1].replace('_', '-')}",)
    p.add_argument(*names, dest=_FIELD + path, default=None, help=text.replace("%", "%%"), **kw)


def add_seed(p: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """--seed for a model whose seed None means the run's: a command alone is its own run, seeded DEFAULT_SEED."""
    add_field(p, model, "seed", default_text=f"the run's, {DEFAULT_SEED}")


def set_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The fields whose flags were given, as a nested dict ({"leakage": {"threshold": 0.4}})."""
    fields: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if dest.startswith(_FIELD) and value is not None:
            *outer, name = dest[len(_FIELD):].split(".")
            node = fields
            for part in outer:
                node = node.setdefault(part, {})
            node[name] = value
    return fields


def config_from_args(args: argparse.Namespace, model: type[StrictModel], **fixed: Any) -> Any:
    """`model` from the flags a user set (plus `fixed`, the values a command takes from its positional arguments);
    a mistake is one line naming the field."""
    return validate_config(model, {**set_fields(args), **fixed}, "command line")


def with_run_seed(cfg: Any) -> Any:
    """`cfg` with its seed left to the run's filled in: a command alone is a run of its own, seeded DEFAULT_SEED."""
    return cfg if cfg.seed is not None else cfg.model_copy(update={"seed": DEFAULT_SEED})


def add_spark_args(p: argparse.ArgumentParser, pipeline: bool = False) -> None:
    """--master and --conf; for a pipeline command they lay over the pipeline's [spark] table."""
    if pipeline:
        p.add_argument("--master", default=None, help="Spark master URL (default: the pipeline's [spark], else "
                                                       "local[*])")
        conf = "extra Spark setting, over the pipeline's [spark.conf] (repeatable)"
    else:
        p.add_argument("--master", default=None, help="Spark master URL (default: local[*], or spark-submit's)")
        conf = "extra Spark setting (repeatable)"
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help=conf)


def add_set_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a pipeline setting")


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="--out may hold another stage's curate output, which is replaced (never other files)")


def check_local_inputs(paths: list[str]) -> None:
    """A local input path that does not exist is a one-line error before Spark (and the JVM's start-up lines)
    begins. Globs (Hadoop's syntax, with {a,b}, which Python's glob lacks) and non-local paths are left to the
    stage's listing on Spark's file system."""
    import os

    from curate.errors import CurateError
    from curate.fs import is_local, local_path
    from curate.sources import GLOB, missing_input

    for raw in paths:
        if is_local(raw) and not GLOB.search(raw) and not os.path.exists(local_path(raw)):
            raise CurateError(missing_input(raw))


def spark_from_args(args: argparse.Namespace, inputs: list[str] | None = None, pipeline: Any = None):
    """The Spark session of --master and --conf, laid over a pipeline's `[spark]` (a SparkConfig) when given."""
    from curate.errors import CurateError
    from curate.spark import get_spark

    check_local_inputs(inputs or [])
    conf = dict(pipeline.conf) if pipeline is not None else {}
    for item in args.conf:
        if "=" not in item:
            raise CurateError(f"--conf {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        conf[k] = v
    master = args.master or (pipeline.master if pipeline is not None else None)
    return get_spark(master=master, conf=conf, progress=console.is_terminal)
