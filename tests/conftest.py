"""One SparkSession for the whole suite, and a loopback standalone cluster for the tests that need a real one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from curate.spark import get_spark

    session = get_spark(
        master="local[2]",
        conf={"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4", "spark.driver.memory": "2g"},
    )
    yield session
    session.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandaloneCluster:
    """A Spark master and two one-core workers on 127.0.0.1, started from pyspark's spark-class, stopped by PID."""

    def __init__(self, workdir: Path):
        import pyspark

        self.home = Path(pyspark.__file__).parent
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SPARK_HOME": str(self.home), "SPARK_LOCAL_IP": "127.0.0.1",
                    "SPARK_LOCAL_HOSTNAME": "localhost", "SPARK_DAEMON_MEMORY": "256m",
                    "PYSPARK_PYTHON": sys.executable}

    def _start(self, args: list[str], log: Path) -> None:
        cmd = [str(self.home / "bin" / "spark-class"), *args]
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def start(self) -> None:
        master_log = self.workdir / "master.log"
        self._start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port),
                     "--webui-port", str(_free_port())], master_log)
        for i in (1, 2):
            wd = self.workdir / f"w{i}"
            wd.mkdir(parents=True, exist_ok=True)
            self._start(["org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1", "--cores", "1",
                         "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(wd)],
                        self.workdir / f"worker{i}.log")
        deadline = time.time() + 120
        while time.time() < deadline:
            text = master_log.read_text(errors="replace") if master_log.exists() else ""
            if text.count("Registering worker") >= 2:
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"standalone cluster did not start; master log:\n{master_log.read_text(errors='replace')}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory):
    """A real standalone cluster (master + 2 workers) on loopback; skipped where there is no Java."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    cluster = StandaloneCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


def cluster_session_conf() -> dict[str, str]:
    return {"spark.executor.memory": "512m", "spark.executor.cores": "1", "spark.cores.max": "2",
            "spark.pyspark.python": sys.executable, "spark.sql.shuffle.partitions": "4"}


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """The demo pipeline run once in local mode: (corpus dir, run dir, pipeline overrides)."""
    from curate.config import load_pipeline
    from curate.demo import build_demo_corpus
    from curate.pipeline import PIPELINES_DIR, run_pipeline

    root = tmp_path_factory.mktemp("demo")
    build_demo_corpus(root / "corpus")
    # The demo as shipped, with a shorter DoReMi proxy run: the tests check the path and the bytes, not the weights.
    sets = [f'ingest.inputs=["{root / "corpus" / "raw"}"]', "mix.params={ steps = 40 }"]
    run_pipeline(spark, load_pipeline(PIPELINES_DIR / "demo.toml", sets), str(root / "run"))
    return root / "corpus", root / "run", sets


def run_outputs(root: Path) -> dict[str, bytes]:
    """Every output file of a run directory, for byte comparison: stats.json without its wall-clock timings and with
    the run directory's own path masked (configs name it), the report left out (it shows the run's path)."""
    import json

    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "report.html":
            continue
        rel = str(p.relative_to(root))
        if p.suffix == ".json":
            # Stats and model metadata record configs whose paths name the run directory: mask it.
            stats = json.loads(p.read_text().replace(str(root), "<RUN>"))
            for timing in ("wall_seconds", "seconds", "timings"):  # wall-clock measurements, never equal
                stats.pop(timing, None)
            stats.get("config", {}).pop("inputs", None)
            out[rel] = json.dumps(stats, sort_keys=True).encode()
        else:
            out[rel] = p.read_bytes()
    return out
