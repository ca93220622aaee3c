"""Blending runs of a binary id,target task: aligned OOF predictions, mean / rank-mean / fitted weights, caching.

Every run of an ensemble must have been trained on the same samples with the same `folds.csv`, so that its
out-of-fold predictions (`oof.csv`: id,target,pred) can be compared and blended row by row. Test predictions
are cached in each run folder (`test_pred-<key>.csv`), keyed by what they depend on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import rankdata

from spotter.errors import SpotterError
from spotter.io import read_csv, write_csv

METHODS = ("mean", "rank", "weights", "stack")
OOF = "oof.csv"
FOLDS = "folds.csv"
EPS = 1e-6


@dataclass
class AlignedOOF:
    """The runs' out-of-fold predictions on their shared samples.

    Attributes:
        runs: The run folders, in the order of the prediction columns.
        rows: id, target and fold of each sample, in the first run's OOF order.
        predictions: (samples, runs) out-of-fold predictions.
    """

    runs: list[Path]
    rows: pd.DataFrame
    predictions: np.ndarray


def read_oof(run_dir: str | Path) -> pd.DataFrame:
    """A run's `oof.csv` (id,target,pred), ids as strings.

    Raises:
        SpotterError: If the file is missing (e.g. a full fit) or malformed, or repeats an id.
    """
    path = Path(run_dir) / OOF
    if not path.is_file():
        raise SpotterError("no oof.csv (a run with validation folds is needed to blend)", run_dir)
    frame = read_csv(path, required=["id", "target", "pred"], dtype={"id": str})
    dup = frame["id"][frame["id"].duplicated()]
    if len(dup):
        raise SpotterError(f"{len(dup)} duplicated id(s), e.g. {dup.iloc[0]!r}", path)
    return frame


def read_folds(run_dir: str | Path) -> pd.DataFrame:
    """A run's `folds.csv` (id,fold), ids as strings."""
    return read_csv(Path(run_dir) / FOLDS, required=["id", "fold"], dtype={"id": str})


def align_runs(runs: Sequence[str | Path]) -> AlignedOOF:
    """Checks the runs share samples and folds, and lines up their out-of-fold predictions.

    Raises:
        SpotterError: Naming the two runs and an example id when their folds.csv or OOF ids differ, or when
            the same run is given twice.
    """
    runs = [Path(r) for r in runs]
    if not runs:
        raise SpotterError("no runs given")
    resolved = [r.resolve() for r in runs]
    if len(set(resolved)) != len(resolved):
        dup = next(r for i, r in enumerate(runs) if resolved[i] in resolved[:i])
        raise SpotterError("run given twice", dup)
    first_folds = read_folds(runs[0]).set_index("id")["fold"]
    first = read_oof(runs[0])
    columns = [first["pred"].to_numpy(np.float64)]
    for run in runs[1:]:
        folds = read_folds(run).set_index("id")["fold"]
        _check_same(runs[0], run, first_folds, folds, "folds.csv")
        oof = read_oof(run).set_index("id")
        missing = first["id"][~first["id"].isin(oof.index)]
        extra = oof.index[~oof.index.isin(first["id"])]
        if len(missing) or len(extra):
            example = missing.iloc[0] if len(missing) else extra[0]
            raise SpotterError(
                f"out-of-fold ids differ from {runs[0]}'s ({len(missing)} missing, {len(extra)} extra, "
                f"e.g. id {example!r}); blend runs trained on the same data and folds",
                run,
            )
        oof = oof.loc[first["id"]]
        differs = np.abs(oof["target"].to_numpy(float) - first["target"].to_numpy(float)) > 1e-9
        if differs.any():
            example = first["id"].iloc[int(differs.argmax())]
            raise SpotterError(f"targets differ from {runs[0]}'s, e.g. id {example!r}", run)
        columns.append(oof["pred"].to_numpy(np.float64))
    rows = first[["id", "target"]].copy()
    missing = rows["id"][~rows["id"].isin(first_folds.index)]
    if len(missing):
        raise SpotterError(f"oof.csv id {missing.iloc[0]!r} has no fold in folds.csv", runs[0])
    rows["fold"] = first_folds.loc[rows["id"]].to_numpy()
    return AlignedOOF(runs, rows.reset_index(drop=True), np.stack(columns, axis=1))


