"""The whale task on the engine: photos → embedding net with margin heads, scored by MAP@5 with new_individual.

Out-of-fold predictions are, per validation photo, its L2-normalized embedding followed by the id head's
`HEAD_TOP` best cosines and their classes (positions in the run's id vocabulary, the sorted ids of
train.csv). The fold metric ranks ids by those cosines and inserts `new_individual` at the threshold that
maximizes MAP@5; validation ids absent from the fold's train side count as `new_individual`. The kNN
retrieval used for calibration and submissions lives in `spotter.whale.predict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from spotter.engine.rundir import RunDir
from spotter.errors import SpotterError
from spotter.io import atomic_path
from spotter.whale.config import WhaleConfig
from spotter.whale.data import fold_classes, photo_dataset, read_whale_data, species_classes
from spotter.whale.model import HEAD_TOP, WhaleLoss, WhaleNet
from spotter.whale.threshold import best_threshold, relabel_unseen

TRUTH = "truth"  # validation rows' id as the metric scores it: new_individual where unseen on the train side


def split_predictions(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold predictions → (embeddings, head top cosines, their vocabulary positions; −1 = none)."""
    predictions = np.asarray(predictions, dtype=np.float32)
    dim = predictions.shape[1] - 2 * HEAD_TOP
    if dim < 1:
        raise ValueError(f"predictions of width {predictions.shape[1]} hold no embedding")
    return predictions[:, :dim], predictions[:, dim : dim + HEAD_TOP], predictions[:, dim + HEAD_TOP :].round().astype(np.int64)


