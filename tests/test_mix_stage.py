"""`curate mix --out DIR` is the pipeline's mix stage: the same writer, the same files, the same safety rules."""

from __future__ import annotations

import json
import os

import pytest
from tokenize_data import make_data

from curate.cli import main
from curate.mix_stage import MixConfig, run_mix

LENGTHS = {"code": [30, 50], "legal": [40, 40], "web": [20, 20]}  # 80, 80, 40 train tokens: natural 0.4, 0.4, 0.2
TOKENS = {d: sum(v) for d, v in LENGTHS.items()}


@pytest.fixture()
def data(tmp_path):
    return make_data(tmp_path / "data", LENGTHS)


def _mix(*args: str) -> int:
    return main(["mix", *args])


def test_curate_mix_writes_a_stage_directory_with_stats_and_success(data, tmp_path, capsys):
    out = tmp_path / "mix"
    assert _mix(str(data), "--method", "natural", "--out", str(out)) == 0
    assert sorted(os.listdir(out)) == ["_SUCCESS", "stats.json", "weights.json"]
    assert (out / "_SUCCESS").read_text() == ""
    weights = json.loads((out / "weights.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    natural = {d: t / sum(TOKENS.values()) for d, t in TOKENS.items()}
    assert stats["stage"] == "mix" and stats["method"] == "natural" == weights["method"]
    assert stats["domains"] == ["code", "legal", "web"] == weights["domains"]
    assert stats["weights"] == weights["weights"] == pytest.approx(natural)
    assert sum(stats["weights"].values()) == pytest.approx(1.0)
    assert stats["config"]["method"] == "natural" and stats["target"] is None
    assert stats["wall_seconds"] >= 0 and "curate_version" in stats
    printed = capsys.readouterr().err
    assert "mix (natural): code 0.400, legal 0.400, web 0.200" in printed and "weights.json" in printed
    # Nothing beside the output: no temporary directory, no lock.
    assert sorted(os.listdir(tmp_path)) == ["data", "mix"]


def test_cli_and_pipeline_write_the_same_weights_and_a_json_out_stays_the_weights_file(data, tmp_path):
    assert _mix(str(data), "--method", "uniform", "--seed", "7", "--out", str(tmp_path / "cli")) == 0
    stats = run_mix(MixConfig(method="uniform"), str(data), str(tmp_path / "pipeline"), seed=7)
    cli = json.loads((tmp_path / "cli" / "stats.json").read_text())
    assert sorted(cli) == sorted(stats)
    assert {k: v for k, v in cli.items() if k != "wall_seconds"} == {k: v for k, v in stats.items()
                                                                     if k != "wall_seconds"}
    weights = (tmp_path / "pipeline" / "weights.json").read_bytes()
    assert (tmp_path / "cli" / "weights.json").read_bytes() == weights
    # The earlier form: a path ending in .json is the weights file itself, byte for byte the stage's weights.json.
    assert _mix(str(data), "--method", "uniform", "--out", str(tmp_path / "w.json")) == 0
    assert (tmp_path / "w.json").read_bytes() == weights
    assert not (tmp_path / "stats.json").exists() and not (tmp_path / "_SUCCESS").exists()


def test_curate_mix_replaces_its_own_output_and_never_a_users_directory(data, tmp_path, capsys):
    out = tmp_path / "mix"
    assert _mix(str(data), "--method", "natural", "--out", str(out)) == 0
    assert _mix(str(data), "--method", "uniform", "--out", str(out)) == 0
    assert json.loads((out / "weights.json").read_text())["method"] == "uniform"
    capsys.readouterr()

    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert _mix(str(data), "--method", "uniform", "--out", str(user)) == 2
    err = capsys.readouterr().err
    assert "is not a curate output (notes.txt)" in err and err.count("\n") == 1
    assert sorted(os.listdir(user)) == ["notes.txt"] and (user / "notes.txt").read_text() == "mine"

    # Another stage's output is replaced only with --overwrite.
    other = tmp_path / "other"
    other.mkdir()
    (other / "stats.json").write_text(json.dumps({"stage": "shards"}))
    assert _mix(str(data), "--method", "uniform", "--out", str(other)) == 2
    assert "holds a curate shards output: pass --overwrite" in capsys.readouterr().err
    assert _mix(str(data), "--method", "uniform", "--out", str(other), "--overwrite") == 0
    assert json.loads((other / "stats.json").read_text())["stage"] == "mix"

    assert _mix(str(data), "--method", "uniform", "--out", str(data / "mix")) == 2
    assert "is inside the input" in capsys.readouterr().err


def test_a_failed_fit_leaves_no_output_and_an_earlier_output_intact(data, tmp_path, capsys):
    missing = tmp_path / "not-tokenized"
    missing.mkdir()
    assert _mix(str(missing), "--method", "natural", "--out", str(tmp_path / "new")) == 2
    assert "mix (natural): " in capsys.readouterr().err
    out = tmp_path / "mix"
    assert _mix(str(data), "--method", "natural", "--out", str(out)) == 0
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    assert _mix(str(missing), "--method", "uniform", "--out", str(out)) == 2
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["data", "mix", "not-tokenized"]  # no temporary directory, no lock


@pytest.mark.parametrize("args, message", [
    (["--method", "magic"], "--method: 'magic' is not a mixer"),
    (["--method", "natural", "--param", "etaa=1"], "--param etaa: natural has no parameter 'etaa'"),
    (["--method", "uniform", "--target", "code"], "--target: uniform has no target"),
    (["--method", "natural", "--target-domains", "code"], "--target-domains: natural has no target"),
    # Checked against the mixer's constructor before any training (a zero would fail deep inside it).
    (["--method", "regmix", "--param", "steps=0"], "--param steps: 0 is out of range (must be >= 1)"),
    (["--method", "doremi", "--param", "batch_size=abc"], "--param batch_size: 'abc' is not int"),
    (["--method", "regmix", "--param", "lr=-1"], "--param lr: -1.0 is out of range (must be > 0)"),
])
def test_mistakes_are_one_line_naming_the_flag_before_any_output(data, tmp_path, capsys, args, message):
    assert _mix(str(data), *args, "--out", str(tmp_path / "mix")) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "mix").exists()


def test_run_level_settings_apply_only_to_mixers_that_take_them(data, tmp_path):
    # uniform takes no seed or device: they are the run's settings, not a mistake in the command.
    assert _mix(str(data), "--method", "uniform", "--seed", "3", "--device", "cpu", "--out", str(tmp_path / "m")) == 0


def test_the_pipeline_mix_stage_writes_the_same_directory(data, tmp_path):
    from curate.config import PipelineConfig
    from curate.pipeline import STAGES, StageContext

    cfg = PipelineConfig(stages=["tokenize", "mix"], mix=MixConfig(method="natural"))
    run_dir = tmp_path / "run"
    # The mix runner needs no Spark session: it reads token files.
    stats = STAGES["mix"].run(StageContext(None, cfg, str(run_dir), str(data), str(run_dir / "mix")))
    assert sorted(os.listdir(run_dir / "mix")) == ["_SUCCESS", "stats.json", "weights.json"]
    assert json.loads((run_dir / "mix" / "stats.json").read_text()) == stats
    assert _mix(str(data), "--method", "natural", "--out", str(tmp_path / "cli")) == 0
    assert (tmp_path / "cli" / "weights.json").read_bytes() == (run_dir / "mix" / "weights.json").read_bytes()


def test_domains_scored_on_few_held_out_tokens_are_named(tmp_path, capsys):
    from proxy_training.data import write_token_datasets

    from curate.mix_stage import note_small_held_out

    docs = {"train": {"a": [[1] * 50], "b": [[2] * 50]}, "valid": {"a": [[1] * 1200], "b": [[2] * 40, [3] * 9]}}
    path = write_token_datasets(tmp_path / "D", docs, vocab_size=16)
    assert note_small_held_out("doremi", str(path)) == {"b": 49}
    assert "b (49)" in capsys.readouterr().err


def test_weights_are_read_from_a_mix_directory_and_must_be_numbers(data, tmp_path):
    from curate.errors import CurateError
    from curate.mix_stage import read_mixtures

    assert _mix(str(data), "--method", "natural", "--out", str(tmp_path / "mix")) == 0
    # The mix stage's output directory stands for its weights.json, as `curate mix --out DIR` writes it.
    assert read_mixtures([str(tmp_path / "mix")]) == {"natural": {d: t / 200 for d, t in TOKENS.items()}}
    for bad in (True, "0.5", None):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"weights": {"code": bad, "web": 1}}))
        with pytest.raises(CurateError, match="weight of 'code' is .*, not a number >= 0"):
            read_mixtures([str(path)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurateError, match="is a directory without weights.json"):
        read_mixtures([str(tmp_path / "empty")])