def _check_same(run_a: Path, run_b: Path, folds_a: pd.Series, folds_b: pd.Series, name: str) -> None:
    only_a = folds_a.index[~folds_a.index.isin(folds_b.index)]
    only_b = folds_b.index[~folds_b.index.isin(folds_a.index)]
    if len(only_a) or len(only_b):
        example = only_a[0] if len(only_a) else only_b[0]
        raise SpotterError(
            f"{name} differs from {run_a}'s: {len(only_a)} id(s) only in {run_a}, {len(only_b)} only in "
            f"{run_b}, e.g. id {example!r}; blend runs trained on the same data",
            run_b,
        )
    differs = folds_a.loc[folds_b.index].to_numpy() != folds_b.to_numpy()
    if differs.any():
        example = folds_b.index[int(differs.argmax())]
        raise SpotterError(
            f"{name} differs from {run_a}'s: {int(differs.sum())} id(s) in another fold, e.g. id {example!r}; "
            "train the runs with the same seed and n_folds",
            run_b,
        )


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


def blend(predictions: np.ndarray, method: str, weights: Sequence[float] | None = None) -> np.ndarray:
    """Combines (samples, runs) predictions into one column.

    Args:
        predictions: One column per run.
        method: "mean" (of the values), "rank" (mean of each run's normalized ranks) or "weights".
        weights: Non-negative weights summing to 1, one per run (for "weights").

    Raises:
        SpotterError: On an unknown method or weights that do not fit.
    """
    predictions = np.asarray(predictions, np.float64)
    if method == "mean":
        return predictions.mean(axis=1)
    if method == "rank":
        return rank_normalize(predictions).mean(axis=1)
    if method == "weights":
        weights = np.asarray(weights, np.float64)
        if weights.shape != (predictions.shape[1],) or (weights < 0).any() or abs(weights.sum() - 1) > 1e-6:
            raise SpotterError(f"weights must be {predictions.shape[1]} non-negative numbers summing to 1")
        return predictions @ weights
    raise SpotterError(f"unknown blend method {method!r}; expected mean, rank or weights")


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


def cache_key(*parts: bytes | str) -> str:
    """A short hex digest of the parts (file contents, settings)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def weights_fingerprint(run_dir: str | Path) -> str:
    """Names, sizes and modification times of a run's weight files: a retrained run invalidates its cache."""
    paths = sorted(Path(run_dir).glob("*/*.safetensors"))
    return ";".join(f"{p.relative_to(run_dir)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def cached_test_predictions(
    run_dir: str | Path, key: str, predict: Callable[[Path], Path]
) -> tuple[pd.DataFrame, Path, bool]:
    """A run's test predictions (id,target), computed once per key and kept in the run folder.

    Args:
        run_dir: The run folder; the cache is `run_dir/test_pred-<key>.csv`.
        key: What the predictions depend on (see `cache_key`).
        predict: Writes id,target predictions to the path it is given (atomically) and returns it.

    Returns:
        The predictions, the cache file and whether it was already there.
    """
    path = Path(run_dir) / f"test_pred-{key}.csv"
    hit = path.is_file()
    if not hit:
        predict(path)
    return read_csv(path, required=["id", "target"], dtype={"id": str}), path, hit


def write_predictions(path: str | Path, ids: Sequence[str], values: np.ndarray) -> Path:
    """Writes an id,target submission atomically."""
    write_csv(path, pd.DataFrame({"id": list(ids), "target": np.asarray(values, np.float64)}))
    return Path(path)


@dataclass
class EnsembleResult:
    """A blended submission and the record of how it was made.

    Attributes:
        ids: Test ids, in the submission's order.
        predictions: The blended test predictions.
        record: Inputs, method, weights and metrics (JSON-ready), written beside the submission.
    """

    ids: list[str]
    predictions: np.ndarray
    record: dict


