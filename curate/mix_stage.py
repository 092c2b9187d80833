"""The mix stage, of a pipeline and of `curate mix`: a mixer (DoReMi, RegMix, the mixing law, uniform, natural) reads
the tokenize stage's per-domain datasets and writes `weights.json`, stats.json and _SUCCESS through StageOutput; the
shards stage then draws its token budget by those weights."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from curate.config_model import StrictModel
from curate.errors import CurateError
from curate.fs import local_path


class MixConfig(StrictModel):
    """`[mix]`: which mixer, and its parameters (checked against the mixer's constructor)."""

    method: str = Field(default="uniform", description="doremi, regmix, mixing-law, uniform or natural")
    target: str | None = Field(default=None, description="RegMix, mixing law: the domain whose loss to minimize, "
                                                         "or 'average' (the default)")
    target_domains: list[str] | None = Field(
        default=None, description="RegMix, mixing law: average the loss over these domains only (e.g. all but a "
                                  "noise or coverage-only domain)")
    device: str | None = Field(default=None, description="where proxy models train (auto, cpu or cuda)")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("target_domains", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        # `--set mix.target_domains=a,b` arrives as one string.
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


@dataclass(frozen=True)
class SettingNames:
    """How error messages name the mix settings: a pipeline's `[mix]` keys, or `curate mix`'s flags (FLAGS)."""

    method: str = "mix.method"
    param: str = "mix.params.{}"
    params: str = "mix.params"
    target_domains: str = "mix.target_domains"


FLAGS = SettingNames(method="--method", param="--param {}", params="--param", target_domains="--target-domains")


def _init_params(cls: type) -> set[str]:
    """The named parameters of a mixer's constructor (none for a mixer without one)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind in named} - {"self"}


def build_mixer(method: str, params: dict[str, Any], names: SettingNames = SettingNames()) -> Any:
    """The estimator for `method` with `params`; an unknown method or parameter is one line naming it."""
    from mixers import MIXERS

    if method not in MIXERS:
        raise CurateError(f"{names.method}: {method!r} is not a mixer (choose one of {', '.join(sorted(MIXERS))})")
    cls = MIXERS[method]
    accepted = _init_params(cls)
    for key in params:
        if key not in accepted:
            raise CurateError(f"{names.param.format(key)}: {method} has no parameter {key!r} "
                              f"(it takes: {', '.join(sorted(accepted)) or 'none'})")
    params = {key: _checked_param(cls, key, value, names) for key, value in params.items()}
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise CurateError(f"{names.params}: {exc}") from None


def _checked_param(cls: type, key: str, value: Any, names: SettingNames) -> Any:
    """`value` as the type the mixer's constructor declares for `key` (a `--param` arrives as text or a number) and
    within `mixers.PARAM_BOUNDS`: a bad one is one line naming it, before any training."""
    import typing

    from pydantic import TypeAdapter, ValidationError

    from mixers import PARAM_BOUNDS

    hint = typing.get_type_hints(cls.__init__).get(key)
    if hint is not None:
        try:
            value = TypeAdapter(hint).validate_python(value)
        except ValidationError:
            kind = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise CurateError(f"{names.param.format(key)}: {value!r} is not {kind}") from None
    bound = PARAM_BOUNDS.get(key)
    if bound is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        low, inclusive = bound
        if value < low or (value == low and not inclusive) or value != value:
            raise CurateError(f"{names.param.format(key)}: {value!r} is out of range (must be "
                              f"{'>=' if inclusive else '>'} {low:g})")
    return value


def check_target_domains(method: str, source: str) -> None:
    """Named target domains are the user's objective: a mixer without a target is an error, not a silent drop."""
    _check_takes(method, "target_domains", source, "to average (target domains apply to {})")


def check_target(method: str, source: str) -> None:
    """A target named on the command line, for a mixer without one, is an error rather than a silent drop."""
    _check_takes(method, "target", source, "(a target applies to {})")


def _check_takes(method: str, key: str, source: str, why: str) -> None:
    from mixers import MIXERS

    cls = MIXERS.get(method)
    if cls is not None and key not in _init_params(cls):
        takes = sorted(m for m, c in MIXERS.items() if key in _init_params(c))
        raise CurateError(f"{source}: {method} has no target {why.format(', '.join(takes))}")


def train_prefixes(data_dir: str | Path) -> dict[str, list[tuple[str, int]]]:
    """Per-domain train-split (prefix, tokens) pairs, prefixes relative to the data directory, for the Megatron
    blend string; a part's tokens are its .bin's size over the token width (the .bin holds the tokens alone)."""
    import numpy as np

    index = json.loads((Path(data_dir) / "datasets.json").read_text())

    def tokens(prefix: str) -> int:
        return (Path(data_dir) / f"{prefix}.bin").stat().st_size // np.dtype(index["tokenizer"]["dtype"]).itemsize

    return {d: [(p, tokens(p)) for p in v["prefixes"]] for d, v in sorted(index["splits"]["train"].items())}


def configure_mixer(cfg: MixConfig, seed: int | None = None, names: SettingNames = SettingNames()) -> Any:
    """The mixer `cfg` asks for, checked before any work: `params` plus the section's target and device and the run
    seed; those run-level settings apply only to mixers that take them, `params` always."""
    from mixers import MIXERS

    params = dict(cfg.params)
    for key, value in (("target", cfg.target), ("target_domains", cfg.target_domains), ("device", cfg.device),
                       ("seed", seed)):
        if value is not None and key not in params:
            params[key] = value
    if cfg.target_domains is not None:
        check_target_domains(cfg.method, names.target_domains)
    cls = MIXERS.get(cfg.method)
    if cls is not None:
        accepted = _init_params(cls)
        params = {k: v for k, v in params.items() if k in accepted or k in cfg.params}
    return build_mixer(cfg.method, params, names)


def fit_mixer(mixer: Any, method: str, data_dir: str) -> Any:
    """`mixer.fit(data_dir)`; a missing or unusable dataset is one line naming the method."""
    try:
        return mixer.fit(data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise CurateError(f"mix ({method}): {exc}") from None


# The mixers judge domains by their held-out loss: over fewer tokens than this its standard error is ~0.1 nats or
# more (token losses spread ~2-3 nats and are correlated within a document), as large as the gaps they act on.
SMALL_HELD_OUT_TOKENS = 1000


def small_held_out(data_dir: str) -> dict[str, int]:
    """{domain: valid tokens} for the domains whose valid split holds fewer than SMALL_HELD_OUT_TOKENS."""
    from mixers.weights import read_index

    valid = read_index(local_path(data_dir)).get("splits", {}).get("valid", {})
    return {d: int(v["tokens"]) for d, v in sorted(valid.items()) if int(v["tokens"]) < SMALL_HELD_OUT_TOKENS}


def mix_stats(cfg: MixConfig, mixer: Any, weights: Any, small: dict[str, int] | None = None) -> dict[str, Any]:
    """stats.json of the mix stage: what was asked, what came out (weights per domain) and where the time went."""
    return {"method": cfg.method, "domains": list(weights.weights), "weights": weights.weights,
            "target": weights.target, "config": cfg.model_dump(mode="json"), "timings": getattr(mixer, "timings_", {}),
            "small_held_out": small or {}}


def note_small_held_out(method: str, data_dir: str) -> dict[str, int]:
    """`small_held_out(data_dir)`, and one line naming those domains, whose weights rest on a few held-out tokens
    (nothing printed when there are none)."""
    small = small_held_out(data_dir)
    if small:
        from curate.console import console

        names = ", ".join(f"{d} ({n:,})" for d, n in small.items())
        console.print(f"mix ({method}): valid splits of fewer than {SMALL_HELD_OUT_TOKENS:,} tokens: {names}; their "
                      "losses are noisy, so the weights on these domains rest on little (stats.json: small_held_out)",
                      markup=False)
    return small


def run_mix(cfg: MixConfig, data_dir: str, out: str, seed: int | None = None, overwrite: bool = False,
            names: SettingNames = SettingNames()) -> dict[str, Any]:
    """Fit the configured mixer on `data_dir` into the directory `out` (weights.json, stats.json, _SUCCESS),
    published atomically by StageOutput."""
    from curate.stage_output import StageOutput

    mixer = configure_mixer(cfg, seed, names)
    # Claimed before the (long) fit, so a wrong --out fails at once.
    output = StageOutput.local(out, "mix", [data_dir], overwrite)
    try:
        weights = fit_mixer(mixer, cfg.method, data_dir)
        weights.save(local_path(output.path("weights.json")), prefixes=train_prefixes(data_dir))
    except BaseException:
        # Nothing half-written stays behind, and an earlier output stays as it was.
        output.release()
        raise
    small = note_small_held_out(cfg.method, data_dir)
    # Mix reads token files, not documents: there are no document counts to reconcile.
    return output.finish(mix_stats(cfg, mixer, weights, small), reconcile=False)


def write_uniform_weights(data_dir: str, path: str) -> str:
    """Equal weights over the train domains of `data_dir` (a tokenize output), written to `path`: the mixture when no
    mixer ran, written down so the shards manifest can point at (and hash) it."""
    from curate.console import console
    from curate.shards.plan import uniform_weights

    with open(path, "w") as f:
        json.dump(uniform_weights(data_dir), f, indent=2, sort_keys=True)
    console.print(f"shards: no mix stage ran; uniform weights -> {path}")
    return path


def weights_file(path: str | Path) -> Path:
    """The weights.json `path` names: the file itself, or the one inside a `curate mix` output directory."""
    p = Path(path)
    if p.is_dir():
        if not (p / "weights.json").is_file():
            raise CurateError(f"{path} is a directory without weights.json: pass a weights.json file or the "
                              f"output directory of `curate mix`")
        return p / "weights.json"
    return p


def read_weights_file(path: str | Path) -> tuple[str | None, dict[str, float]]:
    """(method, {domain: weight}) of a weights.json, or of a `curate mix` output directory holding one; every weight
    a number >= 0, not all 0. Anything else is one line naming the file."""
    import math

    p = weights_file(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise CurateError(f"weights file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CurateError(f"{p}: not valid JSON ({exc})") from None
    weights = doc.get("weights") if isinstance(doc, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise CurateError(f"{p}: no \"weights\" object of domain -> weight (expected a weights.json from "
                          f"`curate mix`)")
    for d, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise CurateError(f"{p}: weight of {d!r} is {w!r}, not a number >= 0")
    if not 0 < sum(weights.values()) < math.inf:
        raise CurateError(f"{p}: the weights sum to {sum(weights.values())}, not a positive finite number")
    method = doc.get("method")
    return (str(method) if method else None), {str(d): float(w) for d, w in weights.items()}


def read_mixtures(paths: list[str]) -> dict[str, dict[str, float]]:
    """{name: weights} from weights.json files (or mix output directories); a name is the file's "method", else its
    stem (made unique)."""
    mixtures: dict[str, dict[str, float]] = {}
    for path in paths:
        method, weights = read_weights_file(path)
        stem = Path(path).stem if not Path(path).is_dir() else Path(path).name
        name = method or stem
        if name in mixtures:
            name = f"{name} ({stem})"
        if name in mixtures:
            name = f"{name} [{len(mixtures)}]"
        mixtures[name] = weights
    return mixtures
