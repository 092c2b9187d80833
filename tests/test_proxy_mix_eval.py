"""`curate mix-eval` on a tiny synthetic DATA dir: results with paired intervals, a table and a plot."""

import argparse
import json

import pytest

from curate.commands import mix_eval
from curate.errors import CurateError
from tests.test_proxy_data import make_data


def parse(argv):
    parser = argparse.ArgumentParser()
    mix_eval.register(parser.add_subparsers())
    return parser.parse_args(["mix-eval", *argv])


def write_weights(path, weights, method=None):
    path.write_text(json.dumps({"method": method, "weights": weights} if method else {"weights": weights}))
    return str(path)


def test_mix_eval_writes_per_seed_losses_and_paired_intervals(tmp_path, capsys):
    data = make_data(tmp_path / "DATA", split_ranges=False)
    a = write_weights(tmp_path / "uniform.json", {"a": 1, "b": 1, "c": 1}, method="uniform")
    b = write_weights(tmp_path / "skewed.json", {"a": 0.98, "b": 0.01, "c": 0.01})
    args = parse([str(data), "--weights", a, b, "--steps", "20", "--seeds", "2", "--out", str(tmp_path / "out"),
                  "--device", "cpu", "--model-size", "tiny", "--seq-len", "16", "--batch-size", "8",
                  "--lr", "3e-3", "--eval-windows", "4", "--precision", "fp32", "--threads", "1"])
    assert args.func(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(results["mixtures"]) == ["uniform", "skewed"]  # method, else file stem
    uniform = results["mixtures"]["uniform"]
    assert set(uniform["per_seed"]) == {"0", "1"} and set(uniform["per_seed"]["0"]["domain_loss"]) == {"a", "b", "c"}
    lo, hi = uniform["average"]["ci95"]
    assert lo <= uniform["average"]["mean"] <= hi
    diff = results["paired_differences"]["uniform - skewed"]
    assert diff["average"]["n"] == 2 and len(diff["average"]["ci95"]) == 2
    # The skewed mixture barely trains on b and c: uniform is better on c in both seeds.
    assert diff["domain_loss"]["c"]["mean"] < 0
    assert (tmp_path / "out" / "losses.png").stat().st_size > 1000
    assert "| uniform |" in (tmp_path / "out" / "results.md").read_text()
    assert "Paired differences" in capsys.readouterr().out


def test_mix_eval_same_mixture_twice_gives_identical_losses(tmp_path):
    data = make_data(tmp_path / "DATA")
    a = write_weights(tmp_path / "a.json", {"a": 1, "b": 2, "c": 3}, method="m")
    b = write_weights(tmp_path / "b.json", {"a": 1, "b": 2, "c": 3}, method="m")
    args = parse([str(data), "--weights", a, b, "--steps", "3", "--seeds", "1", "--out", str(tmp_path / "out"),
                  "--device", "cpu", "--model-size", "tiny", "--seq-len", "16", "--batch-size", "4",
                  "--eval-windows", "2", "--precision", "fp32", "--threads", "1"])
    assert args.func(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    first, second = results["mixtures"]["m"], results["mixtures"]["m (b)"]  # same init, same data order
    assert first["per_seed"]["0"]["domain_loss"] == second["per_seed"]["0"]["domain_loss"]
    assert results["paired_differences"]["m - m (b)"]["average"]["ci95"] is None  # one seed: no interval


def test_mix_eval_user_mistakes_are_one_line_errors(tmp_path):
    data = make_data(tmp_path / "DATA")
    bad = write_weights(tmp_path / "bad.json", {"nope": 1})
    common = ["--steps", "1", "--seeds", "1", "--out", str(tmp_path / "out"), "--model-size", "tiny", "--seq-len", "16"]
    with pytest.raises(CurateError, match="not in the data: nope"):
        run_args = parse([str(data), "--weights", bad, *common])
        run_args.func(run_args)
    with pytest.raises(CurateError, match="not found"):
        run_args = parse([str(data), "--weights", str(tmp_path / "missing.json"), *common])
        run_args.func(run_args)
    with pytest.raises(CurateError, match="datasets.json not found"):
        ok = write_weights(tmp_path / "ok.json", {"a": 1})
        run_args = parse([str(tmp_path), "--weights", ok, *common])
        run_args.func(run_args)
