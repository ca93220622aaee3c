"""Pseudo-label selection: which test predictions become training labels, and with what target."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spotter.errors import SpotterError

MODES = ("soft", "hard")


def select_pseudo(
    predictions: pd.DataFrame,
    mode: str = "soft",
    top: int | None = None,
    bottom: int | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Chooses confident test predictions as pseudo-labels.

    Either by count (the `top` highest become positives, the `bottom` lowest negatives; the 3rd-place SETI
    recipe took 5,000 of each) or by `threshold` T > 0.5 (pred >= T positive, pred <= 1 - T negative).

    Args:
        predictions: id and pred (a probability) per test sample.
        mode: "soft" keeps the predicted probability as the target, "hard" rounds it to 0/1.
        top: How many of the highest predictions to take.
        bottom: How many of the lowest predictions to take.
        threshold: Confidence threshold, in (0.5, 1).

    Returns:
        id, target (the pseudo-label) and pred, highest prediction first.

    Raises:
        SpotterError: On an unknown mode, both or neither selection given, or counts/threshold out of range.
    """
    check_selection(mode, top, bottom, threshold)
    by_count = top is not None or bottom is not None
    pred = predictions["pred"].to_numpy(np.float64)
    if not np.isfinite(pred).all() or (pred < 0).any() or (pred > 1).any():
        raise SpotterError("pseudo-labels need probabilities in [0, 1]")
    if by_count:
        top, bottom = top or 0, bottom or 0
        if top + bottom > len(pred):
            raise SpotterError(f"--top {top} + --bottom {bottom} exceeds the {len(pred)} test samples")
        order = np.argsort(-pred, kind="stable")
        positive = np.zeros(len(pred), bool)
        negative = np.zeros(len(pred), bool)
        positive[order[:top]] = True
        negative[order[len(pred) - bottom:]] = True
    else:
        positive, negative = pred >= threshold, pred <= 1 - threshold
    chosen = predictions.loc[positive | negative, ["id", "pred"]].copy()
    hard = positive[positive | negative].astype(np.float64)
    chosen["target"] = hard if mode == "hard" else chosen["pred"].to_numpy(np.float64)
    return chosen.sort_values("pred", ascending=False, kind="stable")[["id", "target", "pred"]].reset_index(drop=True)


def check_selection(mode: str, top: int | None, bottom: int | None, threshold: float | None) -> None:
    """Checks the pseudo-label options on their own (before any prediction); see `select_pseudo`.

    Raises:
        SpotterError: On an unknown mode, both or neither selection given, or counts/threshold out of range.
    """
    if mode not in MODES:
        raise SpotterError(f"--mode must be soft or hard, got {mode!r}")
    by_count = top is not None or bottom is not None
    if by_count == (threshold is not None):
        raise SpotterError("choose pseudo-labels with either --top/--bottom or --threshold")
    if by_count:
        top, bottom = top or 0, bottom or 0
        if top < 0 or bottom < 0 or top + bottom == 0:
            raise SpotterError(f"--top and --bottom must be >= 0 and not both 0, got {top} and {bottom}")
    elif not 0.5 < threshold < 1:
        raise SpotterError(f"--threshold must be in (0.5, 1), got {threshold}")
