"""`curate mix-eval DATA --weights A.json B.json ... --steps S --seeds K --out DIR`: compare mixtures by training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import Field

from curate.commands.flags import add_field, config_from_args
from curate.config_model import StrictModel
from curate.errors import CurateError


class MixEvalConfig(StrictModel):
    """The proxy runs `curate mix-eval` trains: one per (mixture, seed), the same init and data order per seed."""

    steps: int = Field(ge=1, description="training steps per model")
    seeds: int = Field(default=3, ge=1, description="number of seeds (0..K-1); intervals need >= 2")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="where the models train")
    model_size: str = Field(default="regmix-1m", description="tiny, regmix-1m, small, 60m or gpt2-124m")
    batch_size: int = Field(default=16, ge=1, description="sequences per step")
    seq_len: int = Field(default=256, ge=8, description="tokens per sequence")
    lr: float = Field(default=4e-4, gt=0, description="peak learning rate (cosine decay to a tenth of it)")
    split: Literal["valid", "test"] = Field(default="valid", description="held-out split to score")
    eval_windows: int = Field(default=32, ge=1, description="evaluation windows per domain")
    precision: Literal["auto", "fp32", "bf16"] = Field(default="auto", description="training precision")
    compile: bool = Field(default=False, description="torch.compile the model")
    threads: int | None = Field(default=None, ge=1, description="CPU threads per training process (default: 1 for "
                                                               "models under 8M parameters, trained in one worker "
                                                               "process per core; else all cores)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mix-eval",
        help="train a proxy per mixture and seed; compare held-out losses with paired 95%% intervals",
        description="Train one proxy model per (mixture, seed) with the same init and data order per seed, "
        "and report per-domain held-out losses, average, worst domain and paired differences.",
    )
    p.add_argument("data", metavar="DATA", help="output directory of `curate tokenize` (has datasets.json)")
    p.add_argument("--weights", nargs="+", required=True, metavar="JSON", help="weights.json files (mixer outputs)")
    add_field(p, MixEvalConfig, "steps", required=True)
    add_field(p, MixEvalConfig, "seeds")
    p.add_argument("--out", required=True, help="output directory: results.json, results.md, losses.png")
    for field in ("device", "model_size", "batch_size", "seq_len", "lr", "split", "eval_windows", "precision"):
        add_field(p, MixEvalConfig, field)
    add_field(p, MixEvalConfig, "compile", action="store_const", const=True)
    add_field(p, MixEvalConfig, "threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.mix_stage import read_mixtures
    from curate.output_target import check_dir_target
    from mixers.evaluation import evaluate_mixtures, results_table
    from proxy_training.trainer import TrainConfig

    cfg = config_from_args(args, MixEvalConfig)
    check_dir_target(args.out, ("results.json", "results.md", "losses.png"), "mix-eval results")
    mixtures = read_mixtures(args.weights)
    train = TrainConfig(lr=cfg.lr, min_lr=cfg.lr / 10, device=cfg.device, precision=cfg.precision,
                        compile=cfg.compile, threads=cfg.threads)
    try:
        results = evaluate_mixtures(
            args.data, mixtures, steps=cfg.steps, seeds=list(range(cfg.seeds)), model_size=cfg.model_size,
            batch_size=cfg.batch_size, seq_len=cfg.seq_len, split=cfg.split,
            eval_windows_per_domain=cfg.eval_windows, train_config=train, out_dir=args.out,
        )
    except ValueError as exc:  # proxy_training reports bad data, weights, sizes and devices as ValueError
        raise CurateError(str(exc)) from None
    print(results_table(results), end="")
    print(f"wrote {Path(args.out) / 'results.json'}, results.md, losses.png")
    return 0
