"""The run report: every plot of the stages that ran is on the page, and a real browser renders it without errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from curate.config import load_pipeline
from curate.pipeline import PIPELINES_DIR
from curate.report import build_report

# The plots each stage contributes when it ran (the mix stage's depend on the method: PLOTS_BY_METHOD).
PLOTS_BY_STAGE = {
    "ingest": ["funnel"],
    "dedup": ["removals", "s_curve", "cluster_sizes"],
    "filter": ["removals", "languages", "quality"],
    "tokenize": ["tokens"],
    "shards": ["shards"],
}
PLOTS_BY_METHOD = {
    "uniform": ["weights"],
    "natural": ["weights"],
    "doremi": ["weights", "trajectory", "excess_loss"],
    "regmix": ["weights", "predicted_vs_actual"],
    "mixing-law": ["weights", "predicted_vs_actual"],
}


def _plots(page: str) -> list[str]:
    return sorted(set(re.findall(r'data-plot="([a-z_]+)"', page)))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_has_every_plot_of_the_demo_run(demo_run):
    _, run_dir, sets = demo_run
    page = build_report(run_dir).read_text()
    pipeline = load_pipeline(PIPELINES_DIR / "demo.toml", sets)
    by_stage = PLOTS_BY_STAGE | {"mix": PLOTS_BY_METHOD[pipeline.mix.method]}
    expected = sorted({p for s in pipeline.stages for p in by_stage[s]})
    present = _plots(page)
    assert set(expected) <= set(present), f"missing plots: {sorted(set(expected) - set(present))}"
    assert page.count("data:image/png;base64,") == len(re.findall(r"data-plot=", page))


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    _, run_dir, _ = demo_run
    report = build_report(run_dir)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = re.search(r'data-plots-loaded="(\d+)"', dom.stdout)
    total = re.search(r'data-plots-total="(\d+)"', dom.stdout)
    assert loaded and total, "the page's load handler did not run"
    assert int(total.group(1)) > 0 and loaded.group(1) == total.group(1), "some plots did not decode"
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1100,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


# -- the mix section per method, from the mixers' own output (tiny runs: the shape matters, not the weights) -------

# DoReMi with two rounds (the trajectory spans both), RegMix on 6 proxy runs, the mixing law on RegMix's cached runs.
TINY = dict(model_size="tiny", seq_len=16, batch_size=6, lr=3e-3, warmup_steps=2, precision="fp32", device="cpu",
            threads=1, eval_windows=4)
# Two threads: one process (at one thread a worker process per core trains the runs, and each one imports torch).
TINY_RUNS = TINY | dict(steps=4, num_runs=6, cv_folds=3, threads=2, verbose=False)


@pytest.fixture(scope="module")
def mixer_outputs(tmp_path_factory):
    """{method: weights.json dict} from tiny real runs of every mixer on the controlled three-domain data."""
    from mixers import MIXERS
    from tests.test_regmix import make_controlled_data

    root = tmp_path_factory.mktemp("report_mix")
    data = make_controlled_data(root / "DATA", docs=6, doc_len=48)
    params = {
        "uniform": {}, "natural": {},
        "doremi": TINY | dict(steps=4, rounds=2, tol=0.0, eval_windows=2),
        "regmix": TINY_RUNS | dict(target="target", num_simulated=2000, top_k=10, regressors=["linear", "hgb"]),
        "mixing-law": TINY_RUNS | dict(target="target", num_candidates=500, refine=2, restarts=2),
    }
    return {m: MIXERS[m](**kw).fit(data).to_json() for m, kw in params.items()}


def _report(run_dir, weights: dict) -> str:
    (run_dir / "mix").mkdir(parents=True)
    (run_dir / "mix" / "weights.json").write_text(json.dumps(weights))
    return build_report(run_dir).read_text()


@pytest.mark.parametrize("method", list(PLOTS_BY_METHOD))
def test_report_draws_each_mixers_diagnostics(mixer_outputs, method, tmp_path):
    weights = mixer_outputs[method]
    page = _report(tmp_path / "run", weights)
    assert _plots(page) == sorted(PLOTS_BY_METHOD[method])
    diag = weights["diagnostics"]
    if method == "doremi":
        assert [r["round"] for r in diag["rounds"]] == [1, 2]
        assert "mean excess loss" in page and "DoReMi: 2 round(s)" in page
    if method in ("regmix", "mixing-law"):
        chosen = diag["regression"]["chosen"]
        cv_rows = re.findall(r"<tr><td>([a-z-]+)</td>(?:<td>[^<]*</td>){3}<td>(yes)?</td></tr>", page)
        assert sorted(n for n, _ in cv_rows) == sorted(diag["regression"]["cv"])
        assert [n for n, yes in cv_rows if yes] == [chosen]
        assert f"of the {diag['num_runs']} proxy runs" in page
    if method == "mixing-law":
        assert "domain (own law)" in page


def test_report_names_unreadable_mixer_diagnostics_in_a_line(mixer_outputs, tmp_path):
    weights = json.loads(json.dumps(mixer_outputs["doremi"]))
    del weights["diagnostics"]["rounds"][0]["trajectory"]
    page = _report(tmp_path / "run", weights)
    assert _plots(page) == ["weights"]
    assert "The doremi diagnostics in weights.json could not be read" in page
    assert "rounds.0.trajectory: Field required" in page


def test_report_never_replaces_a_users_page_or_reports_a_directory_without_outputs(tmp_path):
    from curate.errors import CurateError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("<h1>my own report</h1>")
    with pytest.raises(CurateError, match="holds no curate stage outputs"):
        build_report(mine)
    (mine / "ingest").mkdir()
    (mine / "ingest" / "stats.json").write_text(json.dumps({"stage": "ingest", "input_docs": 1, "kept_docs": 1}))
    with pytest.raises(CurateError, match="was not written by curate"):
        build_report(mine)
    assert (mine / "report.html").read_text() == "<h1>my own report</h1>"
    (mine / "report.html").unlink()
    page = build_report(mine)
    assert build_report(mine) == page  # its own page, it replaces
