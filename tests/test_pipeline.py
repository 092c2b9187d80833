"""The pipeline runner: resume skips what finished with the same fingerprint and reruns what changed or broke."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curate.config import load_pipeline
from curate.pipeline import run_pipeline


def _write(p: Path, rows: list[dict]) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _pipeline(tmp_path: Path, extra: str = "") -> Path:
    _write(tmp_path / "in" / "a.jsonl", [{"text": f"document number {i}", "domain": "web"} for i in range(20)])
    p = tmp_path / "p.toml"
    p.write_text(f'stages = ["ingest"]\n[ingest]\ninputs = ["{tmp_path / "in"}"]\n{extra}')
    return p


def test_resume_skips_a_finished_stage_and_reruns_a_changed_one(spark, tmp_path):
    p = _pipeline(tmp_path)
    run = str(tmp_path / "run")
    run_pipeline(spark, load_pipeline(p), run)
    stats_file = tmp_path / "run" / "ingest" / "stats.json"
    first = stats_file.read_bytes()
    ran: list[tuple[str, dict, str]] = []
    run_pipeline(spark, load_pipeline(p), run, resume=True, on_stage=lambda *a: ran.append(a))
    assert stats_file.read_bytes() == first  # skipped: not even stats.json was rewritten
    assert ran == []  # a skipped stage has no summary to print
    run_pipeline(spark, load_pipeline(p, ["ingest.max_doc_chars=10"]), run, resume=True,
                 on_stage=lambda *a: ran.append(a))
    stats = json.loads(stats_file.read_text())
    assert stats["config"]["max_doc_chars"] == 10 and stats["quarantined_docs"] == 20
    assert ran == [("ingest", stats, f"{run}/ingest")]


def test_resume_reruns_a_stage_without_success_marker(spark, tmp_path):
    p = _pipeline(tmp_path)
    run = str(tmp_path / "run")
    run_pipeline(spark, load_pipeline(p), run)
    kept = sorted((tmp_path / "run" / "ingest" / "kept").rglob("*.parquet"))
    before = {f: f.read_bytes() for f in kept}
    (tmp_path / "run" / "ingest" / "_SUCCESS").unlink()  # as if killed before the end
    run_pipeline(spark, load_pipeline(p), run, resume=True)
    assert (tmp_path / "run" / "ingest" / "_SUCCESS").exists()
    assert {f: f.read_bytes() for f in kept} == before


def test_fingerprint_covers_the_files_a_stage_reads_beside_its_input(spark, tmp_path):
    from curate.pipeline import stage_fingerprint

    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"weights": {"a": 0.5, "b": 0.5}}))
    cfg = load_pipeline(_pipeline(tmp_path), [f"shards.weights={weights}"])
    before = stage_fingerprint(spark, "shards", cfg, "upstream")
    assert stage_fingerprint(spark, "shards", cfg, "upstream") == before
    # An edited weights file must rerun shards under --resume, as an edited input reruns ingest.
    weights.write_text(json.dumps({"weights": {"a": 0.9, "b": 0.1}}))
    assert stage_fingerprint(spark, "shards", cfg, "upstream") != before
    ingest = stage_fingerprint(spark, "ingest", cfg, None)
    _write(tmp_path / "in" / "b.jsonl", [{"text": "one more document", "domain": "web"}])
    assert stage_fingerprint(spark, "ingest", cfg, None) != ingest


def test_bad_set_is_one_line(tmp_path):
    p = _pipeline(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "run", str(p), "--set", "ingest.max_doc_chars=lots"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ingest.max_doc_chars" in lines[0] and "Traceback" not in proc.stderr


def test_every_pipeline_stage_has_a_cli_summary_and_only_the_cli_imports_the_cli():
    from curate.commands.summaries import STAGE_SUMMARIES
    from curate.pipeline import STAGES

    assert set(STAGE_SUMMARIES) == set(STAGES)
    root = Path(__file__).resolve().parent.parent
    outside = [p for d in ("curate", "mixers", "proxy_training") for p in (root / d).rglob("*.py")
               if "commands" not in p.relative_to(root).parts and p.name != "cli.py"]
    assert outside and not [p for p in outside if "curate.commands" in p.read_text()]


@pytest.mark.parametrize("overrides, message", [
    (['stages=[]'], "stages: empty"),
    (['stages=["ingest", "ingest"]'], "ingest listed twice"),
    (['stages=["ingest", "mix"]'], "mix: needs the tokenize stage"),
    (['stages=["ingest", "tokenize", "mix"]', 'mix.method="bogus"'], "'bogus' is not a mixer"),
    (['stages=["ingest", "tokenize", "mix"]', 'mix.method="regmix"', 'mix.params.steps=0'], "steps: 0 is out of range"),
    (['stages=["ingest", "tokenize", "ladder"]', 'ladder.rungs=["d16:20K", "d32:40K"]'], "at least 3 rungs"),
])
def test_a_mistake_in_a_late_stage_stops_the_run_before_the_first_stage(tmp_path, capsys, overrides, message):
    from curate.cli import main

    p = _pipeline(tmp_path)
    assert main(["run", str(p), "--out", str(tmp_path / "run"), *[a for o in overrides for a in ("--set", o)]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # nothing ran: not even ingest
