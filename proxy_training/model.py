"""A small GPT, read top to bottom like nanoGPT's model.py.

Pre-norm transformer blocks, causal `F.scaled_dot_product_attention`, learned positions, an LM head tied to the token
embedding, and a vocabulary padded to a multiple of 64 (the padded rows are never targets and learn to stay low).

    config = GPTConfig(vocab_size=4096, seq_len=256, n_layer=2, n_head=8, d_model=256, d_mlp=512)
    model = GPT(config, seed=0)           # the same seed gives the same weights, always (own generator)
    losses = model.token_losses(x, y)     # [B, T] float32 per-token cross-entropy
    logits = model(x)                     # [B, T, padded_vocab]

The training loss never materializes all logits at once: `chunked_token_losses` runs the LM head and cross-entropy
over chunks of about `loss_chunk_tokens` tokens, which keeps each chunk's logits cache-sized on CPU (there the head
and loss are memory-bound) and is a no-op on CUDA.

`PRESETS` names the sizes used by the CLI, from RegMix's "1M" proxy up to GPT-2 small.

Width-scaled parameterization (muP; Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via
Zero-Shot Hyperparameter Transfer"). `GPTConfig(mup_base_width=b)` makes one AdamW learning rate, tuned at
d_model = b, serve every width of a ladder. With m = d_model / b (the width multiplier):

    hidden matrices (c_attn, c_proj, c_fc)   init std 0.02 / sqrt(m) (fan_in relative to the base), LR x 1/m and
                                             weight decay x m (lr * wd per step unchanged, as the mup package does)
    embeddings (wte, wpe), norm weights      init and LR as at the base width
    logits                                   multiplied by mup_output_mult / m
    attention                                scores scaled by sqrt(b / n_head) / d_head: 1/d_head instead of
                                             1/sqrt(d_head), equal to it at the base width

The LM head is tied to the token embedding. muP treats the embedding as an input weight (init and LR independent of
width) and an untied readout as an output weight (init and LR 1/m of the base); one shared matrix cannot be both, so
the 1/m goes on the logits as an output multiplier (as the mup package's MuSharedReadout does): the embedding keeps
its base init and LR, and the logits stay the same size as d grows. The base model is this model with every width
(d_model, MLP hidden, head dimension) divided by m, depth and n_head held: widen a ladder by d_model at fixed n_head
and MLP ratio. The per-group LR multipliers travel in the optimizer groups (`optim_groups`, key "lr_mult"); the
trainer multiplies its schedule by them.

`mup_output_mult` (the paper's alpha_output) is a base-width hyperparameter like the LR, and muP carries it to every
width: tune both at the base. At its default 1, muP at d_model == b is exactly SP, but SP's logit scale is too small
for the short proxy runs here, and muP then holds every width to the base model's slow start; with it tuned, the
best LR stayed put across widths and wider models were better at every LR (benchmarks/mup_sweep.py, RESULTS.md).

    config = GPTConfig(vocab_size=4096, seq_len=256, n_layer=2, n_head=4, d_model=256, mup_base_width=64,
                       mup_output_mult=8.0)
    preset_config("small", vocab, seq_len, mup_base_width=64, mup_output_mult=8.0)   # a preset under muP

SP (`mup_base_width=None`) stays the default: the LRs in use (RegMix's 4e-4 at d 256, DoReMi's, mix-eval's) were
tuned under SP at the proxy's own width, and muP only pays when one LR must serve several widths (a ladder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 4096
    seq_len: int = 256
    n_layer: int = 2
    n_head: int = 8
    d_model: int = 256
    d_mlp: int | None = None  # hidden size of the MLP; None = 4 * d_model
    mup_base_width: int | None = None  # muP: the d_model its learning rate was tuned at; None = standard (SP)
    mup_output_mult: float = 1.0  # muP: the logit multiplier at the base width (alpha_output), tuned there like the LR

    def __post_init__(self):
        if self.mup_base_width is not None and self.mup_base_width <= 0:
            raise ValueError(f"mup_base_width must be a positive width or None, not {self.mup_base_width}")
        if self.mup_base_width is None and self.mup_output_mult != 1.0:
            raise ValueError("mup_output_mult needs mup_base_width (it is a muP setting)")

    @property
    def padded_vocab(self) -> int:
        return (self.vocab_size + 63) // 64 * 64

    @property
    def mlp_hidden(self) -> int:
        return self.d_mlp or 4 * self.d_model

    @property
    def width_mult(self) -> float:
        """muP's width multiplier d_model / mup_base_width (1 under the standard parameterization)."""
        return self.d_model / self.mup_base_width if self.mup_base_width else 1.0

    @property
    def output_mult(self) -> float:
        """The logits' multiplier: mup_output_mult / width_mult under muP, 1 under SP."""
        return self.mup_output_mult / self.width_mult if self.mup_base_width else 1.0

    @property
    def attn_scale(self) -> float | None:
        """Attention score scale: None (SDPA's 1/sqrt(d_head)) under SP; sqrt(base head dim) / d_head under muP."""
        if not self.mup_base_width:
            return None
        return math.sqrt(self.mup_base_width / self.n_head) / (self.d_model // self.n_head)

    def num_params(self, embeddings: bool = True) -> int:
        """Parameters of one model (the tied LM head counted once, with the embedding)."""
        d, h = self.d_model, self.mlp_hidden
        per_block = 2 * d + d * 3 * d + d * d + d * h + h * d
        n = self.n_layer * per_block + d  # + final norm
        if embeddings:
            n += self.padded_vocab * d + self.seq_len * d
        return n


# Named sizes. "regmix-1m" is RegMix's proxy (2 layers, d 256, 8 heads, MLP 512: ~1M non-embedding parameters).
PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=4, d_model=64),
    "regmix-1m": dict(n_layer=2, n_head=8, d_model=256, d_mlp=512),
    "small": dict(n_layer=4, n_head=8, d_model=384),
    "60m": dict(n_layer=8, n_head=8, d_model=512),
    "gpt2-124m": dict(n_layer=12, n_head=12, d_model=768),
}


