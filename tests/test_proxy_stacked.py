"""StackedGPT trains M models at once exactly as M separate GPT runs would."""

import numpy as np
import pytest
import torch

from proxy_training.data import MixtureSampler, StackedSampler
from proxy_training.model import GPT, GPTConfig
from proxy_training.stacked import StackedGPT
from proxy_training.trainer import TrainConfig, Trainer

CONFIG = GPTConfig(vocab_size=100, seq_len=16, n_layer=2, n_head=4, d_model=32)
MUP = GPTConfig(vocab_size=100, seq_len=16, n_layer=2, n_head=4, d_model=32, mup_base_width=8)  # width multiplier 4
BOTH = pytest.mark.parametrize("config", [CONFIG, MUP], ids=["sp", "mup"])
STREAMS = [np.random.default_rng(d).integers(1 + 30 * d, 31 + 30 * d, 2000) for d in range(3)]
MIXTURES = [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]]
SEEDS = [0, 1, 0]
TRAIN = TrainConfig(steps=5, lr=3e-3, warmup_steps=2, grad_clip=0.5, device="cpu", precision="fp32", progress=False,
                    threads=1)


@BOTH
def test_stacked_init_equals_gpt_init_of_the_same_seed(config):
    stacked = StackedGPT(config, SEEDS)
    for i, seed in enumerate(SEEDS):
        for (name, p), (_, q) in zip(GPT(config, seed).named_parameters(), stacked.named_parameters()):
            assert torch.equal(p, q[i]), name
    assert not torch.equal(GPT(config, 0).wte.weight, GPT(config, 1).wte.weight)
    assert config.padded_vocab == 128 and stacked.wte.weight.shape == (3, 128, 32)
    # The same optimizer groups (members by name, decay, LR multipliers) as a single GPT.
    gpt = GPT(config, 0)
    names = {id(p): n for n, p in [*stacked.named_parameters(), *gpt.named_parameters()]}
    for g, h in zip(stacked.optim_groups(0.1), gpt.optim_groups(0.1), strict=True):
        assert [names[id(p)] for p in g["params"]] == [names[id(p)] for p in h["params"]]
        assert (g["weight_decay"], g["lr_mult"]) == (h["weight_decay"], h["lr_mult"])


@BOTH
def test_stacked_losses_match_separate_runs_with_the_same_seeds(config):
    samplers = [MixtureSampler(STREAMS, w, batch_size=4, seq_len=16, seed=s) for w, s in zip(MIXTURES, SEEDS)]
    stacked = Trainer(StackedGPT(config, SEEDS), StackedSampler(samplers), TRAIN)
    stacked_losses = np.array([r["loss"] for r in stacked.train()])  # [steps, M]
    for i, seed in enumerate(SEEDS):
        single = Trainer(GPT(config, seed), samplers[i], TRAIN)
        single_losses = np.array([r["loss"][0] for r in single.train()])
        np.testing.assert_allclose(stacked_losses[:, i], single_losses, rtol=1e-5, atol=1e-5)
        for (name, p), (_, q) in zip(single.model.named_parameters(), stacked.model.unstack(i).named_parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    # Clipping is per model: the norms were clipped (0.5) and differ between models.
    assert len(set(np.round(stacked.history[0]["grad_norm"], 6))) > 1


def test_train_mixtures_in_worker_processes_gives_the_single_process_results(tmp_path):
    # On a multi-core CPU train_mixtures trains one stack per worker process; every model's result depends only on
    # its own mixture and seed, so the split must not change a single bit. The streams travel to the workers as
    # memory-mapped file references (a DATA directory), the in-memory STREAMS as arrays.
    import pickle

    from proxy_training.data import TokenDatasets, evaluation_windows
    from proxy_training.trainer import stack_workers, train_mixtures
    from tests.test_proxy_data import make_data

    data = TokenDatasets(make_data(tmp_path / "DATA", split_ranges=False))
    streams = data.streams("train")
    assert len(pickle.dumps(streams)) < 2000  # references, not tokens
    windows = evaluation_windows(data, "valid", CONFIG.seq_len, 4)
    config = GPTConfig(vocab_size=data.vocab_size, seq_len=16, n_layer=1, n_head=2, d_model=32)
    weights = np.random.default_rng(0).dirichlet(np.ones(3), 5)
    runs = {w: train_mixtures(streams, weights, [0, 1, 2, 3, 4], config, TrainConfig(**{**TRAIN.__dict__,
                              "threads": None, "workers": w}), windows, batch_size=4) for w in (1, 2)}
    np.testing.assert_array_equal(runs[1].eval_loss, runs[2].eval_loss)
    np.testing.assert_array_equal(runs[1].train_loss, runs[2].train_loss)
    assert np.isfinite(runs[1].eval_loss).all() and len(set(runs[1].train_loss.round(6))) == 5

    # Worker choice: CPU and a small model -> cores // threads (at most one per model); CUDA or big models -> 1.
    cores = len(__import__("os").sched_getaffinity(0))
    cpu = TrainConfig(device="cpu")
    assert stack_workers(config, cpu, 64) == cores
    assert stack_workers(config, cpu, 1) == 1
    assert stack_workers(config, TrainConfig(device="cpu", threads=cores), 64) == 1
    assert stack_workers(config, TrainConfig(device="cpu", workers=3), 64) == 3
    big = GPTConfig(vocab_size=50304, seq_len=256, n_layer=12, n_head=12, d_model=768)
    assert stack_workers(big, cpu, 64) == 1
    # CPU stacks hold at most CPU_STACK_TOKENS tokens per step and CPU_STACK_PARAMS parameters (bigger ones measured
    # slower per model than single models).
    from proxy_training.trainer import CPU_STACK_PARAMS, CPU_STACK_TOKENS, cpu_stack_size

    tiny = GPTConfig(vocab_size=4096, seq_len=128, n_layer=2, n_head=4, d_model=64)
    assert tiny.num_params() * 4 <= CPU_STACK_PARAMS
    assert cpu_stack_size(tiny, 8, 64) == CPU_STACK_TOKENS // (8 * 128) and cpu_stack_size(tiny, 64, 64) == 1
    wide = GPTConfig(vocab_size=4096, seq_len=256, n_layer=2, n_head=8, d_model=256, d_mlp=512)  # regmix-1m
    assert wide.num_params() > CPU_STACK_PARAMS and cpu_stack_size(wide, 1, 64) == 1
    assert cpu_stack_size(big, 1, 64) == 1
    assert cpu_stack_size(config, 4, 3) == 3
