"""The base of every config object, the run's default seed and the one validator; its own module so stage configs,
the pipeline config and the CLI import them without importing every stage's config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from curate.errors import CurateError

# The run's seed when neither the pipeline's [run] nor a command's --seed names one.
DEFAULT_SEED = 1234


class StrictModel(BaseModel):
    """Base of every config object: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required value missing"
    value = err.get("input")
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    return f"{loc}: {err.get('msg', 'invalid value')}{shown}"


def validate_config(model: type[StrictModel], data: dict[str, Any], source: str) -> Any:
    """Build `model` from `data`; any error becomes one CurateError line naming the key and the source."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CurateError(f"{source}: {_describe(errors[0])}{more}") from None
