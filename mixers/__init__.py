"""Mixers: token files on disk in, `DomainWeights` out. Each mixer is an estimator: `Mixer(**params).fit(data_dir)`."""

from mixers.baselines import Natural, Uniform
from mixers.regmix import RegMix
from mixers.weights import DomainWeights

# method name -> estimator class (`curate mix --method NAME`); DoReMi and RegMix add themselves here.
MIXERS = {
    "uniform": Uniform,
    "natural": Natural,
    "regmix": RegMix,
}

__all__ = ["MIXERS", "DomainWeights", "Natural", "RegMix", "Uniform"]
