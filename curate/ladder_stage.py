"""The ladder stage of a pipeline: after `mix`, a scaling ladder judges the mix stage's weights against uniform and
natural above the proxy's scale (mixers.ladder), into ladder.json/.md/.png, stats.json and _SUCCESS."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from curate.config_model import StrictModel
from curate.errors import CurateError


class LadderConfig(StrictModel):
    """`[ladder]`: the rungs (`SIZE:TOKENS`, None = the device's defaults), seeds, the target model and the metric."""

    rungs: list[str] | None = None
    seeds: int = Field(default=3, ge=1)
    target_params: float = Field(default=1e9, gt=0)
    target_tokens: float = Field(default=2e10, gt=0)
    metric: str = "average"
    exclude_domains: list[str] = Field(default_factory=list)
    # Extra weights files to judge beside the mix stage's (paths).
    weights: list[str] = Field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    # The training recipe; None = the device's default (mixers.ladder.default_recipe: muP with its tuned rate).
    lr: float | None = Field(default=None, gt=0)
    # muP: the width the learning rate and output multiplier were tuned at (0 = the standard parameterization).
    mup_base_width: int | None = Field(default=None, ge=0)
    mup_output_mult: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1)
    seq_len: int | None = Field(default=None, ge=8)
    eval_windows: int = Field(default=64, ge=1)
    curve: Literal["free-exponent", "parallel"] = "free-exponent"  # mixers.ladder_fit.fit_curves


def run_ladder(cfg: LadderConfig, data_dir: str, weights: list[str], out: str) -> dict[str, Any]:
    """Ladder the mixtures of `weights` (weights.json files) on `data_dir` into `out`, published atomically."""
    from curate.mix_stage import read_mixtures
    from curate.fs import LocalFS, local_path
    from curate.output_target import OutputTarget
    from curate.console import console
    from mixers.evaluation import data_leakage, leakage_line
    from mixers.ladder import Ladder, parse_rung, write_ladder

    started = time.time()
    mixtures = read_mixtures([*weights, *cfg.weights])
    target = OutputTarget(LocalFS(), out, "ladder", [data_dir, *weights, *cfg.weights])
    tmp = Path(local_path(target.open()))
    try:
        rungs = [parse_rung(r) for r in cfg.rungs] if cfg.rungs else None
        result = Ladder(rungs=rungs, seeds=cfg.seeds, target_params=cfg.target_params,
                        target_tokens=cfg.target_tokens, metric=cfg.metric,
                        exclude_domains=tuple(cfg.exclude_domains), batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                        eval_windows=cfg.eval_windows, device=cfg.device, precision=cfg.precision,
                        mup_base_width=cfg.mup_base_width, mup_output_mult=cfg.mup_output_mult, lr=cfg.lr,
                        curve=cfg.curve).fit(data_dir, mixtures)
    except ValueError as exc:
        target.release()
        raise CurateError(f"ladder: {exc}") from None
    write_ladder(result, tmp)
    stats = {"stage": "ladder", "verdicts": result["fit"]["verdicts"], "self_check": result["self_check"],
             "warning": result["warning"], "trained_runs": result["trained_runs"],
             "cached_runs": result["cached_runs"], "leakage": data_leakage(data_dir, "test"),
             "config": cfg.model_dump(mode="json"), "wall_seconds": round(time.time() - started, 3)}
    console.print(f"ladder: {leakage_line(stats['leakage'])}")
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    (tmp / "_SUCCESS").write_text("")
    target.commit()
    return stats
