"""Stacking: a small, heavily regularized model over the runs' OOF predictions (plus extra features), with its own CV.

A stacker is fitted on a few thousand out-of-fold rows, where a flexible model overfits the folds' quirks
(the diary this toolkit starts from lost its lead to an XGBoost stack). The default is therefore a strongly
L2-regularized logistic regression on standardized, log-compressed inputs; a shallow, heavily regularized
XGBoost is the named alternative for inputs whose useful combination is not monotone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from spotter.errors import SpotterError


@dataclass
class LogisticStacker:
    """L2-regularized logistic regression on standardized inputs; `c` is sklearn's inverse regularization strength.

    Inputs pass through sign(x)·log1p(|x|) first, so heavy-tailed features (a search's ON/OFF power) do not
    hand a handful of rows the whole fit.
    """

    c: float = 0.05
    name: str = field(default="logistic", init=False)

    def create(self):
        """A fresh sklearn pipeline with `fit` and `predict_proba`."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        return make_pipeline(
            FunctionTransformer(signed_log1p), StandardScaler(), LogisticRegression(C=self.c, max_iter=1000)
        )


@dataclass
class XGBoostStacker:
    """A shallow gradient-boosted model, regularized for a few thousand rows (few trees, big leaves, L2)."""

    n_estimators: int = 100
    max_depth: int = 2
    learning_rate: float = 0.05
    subsample: float = 0.8
    min_child_weight: float = 20.0
    reg_lambda: float = 10.0
    seed: int = 0
    threads: int = 1
    extra: dict = field(default_factory=dict)  # any other xgboost.XGBClassifier argument
    name: str = field(default="xgboost", init=False)

    def create(self):
        """A fresh `xgboost.XGBClassifier`."""
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, min_child_weight=self.min_child_weight, reg_lambda=self.reg_lambda,
            random_state=self.seed, n_jobs=self.threads, objective="binary:logistic", eval_metric="logloss",
            **self.extra,
        )


STACKERS = {"logistic": LogisticStacker, "xgboost": XGBoostStacker}
StackConfig = LogisticStacker | XGBoostStacker


def create_stacker(name: str = "logistic") -> StackConfig:
    """The stacker called `name`, with its default settings.

    Raises:
        SpotterError: On an unknown name.
    """
    if name not in STACKERS:
        raise SpotterError(f"unknown --stacker {name!r}; expected {' | '.join(STACKERS)}")
    return STACKERS[name]()


def stacker_record(cfg: StackConfig) -> dict:
    """The stacker's name and settings, JSON-ready."""
    return asdict(cfg) | {"name": cfg.name}


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """sign(x)·log(1 + |x|): compresses heavy tails, keeps order and sign."""
    return np.sign(x) * np.log1p(np.abs(x))


def stack_oof(
    features: np.ndarray, targets: np.ndarray, folds: np.ndarray, cfg: StackConfig | None = None
) -> np.ndarray:
    """Out-of-fold stacked predictions: for each fold, a model fitted on the other folds' rows.

    Args:
        features: (samples, features), e.g. each run's OOF prediction and the de-Doppler score.
        targets: Labels; soft labels are thresholded at 0.5.
        folds: Each sample's fold (the runs' shared `folds.csv`).
        cfg: The stacker (default `LogisticStacker()`).
    """
    cfg = cfg or LogisticStacker()
    labels = (np.asarray(targets, np.float64) >= 0.5).astype(np.int64)
    out = np.zeros(len(features))
    for fold in np.unique(folds):
        held = folds == fold
        model = cfg.create().fit(features[~held], labels[~held])
        out[held] = model.predict_proba(features[held])[:, 1]
    return out


def stack_fit_predict(
    features: np.ndarray, targets: np.ndarray, test_features: np.ndarray, cfg: StackConfig | None = None
) -> np.ndarray:
    """Fits the stacker on every OOF row and predicts the test rows."""
    cfg = cfg or LogisticStacker()
    labels = (np.asarray(targets, np.float64) >= 0.5).astype(np.int64)
    return cfg.create().fit(features, labels).predict_proba(test_features)[:, 1]
