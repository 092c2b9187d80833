"""What the mixers write under weights.json's `diagnostics`, as typed models: the writers' shape, the report's reader.

    diag = read_diagnostics(weights_json["method"], weights_json["diagnostics"])  # None for the baselines
    if isinstance(diag, DoReMiDiagnostics): diag.rounds[-1].trajectory.weights    # [points][domains]
    if isinstance(diag, RegressionDiagnostics): diag.regression.out_of_fold.actual

The models name only the keys a reader uses; every other key a mixer writes is kept in the file and ignored here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Diagnostics(BaseModel):
    # Mixers write more than any one reader needs; unknown keys are allowed, missing or mistyped ones are errors.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Trajectory(_Diagnostics):
    """DoReMi's per-step domain weights and excess losses, subsampled: one row per kept step, one column per domain."""

    steps: list[int]
    weights: list[list[float]]
    excess_loss: list[list[float]]


class DoReMiRound(_Diagnostics):
    """One DoReMi round: its output weights, per-domain losses and the trajectory of the Group DRO weights."""

    round: int
    weights: dict[str, float]
    mean_excess_loss: dict[str, float]
    reference_valid_loss: dict[str, float]
    proxy_valid_loss: dict[str, float]
    trajectory: Trajectory


class DoReMiDiagnostics(_Diagnostics):
    """`diagnostics` of a DoReMi weights.json; the trajectory columns follow `domains`."""

    domains: list[str]
    rounds_run: int
    converged: bool
    rounds: list[DoReMiRound]


class FitQuality(_Diagnostics):
    """Cross-validated quality of a predictor of the target loss (NaN where a figure is undefined)."""

    spearman: float
    mae: float
    r2: float


class OutOfFold(_Diagnostics):
    """The proxy runs' actual target losses and each predictor's out-of-fold predictions of them (same order)."""

    actual: list[float]
    predicted: dict[str, list[float]]


class Regression(_Diagnostics):
    """The predictors tried on the proxy runs, the one chosen, and their cross-validation."""

    chosen: str
    cv_folds: int
    cv: dict[str, FitQuality]
    out_of_fold: OutOfFold
    per_domain: dict[str, FitQuality] | None = None  # the mixing law: each domain's own law


class RegressionDiagnostics(_Diagnostics):
    """`diagnostics` of a RegMix or mixing-law weights.json: proxy runs -> a predictor of the target loss."""

    target_domains: list[str]
    num_runs: int
    regression: Regression
    predicted_target_loss: dict[str, float]


READERS: dict[str, type[_Diagnostics]] = {
    "doremi": DoReMiDiagnostics,
    "regmix": RegressionDiagnostics,
    "mixing-law": RegressionDiagnostics,
}


def read_diagnostics(method: str | None, diagnostics: dict[str, Any] | None) -> _Diagnostics | None:
    """The typed diagnostics of a mixer's output; None for a method that writes none to draw (the baselines).
    A file that does not fit its method's model raises pydantic's ValidationError."""
    reader = READERS.get(method or "")
    if reader is None:
        return None
    return reader.model_validate(diagnostics or {})
