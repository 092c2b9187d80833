"""The shards stage: training shards drawn from a tokenize output by the mixture weights, written as Megatron
MMIDIDX v1 shards with a manifest that accounts for every token.

Steps: plan (check the inputs, budget each domain: plan.py), compute (draw, interleave, locate every drawn document,
cut the shards), write (copy the tokens in chunks of bounded size), stats (the manifest and stats.json): write.py.
Nothing is written before the plan holds, and nothing appears at `out` until every file is complete.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from curate.fs import LocalFS, local_path
from curate.output_target import OutputTarget
from curate.shards.config import ShardsConfig
from curate.shards.plan import plan_shards
from curate.shards.write import compute_stream, write_manifest, write_shards


def run_shards(cfg: ShardsConfig, data: str, out: str, progress: Callable[[int], None] | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Draw training shards from the tokenize output `data` by `cfg.weights` into `out` (published atomically).
    `progress` gets the tokens written so far after each chunk."""
    started = time.time()
    plan = plan_shards(cfg, data)
    stream = compute_stream(plan, cfg.shard_tokens)
    target = OutputTarget(LocalFS(), out, "shards", [data, plan.weights_path], overwrite)
    final = Path(local_path(target.final))
    tmp = Path(local_path(target.open()))
    shards = write_shards(stream, plan.dtype, tmp, progress)
    stats = write_manifest(cfg, plan, stream, shards, tmp, final, started)
    (tmp / "_SUCCESS").write_text("")
    target.commit()
    return stats
