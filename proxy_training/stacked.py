"""StackedGPT: M independent GPTs as one module, trained in one step (the trick that makes RegMix affordable).

Every parameter of `GPT` appears here under the same name with a leading model axis: `h.0.attn.c_attn.weight` is
[M, 3d, d]. Linear layers are batched matmuls over that axis, and the model axis is folded into the attention batch
so `F.scaled_dot_product_attention` keeps its fast kernels. The models share nothing: model i's slice is exactly
`GPT(config, seed=seeds[i])` at init, its gradients depend only on its own batch (the training loss is the SUM of
per-model losses), gradient clipping is per model, and AdamW is elementwise, so training the stack equals training M
separate models (tests/test_proxy_stacked.py checks it).

    model = StackedGPT(config, seeds=[0, 0, 1])   # two models with the same init, one with another
    losses = model.token_losses(x, y)              # x, y: [M, B, T] -> [M, B, T] float32
    gpt = model.unstack(2)                         # a plain GPT with model 2's weights
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from proxy_training.model import (GPT, GPTConfig, causal_attention, chunked_token_losses, loss_chunk_tokens,
                                  optim_groups)


class StackedLinear(nn.Module):
    """M bias-free linear layers: x [M, N, in] -> [M, N, out] with weight [M, out, in]."""

    def __init__(self, m: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(m, d_out, d_in))

    def forward(self, x):
        return torch.bmm(x, self.weight.transpose(1, 2))


class StackedLayerNorm(nn.Module):
    def __init__(self, m: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(m, d))

    def forward(self, x):  # x [M, N, d]
        return F.layer_norm(x, x.shape[-1:], None, None, 1e-5) * self.weight[:, None, :]


class StackedEmbedding(nn.Module):
    def __init__(self, m: int, n: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(m, n, d))


class StackedAttention(nn.Module):
    def __init__(self, m: int, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.scale = config.attn_scale
        self.c_attn = StackedLinear(m, config.d_model, 3 * config.d_model)
        self.c_proj = StackedLinear(m, config.d_model, config.d_model)

    def forward(self, x, B: int, T: int):
        M, _, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # Fold the model axis into the batch: [M, B*T, C] -> [M*B, heads, T, head_dim].
        q, k, v = (t.reshape(M * B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v, self.scale)
        return self.c_proj(y.transpose(1, 2).reshape(M, B * T, C))


class StackedMLP(nn.Module):
    def __init__(self, m: int, config: GPTConfig):
        super().__init__()
        self.c_fc = StackedLinear(m, config.d_model, config.mlp_hidden)
        self.c_proj = StackedLinear(m, config.mlp_hidden, config.d_model)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class StackedBlock(nn.Module):
    def __init__(self, m: int, config: GPTConfig):
        super().__init__()
        self.ln_1 = StackedLayerNorm(m, config.d_model)
        self.attn = StackedAttention(m, config)
        self.ln_2 = StackedLayerNorm(m, config.d_model)
        self.mlp = StackedMLP(m, config)

    def forward(self, x, B: int, T: int):
        x = x + self.attn(self.ln_1(x), B, T)
        return x + self.mlp(self.ln_2(x))


class StackedGPT(nn.Module):
    def __init__(self, config: GPTConfig, seeds: list[int]):
        super().__init__()
        self.config = config
        self.seeds = list(seeds)
        m = self.num_models = len(self.seeds)
        self.wte = StackedEmbedding(m, config.padded_vocab, config.d_model)
        self.wpe = StackedEmbedding(m, config.seq_len, config.d_model)
        self.h = nn.ModuleList(StackedBlock(m, config) for _ in range(config.n_layer))
        self.ln_f = StackedLayerNorm(m, config.d_model)
        # Init slice i from GPT(config, seed_i): one source of truth for the init, identical by construction.
        params = dict(self.named_parameters())
        with torch.no_grad():
            for i, seed in enumerate(self.seeds):
                for name, p in GPT(config, seed=seed).named_parameters():
                    params[name][i].copy_(p)

    def hidden(self, idx):
        """Final hidden states [M, B*T, d] (times muP's output multiplier, as GPT.hidden) for token ids idx [M, B, T]
        (model i reads idx[i])."""
        M, B, T = idx.shape
        V, d = self.config.padded_vocab, self.config.d_model
        # One embedding lookup for all models: row (i, tok) of the stacked table is i * V + tok.
        offsets = torch.arange(M, device=idx.device).view(M, 1, 1) * V
        x = F.embedding(idx + offsets, self.wte.weight.view(M * V, d)) + self.wpe.weight[:, None, :T, :]
        x = x.view(M, B * T, d)
        for block in self.h:
            x = block(x, B, T)
        x = self.ln_f(x)
        return x if self.config.output_mult == 1.0 else x * self.config.output_mult

    def forward(self, idx):
        """Logits [M, B, T, padded_vocab] for token ids idx [M, B, T]."""
        M, B, T = idx.shape
        logits = torch.bmm(self.hidden(idx), self.wte.weight.transpose(1, 2))  # tied LM head
        return logits.view(M, B, T, -1)

    def token_losses(self, idx, targets):
        """Per-token cross-entropy [M, B, T] in float32."""
        M, B, T = targets.shape
        chunk = loss_chunk_tokens(idx.device, self.config.padded_vocab)
        losses = chunked_token_losses(self.hidden(idx), self.wte.weight, targets.reshape(M, B * T), chunk)
        return losses.view(M, B, T)

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip each model's gradient norm separately (as M separate runs would); returns the norms [M]."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        sq = sum(g.float().pow(2).sum(dim=tuple(range(1, g.dim()))) for g in grads)
        norms = sq.sqrt()
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # the same rule as torch.nn.utils.clip_grad_norm_
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))
        return norms

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """The same AdamW groups and LR multipliers as GPT (parameters have the same names)."""
        return optim_groups(list(self.named_parameters()), self.config, weight_decay)

    def unstack(self, i: int) -> GPT:
        """A plain GPT holding model i's current weights (on CPU)."""
        gpt = GPT(self.config, seed=self.seeds[i])
        gpt.load_state_dict({name: p[i].detach().cpu() for name, p in self.named_parameters()})
        return gpt
