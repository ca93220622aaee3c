"""The command line: bad input gives one line on stderr and exit code 2; the happy path runs end to end."""

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

FAST = ["epochs=1", "batch_size=8", "n_folds=2", "threads=1"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["epochz=1"], "unknown config key 'epochz'"),
        (["epochs=one"], "config key 'epochs'"),
    ],
)
def test_bad_config_key_is_one_line_exit_2(toy_data: Path, tmp_path: Path, extra, message) -> None:
    result = run_cli("toy", "train", str(toy_data), "--out", str(tmp_path / "run"), *extra)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_folder_exit_2(tmp_path: Path) -> None:
    result = run_cli("toy", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), *FAST)
    assert result.returncode == 2 and "data folder not found" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_unwritable_output_folder_exit_2(toy_data: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli("toy", "train", str(toy_data), "--out", str(blocker / "run"), *FAST)
    assert result.returncode == 2 and "cannot create output folder" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_train_predict_score_end_to_end(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("--quiet", "toy", "train", str(toy_data), "--out", str(run), *FAST)
    assert result.returncode == 0, result.stderr
    assert f"run: {run}" in result.stdout and result.stderr == ""
    sub = tmp_path / "sub.csv"
    result = run_cli("toy", "predict", str(run), str(toy_data), "--out", str(sub), "--quiet")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(sub)
    assert list(frame.columns) == ["id", "target"] and len(frame) == 16 and frame.target.between(0, 1).all()
    result = run_cli("score", str(sub), str(toy_data / "test_labels.csv"))
    assert result.returncode == 0 and result.stdout.startswith("roc_auc: ")


def test_score_mismatch_exit_2(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "target": [0.3]}).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"id": ["b"], "target": [1]}).to_csv(tmp_path / "t.csv", index=False)
    result = run_cli("score", str(tmp_path / "s.csv"), str(tmp_path / "t.csv"))
    assert result.returncode == 2 and "1 id(s) not in the truth file, e.g. 'a'" in result.stderr
