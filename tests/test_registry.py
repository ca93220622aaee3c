"""A task registered from outside spotter (this module) trains, predicts and ensembles through the CLI with no
edit to spotter itself: its config, task and registry entry are all here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

from spotter.binary.task import BinaryTask
from spotter.cli import build_parser, main
from spotter.config import TrainConfig
from spotter.tasks import TaskSpec, get_task, register_task, unregister_task
from spotter.toy.data import ToyDataset, read_labels


@dataclass
class LinesConfig(TrainConfig):
    """The test task's config: the common keys plus a width."""

    width: int = 4


class LinesTask(BinaryTask):
    """Lines in noise (the toy data files), classified by a two-layer convolutional net of its own."""

    name = "lines"
    config_class = LinesConfig

    def load_samples(self, data_dir: Path, cfg: LinesConfig) -> pd.DataFrame:
        return read_labels(Path(data_dir), "train_labels.csv")

    def create_datasets(self, data_dir, train_rows, valid_rows, cfg):
        valid = None if valid_rows is None else ToyDataset(Path(data_dir) / "train", valid_rows, train=False)
        return ToyDataset(Path(data_dir) / "train", train_rows, train=True), valid

    def create_model(self, cfg: LinesConfig, train_rows) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, cfg.width, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Linear(cfg.width, 1),
        )

    def test_rows(self, data_dir: Path) -> pd.DataFrame:
        return read_labels(Path(data_dir), "sample_submission.csv")

    def test_dataset(self, data_dir: Path, rows: pd.DataFrame, cfg: LinesConfig):
        return ToyDataset(Path(data_dir) / "test", rows, train=False)


@pytest.fixture
def lines():
    spec = register_task(TaskSpec(
        "lines", "a task registered by a test", f"{__name__}:LinesConfig", f"{__name__}:LinesTask",
        blender="spotter.binary.ensemble:BinaryBlender",
    ))
    yield spec
    unregister_task("lines")


ARGS = ["epochs=2", "batch_size=8", "n_folds=2", "lr=1e-2", "threads=1", "width=6"]


def test_a_task_registered_from_outside_trains_predicts_and_ensembles(lines, toy_data, tmp_path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["--quiet", "lines", "train", str(toy_data), "--out", str(a), *ARGS]) == 0
    assert main(["--quiet", "lines", "train", str(toy_data), "--out", str(b), *ARGS, "seed=7", "fold_seed=42"]) == 0
    assert json.loads((a / "metrics.json").read_text())["task"] == "lines"
    assert "width: 6" in (a / "config.yaml").read_text()  # its own key, checked and saved like any other

    sub = tmp_path / "sub.csv"
    assert main(["--quiet", "lines", "predict", str(a), str(toy_data), "--out", str(sub)]) == 0
    predictions = pd.read_csv(sub, dtype={"id": str})
    assert list(predictions["id"]) == list(pd.read_csv(toy_data / "sample_submission.csv", dtype=str)["id"])

    blend = tmp_path / "blend.csv"
    capsys.readouterr()
    assert main(["ensemble", str(a), str(b), "--data", str(toy_data), "--out", str(blend), "--quiet"]) == 0
    assert "oof AUC ensemble (mean)" in capsys.readouterr().out
    assert len(pd.read_csv(blend)) == len(predictions)


def test_the_cli_lists_registered_tasks_and_only_them(lines) -> None:
    help_text = build_parser().format_help()
    assert "lines" in help_text and "a task registered by a test" in help_text
    unregister_task("lines")
    assert "lines" not in build_parser().format_help()
    with pytest.raises(Exception, match="unknown task 'lines'"):
        get_task("lines")
