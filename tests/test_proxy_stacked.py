"""StackedGPT trains M models at once exactly as M separate GPT runs would."""

import numpy as np
import torch

from proxy_training.data import MixtureSampler, StackedSampler
from proxy_training.model import GPT, GPTConfig
from proxy_training.stacked import StackedGPT
from proxy_training.trainer import TrainConfig, Trainer

CONFIG = GPTConfig(vocab_size=100, seq_len=16, n_layer=2, n_head=4, d_model=32)
STREAMS = [np.random.default_rng(d).integers(1 + 30 * d, 31 + 30 * d, 2000) for d in range(3)]
MIXTURES = [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]]
SEEDS = [0, 1, 0]
TRAIN = TrainConfig(steps=5, lr=3e-3, warmup_steps=2, grad_clip=0.5, device="cpu", precision="fp32", progress=False,
                    threads=1)


def test_stacked_init_equals_gpt_init_of_the_same_seed():
    stacked = StackedGPT(CONFIG, SEEDS)
    for i, seed in enumerate(SEEDS):
        for (name, p), (_, q) in zip(GPT(CONFIG, seed).named_parameters(), stacked.named_parameters()):
            assert torch.equal(p, q[i]), name
    assert not torch.equal(GPT(CONFIG, 0).wte.weight, GPT(CONFIG, 1).wte.weight)
    assert CONFIG.padded_vocab == 128 and stacked.wte.weight.shape == (3, 128, 32)


def test_stacked_losses_match_separate_runs_with_the_same_seeds():
    samplers = [MixtureSampler(STREAMS, w, batch_size=4, seq_len=16, seed=s) for w, s in zip(MIXTURES, SEEDS)]
    stacked = Trainer(StackedGPT(CONFIG, SEEDS), StackedSampler(samplers), TRAIN)
    stacked_losses = np.array([r["loss"] for r in stacked.train()])  # [steps, M]
    for i, seed in enumerate(SEEDS):
        single = Trainer(GPT(CONFIG, seed), samplers[i], TRAIN)
        single_losses = np.array([r["loss"][0] for r in single.train()])
        np.testing.assert_allclose(stacked_losses[:, i], single_losses, rtol=1e-5, atol=1e-5)
        for (name, p), (_, q) in zip(single.model.named_parameters(), stacked.model.unstack(i).named_parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    # Clipping is per model: the norms were clipped (0.5) and differ between models.
    assert len(set(np.round(stacked.history[0]["grad_norm"], 6))) > 1
