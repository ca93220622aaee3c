"""Blend methods for id,target runs, chosen by name: mean, rank-mean, fitted weights, a regularized stack.

Each method takes the runs' aligned out-of-fold and test predictions (`BlendInputs`) and returns the blended
test predictions with an honest out-of-fold estimate of the blend (`BlendOutcome`): a method that fits anything
is scored on folds it was not fitted on, and (by default) gives way to the plain mean when that estimate is
below the mean's (`NoWorseThanMean`), so a blend never loses to its simplest alternative silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata

from spotter.binary.stack import StackConfig, create_stacker, stack_fit_predict, stack_oof, stacker_record
from spotter.errors import SpotterError

EPS = 1e-6
Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass
class BlendInputs:
    """What every blend method sees.

    Attributes:
        oof: (samples, runs) out-of-fold predictions, rows aligned across runs.
        test: (test samples, runs) test predictions.
        targets: Out-of-fold labels.
        folds: The runs' shared fold of each out-of-fold sample.
        cv_folds: The folds fitted methods are cross-validated over (see `blend_folds`), and how they were chosen.
        metric: metric(targets, predictions), higher is better.
        run_names: One name per run column.
        extra_oof / extra_test / extra_names: Extra feature columns for stacking (zero columns if none).
    """

    oof: np.ndarray
    test: np.ndarray
    targets: np.ndarray
    folds: np.ndarray
    cv_folds: tuple[np.ndarray, str]
    metric: Metric
    run_names: list[str]
    extra_oof: np.ndarray
    extra_test: np.ndarray
    extra_names: list[str] = field(default_factory=list)

    @property
    def oof_fold_ranked(self) -> np.ndarray:
        return fold_rank_normalize(self.oof, self.folds)


@dataclass
class BlendOutcome:
    """A blend's test predictions, its out-of-fold metrics and what else the record should keep."""

    predictions: np.ndarray
    metrics: dict
    record: dict = field(default_factory=dict)


class Mean:
    """The mean of the runs' predictions."""

    name = "mean"
    uses_features = False
    fitted = False

    def __call__(self, inputs: BlendInputs) -> BlendOutcome:
        oof = inputs.metric(inputs.targets, inputs.oof.mean(axis=1))
        return BlendOutcome(inputs.test.mean(axis=1), {"ensemble_oof": oof})


class RankMean:
    """The mean of each run's normalized ranks (robust to runs calibrated differently)."""

    name = "rank"
    uses_features = False
    fitted = False

    def __call__(self, inputs: BlendInputs) -> BlendOutcome:
        metrics = {
            "ensemble_oof": inputs.metric(inputs.targets, inputs.oof_fold_ranked.mean(axis=1)),
            "ensemble_oof_pooled_ranks": inputs.metric(inputs.targets, rank_normalize(inputs.oof).mean(axis=1)),
        }
        return BlendOutcome(rank_normalize(inputs.test).mean(axis=1), metrics)


class FittedWeights:
    """Non-negative weights summing to 1 fitted on the out-of-fold predictions (log-loss)."""

    name = "weights"
    uses_features = False
    fitted = True

    def __call__(self, inputs: BlendInputs) -> BlendOutcome:
        cv_folds, cv_note = inputs.cv_folds
        weights = fit_weights(inputs.oof, inputs.targets)
        cv_blend, per_fold = cross_validated_weights(inputs.oof, inputs.targets, cv_folds)
        metrics = {
            "cv_folds": cv_note,
            "ensemble_oof_in_sample": inputs.metric(inputs.targets, inputs.oof @ weights),
            "ensemble_oof": inputs.metric(inputs.targets, cv_blend),  # weights fitted without the fold they score
        }
        record = {
            "weights": dict(zip(inputs.run_names, weights.tolist())),
            "weights_per_fold": [w.tolist() for w in per_fold],
        }
        return BlendOutcome(inputs.test @ weights, metrics, record)


