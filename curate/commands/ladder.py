"""`curate ladder DATA --weights A.json B.json ... --out DIR`: judge mixtures above the proxy's scale."""

from __future__ import annotations

import argparse

from curate.commands.flags import add_field, config_from_args
from curate.errors import CurateError
from curate.ladder_stage import LadderConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ladder",
        help="train every mixture (+ uniform, natural) at >= 3 model sizes; fit, extrapolate, say which wins",
        description="A scaling ladder: every mixture, plus uniform and natural, trained at each rung and seed with "
        "the same init and data order per seed; a scaling curve per mixture extrapolated to the target compute, "
        "intervals from resampling seeds, a self-check that predicts the top rung from the others.",
    )
    p.add_argument("data", metavar="DATA", help="output directory of `curate tokenize` (has datasets.json)")
    p.add_argument("--weights", nargs="*", default=[], metavar="JSON", help="weights.json files (mixer outputs)")
    p.add_argument("--out", required=True, help="output directory: ladder.json, ladder.md, ladder.png")
    add_field(p, LadderConfig, "rungs", nargs="+", metavar="SIZE:TOKENS")
    for field in ("seeds", "target_params", "target_tokens", "metric"):
        add_field(p, LadderConfig, field)
    add_field(p, LadderConfig, "exclude_domains", "--exclude-domain", action="append", metavar="D",
              help="leave a domain out of the metric (a noise domain, say); repeatable")
    add_field(p, LadderConfig, "device", choices=["auto", "cpu", "cuda"])
    add_field(p, LadderConfig, "precision", choices=["auto", "fp32", "bf16"])
    for field in ("lr", "batch_size", "seq_len", "curve", "eval_windows"):
        add_field(p, LadderConfig, field)
    p.add_argument("--threads", type=int, help="CPU threads per training process")
    p.add_argument("--cache-dir", default=None, help="run cache (default: DATA/.ladder-cache)")
    add_field(p, LadderConfig, "mup_base_width")
    add_field(p, LadderConfig, "mup_output_mult")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.mix_stage import read_mixtures
    from curate.console import console
    from curate.output_target import check_dir_target
    from mixers.evaluation import data_leakage, leakage_line
    from mixers.ladder import LADDER_FILES, write_ladder

    check_dir_target(args.out, LADDER_FILES, "ladder results")
    mixtures = read_mixtures(args.weights)
    cfg = config_from_args(args, LadderConfig)
    try:
        result = cfg.ladder(threads=args.threads, cache_dir=args.cache_dir).fit(args.data, mixtures)
    except ValueError as exc:  # proxy_training and the fit report bad data, rungs and settings as ValueError
        raise CurateError(str(exc)) from None
    write_ladder(result, args.out)
    console.print(leakage_line(data_leakage(args.data, "test")))  # the ladder scores the test split
    for line in result["fit"]["verdicts"]:
        console.print(line)
    acc = result["self_check"]["accuracy"]
    console.print(f"self-check (top rung predicted from the others): mean |error| "
                  f"{result['self_check']['mean_abs_error']:.4f} nats, pairwise accuracy {_pct(acc['fit'])} "
                  f"(smallest rung alone {_pct(acc['smallest_rung'])})")
    if result["repetition"]["note"]:
        console.print(f"ladder: {result['repetition']['note']}")
    if result["warning"]:
        console.print(f"[bold yellow]ladder: {result['warning']}[/]")
    console.print(f"  -> {args.out}/ladder.md ({result['trained_runs']} runs trained, {result['cached_runs']} cached)")
    return 0


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"
