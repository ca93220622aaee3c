"""Toy data: 1×32×32 noise images, positives carry a faint drifting line; id,target CSVs like SETI's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from spotter.binary.labels import label_problems, raise_first
from spotter.errors import SpotterError
from spotter.io import atomic_path, ensure_writable_dir, read_csv, write_csv

SIZE = 32
TRAIN_LABELS, TEST_LABELS, SUBMISSION = "train_labels.csv", "test_labels.csv", "sample_submission.csv"


def make_image(rng: np.random.Generator, positive: bool, snr: float = 1.5) -> np.ndarray:
    """One (1, 32, 32) float32 image: unit noise, plus a line of amplitude `snr` if positive."""
    image = rng.standard_normal((1, SIZE, SIZE)).astype(np.float32)
    if positive:
        start, drift = rng.uniform(4, SIZE - 4), rng.uniform(-0.3, 0.3)
        cols = np.clip(np.round(start + drift * np.arange(SIZE)).astype(int), 0, SIZE - 1)
        image[0, np.arange(SIZE), cols] += snr
    return image


def synth(out: str | Path, n_train: int, n_test: int, seed: int = 0, positive_rate: float = 0.5) -> Path:
    """Writes `train/<id>.npy`, `test/<id>.npy`, train_labels.csv, sample_submission.csv, test_labels.csv."""
    out = ensure_writable_dir(out)
    rng = np.random.default_rng(seed)
    for split, count, labels_name in (("train", n_train, TRAIN_LABELS), ("test", n_test, TEST_LABELS)):
        folder = ensure_writable_dir(out / split)
        ids = [f"{split[:2]}{i:06d}" for i in range(count)]
        targets = (rng.random(count) < positive_rate).astype(int)
        for sample_id, target in zip(ids, targets):
            with atomic_path(folder / f"{sample_id}.npy") as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, make_image(rng, bool(target)))
        write_csv(out / labels_name, pd.DataFrame({"id": ids, "target": targets}))
        if split == "test":
            write_csv(out / SUBMISSION, pd.DataFrame({"id": ids, "target": 0.5}))
    return out


def read_labels(data_dir: Path, name: str) -> pd.DataFrame:
    """An id,target table of the data folder, checked line by line and against the files on disk.

    Raises:
        SpotterError: On the first label problem (`spotter.binary.labels`) or an id with no file.
    """
    path = Path(data_dir) / name
    rows = read_csv(path, required=["id", "target"], dtype={"id": str})
    raise_first(label_problems(rows, path, labelled=name != SUBMISSION))
    split = "train" if name.startswith("train") else "test"
    missing = [i for i in rows["id"] if not (data_dir / split / f"{i}.npy").is_file()]
    if missing:
        raise SpotterError(f"{len(missing)} id(s) have no file, e.g. {split}/{missing[0]}.npy", path)
    return rows


def load_image(path: Path) -> np.ndarray:
    """One toy image, (1, 32, 32) float32.

    Raises:
        SpotterError: Naming the file when it is missing, unreadable or of another shape or dtype.
    """
    try:
        image = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise SpotterError(f"cannot read .npy ({type(err).__name__})", path) from None
    if image.shape != (1, SIZE, SIZE) or image.dtype != np.float32:
        raise SpotterError(f"expected a (1, {SIZE}, {SIZE}) float32 array, found {image.shape} {image.dtype}", path)
    return image


class ToyDataset(Dataset):
    """Loads `<folder>/<id>.npy`; random horizontal flips when training."""

    def __init__(self, folder: Path, rows: pd.DataFrame, train: bool) -> None:
        self.folder, self.ids, self.train = folder, list(rows["id"]), train
        self.targets = rows["target"].to_numpy(np.float32) if "target" in rows else np.zeros(len(rows), np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        image = torch.from_numpy(load_image(self.folder / f"{self.ids[i]}.npy"))
        if self.train and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return {"index": i, "input": image, "target": torch.tensor(self.targets[i])}
