"""Tiny SETI layouts written inside each test's tmp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotter.seti import CADENCE_SHAPE


def write_layout(root: Path, train: dict[str, int], test: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """Writes a Kaggle layout of random float16 cadences; returns the arrays by id."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, ids in (("train", list(train)), ("test", test)):
        for sample_id in ids:
            array = rng.standard_normal(CADENCE_SHAPE).astype(np.float16)
            path = root / split / sample_id[0] / f"{sample_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, array)
            arrays[sample_id] = array
    pd.DataFrame({"id": list(train), "target": list(train.values())}).to_csv(root / "train_labels.csv", index=False)
    pd.DataFrame({"id": test, "target": 0.5}).to_csv(root / "sample_submission.csv", index=False)
    return arrays


@pytest.fixture
def make_layout():
    """The layout writer, for tests that need their own ids."""
    return write_layout


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = write_layout(tmp_path / "data", {"0a1": 0, "0b2": 1, "f00": 0}, ["1c3", "e04"])
    return tmp_path / "data", arrays
