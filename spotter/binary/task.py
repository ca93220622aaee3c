"""`BinaryTask`: the shared parts of id,target problems — logits, sigmoid predictions, ROC AUC, `oof.csv`, and a
test-set prediction that averages the fold models with test-time augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from spotter.config import TrainConfig
from spotter.engine.predict import load_weights, mean_over_folds
from spotter.engine.rundir import RunDir
from spotter.engine.runtime import Runtime
from spotter.engine.task import Submission
from spotter.engine.tta import create_tta
from spotter.errors import SpotterError
from spotter.io import write_csv
from spotter.metrics import roc_auc
from spotter.models.losses import create_loss
from spotter.progress import Reporter

ID, TARGET, PRED = "id", "target", "pred"  # the columns of id,target tables (labels, submissions, oof.csv)


class BinaryTask:
    """Base of binary `id,target` problems; subclasses add data, model and the test-set hooks below."""

    id_column = ID
    target_column = TARGET
    metric_name = "AUC"

    # ------------------------------------------------------------------------------------------- training

    def prepare_validation(self, train_rows: pd.DataFrame, valid_rows: pd.DataFrame) -> pd.DataFrame:
        """The validation rows as they are, checked to hold both classes (ROC AUC needs them).

        Raises:
            SpotterError: If every validation target is on one side of 0.5.
        """
        positive = valid_rows[self.target_column].to_numpy(np.float64) >= 0.5
        if positive.all() or not positive.any():
            missing = "positive" if not positive.any() else "negative"
            everyone = np.concatenate([positive, train_rows[self.target_column].to_numpy(np.float64) >= 0.5])
            raise SpotterError(
                f"its {len(valid_rows)} validation samples hold no {missing} (AUC needs both classes; the data has "
                f"{int(everyone.sum())} positive(s) in {len(everyone)} samples): use fewer folds (n_folds) or more data"
            )
        return valid_rows

    def create_loss(self, cfg: TrainConfig, train_rows: pd.DataFrame) -> nn.Module:
        return create_loss(cfg.loss)

    def forward(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return model(batch["input"]).squeeze(-1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float())

    def metric(self, rows: pd.DataFrame, predictions: np.ndarray) -> float:
        return roc_auc(rows[self.target_column].to_numpy(), predictions)

    def write_oof(self, run: RunDir, rows: pd.DataFrame, predictions: np.ndarray) -> Path:
        frame = pd.DataFrame(
            {ID: rows[self.id_column].to_numpy(), TARGET: rows[self.target_column].to_numpy(), PRED: predictions}
        )
        write_csv(run.oof_table, frame)
        return run.oof_table

    def finish_training(
        self, run: RunDir, cfg: TrainConfig, data_dir: Path, runtime: Runtime, reporter: Reporter
    ) -> None:
        """Nothing: a binary run is finished with its out-of-fold predictions."""

    def restore_model(self, cfg: TrainConfig, weights: Path) -> nn.Module:
        return load_weights(self.create_model(cfg, None), weights)

    # ------------------------------------------------------------------------------------------- test set

    def test_rows(self, data_dir: Path) -> pd.DataFrame:
        """The test samples of a data folder, with an `id` column, in submission order."""
        raise NotImplementedError

    def test_dataset(self, data_dir: Path, rows: pd.DataFrame, cfg: TrainConfig) -> Dataset:
        """Unlabelled samples of `rows`, prepared as for validation."""
        raise NotImplementedError

    def tta(self, cfg: TrainConfig) -> list[str]:
        """Names of the test-time transforms (`spotter.engine.tta`) whose predictions are averaged."""
        return ["identity"]

    def predict_test(
        self, run: RunDir, cfg: TrainConfig, data_dir: Path, tta: bool, runtime: Runtime, reporter: Reporter
    ) -> Submission:
        """id,target: the mean of the fold models' probabilities, each averaged over the TTA transforms."""
        rows = self.test_rows(data_dir)
        dataset = self.test_dataset(data_dir, rows, cfg)
        transforms = create_tta(self.tta(cfg) if tta else ["identity"])
        predictions = mean_over_folds(self, run, cfg, dataset, runtime, transforms, reporter)
        return Submission(pd.DataFrame({ID: rows[ID].to_numpy(), TARGET: predictions}))
