"""The toy task on the engine: a small timm CNN classifying toy images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import timm
from torch import nn

from spotter.binary.task import BinaryTask
from spotter.models.pooling import create_pooling
from spotter.toy.config import ToyConfig
from spotter.toy.data import SUBMISSION, TRAIN_LABELS, ToyDataset, read_labels


class BackbonePoolHead(nn.Module):
    """timm feature extractor → pooling → linear logit (one channel in)."""

    def __init__(self, name: str, pooling: str, in_chans: int = 1) -> None:
        super().__init__()
        self.backbone = timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, global_pool="")
        self.pool = create_pooling(pooling)
        self.head = nn.Linear(self.backbone.num_features, 1)

    def forward(self, x):
        return self.head(self.pool(self.backbone(x)))


class ToyTask(BinaryTask):
    name = "toy"
    config_class = ToyConfig

    def load_samples(self, data_dir: Path, cfg: ToyConfig) -> pd.DataFrame:
        return read_labels(data_dir, TRAIN_LABELS)

    def create_datasets(self, data_dir, train_rows, valid_rows, cfg):
        valid = ToyDataset(data_dir / "train", valid_rows, train=False) if valid_rows is not None else None
        return ToyDataset(data_dir / "train", train_rows, train=True), valid

    def create_model(self, cfg: ToyConfig, train_rows: pd.DataFrame | None) -> nn.Module:
        return BackbonePoolHead(cfg.model, cfg.pooling)

    def test_rows(self, data_dir: Path) -> pd.DataFrame:
        return read_labels(Path(data_dir), SUBMISSION)

    def test_dataset(self, data_dir: Path, rows: pd.DataFrame, cfg: ToyConfig):
        return ToyDataset(Path(data_dir) / "test", rows, train=False)

    def tta(self, cfg: ToyConfig) -> list[str]:
        return ["identity", "hflip"]
