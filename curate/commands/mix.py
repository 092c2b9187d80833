"""`curate mix --method doremi|regmix|mixing-law|uniform|natural DATA --out weights.json [--target D]
[--target-domains a,b] [--device ...] [--param k=v]`"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix", help="choose domain weights from per-domain token datasets")
    p.add_argument("data", metavar="DATA", help="output directory of `curate tokenize`")
    p.add_argument("--method", required=True, help="doremi, regmix, mixing-law, uniform or natural")
    p.add_argument("--out", required=True, help="weights.json to write")
    p.add_argument("--target", default=None,
                   help="RegMix, mixing law: the domain whose loss to minimize, or 'average' (the default)")
    p.add_argument("--target-domains", default=None, metavar="A,B,...",
                   help="RegMix, mixing law: average the loss over these domains only (e.g. all but a noise domain)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="where proxy models train")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other parameter of the mixer (see its docstring), e.g. --param rounds=2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.config import parse_override
    from curate.console import console
    from curate.errors import CurateError
    from curate.mix_stage import build_mixer, check_target_domains, train_prefixes

    if args.target_domains is not None:
        check_target_domains(args.method, "--target-domains")
    params = {k: v for k, v in (("target", args.target), ("target_domains", args.target_domains),
                                ("device", args.device), ("seed", args.seed)) if v is not None}
    for item in args.param:
        keys, value = parse_override(item)
        params[".".join(keys)] = value
    mixer = build_mixer(args.method, params, source="--param")
    from curate.output_target import check_file_target, json_with_keys

    # Checked before the (long) fit: only a weights file curate wrote is replaced.
    check_file_target(args.out, json_with_keys("method", "weights"), "weights.json file")
    try:
        weights = mixer.fit(args.data)
    except (FileNotFoundError, ValueError) as exc:
        raise CurateError(str(exc)) from None
    weights.save(args.out, prefixes=train_prefixes(args.data))
    shown = ", ".join(f"{d} {w:.3f}" for d, w in weights.weights.items())
    console.print(f"mix ({args.method}): {shown}\n  -> {args.out}")
    return 0
