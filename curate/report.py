"""`curate report RUN_DIR`: one self-contained HTML page (plots embedded as PNG) from a run's stats files.

It reads only small files every stage already wrote (stats.json, weights.json, manifest.json), never the corpus.
A section whose stage did not run is left out; every plot carries `data-plot="<name>"` for tests.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from curate.errors import CurateError

if TYPE_CHECKING:  # mixers imports torch: the report loads it only when a mix section is drawn
    from mixers.diagnostics import DoReMiDiagnostics, RegressionDiagnostics

STAGES = ["ingest", "dedup", "filter", "decontaminate", "tokenize", "mix", "shards"]


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _get(d: Any, *paths: str, default: Any = None) -> Any:
    """The first of several dotted key paths that exists in `d` (stages name a few things differently)."""
    for path in paths:
        node = d
        for key in path.split("."):
            if isinstance(node, dict) and key in node:
                node = node[key]
            else:
                node = None
                break
        if node is not None:
            return node
    return default


class _Page:
    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self.plots: list[str] = []

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def plot(self, name: str, caption: str, draw: Callable[[Any], None], size: tuple[float, float] = (8, 3.6)) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=size, dpi=100)
        try:
            draw(ax)
            fig.tight_layout()
            buf = io.BytesIO()
            # No timestamps or software tags in the PNG: the same run gives the same report bytes.
            fig.savefig(buf, format="png", metadata={"Software": None})
        finally:
            plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        self.plots.append(name)
        self.parts.append(
            f'<figure data-plot="{name}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def render(self) -> str:
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}figure{margin:1em 0}"
            "img{max-width:100%}figcaption{color:#555;font-size:13px}pre{white-space:pre-wrap;background:#f7f7f7;"
            "padding:6px;font-size:12px;max-height:8em;overflow:auto}h2{border-bottom:1px solid #ddd;margin-top:2em}"
        )
        # Marks the page once every plot decoded, so a headless browser test can check it.
        script = (
            "<script>window.addEventListener('load',function(){var i=[].slice.call(document.images);"
            "document.body.setAttribute('data-plots-loaded',i.filter(function(x){return x.naturalWidth>0}).length);"
            "document.body.setAttribute('data-plots-total',i.length);});</script>"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'>{GENERATOR}<title>{html.escape(self.title)}</title>"
            f"<style>{style}</style>{script}</head><body><h1>{html.escape(self.title)}</h1>"
            + "\n".join(self.parts)
            + "</body></html>\n"
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _split_total(tokens: Any) -> int:
    """Tokens as the tokenize stage reports them: a number, or a {split: tokens} table."""
    return int(sum(tokens.values())) if isinstance(tokens, dict) else int(tokens or 0)


def _funnel(page: _Page, stats: dict[str, dict[str, Any]]) -> None:
    ran = [s for s in ("ingest", "dedup", "filter", "decontaminate") if s in stats]
    if not ran:
        return
    page.h2("Funnel")
    rows = []
    for s in ran:
        st = stats[s]
        rows.append([s, st.get("input_docs"), st.get("kept_docs"), st.get("removed_docs"),
                     st.get("quarantined_docs", ""), st.get("kept_chars"), st.get("wall_seconds")])
    if "tokenize" in stats:
        st = stats["tokenize"]
        rows.append(["tokenize", st.get("input_docs"), st.get("kept_docs"), st.get("removed_docs"), "",
                     _split_total(_get(st, "tokens", default=0)), st.get("wall_seconds")])
    page.table(["stage", "input docs", "kept docs", "removed docs", "quarantined", "kept chars / tokens", "wall s"],
               rows)
    domains = sorted({d for s in ran for d in stats[s].get("by_domain", {})})
    first = stats[ran[0]]

    def draw(ax):
        import numpy as np

        x = np.arange(len(domains))
        width = 0.8 / (len(ran) + 1)
        ax.bar(x - 0.4 + width / 2, [_get(first, f"by_domain.{d}.input_docs", default=0) for d in domains], width,
               label="input", color="#bbbbbb")
        for i, s in enumerate(ran):
            kept = [_get(stats[s], f"by_domain.{d}.kept_docs", default=0) for d in domains]
            ax.bar(x - 0.4 + width * (i + 1.5), kept, width, label=f"after {s}")
        ax.set_xticks(x, domains)
        ax.set_ylabel("documents")
        ax.legend(fontsize=8)

    page.plot("funnel", "Documents per domain through the curation stages", draw)
    if "tokenize" in stats and _get(stats["tokenize"], "by_domain"):
        toks = {d: _split_total(_get(v, "tokens", default=0)) for d, v in stats["tokenize"]["by_domain"].items()}

        def draw_tokens(ax):
            ax.bar(list(toks), list(toks.values()), color="#4c72b0")
            ax.set_ylabel("tokens")

        page.plot("tokens", "Tokens per domain after tokenization", draw_tokens, size=(8, 3))
        page.p(_leakage(stats["tokenize"].get("leakage") or {}))


def _leakage(lk: dict[str, Any]) -> str:
    """The tokenize stage's held-out leakage figure in a sentence."""
    if not lk.get("measured"):
        return "Held-out leakage not measured."
    t = lk["total"]
    text = (f"Held-out leakage: {t['leaked_docs']:,} of {t['heldout_docs']:,} valid/test documents "
            f"({100 * t['share']:.2f}%) have a near-duplicate (Jaccard >= {lk['threshold']}) in train")
    if lk.get("split_by_cluster"):
        text += (f" after split by cluster, which moved {lk['moved_docs']:,} documents (before: "
                 f"{lk['before_move']['total']['leaked_docs']:,})")
    return text + "."