class WhaleTask:
    """Happywhale photo-ID: metric learning with (sub-center) ArcFace, MAP@5 with new_individual."""

    name = "whale"
    config_class = WhaleConfig
    id_column = "image"
    target_column = "individual_id"
    metric_name = "MAP@5"

    def __init__(self) -> None:
        # what `load_samples` read from the data folder, which the engine always calls first
        self.vocab: list[str] = []  # every train id, sorted: the global class positions
        self.boxes: dict | None = None

    def load_samples(self, data_dir: Path, cfg: WhaleConfig) -> pd.DataFrame:
        data = read_whale_data(data_dir, require_test=False)
        self.boxes = data.bboxes if cfg.use_bboxes else None
        self.vocab = sorted(set(data.train["individual_id"]))
        return data.train[["image", "species", "individual_id", "path"]].copy()

    def prepare_validation(self, train_rows: pd.DataFrame, valid_rows: pd.DataFrame) -> pd.DataFrame:
        """Adds `truth`: the id, or `new_individual` where the id is absent from the fold's train side."""
        truths = relabel_unseen(list(valid_rows["individual_id"]), fold_classes(train_rows))
        return valid_rows.assign(**{TRUTH: truths})

    def create_datasets(self, data_dir, train_rows, valid_rows, cfg: WhaleConfig):
        classes, species = fold_classes(train_rows), species_classes(train_rows)
        train = photo_dataset(train_rows, cfg, True, self.boxes, classes, species)
        valid = None if valid_rows is None else photo_dataset(valid_rows, cfg, False, self.boxes, classes, species)
        return train, valid

    def create_model(self, cfg: WhaleConfig, train_rows: pd.DataFrame) -> nn.Module:
        return build_model(cfg, train_rows, self.vocab)

    def restore_model(self, cfg: WhaleConfig, weights: Path) -> nn.Module:
        """A trained model from its weights alone: the head sizes are read from the weights file."""
        from safetensors import safe_open

        from spotter.engine.predict import load_weights

        try:
            with safe_open(str(weights), framework="pt") as handle:
                keys = set(handle.keys())
                classes = handle.get_slice("class_index").get_shape()[0]
                species = handle.get_slice("species_head.margins").get_shape()[0] if "species_head.margins" in keys else None
        except FileNotFoundError:
            raise SpotterError("weights file not found", weights) from None
        except Exception as err:  # corrupt or truncated files, or weights of another model
            raise SpotterError(f"cannot read whale model weights ({str(err).splitlines()[0][:200]})", weights) from None
        model = WhaleNet(cfg, [1] * classes, None if species is None else [1] * species, pretrained=False)
        return load_weights(model, weights)

    def create_loss(self, cfg: WhaleConfig, train_rows: pd.DataFrame) -> nn.Module:
        return WhaleLoss(cfg.head.id_weight, cfg.head.species_weight if cfg.head.species else 0.0)

    def forward(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # margins need the labels while training; evaluation gets plain scaled cosines
        labels = batch["target"] if model.training else None
        return model(batch["input"], labels)

    def predict(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = torch.nn.functional.normalize(outputs["embedding"].float(), dim=1)
        cos = outputs["id_cosine"].float()
        k = min(HEAD_TOP, cos.shape[1])
        top_cos, top = cos.topk(k, dim=1)
        top_class = outputs["class_index"][top].float()
        pad = HEAD_TOP - k
        if pad:
            top_cos = torch.cat([top_cos, top_cos.new_full((len(cos), pad), -2.0)], dim=1)
            top_class = torch.cat([top_class, top_class.new_full((len(cos), pad), -1.0)], dim=1)
        return torch.cat([emb, top_cos, top_class], dim=1)

    def metric(self, rows: pd.DataFrame, predictions: np.ndarray) -> float:
        return head_map_at_5(list(rows[TRUTH]), self.vocab, predictions)[0]

    def write_oof(self, run: RunDir, rows: pd.DataFrame, predictions: np.ndarray) -> Path:
        embeddings, top_cos, top_class = split_predictions(predictions)
        truths = list(rows[TRUTH])
        score, threshold = head_map_at_5(truths, self.vocab, predictions)
        arrays = {
            "embeddings": embeddings.astype(np.float32),
            "labels": np.asarray(rows["individual_id"], dtype=str),
            "truths": np.asarray(truths, dtype=str),
            "images": np.asarray(rows["image"], dtype=str),
            "species": np.asarray(rows["species"], dtype=str),
            "folds": np.asarray(rows["fold"] if "fold" in rows else np.full(len(rows), -1), dtype=np.int64),
            "head_top_cosine": top_cos,
            "head_top_class": top_class,
            "vocab": np.asarray(self.vocab, dtype=str),
            "head_threshold": np.float64(threshold),
            "head_map_at_5": np.float64(score),
        }
        with atomic_path(run.oof_arrays) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        return run.oof_arrays

    def finish_training(self, run: RunDir, cfg: WhaleConfig, data_dir: Path, runtime, reporter) -> None:
        """Calibrates the run: scores → probabilities and the new_individual threshold, on its out-of-fold photos."""
        from spotter.whale.predict import calibrate_run

        calibrate_run(self, run, cfg, data_dir, runtime, reporter)

    def predict_test(self, run: RunDir, cfg: WhaleConfig, data_dir: Path, tta: bool, runtime, reporter):
        """kNN over the train photos mixed with the id head, new_individual by the run's threshold policy."""
        from spotter.whale.predict import predict_test

        return predict_test(self, run, cfg, data_dir, tta, runtime, reporter)


def build_model(cfg: WhaleConfig, train_rows: pd.DataFrame, vocab: list[str], pretrained=None) -> WhaleNet:
    """The fold's model: classes and margins from its train rows, class positions in the run's vocabulary."""
    classes, species = fold_classes(train_rows), species_classes(train_rows)
    id_counts = train_rows["individual_id"].value_counts()
    species_counts = train_rows["species"].value_counts()
    lookup = {name: i for i, name in enumerate(vocab)}
    missing = [c for c in classes if c not in lookup]
    if missing:
        raise SpotterError(f"{len(missing)} train id(s) are not in the run's id vocabulary, e.g. {missing[0]!r}")
    return WhaleNet(
        cfg,
        [int(id_counts[c]) for c in classes],
        [int(species_counts[s]) for s in species] if cfg.head.species else None,
        [lookup[c] for c in classes],
        pretrained=pretrained,
    )


def head_map_at_5(truths: list[str], vocab: list[str], predictions: np.ndarray) -> tuple[float, float]:
    """MAP@5 of the head's ranking with new_individual at the best threshold; returns (MAP@5, threshold)."""
    _, top_cos, top_class = split_predictions(predictions)
    names = [[vocab[c] for c in row if c >= 0] for row in top_class]
    scores = np.where(top_class >= 0, top_cos, -np.inf)
    threshold, score = best_threshold(names, scores, truths)
    return score, threshold
