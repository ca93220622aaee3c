"""The whale task on the engine: photos → embedding net with margin heads, scored by MAP@5 with new_individual.

Out-of-fold predictions are, per validation photo, its L2-normalized embedding followed by the id head's
`HEAD_TOP` best cosines and their classes (positions in the run's id vocabulary, the sorted ids of
train.csv). The fold metric ranks ids by those cosines and inserts `new_individual` at the threshold that
maximizes MAP@5; validation ids absent from the fold's train side count as `new_individual`. The kNN
retrieval used for submissions lives in `spotter.whale.predict`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from spotter.errors import SpotterError
from spotter.io import atomic_path
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.config import WhaleConfig
from spotter.whale.data import WhaleDataset, build_transform, encode_labels, read_whale_data
from spotter.whale.model import HEAD_TOP, WhaleLoss, WhaleNet
from spotter.whale.threshold import best_threshold

OOF = "oof.npz"


@functools.lru_cache(maxsize=8)
def normalization(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the backbone's pretrained weights expect (0.5/0.5 for the TF Lite EfficientNets)."""
    from spotter.models.backbones import preprocessing

    try:
        pre = preprocessing(backbone)
    except RuntimeError as err:
        raise SpotterError(f"cannot build backbone {backbone!r}: {err}") from None
    return tuple(pre["mean"]), tuple(pre["std"])


def fold_classes(train_rows: pd.DataFrame) -> list[str]:
    """The id classes of a fold's model: the sorted ids of its train rows."""
    return sorted(set(train_rows["individual_id"]))


def species_classes(train_rows: pd.DataFrame) -> list[str]:
    """The species classes of a fold's model: the sorted species of its train rows."""
    return sorted(set(train_rows["species"]))


class PairTargets(Dataset):
    """A `WhaleDataset` whose target is the pair (id class, species class), −1 where unknown."""

    def __init__(self, images: WhaleDataset, species: np.ndarray) -> None:
        self.images, self.species = images, np.asarray(species, np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        item = self.images[index]
        item["target"] = torch.tensor([item["target"], self.species[index]], dtype=torch.int64)
        return item


def photo_dataset(
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    train: bool,
    boxes: dict | None = None,
    classes: list[str] | None = None,
    species: list[str] | None = None,
    flip: bool = False,
) -> Dataset:
    """Photos of `rows` as engine samples: training augmentation or a plain resize, targets (id, species)."""
    mean, std = normalization(cfg.model.backbone)
    aug = cfg.augment
    transform = build_transform(
        cfg.image_size, train, mean=mean, std=std, flip=aug.flip, jitter=aug.jitter, crop_scale=tuple(aug.crop_scale)
    )
    ids = encode_labels(list(rows["individual_id"]), classes)[0] if classes is not None else None
    kinds = encode_labels(list(rows["species"]), species)[0] if species is not None else np.full(len(rows), -1)
    row_boxes = [boxes.get(name) for name in rows["image"]] if boxes else None
    images = WhaleDataset(list(rows["path"]), ids, transform, row_boxes, margin=aug.box_margin, flip=flip)
    return PairTargets(images, kinds)


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

    def __init__(self) -> None:
        self.vocab: list[str] = []  # every train id, sorted: the global class positions
        self.boxes: dict | None = None
        self.known: dict[int, set[str]] = {}  # fold → ids on its train side

    def load_samples(self, data_dir: Path, cfg: WhaleConfig) -> pd.DataFrame:
        data = read_whale_data(data_dir, require_test=False)
        self.boxes = data.bboxes if cfg.use_bboxes else None
        self.vocab = sorted(set(data.train["individual_id"]))
        return data.train[["image", "species", "individual_id", "path"]].copy()

    def create_datasets(self, data_dir, train_rows, valid_rows, cfg: WhaleConfig):
        classes, species = fold_classes(train_rows), species_classes(train_rows)
        train = photo_dataset(train_rows, cfg, True, self.boxes, classes, species)
        valid = None
        if valid_rows is not None:
            valid = photo_dataset(valid_rows, cfg, False, self.boxes, classes, species)
            if "fold" in valid_rows.columns and len(valid_rows):
                self.known[int(valid_rows["fold"].iloc[0])] = set(classes)
        return train, valid

    def create_model(self, cfg: WhaleConfig, train_rows: pd.DataFrame | None) -> nn.Module:
        if train_rows is None:
            raise SpotterError("a whale model needs its fold's train rows; predict with `spotter whale predict`")
        return build_model(cfg, train_rows, self.vocab)

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
        return head_map_at_5(self.truths(rows), self.vocab, predictions)[0]

    def truths(self, rows: pd.DataFrame) -> list[str]:
        """True ids of validation rows, `new_individual` where the id is absent from the row's fold's train side."""
        ids = list(rows["individual_id"])
        if "fold" not in rows.columns:
            return ids
        return [
            i if f not in self.known or i in self.known[f] else NEW_INDIVIDUAL for i, f in zip(ids, rows["fold"])
        ]

    def write_oof(self, run_dir: Path, rows: pd.DataFrame, predictions: np.ndarray) -> Path:
        embeddings, top_cos, top_class = split_predictions(predictions)
        truths = self.truths(rows)
        score, threshold = head_map_at_5(truths, self.vocab, predictions)
        path = Path(run_dir) / OOF
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
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        return path


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
