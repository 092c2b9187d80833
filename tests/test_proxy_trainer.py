"""Trainer: device choice, schedules, per-domain losses and the loss hook, evaluation, exact resume."""

import numpy as np
import pytest
import torch

from proxy_training.data import MixtureSampler, StackedSampler, TokenDatasets, evaluation_windows
from proxy_training.model import GPT, GPTConfig
from proxy_training.stacked import StackedGPT
from proxy_training.trainer import TrainConfig, Trainer, domain_mean_losses, lr_at, resolve_device, resolve_precision

from tests.test_proxy_data import make_data

CONFIG = GPTConfig(vocab_size=300, seq_len=16, n_layer=1, n_head=2, d_model=32)


def fp32(**kw):
    # One thread: tiny models run faster without OpenMP barriers, above all on a shared machine.
    base = {"device": "cpu", "precision": "fp32", "progress": False, "threads": 1, "warmup_steps": 2, "lr": 3e-3}
    return TrainConfig(**{**base, **kw})


def test_device_auto_picks_cuda_only_when_present_and_cuda_without_one_is_an_error():
    assert resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert resolve_device("auto", cuda_available=True) == torch.device("cuda")
    assert resolve_device("cpu", cuda_available=True) == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu", cuda_available=False)
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_precision("fp32", torch.device("cuda")) is None
    assert resolve_precision("auto", torch.device("cuda")) == torch.bfloat16


def test_schedules_warm_up_then_cosine_or_wsd_to_min_lr():
    cos = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10, schedule="cosine")
    assert lr_at(0, cos) == pytest.approx(0.1) and lr_at(9, cos) == pytest.approx(1.0)
    assert lr_at(55, cos) == pytest.approx(0.55) and lr_at(100, cos) == pytest.approx(0.1)
    wsd = TrainConfig(steps=100, lr=1.0, min_lr=0.0, warmup_steps=10, schedule="wsd", decay_fraction=0.2)
    assert lr_at(50, wsd) == 1.0 and lr_at(79, wsd) == 1.0
    assert lr_at(90, wsd) == pytest.approx(0.5) and lr_at(100, wsd) == pytest.approx(0.0)


def test_domain_mean_losses_average_tokens_per_domain():
    tok = torch.tensor([[[1.0, 3.0], [5.0, 7.0], [2.0, 2.0]]])  # [M=1, B=3, T=2]
    ids = torch.tensor([[0, 2, 0]])
    means, counts = domain_mean_losses(tok, ids, 3)
    assert means[0, 0] == 2.0 and means[0, 2] == 6.0 and torch.isnan(means[0, 1])
    assert counts.tolist() == [[4.0, 0.0, 2.0]]


