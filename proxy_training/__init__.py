"""Proxy training: small GPTs on per-domain Megatron token data (torch + numpy only, never Spark).

The API the mixers build on:
- `model.GPT(config, seed)`, `model.GPTConfig`, `model.PRESETS` / `preset_config(name, vocab, seq_len,
  mup_base_width=None)` (muP when a base width is given).
- `stacked.StackedGPT(config, seeds)`: M independent GPTs trained as one module (slice i == GPT(config, seeds[i])).
- `data.TokenDatasets(DATA)`: datasets.json + memory-mapped streams; `data.MixtureSampler` (seeded, optionally
  stratified), `data.StackedSampler`, `data.evaluation_windows` (fixed held-out windows per domain).
- `trainer.Trainer(model, sampler, TrainConfig, loss_fn=..., eval_windows=...)`: `loss_fn(per_token_loss, batch)`
  is the per-domain hook (DoReMi); `trainer.evaluate()` gives per-domain held-out losses ([k] or [M, k]);
  `trainer.domain_mean_losses` does the per-domain bookkeeping; `trainer.train_mixtures` trains many mixtures at
  once (RegMix).
- `megatron`: the MMIDIDX v1 writer/reader; `data.write_token_datasets` writes a whole DATA directory.
"""