def _removals(page: _Page, stats: dict[str, dict[str, Any]]) -> None:
    pairs = []
    for s in ("dedup", "filter", "decontaminate"):
        for d, v in stats.get(s, {}).get("by_domain", {}).items():
            for reason, n in v.get("removed_by_reason", {}).items():
                pairs.append((s, reason, d, n))
    if not pairs:
        return
    page.h2("Removals by reason and domain")
    reasons = sorted({(s, r) for s, r, _, _ in pairs})
    domains = sorted({d for _, _, d, _ in pairs})
    counts = {(s, r, d): n for s, r, d, n in pairs}

    def draw(ax):
        import numpy as np

        bottom = np.zeros(len(domains))
        for s, r in reasons:
            vals = np.array([counts.get((s, r, d), 0) for d in domains], dtype=float)
            ax.bar(domains, vals, bottom=bottom, label=f"{s}: {r}")
            bottom += vals
        ax.set_ylabel("documents removed")
        ax.legend(fontsize=7, ncol=2)

    page.plot("removals", "Documents removed, by stage, reason and domain", draw, size=(8, 4))
    page.table(["stage", "reason"] + domains,
               [[s, r] + [counts.get((s, r, d), 0) for d in domains] for s, r in reasons])
    samples = _get(stats.get("filter", {}), "samples", "removed_samples", default={})
    if isinstance(samples, dict) and samples:
        page.p("Sampled removed documents (filter):")
        for reason, docs in sorted(samples.items()):
            for doc in (docs or [])[:2]:
                text = doc.get("text", "") if isinstance(doc, dict) else str(doc)
                ident = doc.get("id", "") if isinstance(doc, dict) else ""
                page.parts.append(f"<p><b>{html.escape(reason)}</b> {html.escape(str(ident))}</p>"
                                  f"<pre>{html.escape(text[:600])}</pre>")


