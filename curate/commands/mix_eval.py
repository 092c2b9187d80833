"""`curate mix-eval DATA --weights A.json B.json ... --steps S --seeds K --out DIR`: compare mixtures by training."""

from __future__ import annotations

from pathlib import Path

from curate.errors import CurateError


def register(sub) -> None:
    p = sub.add_parser(
        "mix-eval",
        help="train a proxy per mixture and seed; compare held-out losses with paired 95%% intervals",
        description="Train one proxy model per (mixture, seed) with the same init and data order per seed, "
        "and report per-domain held-out losses, average, worst domain and paired differences.",
    )
    p.add_argument("data", metavar="DATA", help="output directory of `curate tokenize` (has datasets.json)")
    p.add_argument("--weights", nargs="+", required=True, metavar="JSON", help="weights.json files (mixer outputs)")
    p.add_argument("--steps", type=int, required=True, help="training steps per model")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..K-1); intervals need >= 2")
    p.add_argument("--out", required=True, help="output directory: results.json, results.md, losses.png")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--model-size", default="regmix-1m", help="tiny, regmix-1m, small, 60m or gpt2-124m")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--split", default="valid", choices=["valid", "test"], help="held-out split to score")
    p.add_argument("--eval-windows", type=int, default=32, help="evaluation windows per domain")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, help="CPU threads per training process (default: 1 for models under 8M "
                   "parameters, trained in one worker process per core; else all cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    from curate.mix_stage import read_mixtures
    from mixers.evaluation import evaluate_mixtures, results_table
    from proxy_training.trainer import TrainConfig

    if args.steps < 1 or args.seeds < 1:
        raise CurateError("--steps and --seeds must be at least 1")
    from curate.output_target import check_dir_target

    check_dir_target(args.out, ("results.json", "results.md", "losses.png"), "mix-eval results")
    mixtures = read_mixtures(args.weights)
    cfg = TrainConfig(lr=args.lr, min_lr=args.lr / 10, device=args.device, precision=args.precision,
                      compile=args.compile, threads=args.threads)
    try:
        results = evaluate_mixtures(
            args.data, mixtures, steps=args.steps, seeds=list(range(args.seeds)), model_size=args.model_size,
            batch_size=args.batch_size, seq_len=args.seq_len, split=args.split,
            eval_windows_per_domain=args.eval_windows, train_config=cfg, out_dir=args.out,
        )
    except ValueError as exc:  # proxy_training reports bad data, weights, sizes and devices as ValueError
        raise CurateError(str(exc)) from None
    print(results_table(results), end="")
    print(f"wrote {Path(args.out) / 'results.json'}, results.md, losses.png")
    return 0