def preset_config(name: str, vocab_size: int, seq_len: int, mup_base_width: int | None = None,
                  mup_output_mult: float = 1.0) -> GPTConfig:
    """The GPTConfig of a named size for a given vocabulary and context length (muP when `mup_base_width` is set)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model size {name!r}; choose one of {', '.join(PRESETS)}")
    return GPTConfig(vocab_size=vocab_size, seq_len=seq_len, mup_base_width=mup_base_width,
                     mup_output_mult=mup_output_mult, **PRESETS[name])


def loss_chunk_tokens(device: torch.device, vocab: int) -> int:
    """Tokens per LM-head chunk: ~1M logits (4 MB in float32, about a CPU's cache) on CPU; everything at once on
    CUDA, where one large matmul is fastest."""
    return 1 << 62 if device.type == "cuda" else max(64, (1 << 20) // vocab)


def chunked_token_losses(h, weight, targets, chunk_tokens: int):
    """Per-token cross-entropy of a tied LM head, computed chunk by chunk.

    h [M, N, d] final hidden states, weight [M, V, d] embedding tables, targets [M, N] -> losses [M, N] float32.
    Chunks take whole models when a model's N tokens fit in a chunk, else slices of one model's tokens. `split`
    (not slicing) keeps one backward node per tensor, so the gradients are concatenated, not summed full-size.
    """
    M, N, _ = h.shape
    models, tokens = max(1, chunk_tokens // N), min(N, chunk_tokens)
    if torch.is_autocast_enabled(h.device.type):  # cast the table once, not once per chunk
        weight = weight.to(torch.get_autocast_dtype(h.device.type))
    out = []
    for hg, wg, tg in zip(h.split(models), weight.split(models), targets.split(models)):
        row = []
        for hc, tc in zip(hg.split(tokens, dim=1), tg.split(tokens, dim=1)):
            logits = torch.bmm(hc, wg.transpose(1, 2))
            row.append(F.cross_entropy(logits.float().flatten(0, 1), tc.flatten(), reduction="none").view(tc.shape))
        out.append(torch.cat(row, dim=1))
    return torch.cat(out, dim=0)


def causal_attention(q, k, v, scale: float | None = None):
    """Causal `F.scaled_dot_product_attention` of q, k, v [batch, heads, T, head_dim] (scale None = 1/sqrt(head_dim)).

    On CPU the attention itself runs in float32 even under bf16 autocast: the CPU flash kernel's bf16 backward is
    slower than its float32 one. The projections around it stay bf16."""
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


class LayerNorm(nn.Module):
    """LayerNorm with a weight and no bias (as in nanoGPT with bias=False)."""

    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.d_model % config.n_head == 0
        self.n_head = config.n_head
        self.scale = config.attn_scale
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.c_proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v, self.scale)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, config.mlp_hidden, bias=False)
        self.c_proj = nn.Linear(config.mlp_hidden, config.d_model, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def param_kind(name: str) -> str:
    """"norm", "embedding" (wte, wpe) or "hidden" (the matrices inside the blocks): what muP scales differently."""
    if name.startswith("ln_f.") or ".ln_" in name:
        return "norm"
    return "embedding" if name.startswith(("wte.", "wpe.")) else "hidden"


def init_weights(model: nn.Module, config: GPTConfig, seed: int) -> None:
    """GPT-2 initialization from a private generator: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer);
    under muP hidden matrices also by 1/sqrt(width_mult).

    Parameters are drawn in `named_parameters()` order, so GPT and each slice of StackedGPT (same names) get
    identical weights from the same seed.
    """
    gen = torch.Generator().manual_seed(seed)
    hidden_std = 0.02 / math.sqrt(config.width_mult)
    with torch.no_grad():
        for name, p in model.named_parameters():
            kind = param_kind(name)
            if kind == "norm":
                p.fill_(1.0)
                continue
            std = 0.02 if kind == "embedding" else hidden_std
            if name.endswith("c_proj.weight"):
                std /= math.sqrt(2 * config.n_layer)
            p.copy_(torch.empty(p.shape).normal_(0.0, std, generator=gen))


def optim_groups(named_parameters, config: GPTConfig, weight_decay: float) -> list[dict]:
    """AdamW parameter groups of (name, parameter) pairs, each with an "lr_mult" on the schedule's LR. SP: decay
    every matrix (embeddings included, as nanoGPT), not norm weights. muP: hidden matrices at LR x 1/width_mult and
    decay x width_mult, embeddings and norms as at the base width."""
    kinds: dict[str, list] = {"hidden": [], "embedding": [], "norm": []}
    for name, p in named_parameters:
        kinds[param_kind(name)].append(p)
    if config.mup_base_width is None:
        # wte and wpe come first in named_parameters(), so this is the parameter order of the decay group as before.
        return [{"params": kinds["embedding"] + kinds["hidden"], "weight_decay": weight_decay, "lr_mult": 1.0},
                {"params": kinds["norm"], "weight_decay": 0.0, "lr_mult": 1.0}]
    m = config.width_mult
    return [{"params": kinds["hidden"], "weight_decay": weight_decay * m, "lr_mult": 1.0 / m},
            {"params": kinds["embedding"], "weight_decay": weight_decay, "lr_mult": 1.0},
            {"params": kinds["norm"], "weight_decay": 0.0, "lr_mult": 1.0}]


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.padded_vocab, config.d_model)
        self.wpe = nn.Embedding(config.seq_len, config.d_model)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.d_model)
        init_weights(self, config, seed)

    def hidden(self, idx):
        """Final hidden states [B, T, d] (after the last norm, times muP's output multiplier) for token ids idx [B, T].
        """
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        # muP's logit multiplier, applied to the d-wide input of the tied head (cheaper than the V-wide logits).
        return x if self.config.output_mult == 1.0 else x * self.config.output_mult

    def forward(self, idx):
        """Logits [B, T, padded_vocab] for token ids idx [B, T]."""
        # Tied LM head: the output projection is the token embedding.
        return F.linear(self.hidden(idx), self.wte.weight)

    def token_losses(self, idx, targets):
        """Per-token cross-entropy [B, T] in float32 (the hook DoReMi and per-domain evaluation build on)."""
        B, T = targets.shape
        h = self.hidden(idx).view(1, B * T, -1)
        chunk = loss_chunk_tokens(idx.device, self.config.padded_vocab)
        return chunked_token_losses(h, self.wte.weight[None], targets.reshape(1, B * T), chunk).view(B, T)

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip the global gradient norm; returns the norm before clipping (shape [1], like StackedGPT's [M])."""
        return torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm).reshape(1)

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups with their LR multipliers (see the module-level `optim_groups`)."""
        return optim_groups(list(self.named_parameters()), self.config, weight_decay)
