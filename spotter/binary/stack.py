"""Stacking: a small XGBoost model over the runs' OOF predictions (plus extra features), with its own CV."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class StackConfig:
    """A deliberately small gradient-boosted model: the inputs are a handful of strong features."""

    n_estimators: int = 200
    max_depth: int = 2
    learning_rate: float = 0.05
    subsample: float = 0.8
    min_child_weight: float = 1.0
    seed: int = 0
    threads: int = 1
    extra: dict = field(default_factory=dict)  # any other xgboost.XGBClassifier argument

    def create(self):
        """A fresh `xgboost.XGBClassifier`."""
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, min_child_weight=self.min_child_weight, random_state=self.seed,
            n_jobs=self.threads, objective="binary:logistic", eval_metric="logloss", **self.extra,
        )


def stack_oof(
    features: np.ndarray, targets: np.ndarray, folds: np.ndarray, cfg: StackConfig = StackConfig()
) -> np.ndarray:
    """Out-of-fold stacked predictions: for each fold, a model fitted on the other folds' rows.

    Args:
        features: (samples, features), e.g. each run's OOF prediction and the de-Doppler score.
        targets: Labels; soft labels are thresholded at 0.5.
        folds: Each sample's fold (the runs' shared `folds.csv`).
    """
    labels = (np.asarray(targets, np.float64) >= 0.5).astype(np.int64)
    out = np.zeros(len(features))
    for fold in np.unique(folds):
        held = folds == fold
        model = cfg.create().fit(features[~held], labels[~held])
        out[held] = model.predict_proba(features[held])[:, 1]
    return out


def stack_fit_predict(
    features: np.ndarray, targets: np.ndarray, test_features: np.ndarray, cfg: StackConfig = StackConfig()
) -> np.ndarray:
    """Fits the stacker on every OOF row and predicts the test rows."""
    labels = (np.asarray(targets, np.float64) >= 0.5).astype(np.int64)
    return cfg.create().fit(features, labels).predict_proba(test_features)[:, 1]
