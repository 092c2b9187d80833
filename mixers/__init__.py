"""Mixers: token files on disk in, `DomainWeights` out. Each mixer is an estimator: `Mixer(**params).fit(data_dir)`."""

from mixers.baselines import Natural, Uniform
from mixers.doremi import DoReMi
from mixers.weights import DomainWeights

# method name -> estimator class (`curate mix --method NAME`); DoReMi and RegMix add themselves here.
MIXERS = {
    "uniform": Uniform,
    "natural": Natural,
    "doremi": DoReMi,
}

__all__ = ["MIXERS", "DoReMi", "DomainWeights", "Natural", "Uniform"]
