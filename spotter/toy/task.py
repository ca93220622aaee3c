"""The toy task on the engine: a small timm CNN classifying toy images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import timm
from torch import nn

from spotter.engine.task import BinaryTask
from spotter.models.pooling import create_pooling
from spotter.toy.config import ToyConfig
from spotter.toy.data import ToyDataset, read_labels


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
        return read_labels(data_dir, "train_labels.csv")

    def create_datasets(self, data_dir, train_rows, valid_rows, cfg):
        valid = ToyDataset(data_dir / "train", valid_rows, train=False) if valid_rows is not None else None
        return ToyDataset(data_dir / "train", train_rows, train=True), valid

    def create_model(self, cfg: ToyConfig, train_rows: pd.DataFrame) -> nn.Module:
        return BackbonePoolHead(cfg.model, cfg.pooling)


def predict_submission(run_dir, data_dir, out, tta: bool = True, reporter=None) -> Path:
    """Writes `id,target` for the test set of `data_dir` with every fold model of `run_dir`."""
    from spotter.engine.predict import predict_run
    from spotter.engine.runtime import Runtime
    from spotter.engine.tta import create_tta
    from spotter.io import write_csv
    from spotter.progress import NullReporter

    data_dir = Path(data_dir)
    rows = read_labels(data_dir, "sample_submission.csv")
    dataset = ToyDataset(data_dir / "test", rows, train=False)
    transforms = create_tta(["identity", "hflip"] if tta else ["identity"])
    predictions = predict_run(ToyTask(), run_dir, dataset, Runtime(), transforms, reporter or NullReporter())
    write_csv(out, pd.DataFrame({"id": rows["id"], "target": predictions}))
    return Path(out)
