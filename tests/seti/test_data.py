"""Reading and validating the Kaggle SETI layout."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from spotter.errors import SpotterError
from spotter.seti import CADENCE_SHAPE
from spotter.seti.data import check_data, list_split, load_cadence, sample_path


def test_layout_round_trip(layout):
    root, arrays = layout
    train = list_split(root, "train")
    assert list(train["id"]) == ["0a1", "0b2", "f00"]
    assert list(train["target"]) == [0, 1, 0]
    test = list_split(root, "test")
    assert list(test["id"]) == ["1c3", "e04"]
    for sample_id, path in zip(test["id"], test["path"]):
        np.testing.assert_array_equal(load_cadence(path), arrays[sample_id])
    assert check_data(root) == []


def test_old_layout_reads(layout):
    root, _ = layout
    old = root / "old_leaky_data"
    ids = ["a1b2c3d4e5f6", "b1b2c3d4e5f6"]
    for sample_id in ids:
        path = old / "train_old" / sample_id[0] / f"{sample_id}.npy"
        path.parent.mkdir(parents=True)
        np.save(path, np.zeros(CADENCE_SHAPE, np.float16))
    pd.DataFrame({"id": ids, "target": [1, 0]}).to_csv(old / "train_labels_old.csv", index=False)
    frame = list_split(root, "train_old")
    assert list(frame["id"]) == ids
    assert frame["path"][0] == str(sample_path(root, "train_old", ids[0]))
    assert check_data(root) == []


def _bad_shape(path):
    np.save(path, np.zeros((6, 273, 255), np.float16))


def _bad_dtype(path):
    np.save(path, np.zeros(CADENCE_SHAPE, np.float32))


def _nan(path):
    array = np.zeros(CADENCE_SHAPE, np.float16)
    array[3, 10, 20] = np.nan
    np.save(path, array)


def _inf(path):
    array = np.zeros(CADENCE_SHAPE, np.float16)
    array[0, 0, 0] = np.inf
    np.save(path, array)


def _garbage(path):
    path.write_bytes(b"not a numpy file at all")


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (_bad_shape, "expected shape (6, 273, 256)"),
        (_bad_dtype, "expected dtype float16, found float32"),
        (_nan, "non-finite"),
        (_inf, "non-finite"),
        (_garbage, "cannot read .npy"),
    ],
)
def test_corrupt_file_is_named(layout, corrupt, expected):
    root, _ = layout
    path = sample_path(root, "train", "0b2")
    corrupt(path)
    with pytest.raises(SpotterError, match=re.escape(expected)) as info:
        load_cadence(path)
    assert str(path) in str(info.value)
    problems = check_data(root)
    assert len(problems) == 1 and expected in str(problems[0]) and str(path) in str(problems[0])


def test_id_without_file_and_file_without_id(layout):
    root, _ = layout
    missing = sample_path(root, "test", "e04")
    missing.unlink()
    orphan = root / "train" / "9" / "9zz.npy"
    orphan.parent.mkdir()
    np.save(orphan, np.zeros(CADENCE_SHAPE, np.float16))
    problems = [str(p) for p in check_data(root)]
    assert any("'e04' has no file" in p and str(missing) in p for p in problems)
    assert any("file has no id" in p and str(orphan) in p for p in problems)
    with pytest.raises(SpotterError, match="has no file"):
        list_split(root, "test")
    with pytest.raises(SpotterError, match="has no id"):
        list_split(root, "train")


def test_bad_label_files(tmp_path, make_layout):
    root = tmp_path / "data"
    make_layout(root, {"0a1": 0}, ["1c3"])
    (root / "train_labels.csv").write_text("id,label\n0a1,0\n")
    (root / "sample_submission.csv").unlink()
    problems = [str(p) for p in check_data(root)]
    assert any("train_labels.csv" in p and "missing column(s) target" in p for p in problems)
    assert any("sample_submission.csv" in p and "file not found" in p for p in problems)


def test_check_cli_reports_every_problem(layout, capsys):
    root, _ = layout
    _nan(sample_path(root, "train", "0a1"))
    _bad_dtype(sample_path(root, "test", "1c3"))
    assert main(["seti", "check", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "0a1.npy" in err and "1c3.npy" in err and "2 problem(s)" in err


def test_check_cli_passes_clean_data(layout, capsys):
    root, _ = layout
    assert main(["seti", "check", str(root), "--quiet"]) == 0
    assert "ok" in capsys.readouterr().out