class Stack:
    """A regularized model over the runs' predictions (as ranks) and any extra features, cross-validated.

    Args:
        config: The stacker (`spotter.binary.stack.create_stacker`); default the strong-L2 logistic regression.
    """

    name = "stack"
    uses_features = True
    fitted = True

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or create_stacker()

    def __call__(self, inputs: BlendInputs) -> BlendOutcome:
        cv_folds, cv_note = inputs.cv_folds
        # the runs enter as ranks: within each fold for OOF rows, within the test set for test rows
        train_x = np.hstack([inputs.oof_fold_ranked, inputs.extra_oof])
        test_x = np.hstack([rank_normalize(inputs.test), inputs.extra_test])
        stacked = stack_oof(train_x, inputs.targets, cv_folds, self.config)
        metrics = {"cv_folds": cv_note, "ensemble_oof": inputs.metric(inputs.targets, stacked)}
        if inputs.extra_names:
            metrics["features_oof"] = {
                name: inputs.metric(inputs.targets, inputs.extra_oof[:, i]) for i, name in enumerate(inputs.extra_names)
            }
        record = {
            "features": [f"run{i}" for i in range(len(inputs.run_names))] + list(inputs.extra_names),
            "stack": stacker_record(self.config),
        }
        return BlendOutcome(stack_fit_predict(train_x, inputs.targets, test_x, self.config), metrics, record)


class NoWorseThanMean:
    """A fitted method that writes the plain mean's blend instead when its cross-validated metric is lower.

    The mean fits nothing, so its out-of-fold metric is already honest; the fitted method's is measured on
    folds it was not fitted on. The record says which blend was written and keeps both figures.

    Args:
        method: A fitted blend method (weights, stack).
        fallback: False keeps the fitted method's blend whatever its CV says (it is still recorded).
    """

    def __init__(self, method, fallback: bool = True) -> None:
        self.method = method
        self.fallback = fallback
        self.name = method.name
        self.uses_features = method.uses_features
        self.fitted = True

    def __call__(self, inputs: BlendInputs) -> BlendOutcome:
        outcome = self.method(inputs)
        mean = Mean()(inputs)
        fitted_cv, mean_cv = outcome.metrics["ensemble_oof"], mean.metrics["ensemble_oof"]
        loses = fitted_cv < mean_cv
        chosen = Mean.name if loses and self.fallback else self.name
        selection = {
            "requested": self.name,
            "written": chosen,
            "fallback": self.fallback,
            "cv_oof": {self.name: fitted_cv, Mean.name: mean_cv},
        }
        metrics = {**outcome.metrics, f"{self.name}_oof": fitted_cv, "mean_oof": mean_cv}
        if chosen == Mean.name:
            metrics["ensemble_oof"] = mean_cv  # the figure of the blend written
            return BlendOutcome(mean.predictions, metrics, {**outcome.record, "selection": selection})
        return BlendOutcome(outcome.predictions, metrics, {**outcome.record, "selection": selection})


BLEND_METHODS: dict[str, Callable[[], Callable[[BlendInputs], BlendOutcome]]] = {
    "mean": Mean,
    "rank": RankMean,
    "weights": FittedWeights,
    "stack": Stack,
}


def create_blend(name: str, fallback: bool = True, stacker: str | None = None):
    """The blend method called `name`; a fitted one wrapped in `NoWorseThanMean`.

    Args:
        name: One of BLEND_METHODS.
        fallback: Whether a fitted method gives way to the mean when its cross-validated metric is lower.
        stacker: The stack's model (`spotter.binary.stack.STACKERS`); None for the default.

    Raises:
        SpotterError: On an unknown name or stacker, or a stacker for another method.
    """
    if name not in BLEND_METHODS:
        raise SpotterError(f"unknown --method {name!r}; expected {' | '.join(BLEND_METHODS)}")
    if stacker is not None and name != Stack.name:
        raise SpotterError(f"--stacker only applies to --method {Stack.name}")
    method = Stack(create_stacker(stacker)) if stacker is not None else BLEND_METHODS[name]()
    return NoWorseThanMean(method, fallback) if method.fitted else method


