"""Competition metrics: ROC AUC (SETI) and MAP@5 with `new_individual` (Happywhale), and file scoring."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from spotter.errors import SpotterError
from spotter.io import read_csv

NEW_INDIVIDUAL = "new_individual"


def roc_auc(targets: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """ROC AUC of `scores` against binary `targets`; soft targets are thresholded at 0.5.

    Raises:
        SpotterError: If only one class is present (AUC is undefined).
    """
    targets = np.asarray(targets, dtype=np.float64) >= 0.5
    if targets.all() or not targets.any():
        raise SpotterError("ROC AUC needs both classes among the targets, found only one")
    return float(roc_auc_score(targets, np.asarray(scores, dtype=np.float64)))


def average_precision_at_5(truth: str, predictions: Sequence[str]) -> float:
    """Kaggle's per-image score: 1/k for the first correct id at rank k <= 5, else 0."""
    for rank, label in enumerate(list(predictions)[:5], start=1):
        if label == truth:
            return 1.0 / rank
    return 0.0


def map_at_5(truths: Sequence[str], predictions: Sequence[Sequence[str]]) -> float:
    """Mean over images of `average_precision_at_5`; `new_individual` is a label like any other."""
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} truths but {len(predictions)} prediction lists")
    if not len(truths):
        raise SpotterError("MAP@5 of an empty set is undefined")
    return float(np.mean([average_precision_at_5(t, p) for t, p in zip(truths, predictions)]))


def auc_by_group(targets: np.ndarray, scores: np.ndarray, groups: Sequence) -> pd.DataFrame:
    """AUC of each group of positives against all negatives (the per-needle-kind view).

    Returns:
        Columns group, positives, auc; sorted by group.
    """
    targets = np.asarray(targets, dtype=np.float64) >= 0.5
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    rows = []
    if (~targets).any():
        for group in sorted(set(groups[targets].tolist()), key=str):
            chosen = targets & (groups == group)
            mask = chosen | ~targets
            rows.append({"group": group, "positives": int(chosen.sum()), "auc": roc_auc(targets[mask], scores[mask])})
    return pd.DataFrame(rows, columns=["group", "positives", "auc"])


def score_files(submission: str | Path, truth: str | Path) -> tuple[str, float]:
    """Scores a submission against a truth file, choosing the metric from the columns.

    `id,target` files give ROC AUC; `image,predictions` against `image,individual_id` give MAP@5.

    Returns:
        The metric's name and value.

    Raises:
        SpotterError: On unreadable files, unknown layouts or ids that do not match.
    """
    name, targets, scores, _ = _scored_rows(submission, truth)
    if name == "roc_auc":
        return name, roc_auc(targets, scores)
    return name, map_at_5(targets, scores)


def score_by_group(submission: str | Path, truth: str | Path, column: str) -> pd.DataFrame:
    """The metric per value of a truth-file column, e.g. SETI's needle `kind` or whale `species`.

    For ROC AUC each group's positives are scored against every negative (negatives carry no kind);
    for MAP@5 each group's images are averaged on their own.

    Returns:
        Columns group, count (positives, or images) and the metric's name, sorted by group.

    Raises:
        SpotterError: As `score_files`, or when the truth file has no such column.
    """
    name, targets, scores, merged = _scored_rows(submission, truth)
    if column not in merged.columns:
        raise SpotterError(f"no column {column!r} to group by", truth)
    groups = merged[column].fillna("").astype(str).to_numpy()
    if name == "roc_auc":
        table = auc_by_group(targets, scores, groups)
        return table.rename(columns={"positives": "count", "auc": name})
    rows = []
    for group in sorted(set(groups)):
        idx = np.flatnonzero(groups == group)
        group_map = map_at_5([targets[i] for i in idx], [scores[i] for i in idx])
        rows.append({"group": group, "count": len(idx), name: group_map})
    return pd.DataFrame(rows, columns=["group", "count", name])


def _scored_rows(submission: str | Path, truth: str | Path) -> tuple[str, object, object, pd.DataFrame]:
    """Aligned rows: (metric name, targets, scores or prediction lists, the merged table)."""
    sub = read_csv(submission, dtype=str)
    true = read_csv(truth, dtype=str)
    if {"id", "target"} <= set(sub.columns):
        true = _require(true, truth, ["id", "target"])
        sub["target"] = _numbers(sub["target"], submission, "score", lambda v: np.isfinite(v), "a finite number")
        true["target"] = _numbers(true["target"], truth, "target", lambda v: (v == 0) | (v == 1), "0 or 1")
        merged = _align(sub, true, "id", submission, truth)
        return "roc_auc", merged["target_true"].to_numpy(), merged["target_sub"].to_numpy(), merged
    if {"image", "predictions"} <= set(sub.columns):
        label = "individual_id" if "individual_id" in true.columns else "predictions"
        true = _require(true, truth, ["image", label])
        merged = _align(sub, true.rename(columns={label: "truth"}), "image", submission, truth)
        preds = [str(p).split() if isinstance(p, str) else [] for p in merged["predictions"]]
        return "map_at_5", list(merged["truth"]), preds, merged
    raise SpotterError(
        "unknown submission layout: expected columns id,target (SETI) or image,predictions (whale), "
        f"found {','.join(sub.columns)}",
        submission,
    )


def _numbers(column: pd.Series, path: str | Path, what: str, valid, expected: str) -> pd.Series:
    """`column` as floats, checked row by row.

    Raises:
        SpotterError: Naming the file and the first line whose value is empty, not a number, or not `valid`.
    """
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(np.isnan(values) | ~valid(values))
    if len(bad):
        i = bad[0]
        shown = "empty" if pd.isna(column.iloc[i]) else repr(column.iloc[i])
        more = f" ({len(bad) - 1} more row(s) like it)" if len(bad) > 1 else ""
        raise SpotterError(f"line {i + 2}: {what} {shown}; expected {expected}{more}", path)
    return pd.Series(values, index=column.index)


def _require(frame: pd.DataFrame, path: str | Path, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SpotterError(f"missing column(s) {', '.join(missing)} to score against", path)
    return frame


def _align(sub: pd.DataFrame, true: pd.DataFrame, key: str, sub_path, true_path) -> pd.DataFrame:
    for frame, path in ((sub, sub_path), (true, true_path)):
        dup = frame[key][frame[key].duplicated()]
        if len(dup):
            raise SpotterError(f"{len(dup)} duplicated {key}(s), e.g. {dup.iloc[0]!r}", path)
    only_sub = sorted(set(sub[key]) - set(true[key]))
    only_true = sorted(set(true[key]) - set(sub[key]))
    if only_sub or only_true:
        parts = []
        if only_sub:
            parts.append(f"{len(only_sub)} {key}(s) not in the truth file, e.g. {only_sub[0]!r}")
        if only_true:
            parts.append(f"{len(only_true)} {key}(s) missing from the submission, e.g. {only_true[0]!r}")
        raise SpotterError("; ".join(parts), sub_path)
    return sub.merge(true, on=key, suffixes=("_sub", "_true"))