def _dedup(page: _Page, st: dict[str, Any] | None) -> None:
    if not st:
        return
    curve = _get(st, "s_curve", "lsh.s_curve")
    hist = _get(st, "component_size_histogram", "cluster_size_histogram", "components.size_histogram")
    if not curve and not hist:
        return
    page.h2("Near-duplicate detection")
    params = _get(st, "lsh", default={})
    if isinstance(params, dict):
        page.p(", ".join(f"{k} = {v}" for k, v in sorted(params.items()) if not isinstance(v, (list, dict))))
    if curve:
        if isinstance(curve, list):  # [{"similarity": s, "probability": p}, ...]
            xs = [pt.get("similarity", pt.get("jaccard")) for pt in curve]
            ys = [pt.get("probability") for pt in curve]
        else:
            xs = _get(curve, "jaccard", "similarity", "s", "x", default=[])
            ys = _get(curve, "probability", "p", "y", default=[])
        threshold = _get(st, "config.threshold", "threshold")

        def draw(ax):
            ax.plot(xs, ys, color="#c44e52")
            if threshold:
                ax.axvline(threshold, ls="--", color="#555", lw=1, label=f"threshold {threshold}")
                ax.legend(fontsize=8)
            ax.set_xlabel("Jaccard similarity")
            ax.set_ylabel("P(candidate pair)")

        page.plot("s_curve", "LSH S-curve: probability that a pair becomes a candidate, by its Jaccard similarity", draw)
    if hist:
        if isinstance(hist, dict):
            items = [(str(k), v) for k, v in sorted(hist.items(), key=lambda kv: int(str(kv[0]).split("-")[0]))]
        else:  # [{"size": "3-4", "clusters": n, ...}, ...]
            items = [(str(h.get("size")), h.get("clusters", 0)) for h in hist]

        def draw_hist(ax):
            ax.bar([k for k, _ in items], [v for _, v in items], color="#8172b2")
            ax.set_xlabel("cluster size (documents)")
            ax.set_ylabel("clusters")
            ax.set_yscale("log")

        page.plot("cluster_sizes", "Duplicate clusters by size", draw_hist)
    alarms = _get(st, "alarms", default=[])
    if alarms:
        page.p("Alarms: " + "; ".join(str(a) for a in alarms))


def _filter(page: _Page, st: dict[str, Any] | None) -> None:
    if not st:
        return
    langs = _get(st, "lang_counts", "language_counts", "langid.counts")
    if not langs and isinstance(st.get("docs_by_domain_and_lang"), dict):
        langs = {}
        for per_lang in st["docs_by_domain_and_lang"].values():
            for lang, n in per_lang.items():
                langs[lang] = langs.get(lang, 0) + n
    qhist = _get(st, "quality_histogram", "quality_score_histogram", "quality.histogram")
    if not langs and not qhist:
        return
    page.h2("Language and quality")
    if langs:
        top = sorted(langs.items(), key=lambda kv: -kv[1])[:12]

        def draw(ax):
            ax.bar([k for k, _ in top], [v for _, v in top], color="#55a868")
            ax.set_ylabel("documents")
            ax.set_yscale("log")

        page.plot("languages", "Documents by detected language", draw, size=(8, 3))
    if qhist:
        edges = _get(qhist, "edges", "bins", default=[])
        counts = _get(qhist, "counts", default=[])
        cuts = _get(st, "quality.keep_top_cuts", default={}) or {}

        def draw_q(ax):
            width = (edges[1] - edges[0]) if len(edges) > 1 else 0.05
            ax.bar(edges[: len(counts)], counts, width=width, align="edge", color="#dd8452")
            for domain, cut in sorted(cuts.items()):
                ax.axvline(cut, ls="--", color="#333", lw=1)
                ax.annotate(f"{domain} cut", (cut, max(counts) * 0.9), fontsize=7, rotation=90)
            ax.set_xlabel("quality score")
            ax.set_ylabel("documents")

        page.plot("quality", "Quality-classifier scores of all documents (dashed: per-domain keep-top cuts)", draw_q, size=(8, 3))