# ----------------------------------------------------------------------------------------------- the maths


def rank_normalize(predictions: np.ndarray) -> np.ndarray:
    """Each column's average ranks scaled to (0, 1]."""
    predictions = np.asarray(predictions, np.float64)
    return rankdata(predictions, axis=0) / len(predictions)


def fold_rank_normalize(predictions: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each column's ranks within each fold, scaled to (0, 1].

    Pooled out-of-fold predictions carry per-fold offsets (each fold's model is calibrated a little
    differently) that a run's test predictions, one mean over the fold models, do not; ranking within
    folds removes them, as ranking the test predictions within the test set does.
    """
    predictions = np.asarray(predictions, np.float64)
    out = np.empty_like(predictions)
    for fold in np.unique(folds):
        held = folds == fold
        out[held] = rank_normalize(predictions[held])
    return out


def log_loss(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy (soft targets allowed), with probabilities clipped away from 0 and 1."""
    p = np.clip(probabilities, EPS, 1 - EPS)
    return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))


def fit_weights(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 minimizing the log-loss of `predictions @ weights`.

    The loss is convex in the weights (the blend is linear in them), so SLSQP over the simplex finds the
    optimum from the equal-weight start.

    Args:
        predictions: (samples, runs) probabilities.
        targets: Binary (or soft) labels.
    """
    predictions = np.clip(np.asarray(predictions, np.float64), EPS, 1 - EPS)
    targets = np.asarray(targets, np.float64)
    n_runs = predictions.shape[1]
    if n_runs == 1:
        return np.ones(1)

    def loss(w: np.ndarray) -> float:
        return log_loss(targets, predictions @ w)

    def grad(w: np.ndarray) -> np.ndarray:
        p = np.clip(predictions @ w, EPS, 1 - EPS)
        return -((targets / p - (1 - targets) / (1 - p))[:, None] * predictions).mean(axis=0)

    result = minimize(
        loss, np.full(n_runs, 1 / n_runs), jac=grad, method="SLSQP", bounds=[(0, 1)] * n_runs,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones_like(w)}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    weights = np.where(result.x > 1e-9, result.x, 0.0)  # the optimizer's round-off, not a real weight
    return weights / weights.sum()


def cross_validated_weights(
    predictions: np.ndarray, targets: np.ndarray, folds: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Blends each fold with weights fitted on the other folds: an honest OOF estimate of `fit_weights`.

    Returns:
        The blended out-of-fold predictions and the weights fitted for each fold (in sorted fold order).
    """
    blended = np.zeros(len(predictions))
    per_fold = []
    for fold in np.unique(folds):
        held = folds == fold
        weights = fit_weights(predictions[~held], targets[~held])
        blended[held] = predictions[held] @ weights
        per_fold.append(weights)
    return blended, per_fold


def blend_folds(folds: np.ndarray, targets: np.ndarray, n_splits: int = 5, seed: int = 0) -> tuple[np.ndarray, str]:
    """The folds that fitted weights and stackers are cross-validated over, and how they were chosen.

    The runs' own folds when their OOF rows span two or more; when the runs validated a single fold (e.g.
    `train_folds=[0]`), a stratified split of those rows, since a blend cannot be fitted on the other folds.
    """
    from sklearn.model_selection import StratifiedKFold

    if len(np.unique(folds)) >= 2:
        return np.asarray(folds), "the runs' folds"
    labels = (np.asarray(targets, np.float64) >= 0.5).astype(np.int64)
    n_splits = max(2, min(n_splits, int(np.bincount(labels, minlength=2).min())))
    inner = np.zeros(len(labels), np.int64)
    for k, (_, held) in enumerate(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels)):
        inner[held] = k
    return inner, f"a stratified {n_splits}-fold split of the runs' single validation fold"