def ensemble_runs(
    aligned: AlignedOOF,
    tests: Sequence[pd.DataFrame],
    method: str,
    metric: Callable[[np.ndarray, np.ndarray], float],
    extra_oof: pd.DataFrame | None = None,
    extra_test: pd.DataFrame | None = None,
    stack_cfg=None,
) -> EnsembleResult:
    """Blends the runs' test predictions and measures the blend on their out-of-fold predictions.

    Args:
        aligned: The runs' OOF predictions (see `align_runs`).
        tests: Each run's test predictions (id,target), in the same id order.
        method: "mean", "rank", "weights" (fitted on the OOF predictions) or "stack" (XGBoost).
        metric: metric(targets, predictions), higher is better (ROC AUC for SETI).
        extra_oof: For "stack": id plus extra feature columns for the OOF samples.
        extra_test: For "stack": the same columns for the test samples.
        stack_cfg: For "stack": a `spotter.engine.stack.StackConfig` (defaults if None).

    Raises:
        SpotterError: On an unknown method, test ids that differ between runs, or missing extra features.
    """
    if method not in METHODS:
        raise SpotterError(f"unknown --method {method!r}; expected {' | '.join(METHODS)}")
    ids = list(tests[0]["id"])
    for run, test in zip(aligned.runs[1:], tests[1:]):
        if list(test["id"]) != ids:
            raise SpotterError(f"test predictions cover other ids than {aligned.runs[0]}'s", run)
    test_matrix = np.stack([t["target"].to_numpy(np.float64) for t in tests], axis=1)
    targets = aligned.rows["target"].to_numpy(np.float64)
    folds = aligned.rows["fold"].to_numpy()
    oof = aligned.predictions
    cv_folds, cv_note = blend_folds(folds, targets)
    inputs = {str(r): metric(targets, oof[:, i]) for i, r in enumerate(aligned.runs)}
    ranked = fold_rank_normalize(oof, folds)
    inputs_ranked = {str(r): metric(targets, ranked[:, i]) for i, r in enumerate(aligned.runs)}
    record: dict = {
        "method": method,
        "runs": [str(r) for r in aligned.runs],
        "samples": {"oof": len(targets), "test": len(ids)},
        "metrics": {"inputs_oof": inputs, "inputs_oof_fold_ranked": inputs_ranked},
    }
    metrics = record["metrics"]
    if method == "mean":
        metrics["ensemble_oof"] = metric(targets, blend(oof, method))
        predictions = blend(test_matrix, method)
    elif method == "rank":
        metrics["ensemble_oof"] = metric(targets, ranked.mean(axis=1))
        metrics["ensemble_oof_pooled_ranks"] = metric(targets, blend(oof, method))
        predictions = blend(test_matrix, method)
    elif method == "weights":
        weights = fit_weights(oof, targets)
        cv_blend, per_fold = cross_validated_weights(oof, targets, cv_folds)
        metrics["cv_folds"] = cv_note
        record["weights"] = dict(zip(record["runs"], weights.tolist()))
        record["weights_per_fold"] = [w.tolist() for w in per_fold]
        metrics["ensemble_oof_in_sample"] = metric(targets, blend(oof, "weights", weights))
        metrics["ensemble_oof"] = metric(targets, cv_blend)  # weights fitted without the fold they score
        predictions = blend(test_matrix, "weights", weights)
    else:
        from spotter.engine.stack import StackConfig, stack_fit_predict, stack_oof

        stack_cfg = stack_cfg or StackConfig()
        names = [f"run{i}" for i in range(len(aligned.runs))]
        # the runs enter as ranks: within each fold for OOF rows, within the test set for test rows
        train_x, test_x, names = _stack_features(
            aligned, ranked, rank_normalize(test_matrix), ids, names, extra_oof, extra_test
        )
        stacked = stack_oof(train_x, targets, cv_folds, stack_cfg)
        metrics["cv_folds"] = cv_note
        metrics["ensemble_oof"] = metric(targets, stacked)
        metrics["mean_oof"] = metric(targets, blend(oof, "mean"))
        features_only = train_x[:, len(aligned.runs):]
        if features_only.shape[1]:
            metrics["features_oof"] = {
                name: metric(targets, features_only[:, i]) for i, name in enumerate(names[len(aligned.runs):])
            }
        record["features"] = names
        record["stack"] = {k: v for k, v in vars(stack_cfg).items()}
        predictions = stack_fit_predict(train_x, targets, test_x, stack_cfg)
    return EnsembleResult(ids, predictions, record)


def _stack_features(aligned, oof, test_matrix, ids, names, extra_oof, extra_test):
    if (extra_oof is None) != (extra_test is None):
        raise ValueError("extra features are needed for both the OOF and the test samples")
    if extra_oof is None:
        return oof, test_matrix, names
    columns = [c for c in extra_oof.columns if c != "id"]
    parts = []
    for frame, wanted, what in ((extra_oof, aligned.rows["id"], "training"), (extra_test, pd.Series(ids), "test")):
        frame = frame.set_index("id")
        missing = wanted[~wanted.isin(frame.index)]
        if len(missing):
            raise SpotterError(f"extra features lack {len(missing)} {what} id(s), e.g. {missing.iloc[0]!r}")
        parts.append(frame.loc[wanted, columns].to_numpy(np.float64))
    return np.hstack([oof, parts[0]]), np.hstack([test_matrix, parts[1]]), names + columns
