"""muP (GPTConfig.mup_base_width): per-layer init and LR multipliers, the output multiplier, 1/d_head attention."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from proxy_training.data import MixtureSampler
from proxy_training.model import GPT, GPTConfig, preset_config
from proxy_training.trainer import TrainConfig, Trainer, lr_at

BASE = 32


def config(d_model: int, base: int | None = BASE) -> GPTConfig:
    return GPTConfig(vocab_size=100, seq_len=16, n_layer=2, n_head=4, d_model=d_model, mup_base_width=base)


def trainer(model) -> Trainer:
    stream = np.random.default_rng(0).integers(0, 100, 2000)
    cfg = TrainConfig(steps=3, lr=1e-2, warmup_steps=2, weight_decay=0.1, device="cpu", precision="fp32",
                      progress=False, threads=1)
    return Trainer(model, MixtureSampler([stream], [1.0], batch_size=2, seq_len=16, seed=0), cfg)


@pytest.mark.parametrize("d_model", [64, 256])
def test_mup_init_std_and_group_lrs_scale_with_width_as_documented(d_model):
    m = d_model / BASE
    model = GPT(config(d_model), seed=0)
    params = dict(model.named_parameters())
    hidden = 0.02 / math.sqrt(m)
    expected = {"wte.weight": 0.02, "wpe.weight": 0.02, "h.0.attn.c_attn.weight": hidden, "h.1.mlp.c_fc.weight": hidden,
                "h.0.attn.c_proj.weight": hidden / 2, "h.1.mlp.c_proj.weight": hidden / 2}  # 1/sqrt(2 n_layer) = 1/2
    for name, std in expected.items():
        assert params[name].std().item() == pytest.approx(std, rel=0.06), name
    assert all(torch.all(p == 1) for n, p in params.items() if ".ln_" in n or n.startswith("ln_f"))

    t = trainer(model)
    groups = t.optimizer.param_groups
    names = {id(p): n for n, p in params.items()}
    members = [sorted(names[id(p)] for p in g["params"]) for g in groups]
    assert members[0] == sorted(n for n in params if ".attn.c_" in n or ".mlp.c_" in n)
    assert members[1] == ["wpe.weight", "wte.weight"]
    assert members[2] == sorted(n for n in params if "ln_" in n)
    # Hidden matrices: LR x base/d and decay x d/base (lr * wd per step unchanged); embeddings and norms at the base LR.
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 / m, 1e-2, 1e-2])
    assert [g["weight_decay"] for g in groups] == pytest.approx([0.1 * m, 0.1, 0.0])
    t.train()  # the schedule keeps the multipliers
    assert [g["lr"] for g in groups] == pytest.approx([lr_at(2, t.config) / m, lr_at(2, t.config), lr_at(2, t.config)])


def test_mup_at_the_base_width_is_the_standard_parameterization():
    sp, mup = GPT(config(BASE, base=None), seed=3), GPT(config(BASE), seed=3)
    for (name, p), (_, q) in zip(sp.named_parameters(), mup.named_parameters()):
        assert torch.equal(p, q), name
    x = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mup(x), sp(x))
    assert config(BASE).attn_scale == pytest.approx(1 / math.sqrt(BASE // 4))
    sp_groups, mup_groups = trainer(sp).optimizer.param_groups, trainer(mup).optimizer.param_groups
    assert {g["lr"] for g in sp_groups} == {g["lr"] for g in mup_groups} == {1e-2}
    # SP keeps its two groups (decay all matrices, embeddings included; not the norms).
    assert [len(g["params"]) for g in sp_groups] == [2 + 2 * 4, 2 * 2 + 1]
    assert [g["weight_decay"] for g in sp_groups] == [0.1, 0.0]
    # A wider SP model keeps N(0, 0.02) and the single LR.
    wide_sp = GPT(config(256, base=None), seed=0)
    assert wide_sp.h[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert {g["lr"] for g in trainer(wide_sp).optimizer.param_groups} == {1e-2}


def test_mup_multiplies_the_tied_head_logits_by_base_over_width_and_scales_attention_by_one_over_d_head():
    model = GPT(config(128), seed=0)  # width multiplier 4
    seen = {}
    model.ln_f.register_forward_hook(lambda mod, inp, out: seen.__setitem__("h", out))
    x = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(1))
    logits = model(x)
    torch.testing.assert_close(logits, F.linear(seen["h"], model.wte.weight) / 4)
    tuned = GPT(GPTConfig(**{**config(128).__dict__, "mup_output_mult": 8.0}), seed=0)  # alpha_output 8 at the base
    tuned.ln_f.register_forward_hook(lambda mod, inp, out: seen.__setitem__("h", out))
    torch.testing.assert_close(tuned(x), F.linear(seen["h"], tuned.wte.weight) * 8 / 4)
    # The training loss goes through the same multiplier (chunked head).
    y = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(2))
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(2, 16)
    torch.testing.assert_close(model.token_losses(x, y), ce)

    # Attention: scale * d_head is the same at every width (1/d_head), sqrt(base head dim); the module uses it.
    assert [config(d).attn_scale * (d // 4) for d in (32, 64, 128)] == pytest.approx([math.sqrt(BASE / 4)] * 3)
    attn, d_head = model.h[0].attn, 128 // 4
    inp = torch.randn(2, 16, 128, generator=torch.Generator().manual_seed(3))
    q, k, v = (t.view(2, 16, 4, d_head).transpose(1, 2) for t in attn.c_attn(inp).split(128, dim=2))
    scores = (q @ k.transpose(-1, -2)) * math.sqrt(BASE / 4) / d_head
    scores = scores.masked_fill(torch.ones(16, 16, dtype=torch.bool).triu(1), float("-inf"))
    manual = attn.c_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 16, 128))
    torch.testing.assert_close(attn(inp), manual, rtol=1e-4, atol=1e-5)


def test_mup_is_selectable_in_presets_and_a_bad_base_width_is_an_error():
    sp, mup = preset_config("small", 4096, 256), preset_config("small", 4096, 256, mup_base_width=64)
    assert sp.mup_base_width is None and sp.width_mult == 1.0 and sp.attn_scale is None
    assert mup.mup_base_width == 64 and mup.width_mult == 384 / 64 and mup.d_model == sp.d_model
    assert mup.output_mult == 64 / 384 and sp.output_mult == 1.0
    assert preset_config("small", 4096, 256, mup_base_width=64, mup_output_mult=8.0).output_mult == 8 * 64 / 384
    with pytest.raises(ValueError, match="mup_base_width"):
        GPTConfig(mup_base_width=0)
    with pytest.raises(ValueError, match="needs mup_base_width"):
        GPTConfig(mup_output_mult=8.0)


def test_mup_keeps_activations_and_logits_the_same_size_across_widths_after_training_and_sp_does_not():
    # The coordinate check of Tensor Programs V: after a few AdamW steps at one LR, each layer's output has about the
    # same size at every width under muP, and grows with width under SP (too large an update for wide models).
    stream = np.random.default_rng(0).integers(0, 100, 20000)
    x = torch.from_numpy(stream[:8 * 16].reshape(8, 16))

    def sizes(d_model, base):
        model = GPT(config(d_model, base), seed=0)
        cfg = TrainConfig(steps=4, lr=1e-2, warmup_steps=1, grad_clip=0.0, device="cpu", precision="fp32",
                          progress=False, threads=1)
        Trainer(model, MixtureSampler([stream], [1.0], 8, 16, seed=0), cfg).train()
        seen = {}
        model.h[0].register_forward_hook(lambda mod, inp, out: seen.__setitem__("block", out.std().item()))
        with torch.no_grad():
            logits = model(x)
        return {**seen, "logits": logits.std().item()}

    for base, low, high in ((BASE, 0.5, 2.0), (None, 2.0, math.inf)):
        narrow, wide = sizes(BASE, base), sizes(8 * BASE, base)
        for key in ("block", "logits"):
            assert low < wide[key] / narrow[key] < high, (base, key, narrow, wide)
