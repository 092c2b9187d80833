"""The run report: every plot of the stages that ran is on the page, and a real browser renders it without errors."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from curate.config import load_pipeline
from curate.pipeline import PIPELINES_DIR
from curate.report import build_report

# The plots each stage contributes when it ran.
PLOTS_BY_STAGE = {
    "ingest": ["funnel"],
    "dedup": ["removals", "s_curve", "cluster_sizes"],
    "filter": ["removals", "languages", "quality"],
    "tokenize": ["tokens"],
    "mix": ["weights"],
    "shards": ["shards"],
}


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_has_every_plot_of_the_demo_run(demo_run):
    _, run_dir, sets = demo_run
    page = build_report(run_dir).read_text()
    stages = load_pipeline(PIPELINES_DIR / "demo.toml", sets).stages
    expected = sorted({p for s in stages for p in PLOTS_BY_STAGE[s]})
    present = sorted(set(re.findall(r'data-plot="([a-z_]+)"', page)))
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
