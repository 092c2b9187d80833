"""`curate ladder DATA --weights A.json B.json ... --out DIR`: judge mixtures above the proxy's scale."""

from __future__ import annotations

import argparse

from curate.errors import CurateError


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
    p.add_argument("--rungs", nargs="+", metavar="SIZE:TOKENS",
                   help="model sizes and their tokens, e.g. d64:2M d128:8M d256x4:40M (default: by device)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per rung (intervals need >= 2; default 3)")
    p.add_argument("--target-params", type=float, default=1e9, help="parameters of the model you will train")
    p.add_argument("--target-tokens", type=float, default=2e10, help="its training tokens")
    p.add_argument("--metric", default="average", help="average, worst or a domain's name (default: average)")
    p.add_argument("--exclude-domain", action="append", default=[], metavar="D",
                   help="leave a domain out of the metric (a noise domain, say); repeatable")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate, every rung (default: the device's recipe, tuned with its muP settings)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the device's recipe)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the device's recipe)")
    p.add_argument("--curve", default="free-exponent", choices=["free-exponent", "parallel"],
                   help="fitted curves: an exponent per mixture (default) or one for all (parallel curves)")
    p.add_argument("--eval-windows", type=int, default=64, help="test windows per domain")
    p.add_argument("--threads", type=int, help="CPU threads per training process")
    p.add_argument("--cache-dir", default=None, help="run cache (default: DATA/.ladder-cache)")
    p.add_argument("--mup-base-width", type=int, default=None,
                   help="muP: the width --lr and --mup-output-mult were tuned at; 0 = the standard parameterization "
                   "(default: the device's recipe, muP)")
    p.add_argument("--mup-output-mult", type=float, default=None,
                   help="muP's logit multiplier at the base width (default: the device's recipe)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.mix_stage import read_mixtures
    from curate.console import console
    from curate.output_target import check_dir_target
    from mixers.evaluation import data_leakage, leakage_line
    from mixers.ladder import LADDER_FILES, Ladder, parse_rung, write_ladder

    check_dir_target(args.out, LADDER_FILES, "ladder results")
    mixtures = read_mixtures(args.weights)
    try:
        rungs = [parse_rung(r) for r in args.rungs] if args.rungs else None
        params = dict(rungs=rungs, seeds=args.seeds, target_params=args.target_params,
                      target_tokens=args.target_tokens, metric=args.metric,
                      exclude_domains=tuple(args.exclude_domain), batch_size=args.batch_size, seq_len=args.seq_len,
                      eval_windows=args.eval_windows, device=args.device, precision=args.precision,
                      threads=args.threads, cache_dir=args.cache_dir, mup_base_width=args.mup_base_width,
                      mup_output_mult=args.mup_output_mult, lr=args.lr, curve=args.curve)
        result = Ladder(**params).fit(args.data, mixtures)
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
