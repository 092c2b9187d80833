"""The mix stage of a pipeline: a mixer (DoReMi, RegMix, the mixing law, uniform, natural) reads the tokenize
stage's per-domain datasets and writes `weights.json`; the shards stage then draws its token budget by those weights."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from curate.config_model import StrictModel
from curate.errors import CurateError
from curate.fs import LocalFS, local_path
from curate.output_target import OutputTarget


class MixConfig(StrictModel):
    """`[mix]`: which mixer, and its parameters (checked against the mixer's constructor)."""

    method: str = "uniform"
    target: str | None = None
    # With target "average" (or none): the domains to average over, e.g. all but a noise or coverage-only domain.
    target_domains: list[str] | None = None
    device: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("target_domains", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        # `--set mix.target_domains=a,b` arrives as one string.
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def build_mixer(method: str, params: dict[str, Any], source: str = "mix") -> Any:
    """The estimator for `method` with `params`; an unknown method or parameter is one line naming it."""
    from mixers import MIXERS

    if method not in MIXERS:
        raise CurateError(f"{source}.method: {method!r} is not a mixer (choose one of {', '.join(sorted(MIXERS))})")
    cls = MIXERS[method]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for key in params:
        if key not in accepted:
            raise CurateError(f"{source}.params.{key}: {method} has no parameter {key!r} "
                              f"(it takes: {', '.join(sorted(accepted)) or 'none'})")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise CurateError(f"{source}.params: {exc}") from None


def check_target_domains(method: str, source: str) -> None:
    """Named target domains are the user's objective: a mixer without a target is an error, not a silent drop."""
    from mixers import MIXERS

    cls = MIXERS.get(method)
    if cls is not None and "target_domains" not in inspect.signature(cls.__init__).parameters:
        takes = sorted(m for m, c in MIXERS.items() if "target_domains" in inspect.signature(c.__init__).parameters)
        raise CurateError(f"{source}: {method} has no target to average (target domains apply to {', '.join(takes)})")


def train_prefixes(data_dir: str | Path) -> dict[str, list[str]]:
    """Per-domain train-split prefixes (relative to the data directory) for the Megatron blend string."""
    index = json.loads((Path(data_dir) / "datasets.json").read_text())
    return {d: v["prefixes"] for d, v in sorted(index["splits"]["train"].items())}


def run_mix(cfg: MixConfig, data_dir: str, out: str, seed: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Fit the configured mixer on `data_dir`, write `out/weights.json`, stats.json and _SUCCESS atomically."""
    started = time.time()
    params = dict(cfg.params)
    for key, value in (("target", cfg.target), ("target_domains", cfg.target_domains), ("device", cfg.device),
                       ("seed", seed)):
        if value is not None and key not in params:
            params[key] = value
    from mixers import MIXERS

    if cfg.target_domains is not None:
        check_target_domains(cfg.method, "mix.target_domains")
    cls = MIXERS.get(cfg.method)
    if cls is not None:
        # Run-level settings (seed, device) apply only to mixers that take them.
        accepted = set(inspect.signature(cls.__init__).parameters)
        params = {k: v for k, v in params.items() if k in accepted or k in cfg.params}
    mixer = build_mixer(cfg.method, params)
    # Claimed before the (long) fit, so a wrong --out fails at once.
    target = OutputTarget(LocalFS(), out, "mix", [data_dir], overwrite)
    tmp = Path(local_path(target.open()))
    try:
        weights = mixer.fit(data_dir)
    except (FileNotFoundError, ValueError) as exc:
        target.release()
        raise CurateError(f"mix ({cfg.method}): {exc}") from None
    weights.save(tmp / "weights.json", prefixes=train_prefixes(data_dir))
    stats = {"stage": "mix", "method": cfg.method, "weights": weights.weights, "target": weights.target,
             "config": cfg.model_dump(mode="json"), "timings": getattr(mixer, "timings_", {}),
             "wall_seconds": round(time.time() - started, 3)}
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    (tmp / "_SUCCESS").write_text("")
    target.commit()
    return stats
