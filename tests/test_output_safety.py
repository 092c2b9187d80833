"""A stage never deletes what it did not write, never shares its output with a concurrent run, never passes through a
moment without the previous result, and leaves no files of its own behind (issue 20, items 1, 6 and 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from curate.cli import main
from curate.errors import CurateError
from curate.fs import LocalFS, local_path
from curate.output_target import OutputTarget


def _corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.jsonl").write_text("".join(json.dumps({"text": f"document number {i}", "domain": "web"}) + "\n"
                                          for i in range(5)))
    return root


def _ingest(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["ingest", *args])
    return code, capsys.readouterr().err


def test_out_holding_foreign_files_is_refused_and_left_intact(spark, tmp_path, capsys):
    src = _corpus(tmp_path / "in")
    precious = tmp_path / "d" / "precious"
    precious.mkdir(parents=True)
    (precious / "IMPORTANT.txt").write_text("thesis")
    code, err = _ingest([str(src), "--out", str(precious)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not a curate output" in err
    assert (precious / "IMPORTANT.txt").read_text() == "thesis"
    # --overwrite never replaces a directory of foreign files either.
    code, err = _ingest([str(src), "--out", str(precious), "--overwrite"], capsys)
    assert code == 2 and (precious / "IMPORTANT.txt").read_text() == "thesis"
    assert not [p for p in precious.parent.iterdir() if p.name.startswith(".")], "lock or temp dir left behind"


def test_out_empty_dot_or_overlapping_an_input_is_refused(spark, tmp_path, capsys, monkeypatch):
    src = _corpus(tmp_path / "in")
    monkeypatch.chdir(src)
    for out, message in (("", "--out is empty"), (".", "inside the input"), (str(src), "inside the input"),
                         (str(src / "sub"), "inside the input"), (str(tmp_path), "is inside --out")):
        code, err = _ingest([str(src), "--out", out], capsys)
        assert code == 2 and message in err, (out, err)
    assert sorted(p.name for p in src.iterdir()) == ["a.jsonl"]


def test_a_stage_replaces_its_own_output_and_another_stage_output_only_with_overwrite(spark, tmp_path, capsys):
    src = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    assert _ingest([str(src), "--out", str(out)], capsys)[0] == 0
    first = json.loads((out / "stats.json").read_text())
    (out / "_FINGERPRINT").write_text("x\n")  # what the pipeline runner adds is part of our output too
    assert _ingest([str(src), "--out", str(out)], capsys)[0] == 0
    assert json.loads((out / "stats.json").read_text())["kept_docs"] == first["kept_docs"] == 5
    capsys.readouterr()
    assert main(["dedup", str(src), "--out", str(out)]) == 2
    assert "holds a curate ingest output: pass --overwrite" in capsys.readouterr().err
    assert main(["dedup", str(src), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "stats.json").read_text())["stage"] == "dedup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_a_crash_between_the_renames_keeps_the_previous_output_and_the_next_run_restores_it(tmp_path):
    fs = LocalFS()
    out = tmp_path / "out"
    first = OutputTarget(fs, str(out), "mix")
    tmp = Path(local_path(first.open()))
    (tmp / "stats.json").write_text(json.dumps({"stage": "mix"}))
    (tmp / "_SUCCESS").write_text("")
    first.commit()
    assert json.loads((out / "stats.json").read_text()) == {"stage": "mix"}

    second = OutputTarget(fs, str(out), "mix")
    Path(local_path(second.open()), "stats.json").write_text(json.dumps({"stage": "mix", "run": 2}))
    real_rename = fs.rename
    calls = []

    def dies_on_second_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after the old output went aside, before the new one came in
        real_rename(src, dst)

    fs.rename = dies_on_second_rename
    with pytest.raises(KeyboardInterrupt):
        second.commit()
    fs.rename = real_rename
    assert not out.exists() and len(list(tmp_path.glob(".out.*.old"))) == 1

    third = OutputTarget(fs, str(out), "mix")
    third.open()
    assert json.loads((out / "stats.json").read_text()) == {"stage": "mix"}
    third.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_target_in_use_by_a_live_run_is_refused_and_a_dead_run_lock_is_taken_over(tmp_path):
    fs = LocalFS()
    out = tmp_path / "out"
    a, b = OutputTarget(fs, str(out), "ingest"), OutputTarget(fs, str(out), "ingest")
    assert a.tmp != b.tmp  # temporary directories unique per run
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (tmp_path / ".out.lock").write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(CurateError, match=f"in use by pid {sleeper.pid}"):
            a.open()
    finally:
        sleeper.kill()
        sleeper.wait()
    # The holder died: its lock is stale, and the temporary directory it left is cleared.
    (tmp_path / ".out.ingest.0123456789ab.tmp").mkdir()
    a.open()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".out.lock", Path(local_path(a.tmp)).name])
    with pytest.raises(CurateError, match="in use by"):
        _other_process_open(out)
    a.release()
    assert list(tmp_path.iterdir()) == []


def _other_process_open(out: Path) -> None:
    """Open the target from a second process while this one holds it; its one-line error, raised here."""
    code = ("import sys\nfrom curate.fs import LocalFS, local_path\nfrom curate.output_target import OutputTarget\n"
            "from curate.errors import CurateError\ntry:\n"
            f"    OutputTarget(LocalFS(), {str(out)!r}, 'ingest').open()\n"
            "except CurateError as e:\n    print(e)\n    sys.exit(2)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode == 2:
        raise CurateError(done.stdout.strip())


def test_task_attempts_write_their_own_hidden_files_and_only_the_counted_one_is_committed(spark, tmp_path):
    from curate.stage_output import StageOutput, _PartFile

    schema = pa.schema([("id", pa.string())])
    stage = StageOutput(spark, str(tmp_path / "out"), "ingest")
    target = stage.path("kept")
    # Two attempts of task 0 (a hung one and its retry) writing at once: distinct hidden files, no clash.
    files = [_PartFile(f"{target}/part-00000.parquet", schema, attempt) for attempt in ("attempt-1", "attempt-2")]
    for f, ids in zip(files, (["hung"], ["retry"])):
        f.add(pa.RecordBatch.from_pydict({"id": ids}, schema=schema))
        f.close()
    assert files[0].attempt_path != files[1].attempt_path
    assert all(Path(f.attempt_path).name.startswith(".") for f in files)
    stage._commit(target, [{"file": files[1].path, "attempt": files[1].attempt_path}])
    assert [r["id"] for r in spark.read.parquet(target).collect()] == ["retry"]
    assert sorted(p.name for p in Path(local_path(target)).iterdir()) == ["part-00000.parquet"]
    stage.target.release()


def test_cluster_package_zip_is_removed_when_the_driver_exits(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    code = "from curate.spark import package_zip; print(package_zip())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("curate_packages.zip")
    assert list(tmp_path.iterdir()) == []


def test_a_tokenize_output_holding_the_mixers_run_caches_is_still_replaceable(tmp_path):
    # RegMix, the mixing law and the ladder keep their proxy-run caches in DATA by default: a re-tokenize (or a
    # resumed pipeline) must still replace DATA, while a user's file beside them keeps it safe.
    fs = LocalFS()
    out = tmp_path / "tokens"
    (out / ".regmix-cache").mkdir(parents=True)
    (out / ".ladder-cache").mkdir()
    (out / "stats.json").write_text(json.dumps({"stage": "tokenize"}))
    target = OutputTarget(fs, str(out), "tokenize")
    target.open()
    target.release()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CurateError, match="is not a curate output"):
        OutputTarget(fs, str(out), "tokenize").open()
