"""The shards stage: training shards drawn from a tokenize output by the mixture weights, written as Megatron
MMIDIDX v1 shards with a manifest that accounts for every token.

Steps: plan (check the inputs, budget each domain: plan.py), compute (draw, interleave, locate every drawn document,
cut the shards), write (copy the tokens in chunks of bounded size), stats (the manifest and stats.json): write.py.
Nothing appears at `out` until every file is complete; a plan that fails leaves an earlier output as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from curate.fs import local_path
from curate.shards.config import ShardsConfig
from curate.shards.plan import plan_shards
from curate.shards.write import compute_stream, write_manifest, write_shards


def run_shards(cfg: ShardsConfig, data: str, out: str, progress: Callable[[int], None] | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Draw training shards from the tokenize output `data` by `cfg.weights` into `out`, published atomically by
    StageOutput. `progress` gets the tokens written so far after each chunk."""
    from curate.stage_output import StageOutput

    # Claimed before the plan, as every stage is, so a wrong --out fails at once and the wall time covers the plan.
    output = StageOutput.local(out, "shards", [data, *([cfg.weights] if cfg.weights else [])], overwrite)
    try:
        plan = plan_shards(cfg, data)
        stream = compute_stream(plan, cfg.shard_tokens)
        tmp = Path(local_path(output.tmp))
        shards = write_shards(stream, plan.dtype, tmp, progress)
        stats = write_manifest(cfg, plan, stream, shards, tmp, Path(local_path(output.final)))
    except BaseException:
        # Nothing half-written stays behind, and an earlier output stays as it was.
        output.release()
        raise
    # Shards read token files, not documents: there are no document counts to reconcile.
    return output.finish(stats, reconcile=False)