def _decontaminate(page: _Page, st: dict[str, Any] | None) -> None:
    sets = (st or {}).get("eval_sets")
    if not isinstance(sets, dict) or not sets:
        return
    page.h2("Decontamination")
    index = st.get("index", {})
    page.p(f"{st.get('mode', 'document')} mode, word {index.get('ngram')}-grams; "
           f"{index.get('distinct_ngrams', 0):,} distinct eval n-grams, chance of a false match "
           f"{index.get('false_match_rate_per_ngram', 0):.1e} per corpus n-gram.")
    page.table(["eval set", "items", "items without n-grams", "removed docs", "edited docs", "cut chars"],
               [[name, v.get("items"), v.get("items_without_ngrams"), v.get("removed_docs"), v.get("edited_docs"),
                 v.get("cut_chars")] for name, v in sets.items()])
    domains = sorted({d for v in sets.values() for d in v.get("by_domain", {})})
    if not domains:
        page.p("No document matched any eval set.")
        return

    def hit(v: dict[str, Any], d: str) -> int:
        e = v.get("by_domain", {}).get(d, {})
        return e.get("removed_docs", 0) + e.get("edited_docs", 0)

    page.table(["eval set"] + domains, [[name] + [hit(v, d) for d in domains] for name, v in sets.items()])

    def draw(ax):
        import numpy as np

        bottom = np.zeros(len(domains))
        for name, v in sets.items():
            vals = np.array([hit(v, d) for d in domains], dtype=float)
            ax.bar(domains, vals, bottom=bottom, label=name)
            bottom += vals
        ax.set_ylabel("contaminated documents")
        ax.legend(fontsize=7)

    page.plot("decontamination", "Contaminated documents (removed or cut) per eval set and domain", draw, size=(8, 3))


def _mix(page: _Page, weights: dict[str, Any] | None, tokens: dict[str, int]) -> None:
    if not weights:
        return
    page.h2(f"Domain weights ({weights.get('method')})")
    chosen = weights["weights"]
    domains = list(chosen)
    total = sum(tokens.get(d, 0) for d in domains)
    natural = {d: tokens.get(d, 0) / total if total else 0 for d in domains}
    uniform = {d: 1 / len(domains) for d in domains}

    def draw(ax):
        import numpy as np

        x = np.arange(len(domains))
        ax.bar(x - 0.27, [uniform[d] for d in domains], 0.27, label="uniform", color="#bbbbbb")
        ax.bar(x, [natural[d] for d in domains], 0.27, label="natural", color="#4c72b0")
        ax.bar(x + 0.27, [chosen[d] for d in domains], 0.27, label=weights.get("method", "chosen"), color="#c44e52")
        ax.set_xticks(x, domains)
        ax.set_ylabel("weight")
        ax.legend(fontsize=8)

    page.plot("weights", "Chosen weights next to natural (token share) and uniform", draw)
    page.table(["domain", "uniform", "natural", weights.get("method", "chosen")],
               [[d, uniform[d], natural[d], chosen[d]] for d in domains])
    _mixer_diagnostics(page, weights)


def _mixer_diagnostics(page: _Page, weights: dict[str, Any]) -> None:
    """The plots of the mixer's own diagnostics, read through the models the mixers write."""
    from pydantic import ValidationError

    from mixers.diagnostics import DoReMiDiagnostics, RegressionDiagnostics, read_diagnostics

    method = weights.get("method")
    try:
        diag = read_diagnostics(method, weights.get("diagnostics"))
    except ValidationError as exc:
        page.p(f"The {method} diagnostics in weights.json could not be read ({exc.error_count()} problems, first: "
               f"{'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']}).")
        return
    if isinstance(diag, DoReMiDiagnostics):
        _doremi(page, diag)
    elif isinstance(diag, RegressionDiagnostics):
        _regression(page, diag, method)


def _round_steps(diag: DoReMiDiagnostics) -> list[list[int]]:
    """Each round's trajectory steps on one axis: a round's steps continue after the previous round's last."""
    out, offset = [], 0
    for r in diag.rounds:
        out.append([offset + s for s in r.trajectory.steps])
        offset = out[-1][-1] if out[-1] else offset
    return out


