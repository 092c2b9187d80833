"""Mixers: token files on disk in, `DomainWeights` out. Each mixer is an estimator: `Mixer(**params).fit(data_dir)`."""

from mixers.baselines import Natural, Uniform
from mixers.doremi import DoReMi
from mixers.mixing_law import MixingLaw
from mixers.regmix import RegMix
from mixers.weights import DomainWeights

# method name -> estimator class (`curate mix --method NAME`).
MIXERS = {
    "uniform": Uniform,
    "natural": Natural,
    "doremi": DoReMi,
    "regmix": RegMix,
    "mixing-law": MixingLaw,
}

# The smallest value each numeric mixer setting takes, and whether the bound itself is allowed: a zero step count or
# batch breaks training deep inside (an index or a division by zero), a zero or negative rate trains nothing, so
# `curate mix` refuses them before any work.
PARAM_BOUNDS: dict[str, tuple[float, bool]] = {
    **{k: (1, True) for k in ("steps", "reference_steps", "batch_size", "eval_windows", "rounds", "dro_tokens",
                              "num_simulated", "top_k", "num_candidates", "restarts", "stack_size", "threads",
                              "budget_tokens")},
    **{k: (0, True) for k in ("warmup_steps", "weight_decay", "smoothing", "min_weight", "refine", "bootstrap",
                              "tol", "min_lr")},
    **{k: (0, False) for k in ("lr", "eta", "max_epochs", "sample_max_epochs", "temperature", "t_bound")},
    "seq_len": (2, True),
    "cv_folds": (2, True),
    "num_runs": (3, True),
}

__all__ = ["MIXERS", "PARAM_BOUNDS", "DoReMi", "DomainWeights", "MixingLaw", "Natural", "RegMix", "Uniform"]
