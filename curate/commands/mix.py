"""`curate mix --method doremi|regmix|mixing-law|uniform|natural DATA --out DIR [--target D]
[--target-domains a,b] [--device ...] [--seed N] [--param k=v] [--overwrite]`

`--out DIR` is a stage directory like every other stage's, written by the pipeline's mix stage code (`run_mix`):
weights.json, stats.json and _SUCCESS. An `--out` ending in `.json` writes only that weights file, as before."""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, add_overwrite_arg, config_from_args
from curate.config_model import DEFAULT_SEED
from curate.mix_stage import MixConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix", help="choose domain weights from per-domain token datasets")
    p.add_argument("data", metavar="DATA", help="output directory of `curate tokenize`")
    add_field(p, MixConfig, "method", required=True)
    p.add_argument("--out", required=True,
                   help="output directory (weights.json, stats.json, _SUCCESS); a path ending in .json writes only "
                        "that weights file")
    add_field(p, MixConfig, "target")
    add_field(p, MixConfig, "target_domains", metavar="A,B,...")
    add_field(p, MixConfig, "device", choices=["auto", "cpu", "cuda"])
    # A command alone is a run of its own: seeded as `curate run` seeds its mix stage, so both give the same weights.
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the mixer's seed (default: the run's, "
                                                                  f"{DEFAULT_SEED})")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other parameter of the mixer (see its docstring), e.g. --param rounds=2")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.commands.summaries import mix, print_stage
    from curate.config import parse_override
    from curate.console import console
    from curate.mix_stage import FLAGS, check_target, run_mix

    params = {}
    for item in args.param:
        keys, value = parse_override(item)
        params[".".join(keys)] = value
    cfg = config_from_args(args, MixConfig, params=params)
    if cfg.target is not None:
        check_target(cfg.method, "--target")
    if args.out.lower().endswith(".json"):
        stats = _weights_file_only(cfg, args)
        console.print(mix(stats, args.out))
    else:
        stats = run_mix(cfg, args.data, args.out, seed=args.seed, overwrite=args.overwrite, names=FLAGS)
        print_stage("mix", stats, args.out.rstrip("/"))
    return 0


def _weights_file_only(cfg, args: argparse.Namespace) -> dict:
    """The weights file alone at `--out` (the form scripts used before mix wrote a stage directory): the same mixer
    and weights.json as `run_mix`, without stats.json or _SUCCESS."""
    import time

    from curate.mix_stage import FLAGS, configure_mixer, fit_mixer, mix_stats, note_small_held_out, train_prefixes
    from curate.output_target import check_file_target, json_with_keys

    mixer = configure_mixer(cfg, args.seed, FLAGS)
    # Checked before the (long) fit: only a weights file curate wrote is replaced.
    check_file_target(args.out, json_with_keys("method", "weights"), "weights.json file")
    started = time.time()
    weights = fit_mixer(mixer, cfg.method, args.data)
    weights.save(args.out, prefixes=train_prefixes(args.data))
    small = note_small_held_out(cfg.method, args.data)
    return {**mix_stats(cfg, mixer, weights, small), "wall_seconds": round(time.time() - started, 3)}