def _draw_rounds(ax: Any, diag: DoReMiDiagnostics, field: str, ylabel: str) -> None:
    steps = _round_steps(diag)
    colors = {}
    for r, xs in zip(diag.rounds, steps):
        rows = getattr(r.trajectory, field)
        for j, d in enumerate(diag.domains):
            line = ax.plot(xs, [row[j] for row in rows], color=colors.get(d), label=None if d in colors else d)
            colors.setdefault(d, line[0].get_color())
        if r.round > 1 and xs:
            ax.axvline(xs[0], ls=":", color="#555", lw=1)
    ax.set_xlabel("proxy step" + (" (dotted: a new round)" if len(diag.rounds) > 1 else ""))
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def _doremi(page: _Page, diag: DoReMiDiagnostics) -> None:
    page.p(f"DoReMi: {diag.rounds_run} round(s)" + (", converged." if diag.converged else "."))
    page.plot("trajectory", "DoReMi: domain weights during Group DRO training (the output is their mean)",
              lambda ax: _draw_rounds(ax, diag, "weights", "weight"))
    page.plot("excess_loss", "DoReMi: per-domain excess loss of the proxy over the reference (clipped at 0)",
              lambda ax: _draw_rounds(ax, diag, "excess_loss", "excess loss (nats)"))
    last = diag.rounds[-1]
    page.table(["domain", "weight", "mean excess loss", "reference valid loss", "proxy valid loss"],
               [[d, last.weights[d], last.mean_excess_loss[d], last.reference_valid_loss[d],
                 last.proxy_valid_loss[d]] for d in diag.domains])


def _regression(page: _Page, diag: RegressionDiagnostics, method: str) -> None:
    reg = diag.regression
    actual, pred = reg.out_of_fold.actual, reg.out_of_fold.predicted[reg.chosen]
    target = ", ".join(diag.target_domains)

    def draw(ax):
        ax.scatter(actual, pred, s=12, color="#8172b2")
        lo, hi = min(actual + pred), max(actual + pred)
        ax.plot([lo, hi], [lo, hi], ls="--", color="#555", lw=1)
        ax.set_xlabel("actual target loss (proxy run)")
        ax.set_ylabel(f"predicted by {reg.chosen} (out of fold)")

    page.plot("predicted_vs_actual", f"{method}: predicted vs actual target loss ({target}) of the "
              f"{diag.num_runs} proxy runs, {reg.cv_folds}-fold cross-validation", draw, size=(5, 4))
    page.table(["predictor", "Spearman rho", "MAE", "R^2", "chosen"],
               [[n, q.spearman, q.mae, q.r2, "yes" if n == reg.chosen else ""] for n, q in sorted(reg.cv.items())])
    if reg.per_domain:
        page.table(["domain (own law)", "Spearman rho", "MAE", "R^2"],
                   [[d, q.spearman, q.mae, q.r2] for d, q in reg.per_domain.items()])
    page.table(["mixture", "predicted target loss"], [[n, v] for n, v in diag.predicted_target_loss.items()])


