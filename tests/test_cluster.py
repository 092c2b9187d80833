"""The demo pipeline on a real standalone cluster (master + 2 workers on loopback) gives the bytes local mode gives."""

from __future__ import annotations

import subprocess
import sys

from conftest import cluster_session_conf, run_outputs

from curate.pipeline import PIPELINES_DIR


def test_demo_pipeline_on_standalone_cluster_matches_local(demo_run, standalone_cluster, tmp_path):
    _, local_run, sets = demo_run

    conf = [arg for k, v in cluster_session_conf().items() for arg in ("--conf", f"{k}={v}")]
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(PIPELINES_DIR / "demo.toml"), "--out", str(tmp_path / "cluster"),
         "--master", standalone_cluster.url, *conf, *[a for s in sets for a in ("--set", s)]],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    local, cluster = run_outputs(local_run), run_outputs(tmp_path / "cluster")
    assert sorted(local) == sorted(cluster)
    assert any(name.endswith(".parquet") for name in local)
    for name in local:
        assert local[name] == cluster[name], f"{name} differs between local mode and the cluster"
