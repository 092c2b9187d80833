"""Tokenization: byte-level BPE training, per-domain Megatron datasets, and training shards drawn by mixture weights."""

# curate.config imports this package's config (PipelineConfig has a field for it), and that config subclasses
# curate.config.StrictModel: importing curate.config first keeps the cycle in the one order that resolves.
import curate.config  # noqa: F401
