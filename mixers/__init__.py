"""Mixers: token files on disk in, `DomainWeights` out. Each mixer is an estimator: `Mixer(**params).fit(data_dir)`."""

from mixers.baselines import Natural, Uniform
from mixers.doremi import DoReMi
from mixers.regmix import RegMix
from mixers.weights import DomainWeights

# method name -> estimator class (`curate mix --method NAME`).
MIXERS = {
    "uniform": Uniform,
    "natural": Natural,
    "doremi": DoReMi,
    "regmix": RegMix,
}

__all__ = ["MIXERS", "DoReMi", "DomainWeights", "Natural", "RegMix", "Uniform"]
