"""Tokenization: byte-level BPE training, per-domain Megatron datasets, and training shards drawn by mixture weights."""
