"""What the engine needs from a problem: the `Task` protocol, and `BinaryTask` for id,target problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from spotter.config import TrainConfig
from spotter.io import write_csv
from spotter.metrics import roc_auc
from spotter.models.losses import create_loss


class Task(Protocol):
    """A problem the engine can train with k-fold CV.

    Datasets yield dicts with `index` (the sample's position in the dataset), `input` and `target`.
    The engine knows nothing else about the data.
    """

    name: str
    config_class: type[TrainConfig]
    id_column: str
    target_column: str

    def load_samples(self, data_dir: Path, cfg: TrainConfig) -> pd.DataFrame:
        """One row per training sample, with the id and target columns; raises SpotterError on bad data."""

    def create_datasets(
        self, data_dir: Path, train_rows: pd.DataFrame, valid_rows: pd.DataFrame | None, cfg: TrainConfig
    ) -> tuple[Dataset, Dataset | None]:
        """Training and validation datasets for one fold (no validation set for a full fit)."""

    def create_model(self, cfg: TrainConfig, train_rows: pd.DataFrame) -> nn.Module:
        """A fresh model; parameters under `backbone.` train at `lr`, the rest at `lr * head_lr_mult`."""

    def create_loss(self, cfg: TrainConfig, train_rows: pd.DataFrame) -> nn.Module:
        """`loss(outputs, targets) -> scalar`."""

    def forward(self, model: nn.Module, batch: dict[str, Any]) -> Any:
        """The model's outputs for a batch."""

    def predict(self, outputs: Any) -> torch.Tensor:
        """Per-sample predictions (N, ...) from outputs, as stored out-of-fold."""

    def metric(self, rows: pd.DataFrame, predictions: np.ndarray) -> float:
        """The fold metric (higher is better) of predictions for `rows`."""

    def write_oof(self, run_dir: Path, rows: pd.DataFrame, predictions: np.ndarray) -> Path:
        """Writes the run's out-of-fold file and returns its path."""


class BinaryTask:
    """Shared parts of binary `id,target` problems: logits out, sigmoid predictions, ROC AUC, oof.csv."""

    id_column = "id"
    target_column = "target"

    def create_loss(self, cfg: TrainConfig, train_rows: pd.DataFrame) -> nn.Module:
        return create_loss(cfg.loss)

    def forward(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return model(batch["input"]).squeeze(-1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float())

    def metric(self, rows: pd.DataFrame, predictions: np.ndarray) -> float:
        return roc_auc(rows[self.target_column].to_numpy(), predictions)

    def write_oof(self, run_dir: Path, rows: pd.DataFrame, predictions: np.ndarray) -> Path:
        path = Path(run_dir) / "oof.csv"
        frame = pd.DataFrame(
            {"id": rows[self.id_column].to_numpy(), "target": rows[self.target_column].to_numpy(), "pred": predictions}
        )
        write_csv(path, frame)
        return path
