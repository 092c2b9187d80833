"""`curate ladder` end to end on a small token corpus: verdicts, self-check and outputs; the cache trains only what
is missing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_doremi import make_data, markov_docs, noise_docs

from curate.cli import main
from mixers.ladder import Ladder, metric_values, parse_rung, training_flops

RUNGS = ["d16:12k", "d32:40k", "d64:140k"]
SMALL = dict(batch_size=8, seq_len=32, eval_windows=4, device="cpu", precision="fp32", threads=1, lr=3e-3,
             n_boot=200, verbose=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("ladder") / "DATA", {
        "a": lambda s: markov_docs(1, s, branching=2, docs=12),
        "b": lambda s: markov_docs(2, s, branching=4, docs=12),
        "noise": lambda s: noise_docs(s, docs=12),
    })


def test_rungs_parse_and_grow_in_compute():
    r = parse_rung("d128x4:20M")
    assert (r.d_model, r.n_layer, r.tokens) == (128, 4, 20_000_000)
    assert parse_rung("tiny:1.5k").tokens == 1500
    with pytest.raises(ValueError, match="SIZE:TOKENS"):
        parse_rung("d64")
    with pytest.raises(ValueError, match="width and layers must be at least 1"):
        parse_rung("d0:20k")
    with pytest.raises(ValueError, match="TOKENS must be at least 1"):
        parse_rung("d16:0")
    flops = [training_flops(parse_rung(s).model_config(64, 32), parse_rung(s).tokens) for s in RUNGS]
    assert flops[-1] / flops[0] >= 16 and flops == sorted(flops)


def test_metric_excludes_domains_and_names_one():
    losses = np.array([[1.0, 2.0, 6.0]])
    assert metric_values(losses, ["a", "b", "noise"], "average", ("noise",)).tolist() == [1.5]
    assert metric_values(losses, ["a", "b", "noise"], "worst").tolist() == [6.0]
    assert metric_values(losses, ["a", "b", "noise"], "b").tolist() == [2.0]
    with pytest.raises(ValueError, match="no domain"):
        metric_values(losses, ["a", "b", "noise"], "average", ("nosie",))


def test_curate_ladder_writes_verdicts_and_a_second_run_trains_only_the_new_mixture(data, tmp_path, capsys):
    heavy = tmp_path / "noise_heavy.json"
    heavy.write_text(json.dumps({"method": "noise-heavy", "weights": {"a": 0.05, "b": 0.05, "noise": 0.9}}))
    out = tmp_path / "ladder"
    args = ["ladder", data, "--weights", str(heavy), "--out", str(out), "--rungs", *RUNGS, "--seeds", "2",
            "--seq-len", "32", "--batch-size", "8", "--eval-windows", "4", "--device", "cpu", "--precision", "fp32",
            "--threads", "1", "--lr", "3e-3", "--exclude-domain", "noise", "--target-params", "1e8",
            "--target-tokens", "2e9"]
    assert main(args) == 0
    result = json.loads((out / "ladder.json").read_text())
    # The CLI goes through the stage's writer: the same files as a pipeline's ladder stage.
    assert {p.name for p in out.iterdir()} == {"ladder.json", "ladder.md", "ladder.png", "stats.json", "_SUCCESS"}
    assert result["names"] == ["uniform", "natural", "noise-heavy"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["trained_runs"] == 3 * 3 * 2 and stats["cached_runs"] == 0
    values = np.asarray(result["losses"])  # [seeds, mixtures, rungs]
    assert values.shape == (2, 3, 3)
    # Bigger models learn more: every mixture's loss falls from the smallest rung to the top one.
    assert (values[:, :, -1] < values[:, :, 0]).all()
    # Spending 90% of the data on noise is worse on the learnable domains, and the verdict says so.
    # (Free exponents from 3 rungs and 2 seeds leave a wide interval 8 decades out; the stage test below checks the
    # verdict itself under parallel curves.)
    gap = next(c for c in result["fit"]["comparisons"] if c["mixture"] == "noise-heavy")
    assert gap["gap"] > 0 and result["fit"]["fit"]["shared_alpha"] is False
    assert "not identified from 2 rungs" in result["self_check"]["note"]
    # Without any curve: the top rung as measured, paired over seeds.
    top = {c["mixture"]: c for c in result["fit"]["measured_top"]["comparisons"]}
    diff = values[:, 2, -1] - values[:, result["names"].index(top["noise-heavy"]["baseline"]), -1]
    assert top["noise-heavy"]["gap"] == pytest.approx(diff.mean()) and top["noise-heavy"]["outcome"] == "worse"
    err = capsys.readouterr().err
    assert "self-check" in err and "measured: noise-heavy loses to" in err
    assert set(result["self_check"]["accuracy"]) >= {"fit", "smallest_rung"}
    # The same ladder again, every run from the cache: ladder.json is byte-identical (no wall times, no cache counts).
    assert main([*args[:args.index("--out") + 1], str(tmp_path / "again"), *args[args.index("--out") + 2:]]) == 0
    assert (tmp_path / "again" / "ladder.json").read_bytes() == (out / "ladder.json").read_bytes()
    assert json.loads((tmp_path / "again" / "stats.json").read_text())["cached_runs"] == 18
    # Same data, same settings, one more mixture: only its runs train.
    tilted = tmp_path / "tilted.json"
    tilted.write_text(json.dumps({"method": "tilted", "weights": {"a": 0.6, "b": 0.3, "noise": 0.1}}))
    result2 = Ladder(rungs=[parse_rung(r) for r in RUNGS], seeds=2, exclude_domains=("noise",), **SMALL).fit(
        data, {"noise-heavy": {"a": 0.05, "b": 0.05, "noise": 0.9}, "tilted": {"a": 0.6, "b": 0.3, "noise": 0.1}})
    assert (result2["trained_runs"], result2["cached_runs"]) == (3 * 2, 3 * 3 * 2)
    assert np.allclose(np.asarray(result2["losses"])[:, :3], values)


def test_existing_foreign_out_is_refused(data, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["ladder", data, "--out", str(out), "--rungs", *RUNGS]) == 2
    assert "is not a curate output" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep"


def test_ladder_stage_publishes_its_output_and_the_report_shows_the_verdicts(data, tmp_path):
    from curate.ladder_stage import LadderConfig, run_ladder
    from curate.report import build_report

    heavy = tmp_path / "mix" / "weights.json"
    heavy.parent.mkdir()
    heavy.write_text(json.dumps({"method": "noise-heavy", "weights": {"a": 0.05, "b": 0.05, "noise": 0.9}}))
    cfg = LadderConfig(rungs=RUNGS, seeds=2, exclude_domains=["noise"], device="cpu", precision="fp32", lr=3e-3,
                       batch_size=8, seq_len=32, eval_windows=4, target_params=1e8, target_tokens=2e9, curve="parallel")
    stats = run_ladder(cfg, data, [str(heavy)], str(tmp_path / "ladder"))
    # 3 mixtures x 3 rungs x 2 seeds (cached when the CLI test above ran first: same data and recipe)
    assert stats["cached_runs"] + stats["trained_runs"] == 18
    assert sorted(p.name for p in (tmp_path / "ladder").iterdir()) == [
        "_SUCCESS", "ladder.json", "ladder.md", "ladder.png", "stats.json"]
    html = build_report(tmp_path).read_text()
    assert "Scaling ladder" in html and "noise-heavy loses to" in html
    assert "common to every mixture" in html and "predicted gaps off by at most" in html


def test_mup_rungs_keep_their_head_count_and_scale_from_the_base_width():
    rungs = [parse_rung(r) for r in RUNGS]
    sp = [r.model_config(64, 32) for r in rungs]
    mup = [r.model_config(64, 32, mup_base_width=16, mup_output_mult=8.0) for r in rungs]
    assert [c.n_head for c in mup] == [4, 4, 4] and all(c.mup_base_width is None for c in sp)
    assert [c.width_mult for c in mup] == [1.0, 2.0, 4.0] and mup[-1].output_mult == 2.0


def test_a_failed_self_check_warns_that_the_verdicts_are_unreliable():
    from mixers.ladder import self_check_warning

    def verdict(acc, err, gap_err, gap):
        return {"self_check": {"accuracy": {"fit": acc}, "mean_abs_error": err, "max_gap_error": gap_err},
                "comparisons": [{"gap": gap}]}

    assert self_check_warning(verdict(1.0, 0.01, 0.01, 0.05)) is None
    assert "orders 50% of the top rung's pairs right" in self_check_warning(verdict(0.5, 0.01, 0.01, 0.05))
    assert "exceeds every gap" in self_check_warning(verdict(1.0, 0.3, 0.3, 0.05))
    # An error common to every mixture cancels in the gaps the verdicts judge: no warning for it alone.
    assert self_check_warning(verdict(1.0, 0.3, 0.01, 0.05)) is None


def test_the_default_recipe_is_the_devices_and_a_given_setting_replaces_its_field():
    from mixers.ladder import CPU_RECIPE, CUDA_RECIPE, default_recipe, default_rungs

    assert default_recipe("cpu") == CPU_RECIPE and default_recipe("cuda") == CUDA_RECIPE
    assert CPU_RECIPE.mup_base_width > 0  # muP by default: one tuned learning rate serves every rung
    assert Ladder().recipe("cpu") == CPU_RECIPE
    sp = Ladder(mup_base_width=0, lr=1e-3, batch_size=4).recipe("cpu")
    assert (sp.mup_base_width, sp.lr, sp.batch_size, sp.seq_len) == (0, 1e-3, 4, CPU_RECIPE.seq_len)
    rungs = default_rungs("cpu", 4096, CPU_RECIPE.seq_len)
    flops = [training_flops(r.model_config(4096, CPU_RECIPE.seq_len), r.tokens) for r in rungs]
    # >= 4 rungs (the self-check fits >= 3), >= 16x in compute
    assert len(rungs) >= 4 and flops == sorted(flops) and flops[-1] / flops[0] >= 16


def test_repetition_counts_passes_per_domain_and_names_the_first_repeating_rung():
    from mixers.ladder import repetition

    vectors = np.array([[0.5, 0.5], [0.9, 0.1]])
    rep = repetition([1000, 4000], ["a", "b"], ["even", "a-heavy"], vectors, [1000, 3000], ["r1", "r2"])
    assert rep["max_epochs"] == {"even": [0.5, 1.5], "a-heavy": [0.9, 2.7]}
    assert "even passes over a 1.5 times at r2" in rep["note"] and "a-heavy passes over a 2.7 times at r2" in rep["note"]
    assert repetition([1000, 4000], ["a", "b"], ["even"], vectors[:1], [1000], ["r1"])["note"] is None


def test_cuda_default_rungs_reach_gpt2_small_in_four_steps():
    from mixers.ladder import default_rungs

    rungs = default_rungs("cuda", 50257, 512)
    params = [r.model_config(50257, 512).num_params() for r in rungs]
    assert len(rungs) == 4 and params == sorted(params) and 80e6 < params[-1] < 200e6


@pytest.mark.parametrize("settings, message", [
    (dict(metric="nosuch"), "--metric 'nosuch'"),
    (dict(exclude_domains=("a", "b", "noise")), "every domain is excluded"),
    (dict(metric="a", exclude_domains=("a",)), "is a domain --exclude-domain leaves out"),
    (dict(target_params=1e3, target_tokens=1e3), "is not above the top rung"),
    (dict(rungs=["d16:12k", "d20:12k", "d24:12k"]), "a ladder needs >= 16x"),
])
def test_ladder_mistakes_fail_before_any_run_trains(data, tmp_path, settings, message):
    rungs = [parse_rung(r) for r in settings.pop("rungs", RUNGS)]
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=message):
        Ladder(rungs=rungs, seeds=1, cache_dir=str(cache), **{**SMALL, **settings}).fit(data, {})
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_mixture_named_like_a_baseline_is_judged_unless_it_is_that_baseline(data):
    from proxy_training.data import TokenDatasets

    tokens = TokenDatasets(data)
    names, vectors = Ladder(**SMALL)._mixtures(tokens, {"uniform": {"a": 1, "b": 1, "noise": 1},
                                                        "natural": {"a": 0.5, "b": 0.5}})
    # `curate mix --method uniform` writes the ladder's own uniform: one mixture. A file that says "natural" but
    # holds other weights is a candidate, under a name that cannot be taken for the baseline.
    assert names == ["uniform", "natural", "natural (given)"]
    assert vectors[2].tolist() == [0.5, 0.5, 0.0]
