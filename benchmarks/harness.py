"""What the benchmark scripts share: a meter of wall time, CPU time and peak memory of a process tree, running a
system under test in a child process, the device a result was measured on, and the JSON file `--json` writes.

The scripts run as `python benchmarks/NAME.py`, so this directory leads sys.path: `import harness` (or a sibling
script such as `import text_corpus`) finds the file here, and no file here may take the name of a standard-library
module or of a project package (it would shadow it for everything the script imports).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

MIB = 2**20
ROOT = Path(__file__).resolve().parent.parent


class ResourceMeter:
    """Wall seconds, CPU seconds and peak RSS of a process (this one, or `pid`) and its descendants while the block
    runs.

    `driver` is the root process's peak RSS, `workers` the peak of its descendants' summed RSS (a JVM, Spark's Python
    workers, a pool's processes), `total` the peak of the whole tree sampled at one instant (not driver + workers,
    whose peaks may fall at different times); all in bytes. They are polled every `interval` seconds and once at the
    end; for this process a rise of the kernel's high-water marks (ru_maxrss of this process and of the children it
    reaped) during the block counts too, so a spike between two polls is not lost. `cpu_s` is the user + system time
    the tree spent in the block (a process that ends between two polls loses its last interval): on a loaded machine
    it varies less than wall time. Processes named in `exclude` (e.g. "java": a JVM kept for another step) and their
    descendants (the JVM's Python workers) count towards nothing.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2, exclude: tuple[str, ...] = ()):
        self.pid = pid
        self.interval = interval
        self.exclude = exclude
        self.driver = self.workers = self.total = 0
        self.wall_s = self.cpu_s = 0.0
        self._cpu: dict[int, float] = {}
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:  # the root has ended
            return []
        if self.exclude:
            skip = set()
            for p in procs:
                if _named(p, self.exclude):
                    skip.add(p.pid)
                    skip.update(c.pid for c in _children(p))
            procs = [p for p in procs if p.pid not in skip]
        return procs

    def _sample(self, cpu: dict[int, float]) -> None:
        driver = workers = 0
        for i, p in enumerate(self._procs()):
            try:
                rss = p.memory_info().rss
                t = p.cpu_times()
            except psutil.Error:
                continue
            if i == 0 and p.pid == (self.pid or os.getpid()):
                driver = rss
            else:
                workers += rss
            cpu[p.pid] = max(cpu.get(p.pid, 0.0), t.user + t.system)
        self.driver = max(self.driver, driver)
        self.workers = max(self.workers, workers)
        self.total = max(self.total, driver + workers)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(self._cpu)

    def __enter__(self) -> ResourceMeter:
        self._sample(self._base)
        self._cpu = dict(self._base)
        self._maxrss = _maxrss()
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        self._sample(self._cpu)
        if self.pid is None:
            own, children = _maxrss()
            if own > self._maxrss[0]:  # a new high-water mark: the block's peak, to the byte
                self.driver = max(self.driver, own)
            if children > self._maxrss[1] and not self.exclude:  # the largest child it reaped
                self.workers = max(self.workers, children)
            self.total = max(self.total, self.driver, self.workers)
        self.cpu_s = sum(t - self._base.get(pid, 0.0) for pid, t in self._cpu.items())

    def peak_mib(self) -> dict[str, int]:
        """{"driver": MiB, "workers": MiB}: the memory line of a JSON result."""
        return {"driver": round(self.driver / MIB), "workers": round(self.workers / MIB)}


def _named(p: psutil.Process, names: tuple[str, ...]) -> bool:
    try:
        return p.name() in names
    except psutil.Error:
        return False


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def _maxrss() -> tuple[int, int]:
    """Peak RSS in bytes of this process and of the largest child it has reaped (Linux reports KiB)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)


def process_peak_rss() -> int:
    """This process's peak RSS in bytes since it started."""
    return _maxrss()[0]


def device(torch_device: str = "cpu") -> str:
    """Where a result was measured: the GPU's name when `torch_device` resolves to CUDA, else the CPU and the number
    of cores this process may use."""
    if torch_device != "cpu":
        from proxy_training.trainer import resolve_device  # imports torch: only for the scripts that train

        dev = resolve_device(torch_device)
        if dev.type == "cuda":
            import torch

            return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def write_json(path: str | Path, benchmark: str, device: str, **fields) -> None:
    """The file `--json` writes: the benchmark, the device, the load average when it ended (other jobs on a shared
    machine change wall times), then the script's own fields."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": benchmark, "device": device, "load_avg": os.getloadavg(), **fields}
    path.write_text(json.dumps(out, indent=2) + "\n")


def measure_child(script: str, args: list[str], result: str | Path) -> dict:
    """Run `script` in a child process with `args` (a system under test, which writes its result as JSON to
    `result`) and return that result with `process_s` (the child's whole life: interpreter, imports, JVM start),
    `cpu_s` and `peak_rss_mb` of the child's process tree."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, script, *args, "--result", str(result)], env=env)
    with ResourceMeter(pid=proc.pid) as mem:
        rc = proc.wait()
    if rc != 0:
        raise SystemExit(f"{Path(script).name} {' '.join(args)} failed with exit code {rc}")
    res = json.loads(Path(result).read_text())
    res.update(process_s=mem.wall_s, cpu_s=mem.cpu_s, peak_rss_mb=mem.total / MIB)
    return res


def write_jsonl_shards(rows: list[dict], out: Path, shards: int) -> int:
    """`rows` dealt round-robin into `shards` files out/shard-NN.jsonl (a reader splits work by file: both systems
    under test then get the same partitioning); returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with open(out / f"shard-{s:02d}.jsonl", "w", encoding="utf-8") as f:
            for r in rows[s::shards]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return sum(p.stat().st_size for p in out.glob("shard-*.jsonl"))


def stage_decisions(out: str | Path, column: str) -> dict[str, str | None]:
    """id -> None for a document a curate stage kept, else the removed row's `column` (its reason, its eval set):
    what a benchmark compares with the peer's decisions."""
    import pyarrow.dataset as ds

    kept = ds.dataset(f"{out}/kept", partitioning="hive").to_table(columns=["id"]).column("id").to_pylist()
    removed = ds.dataset(f"{out}/removed").to_table(columns=["id", column]).to_pydict()
    decisions: dict[str, str | None] = {i: None for i in kept}
    decisions.update(zip(removed["id"], removed[column]))
    return decisions


def shapes_json(results: dict[str, dict]) -> dict:
    """The `--json` fields of a run over corpus shapes ({shape: {"rows", "ratios", ...}}): one shape's result as it
    is (the layout before shapes existed), several as rows and ratios tagged with their shape."""
    if len(results) == 1:
        return next(iter(results.values()))
    return dict(rows=[{**r, "shape": s} for s, res in results.items() for r in res["rows"]],
                ratios={f"{s}: {k}": v for s, res in results.items() for k, v in res["ratios"].items()},
                shapes=results)


def alternate_rounds(script: str, rounds: int, run_args: Callable[[str, int], tuple[list[str], Path]],
                     systems: tuple[str, ...] = ("datatrove", "ours")) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Each system run `rounds` times through `measure_child`, alternating (a slow spell of a shared machine then
    hits every system alike); `run_args(system, k)` gives the script's arguments and its output directory. Returns
    each system's median run by wall time, and all its runs."""
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for k in range(rounds):
        for system in systems:
            args, out = run_args(system, k)
            # A rerun in the same --work starts clean (datatrove skips tasks its logs mark done: a 0 s "run").
            shutil.rmtree(out, ignore_errors=True)
            r = measure_child(script, args, f"{out}.result.json")
            runs[system].append(r)
            print(f"round {k + 1}: {system} {r['wall_s']:.1f} s (process {r['process_s']:.1f} s)", flush=True)
    return {s: sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2] for s, rs in runs.items()}, runs