def _ladder(page: _Page, result: dict[str, Any] | None) -> None:
    if not result:
        return
    from mixers.ladder import draw_ladder

    fit = result["fit"]
    page.h2("Scaling ladder: which mixture wins at the target scale")
    for line in fit["verdicts"]:
        page.p(line)
    for line in fit.get("measured_top", {}).get("verdicts", []):  # absent from a ladder.json written before it
        page.p(f"Measured, no extrapolation: {line}")
    if result.get("warning"):
        page.p(f"Warning: {result['warning']}.")
    page.plot("ladder", f"{result['metric']} test loss against training compute (dotted: the target)",
              lambda ax: draw_ladder(ax, result), size=(8, 4.5))
    page.table(["mixture", "predicted loss at target", "interval"],
               [[n, fit["predictions"][n]["loss"], fit["predictions"][n]["interval"] or "n/a"] for n in result["names"]])
    sc = result["self_check"]
    acc = sc["accuracy"]
    # A ladder.json written before the self-check split its error has no common and gap errors.
    split = (f", {sc['common_error']:+.4f} of it common to every mixture (predicted gaps off by at most "
             f"{sc['max_gap_error']:.4f})" if "max_gap_error" in sc else "")
    page.p(f"Self-check (top rung predicted from the others): mean |error| {sc['mean_abs_error']:.4f} nats{split}; "
           f"pair order right {acc['fit']} by the fit, {acc['smallest_rung']} by the smallest rung alone "
           f"({sc['pairs_counted']} pairs above the seed noise).")
    local = sc.get("local_power_law")  # absent from a ladder.json written before the cross-check
    if local:
        page.p(f"Cross-check: a local power law through the two highest fitted rungs predicts the top rung with mean "
               f"|error| {local['mean_abs_error']:.4f} nats; the observed loss lies between its prediction and the "
               f"fit's for {local['bracketed']} of {len(sc['error'])} mixtures"
               + (f"; their midpoint's mean |error| {local['midpoint_mean_abs_error']:.4f} nats."
                  if "midpoint_mean_abs_error" in local else "."))


def _shards(page: _Page, manifest: dict[str, Any] | None) -> None:
    if not manifest:
        return
    per = _get(manifest, "domains", "per_domain", default={})
    if not per:
        return
    page.h2("Training shards")
    rows = [[d, _get(v, "tokens", default=0), _get(v, "documents", "docs", default=0), _get(v, "epochs", default=0)]
            for d, v in sorted(per.items())]
    page.table(["domain", "tokens drawn", "documents drawn", "epochs"], rows)

    def draw(ax):
        ax.bar([r[0] for r in rows], [r[1] for r in rows], color="#4c72b0")
        ax.set_ylabel("tokens in shards")
        ax2 = ax.twinx()
        ax2.plot([r[0] for r in rows], [r[3] for r in rows], "o-", color="#c44e52")
        ax2.set_ylabel("epochs", color="#c44e52")

    page.plot("shards", "Tokens (bars) and epochs (dots) per domain in the training shards", draw)


# Marks a page curate wrote: a report.html without it is the user's, and is never replaced.
GENERATOR = "<meta name='generator' content='curate report'>"


def _ours(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace")
    return GENERATOR in head or "<title>curate run: " in head  # the second: pages written before the marker


def build_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html and return its path; a RUN_DIR without stage outputs, or with a report.html that
    curate did not write, is a CurateError and nothing is written."""
    root = Path(run_dir)
    stats = {s: st for s in STAGES if (st := _load(root / s / "stats.json")) is not None}
    weights = _load(root / "mix" / "weights.json")
    manifest = _load(root / "shards" / "manifest.json")
    out = root / "report.html"
    if not stats and not weights and not manifest:
        raise CurateError(f"{root} holds no curate stage outputs (STAGE/stats.json): nothing to report")
    if out.exists() and (not out.is_file() or not _ours(out)):
        raise CurateError(f"{out} exists and was not written by curate: curate replaces only its own report; "
                          f"move it away first")
    tokens = {d: int(_get(v, "tokens", default=0)) for d, v in
              (_get(_load(root / "tokenize" / "datasets.json") or {}, "splits.train", default={}) or {}).items()}
    page = _Page(f"curate run: {root.resolve()}")
    _funnel(page, stats)
    _removals(page, stats)
    _dedup(page, stats.get("dedup"))
    _filter(page, stats.get("filter"))
    _decontaminate(page, stats.get("decontaminate"))
    _mix(page, weights, tokens)
    _ladder(page, _load(root / "ladder" / "ladder.json"))
    _shards(page, manifest)
    out.write_text(page.render(), encoding="utf-8")
    return out
