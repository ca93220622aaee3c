"""What the engine needs from a problem: the `Task` protocol, and the `Submission` a task's prediction returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from spotter.config import TrainConfig

if TYPE_CHECKING:
    from spotter.engine.rundir import RunDir
    from spotter.engine.runtime import Runtime
    from spotter.progress import Reporter


@dataclass
class Submission:
    """A task's predictions for a data folder's test set.

    Attributes:
        frame: The submission table, in the competition's layout.
        record: What the prediction found on the way (thresholds, out-of-fold scores), JSON-ready.
        summary: Lines for the user (the CLI prints them).
    """

    frame: pd.DataFrame
    record: dict = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)


class Task(Protocol):
    """A problem the engine can train with k-fold CV and predict with.

    Datasets yield dicts with `index` (the sample's position in the dataset), `input` and `target`.
    The engine knows nothing else about the data.
    """

    name: str
    config_class: type[TrainConfig]
    id_column: str
    target_column: str

    def load_samples(self, data_dir: Path, cfg: TrainConfig) -> pd.DataFrame:
        """One row per training sample, with the id and target columns; raises SpotterError on bad data."""

    def prepare_validation(self, train_rows: pd.DataFrame, valid_rows: pd.DataFrame) -> pd.DataFrame:
        """A fold's validation rows as its metric scores them (e.g. ids unseen on the train side relabelled).

        A pure function of the fold's two sides: the engine calls it when it splits a fold.
        """

    def create_datasets(
        self, data_dir: Path, train_rows: pd.DataFrame, valid_rows: pd.DataFrame | None, cfg: TrainConfig
    ) -> tuple[Dataset, Dataset | None]:
        """Training and validation datasets for one fold (no validation set for a full fit)."""

    def create_model(self, cfg: TrainConfig, train_rows: pd.DataFrame) -> nn.Module:
        """A fresh model; parameters under `backbone.` train at `lr`, the rest at `lr * head_lr_mult`."""

    def restore_model(self, cfg: TrainConfig, weights: Path) -> nn.Module:
        """A trained model from a run's config and one fold's weights alone (the only way models are rebuilt)."""

    def create_loss(self, cfg: TrainConfig, train_rows: pd.DataFrame) -> nn.Module:
        """`loss(outputs, targets) -> scalar`."""

    def forward(self, model: nn.Module, batch: dict[str, Any]) -> Any:
        """The model's outputs for a batch."""

    def predict(self, outputs: Any) -> torch.Tensor:
        """Per-sample predictions (N, ...) from outputs, as stored out-of-fold."""

    def metric(self, rows: pd.DataFrame, predictions: np.ndarray) -> float:
        """The fold metric (higher is better) of predictions for rows from `prepare_validation`."""

    def write_oof(self, run: RunDir, rows: pd.DataFrame, predictions: np.ndarray) -> Path:
        """Writes the run's out-of-fold file and returns its path."""

    def finish_training(
        self, run: RunDir, cfg: TrainConfig, data_dir: Path, runtime: Runtime, reporter: Reporter
    ) -> None:
        """Work that needs every trained fold (e.g. calibrating scores on the out-of-fold samples), done before the
        run is marked finished; every process takes part."""

    def predict_test(
        self, run: RunDir, cfg: TrainConfig, data_dir: Path, tta: bool, runtime: Runtime, reporter: Reporter
    ) -> Submission | None:
        """Predictions for the data folder's test set from every trained fold of the run (see
        `spotter.engine.predict`); every process takes part, the main process returns the submission."""