def test_loss_hook_sees_each_batch_and_its_return_is_what_trains(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    sampler = MixtureSampler(data.streams("train"), [1, 1, 1], batch_size=6, seq_len=16, seed=0, stratified=True)
    seen = []

    def only_domain_0(tok_loss, batch):
        seen.append((tok_loss.shape, batch.domain_ids.tolist()))
        means, _ = domain_mean_losses(tok_loss, batch.domain_ids, 3)
        return means[0]

    t = Trainer(GPT(CONFIG, 0), sampler, fp32(steps=30, lr=1e-2), loss_fn=only_domain_0)
    before = t.evaluate(evaluation_windows(data, "train", 16, 4))
    hist = t.train()
    after = t.evaluate(evaluation_windows(data, "train", 16, 4))
    assert seen[0] == (torch.Size([6, 16]), [0, 0, 1, 1, 2, 2])
    # Per-domain training losses are recorded every step.
    assert len(hist) == 30 and all(len(r["domain_loss"]) == 3 for r in hist)
    # Training only on domain 0 improves domain 0 far more than the others (disjoint token sets).
    gain = before - after
    assert gain[0] > 1.0 and gain[0] > 2 * max(gain[1], gain[2])


def test_stacked_evaluation_matches_each_model_evaluated_alone(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    windows = evaluation_windows(data, "valid", 16, 5)
    samplers = [MixtureSampler(data.streams("train"), w, 4, 16, seed=0) for w in ([1, 0, 0], [0, 0, 1])]
    stacked = Trainer(StackedGPT(CONFIG, [0, 0]), StackedSampler(samplers), fp32(steps=3), eval_windows=windows)
    stacked.train()
    per_model = stacked.evaluate(batch_size=4)
    assert per_model.shape == (2, 3)
    for i in range(2):
        single = Trainer(stacked.model.unstack(i), samplers[i], fp32(), eval_windows=windows)
        np.testing.assert_allclose(single.evaluate(batch_size=7), per_model[i], rtol=1e-5)


def test_checkpoint_resume_continues_exactly(tmp_path):
    data = TokenDatasets(make_data(tmp_path / "DATA"))
    samplers = [MixtureSampler(data.streams("train"), w, 4, 16, seed=s) for w, s in (([1, 1, 1], 0), ([1, 0, 2], 1))]

    ckpt = str(tmp_path / "ckpt.pt")

    def trainer(**kw):
        return Trainer(StackedGPT(CONFIG, [0, 1]), StackedSampler(samplers), fp32(steps=6, **kw))

    straight = trainer()
    straight.train()
    first = trainer(checkpoint_path=ckpt, checkpoint_every=3)
    first.train(steps=3)  # "interrupted" after step 3; the checkpoint was written by train()
    resumed = trainer(checkpoint_path=ckpt)
    assert resumed.resume() and resumed.step == 3
    resumed.train()
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_load_runs_no_code_and_a_bad_or_foreign_checkpoint_is_one_line_error(tmp_path):
    from tests.test_doremi import TouchOnLoad

    data = TokenDatasets(make_data(tmp_path / "DATA"))
    sampler = MixtureSampler(data.streams("train"), [1, 1, 1], 4, 16, seed=0)
    trained = Trainer(GPT(CONFIG, 0), sampler, fp32(steps=2))
    trained.train()
    good = tmp_path / "good.pt"
    trained.save(good)
    loaded = Trainer(GPT(CONFIG, 1), sampler, fp32(steps=2))
    loaded.load(good)
    assert loaded.step == 2 and loaded.history == trained.history
    assert all(torch.equal(p, q) for p, q in zip(trained.model.parameters(), loaded.model.parameters()))

    marker = tmp_path / "marker"
    state = torch.load(good, weights_only=True)
    state["history"].append(TouchOnLoad(marker))
    evil = tmp_path / "evil.pt"
    torch.save(state, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(good.read_bytes()[:1000])
    wider = Trainer(GPT(GPTConfig(**{**CONFIG.__dict__, "d_model": 64}), 0), sampler, fp32(steps=2))
    for trainer, path, why in ((loaded, evil, "refused"), (loaded, garbage, "not a torch checkpoint"),
                               (wider, good, "does not match")):
        with pytest.raises(ValueError, match=why) as err:
            trainer.load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_cpu_attention_runs_in_float32_under_bf16_autocast():
    import torch.nn.functional as F

    from proxy_training.model import causal_attention

    q, k, v = (torch.randn(2, 4, 16, 8, generator=torch.Generator().manual_seed(i)).bfloat16() for i in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = causal_attention(q, k, v)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True))
    # float32 inputs are left alone
    assert causal_attention(q.float(), k.float(), v.float()).dtype == torch.float32


def test_a_held_out_split_shorter_than_a_window_is_scored_whole(tmp_path):
    # A domain whose valid split holds 10 tokens (seq_len 16): a small sample where the filter left it two short
    # documents. Its loss is the mean over its 9 targets, stacked or alone, whatever follows them in the padding.
    from proxy_training.data import write_token_datasets

    rng = np.random.default_rng(0)
    docs = {"train": {d: [rng.integers(0, 300, 200).tolist()] for d in ("a", "b")},
            "valid": {"a": [rng.integers(0, 300, 80).tolist()], "b": [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]}}
    data = TokenDatasets(write_token_datasets(tmp_path / "DATA", docs, vocab_size=300))
    windows = evaluation_windows(data, "valid", 16, 4)
    assert windows.domain_ids.tolist() == [0, 0, 0, 0, 1]
    assert windows.mask is not None and windows.mask[:4].all() and windows.mask[4].sum() == 9
    model = GPT(CONFIG, 0)
    sampler = MixtureSampler(data.streams("train"), [1, 1], 4, 16, seed=0)
    got = Trainer(model, sampler, fp32(), eval_windows=windows).evaluate(batch_size=3)
    short = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14]])
    want = model.token_losses(short[:, :-1], short[:, 1:]).mean().item()
    assert got[1] == pytest.approx(want, rel=1e-5)
    full = windows.x[:4], windows.y[:4]
    assert got[0] == pytest.approx(model.token_losses(*full).mean().item(), rel=1e-5)
    stacked = Trainer(StackedGPT(CONFIG, [0, 0]), StackedSampler([sampler, sampler]), fp32(),
                      eval_windows=windows).evaluate(batch_size=2)
    np.testing.assert_allclose(stacked, [got, got], rtol=1e-5)
    with pytest.raises(Exception, match="nothing to score"):
        docs["valid"]["b"] = [[5]]
        evaluation_windows(TokenDatasets(write_token_datasets(tmp_path / "D2", docs, vocab_size=300)), "valid", 16)
