"""SETI inputs to the engine's ensembles: cached test predictions of a run, de-Doppler features for stacking."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.engine.ensemble import cache_key, cached_test_predictions, weights_fingerprint
from spotter.errors import SpotterError
from spotter.io import read_csv, write_csv
from spotter.progress import NullReporter, Reporter
from spotter.seti.data import SPLITS

FEATURES = ("dedoppler",)  # names accepted by `spotter ensemble --features`
CACHE_DIR = ".spotter-cache"


def test_predictions(
    run_dir: str | Path, data_dir: str | Path, tta: bool = True, reporter: Reporter = NullReporter()
) -> tuple[pd.DataFrame, Path, bool]:
    """A run's predictions (id,target) for DATA's test set, cached in the run folder.

    The cache key covers DATA's `sample_submission.csv`, the TTA setting and the run's weight files, so a
    different test set, `--no-tta` or a retrained run predicts afresh.

    Returns:
        The predictions, the cache file and whether it was already there.
    """
    from spotter.seti.task import predict_submission

    submission = Path(data_dir) / SPLITS["test"].labels
    if not submission.is_file():
        raise SpotterError("file not found", submission)
    if not (Path(run_dir) / "config.yaml").is_file():
        raise SpotterError("not a run folder (no config.yaml)", run_dir)
    key = cache_key(submission.read_bytes(), f"tta={bool(tta)}", weights_fingerprint(run_dir))
    return cached_test_predictions(
        run_dir, key, lambda path: predict_submission(run_dir, data_dir, path, tta=tta, reporter=reporter)
    )


def dedoppler_features(
    data_dir: str | Path, split: str, workers: int = 1, reporter: Reporter = NullReporter()
) -> pd.DataFrame:
    """De-Doppler score, ON/OFF path power and |drift| per sample of a split, as stacking features.

    The search is slow on a CPU (about a cadence every few tens of milliseconds), so results are kept in
    `DATA/.spotter-cache/` when the data folder is writable, keyed by the split's label file.

    Returns:
        Columns id, dedoppler_score, dedoppler_snr_on, dedoppler_snr_off, dedoppler_drift.
    """
    from spotter.seti.dedoppler import baseline_scores

    labels = Path(data_dir) / SPLITS[split].labels if split in SPLITS else None
    if labels is None or not labels.is_file():
        raise SpotterError(f"no label file for split {split!r}", data_dir)
    cache = Path(data_dir) / CACHE_DIR / f"dedoppler-{split}-{cache_key(labels.read_bytes())}.csv"
    if cache.is_file():
        return read_csv(cache, dtype={"id": str})
    scores = baseline_scores(data_dir, split, workers=workers, reporter=reporter)
    features = pd.DataFrame(
        {
            "id": scores["id"],
            "dedoppler_score": scores["target"],
            "dedoppler_snr_on": scores["snr_on"],
            "dedoppler_snr_off": scores["snr_off"],
            "dedoppler_drift": np.abs(scores["drift"].to_numpy(float)),
        }
    )
    if os.access(Path(data_dir), os.W_OK):
        write_csv(cache, features)
    return features


def extra_features(
    data_dir: str | Path, names: list[str], split: str, workers: int = 1, reporter: Reporter = NullReporter()
) -> pd.DataFrame | None:
    """The named extra stacking features (so far only "dedoppler") for a split, or None when none are named.

    Raises:
        SpotterError: On an unknown feature name.
    """
    unknown = sorted(set(names) - set(FEATURES))
    if unknown:
        raise SpotterError(f"unknown feature(s) {unknown}; expected {', '.join(FEATURES)}")
    if not names:
        return None
    return dedoppler_features(data_dir, split, workers, reporter)


def metric(targets: np.ndarray, predictions: np.ndarray) -> float:
    """ROC AUC, the competition's metric."""
    from spotter.metrics import roc_auc

    return roc_auc(targets, predictions)
