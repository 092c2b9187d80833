"""The ladder stage of a pipeline: after `mix`, a scaling ladder judges the mix stage's weights against uniform and
natural above the proxy's scale (mixers.ladder), into ladder.json/.md/.png, stats.json and _SUCCESS."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from curate.config_model import StrictModel
from curate.errors import CurateError


class LadderConfig(StrictModel):
    """`[ladder]`: the rungs (`SIZE:TOKENS`, None = the device's defaults), seeds, the target model and the metric."""

    rungs: list[str] | None = Field(default=None, description="model sizes and their tokens, SIZE:TOKENS, e.g. "
                                                             "d64:2M d128:8M d256x4:40M (default: by device)")
    seeds: int = Field(default=3, ge=1, description="seeds per rung (intervals need >= 2)")
    target_params: float = Field(default=1e9, gt=0, description="parameters of the model you will train")
    target_tokens: float = Field(default=2e10, gt=0, description="its training tokens")
    metric: str = Field(default="average", description="average, worst or a domain's name")
    exclude_domains: list[str] = Field(default_factory=list, description="domains left out of the metric (a noise "
                                                                         "domain, say)")
    # Extra weights files to judge beside the mix stage's (paths).
    weights: list[str] = Field(default_factory=list)
    device: str = Field(default="auto", description="where the runs train")
    precision: str = Field(default="auto", description="training precision")
    # None: the device's default recipe (mixers.ladder.default_recipe: muP with its tuned rate).
    lr: float | None = Field(default=None, gt=0, description="peak learning rate, every rung (default: the device's "
                                                             "recipe, tuned with its muP settings)")
    mup_base_width: int | None = Field(
        default=None, ge=0, description="muP: the width lr and the output multiplier were tuned at; 0 = the "
                                        "standard parameterization (default: the device's recipe, muP)")
    mup_output_mult: float | None = Field(default=None, gt=0, description="muP's logit multiplier at the base "
                                                                          "width (default: the device's recipe)")
    batch_size: int | None = Field(default=None, ge=1, description="sequences per step (default: the device's "
                                                                   "recipe)")
    seq_len: int | None = Field(default=None, ge=8, description="tokens per sequence (default: the device's recipe)")
    eval_windows: int = Field(default=64, ge=1, description="test windows per domain")
    curve: Literal["free-exponent", "parallel"] = Field(  # mixers.ladder_fit.fit_curves
        default="free-exponent", description="fitted curves: an exponent per mixture, or one for all (parallel)")

    def ladder(self, **extra: Any) -> Any:
        """The mixers.ladder.Ladder these settings describe (`extra`: its settings that are not the stage's)."""
        from mixers.ladder import Ladder, parse_rung

        rungs = [parse_rung(r) for r in self.rungs] if self.rungs else None
        return Ladder(rungs=rungs, seeds=self.seeds, target_params=self.target_params,
                      target_tokens=self.target_tokens, metric=self.metric,
                      exclude_domains=tuple(self.exclude_domains), batch_size=self.batch_size, seq_len=self.seq_len,
                      eval_windows=self.eval_windows, device=self.device, precision=self.precision,
                      mup_base_width=self.mup_base_width, mup_output_mult=self.mup_output_mult, lr=self.lr,
                      curve=self.curve, **extra)


def run_ladder(cfg: LadderConfig, data_dir: str, weights: list[str], out: str, overwrite: bool = False,
               **extra: Any) -> dict[str, Any]:
    """Ladder the mixtures of `weights` (weights.json files) on `data_dir` into `out`, published atomically by
    StageOutput (ladder.json/.md/.png, stats.json, _SUCCESS). `extra`: Ladder settings that are not the stage's
    (threads, cache_dir)."""
    from curate.mix_stage import read_mixtures
    from curate.fs import local_path
    from curate.console import console
    from curate.stage_output import StageOutput
    from mixers.evaluation import data_leakage, leakage_line
    from mixers.ladder import write_ladder

    mixtures = read_mixtures([*weights, *cfg.weights])
    # Claimed before the (long) fit, so a wrong --out fails at once.
    output = StageOutput.local(out, "ladder", [data_dir, *weights, *cfg.weights], overwrite)
    try:
        result = cfg.ladder(**extra).fit(data_dir, mixtures)
        write_ladder(result, Path(local_path(output.tmp)))
    except BaseException as exc:
        # Nothing half-written stays behind, and an earlier output stays as it was.
        output.release()
        if isinstance(exc, ValueError):  # bad data, rungs and settings, as proxy_training and the fit report them
            raise CurateError(f"ladder: {exc}") from None
        raise
    stats = {"verdicts": result["fit"]["verdicts"], "measured_top": result["fit"]["measured_top"]["verdicts"],
             "self_check": result["self_check"],
             "warning": result["warning"],
             "repetition_note": result["repetition"]["note"], "trained_runs": result["trained_runs"],
             "cached_runs": result["cached_runs"], "leakage": data_leakage(data_dir, "test"),
             "config": cfg.model_dump(mode="json")}
    console.print(f"ladder: {leakage_line(stats['leakage'])}")  # the ladder scores the test split
    # The ladder reads token files, not documents: there are no document counts to reconcile.
    return output.finish(stats, reconcile=False)
