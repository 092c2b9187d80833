"""Tokenization: byte-level BPE training, per-domain train/valid/test Megatron datasets, the held-out leakage guard."""
