"""SETI's part in ensembles: the id,target blender with the de-Doppler search's score as a stacking feature."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.binary.ensemble import BinaryBlender
from spotter.engine.rundir import cache_key
from spotter.errors import SpotterError
from spotter.io import read_csv, write_csv
from spotter.progress import NullReporter, Reporter
from spotter.seti.data import SPLITS

CACHE_DIR = ".spotter-cache"
FEATURES_VERSION = "2"  # bump when the search's scores change, so cached features are recomputed


def create_blender() -> BinaryBlender:
    """`spotter ensemble` for SETI runs: mean, rank, weights, stack; the stack uses the de-Doppler search's
    features unless `--features` says otherwise."""
    return BinaryBlender({"dedoppler": dedoppler_features}, default_features=("dedoppler",))


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
    cache = Path(data_dir) / CACHE_DIR / f"dedoppler-{split}-{cache_key(labels.read_bytes(), FEATURES_VERSION)}.csv"
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
