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

__all__ = ["MIXERS", "DoReMi", "DomainWeights", "MixingLaw", "Natural", "RegMix", "Uniform"]
