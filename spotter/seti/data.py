"""Reads and validates the Kaggle SETI layout (new and old): label files, `<split>/<id[0]>/<id>.npy` cadences."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.binary.labels import label_problems, raise_first
from spotter.errors import SpotterError
from spotter.io import read_csv
from spotter.progress import NullReporter, Reporter
from spotter.seti import CADENCE_SHAPE

CADENCE_DTYPE = np.float16
OLD_DATA_DIR = "old_leaky_data"  # the relaunched competition's first (leaky) data, optional
TRAIN_META = "train_meta.csv"  # how each training sample was made (generated data and pseudo-label folders)
TEST_LABELS = "test_labels.csv"  # the test set's truth, where known (generated data)


@dataclass(frozen=True)
class Split:
    """Where one split of the layout lives, relative to the data folder."""

    name: str
    folder: str
    labels: str
    required: bool  # the new competition's train/test must exist; the old leaky data is optional
    labelled: bool  # targets are labels (0/1); the sample submission's are placeholders


SPLITS = {
    "train": Split("train", "train", "train_labels.csv", True, True),
    "test": Split("test", "test", "sample_submission.csv", True, False),
    "train_old": Split("train_old", f"{OLD_DATA_DIR}/train_old", f"{OLD_DATA_DIR}/train_labels_old.csv", False, True),
    "test_old": Split("test_old", f"{OLD_DATA_DIR}/test_old", f"{OLD_DATA_DIR}/test_labels_old.csv", False, True),
}


def sample_path(root: str | Path, split: str, sample_id: str) -> Path:
    """`<root>/<split folder>/<id[0]>/<id>.npy`."""
    return Path(root) / _split(split).folder / sample_id[0] / f"{sample_id}.npy"


def validate_cadence(array: np.ndarray, where: str | Path | None = None) -> np.ndarray:
    """Checks a cadence's shape, dtype and values.

    Raises:
        SpotterError: On a shape other than (6, 273, 256), a dtype other than float16, or NaN/inf values.
    """
    if array.shape != CADENCE_SHAPE:
        raise SpotterError(f"expected shape {CADENCE_SHAPE}, found {array.shape}", where)
    if array.dtype != CADENCE_DTYPE:
        raise SpotterError(f"expected dtype float16, found {array.dtype}", where)
    # a float16 is NaN or inf exactly when its five exponent bits are all set: testing the bits is ~8x
    # faster than np.isfinite, and this runs for every cadence the data loader reads
    if ((array.view(np.uint16) & 0x7C00) == 0x7C00).any():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise SpotterError(f"{bad} non-finite value(s) (NaN or inf)", where)
    return array


def check_cadence_header(path: str | Path) -> None:
    """Checks a `.npy` cadence from its header and size alone (no values read): format, shape, dtype, length.

    What it cannot see, NaN or inf values, `load_cadence` finds when the file is read.

    Raises:
        SpotterError: Naming the file when it is not a `.npy`, holds another shape or dtype, or is cut short.
    """
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:  # 2.0 and later headers differ only in length and encoding
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            stored = os.fstat(handle.fileno()).st_size - handle.tell()
    except FileNotFoundError:
        raise SpotterError("cadence file not found", path) from None
    except (OSError, ValueError, EOFError, SyntaxError) as err:
        raise SpotterError(f"cannot read .npy ({type(err).__name__}: {err})", path) from None
    if shape != CADENCE_SHAPE:
        raise SpotterError(f"expected shape {CADENCE_SHAPE}, found {shape}", path)
    if dtype != CADENCE_DTYPE:
        raise SpotterError(f"expected dtype float16, found {dtype}", path)
    expected = int(np.prod(shape)) * dtype.itemsize
    if stored < expected:
        raise SpotterError(f"cannot read .npy (cut short: {stored} of {expected} data bytes)", path)


def load_cadence(path: str | Path) -> np.ndarray:
    """Loads and validates one `.npy` cadence, (6, 273, 256) float16.

    Raises:
        SpotterError: Naming the file when it is missing, unreadable or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise SpotterError("cadence file not found", path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise SpotterError(f"cannot read .npy ({type(err).__name__}: {err})", path) from None
    return validate_cadence(array, path)


def read_labels(root: str | Path, split: str) -> pd.DataFrame:
    """The split's `id,target` table, ids as strings, targets as floats.

    Raises:
        SpotterError: On the first problem `label_problems` finds (with the count of the others).
    """
    path = Path(root) / _split(split).labels
    frame = read_csv(path, required=["id", "target"], dtype={"id": str})
    raise_first(label_problems(frame, path, labelled=_split(split).labelled), f"spotter seti check {root}")
    frame["target"] = frame["target"].astype(float)
    return frame


def list_split(root: str | Path, split: str) -> pd.DataFrame:
    """The split's samples as `id,target,path`, after checking labels, that ids and files match one to one,
    and every file's header (`check_cadence_header`).

    Raises:
        SpotterError: On the first label problem, id with no file, `.npy` file with no id, `<id>.npy` that
            is not a file, or file whose header or size is wrong (with the count of the others).
    """
    frame = read_labels(root, split)
    raise_first(_match_files(root, split, frame), f"spotter seti check {root}")
    frame["path"] = [str(sample_path(root, split, i)) for i in frame["id"]]
    raise_first(_header_problems(frame["path"]), f"spotter seti check {root}")
    return frame


def _header_problems(paths) -> list[SpotterError]:
    # every header is read before slow work (~50 us a file): a truncated or misshapen file fails here, not
    # in the middle of an epoch
    problems = []
    for path in paths:
        try:
            check_cadence_header(path)
        except SpotterError as err:
            problems.append(err)
    return problems


def available_splits(root: str | Path) -> list[str]:
    """The splits present in `root`: train and test always, the old leaky data when its folder exists."""
    root = Path(root)
    return [s.name for s in SPLITS.values() if s.required or (root / s.folder).exists() or (root / s.labels).exists()]


def check_data(root: str | Path, reporter: Reporter = NullReporter()) -> list[SpotterError]:
    """Every problem in a data folder, collected rather than stopping at the first.

    Checks what training and prediction check (each split's labels, that ids and files match one to one),
    and also reads every file for its shape, dtype and values, which training meets only when it loads it.

    Returns:
        The problems found, each naming its file (and line); empty when the folder is valid.
    """
    root = Path(root)
    if not root.is_dir():
        return [SpotterError("data folder not found", root)]
    problems: list[SpotterError] = []
    for split in available_splits(root):
        path = root / _split(split).labels
        try:
            labels = read_csv(path, required=["id", "target"], dtype={"id": str})
        except SpotterError as err:
            problems.append(err)
            continue
        problems.extend(label_problems(labels, path, labelled=_split(split).labelled))
        labels = labels[labels["id"].notna()]
        problems.extend(_match_files(root, split, labels))
        files = [p for p in (sample_path(root, split, i) for i in labels["id"]) if p.is_file()]
        for file in reporter.track(files, len(files), f"check {split}"):
            try:
                check_cadence_header(file)  # what training checks first, so both name a problem alike
                load_cadence(file)
            except SpotterError as err:
                problems.append(err)
    return problems


def _match_files(root: str | Path, split: str, labels: pd.DataFrame) -> list[SpotterError]:
    folder = Path(root) / _split(split).folder
    expected = {sample_path(root, split, i) for i in labels["id"]}
    entries = set(folder.glob("*/*.npy")) if folder.is_dir() else set()
    found = {p for p in entries if p.is_file()}
    # a folder (or anything else) named `<id>.npy` is no cadence; say so instead of "has no file" or nothing
    problems = [SpotterError("is not a file; expected a .npy cadence", p) for p in sorted(entries - found)]
    problems += [SpotterError(f"id {p.stem!r} has no file", p) for p in sorted(expected - entries)]
    labels_file = Path(root) / _split(split).labels
    problems += [
        SpotterError(f"file has no id in {labels_file.name} (or is not under its id's first character)", p)
        for p in sorted(found - expected)
    ]
    return problems


def _split(name: str) -> Split:
    try:
        return SPLITS[name]
    except KeyError:
        raise SpotterError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}") from None
