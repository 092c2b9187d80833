"""A run killed in the middle of a stage, then resumed, ends with exactly the outputs of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import run_outputs

from curate.pipeline import PIPELINES_DIR


def test_killed_run_resumed_matches_uninterrupted(demo_run, tmp_path):
    _, clean_run, sets = demo_run
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "curate.cli", "run", str(PIPELINES_DIR / "demo.toml"), "--out", str(run_dir),
           *[a for s in sets for a in ("--set", s)]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill it while the second stage is writing: its temporary directory exists, the first stage is finished.
    deadline = time.time() + 600
    killed = False
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "ingest" / "_SUCCESS").exists() and any(run_dir.glob(".dedup.*.tmp")):
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    proc.wait(60)
    assert killed, "the run ended before it could be killed mid-stage"
    assert not (run_dir / "dedup" / "_SUCCESS").exists()
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ingest (finished earlier" in resumed.stderr.replace("\n", " ") or "skipped" in resumed.stderr
    assert not list(run_dir.glob(".*.tmp"))
    assert run_outputs(run_dir) == run_outputs(clean_run)


def test_a_setting_of_the_ladder_reruns_the_ladder_alone_under_resume():
    from curate.config import PipelineConfig
    from curate.pipeline import chain_fingerprints

    stages = ["tokenize", "mix", "ladder", "shards"]
    base = chain_fingerprints(None, PipelineConfig(stages=stages))
    ladder = chain_fingerprints(None, PipelineConfig(stages=stages, ladder={"eval_windows": 32}))
    mix = chain_fingerprints(None, PipelineConfig(stages=stages, mix={"method": "natural"}))
    # Nothing reads the ladder's verdicts: its settings change its own fingerprint, not the shards' after it.
    assert [base[s] == ladder[s] for s in stages] == [True, True, False, True]
    # The shards read the mix stage's weights: a mix setting reaches them.
    assert [base[s] == mix[s] for s in stages] == [True, False, False, False]
