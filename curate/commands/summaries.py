"""What the CLI prints when a stage ends: a short block from the stats the stage returned, the same whether the stage
ran alone (`curate STAGE`) or in a pipeline (`curate run`, `curate demo`)."""

from __future__ import annotations

from typing import Any, Callable

from rich.markup import escape as _e  # paths, domain and mixture names are the user's text, not console markup

from curate.console import console


def documents(stats: dict[str, Any], out: str) -> str:
    """A document stage: what went in, what was kept, removed and quarantined, and where it is."""
    kept = f"{stats['kept_docs']:,} kept"
    if stats.get("edited_docs"):  # filter's line edits, decontaminate's cut spans: kept, but not as they came
        kept += f" ({stats['edited_docs']:,} edited)"
    parts = [f"{stats['stage']}: {stats['input_docs']:,} in", kept]
    if stats.get("removed_docs"):
        reasons = ", ".join(f"{k} {v:,}" for k, v in stats["removed_by_reason"].items())
        parts.append(f"{stats['removed_docs']:,} removed ({reasons})")
    if "quarantined_docs" in stats:
        reasons = ", ".join(f"{k} {v:,}" for k, v in stats.get("quarantined_by_reason", {}).items())
        parts.append(f"{stats['quarantined_docs']:,} quarantined" + (f" ({reasons})" if reasons else ""))
    parts.append(f"{stats['wall_seconds']:.1f}s")
    return " | ".join(parts) + f"\n  -> {_e(out)}"


def mix(stats: dict[str, Any], weights_file: str) -> str:
    """The mix stage: the weights per domain, and the weights file."""
    shown = ", ".join(f"{_e(d)} {w:.3f}" for d, w in stats["weights"].items())
    return f"mix ({stats['method']}): {shown} | {stats['wall_seconds']:.1f}s\n  -> {_e(weights_file)}"


def shards(stats: dict[str, Any], out: str) -> str:
    """The shards stage: tokens and documents drawn, and each domain's share and epochs."""
    lines = [f"shards: {stats['tokens']:,} tokens, {stats['docs']:,} documents in {stats['shards']} shards | "
             f"{stats['wall_seconds']:.1f}s"]
    for d, v in stats["domains"].items():
        lines.append(f"  {_e(d)}: {v['tokens']:,} tokens ({v['effective_weight']:.3f}), {v['epochs']:.2f} epochs"
                     + (" (capped at max-epochs)" if v["capped"] else ""))
    return "\n".join([*lines, f"  -> {_e(out)}"])


def ladder(stats: dict[str, Any], out: str) -> str:
    """The ladder stage: the verdicts, the self-check, notes and a warning if any, and the runs trained."""
    lines = [_e(v) for v in stats["verdicts"]]
    lines += [f"measured: {_e(v)}" for v in stats.get("measured_top", [])]
    check = stats["self_check"]
    acc = check["accuracy"]
    lines.append(f"self-check (top rung predicted from the others): mean |error| {check['mean_abs_error']:.4f} nats "
                 f"(gaps off by at most {check['max_gap_error']:.4f}), "
                 f"pairwise accuracy {_pct(acc['fit'])} (smallest rung alone {_pct(acc['smallest_rung'])})")
    if stats.get("repetition_note"):
        lines.append(f"ladder: {_e(stats['repetition_note'])}")
    if stats["warning"]:
        lines.append(f"[bold yellow]ladder: {_e(stats['warning'])}[/]")
    lines.append(f"ladder: {stats['trained_runs']} runs trained, {stats['cached_runs']} cached | "
                 f"{stats['wall_seconds']:.1f}s\n  -> {_e(out)}/ladder.md")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


# A pipeline stage's name -> its summary from (stats, the stage's output directory).
STAGE_SUMMARIES: dict[str, Callable[[dict[str, Any], str], str]] = {
    "ingest": documents,
    "dedup": documents,
    "filter": documents,
    "decontaminate": documents,
    "tokenize": documents,
    "mix": lambda stats, out: mix(stats, f"{out}/weights.json"),
    "ladder": ladder,
    "shards": shards,
}


def print_stage(name: str, stats: dict[str, Any], out: str) -> None:
    """Print the summary of pipeline stage `name` (the runner's `on_stage` for `curate run` and `curate demo`)."""
    console.print(STAGE_SUMMARIES[name](stats, out))
