"""What a whale run's models see: each fold model's embeddings of a set of photos (and their mirror images) and
its id head's cosines, computed through the engine's sharded predict path, so they run under DDP like any task.

Several fold models are combined by concatenating their normalized embeddings (a cosine of such vectors is the
mean of the models' cosines) and averaging their head cosines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from spotter.engine.predict import fold_models, predict_dataset
from spotter.engine.rundir import FULL_FIT, RunDir, cache_key, fold_name
from spotter.engine.runtime import Runtime
from spotter.errors import SpotterError
from spotter.io import atomic_path
from spotter.progress import NullReporter, Reporter
from spotter.whale.config import WhaleConfig
from spotter.whale.data import WhaleData, fold_classes, photo_dataset
from spotter.whale.layout import TRAIN_CSV
from spotter.whale.model import WhaleNet

TRAIN_VIEWS = "train_views"  # cache kind of the fold models' views of the run's train photos


@dataclass
class FoldModel:
    """One trained model of a run and the rows it was trained on."""

    name: str  # fold<k> or full
    fold: int  # −1 for the full fit
    model: WhaleNet
    train_mask: np.ndarray  # over the run's train rows: True where the row was on this model's train side


@dataclass
class Views:
    """Embeddings of a set of photos by one model: as they are and mirrored, plus head cosines."""

    plain: np.ndarray  # (N, D) L2-normalized
    flipped: np.ndarray | None
    head: np.ndarray  # (N, C) head cosines of the model's classes (mean over the flip TTA)
    class_index: np.ndarray  # (C,) vocabulary position of each head class

    def dense_head(self, vocab_size: int) -> np.ndarray:
        """Head cosines spread over the vocabulary (N, V); ids the head lacks get each photo's lowest cosine."""
        return dense_head(self.head, self.class_index, vocab_size)


def run_rows(run: RunDir, data: WhaleData) -> pd.DataFrame:
    """The run's train rows (train.csv of `data` in the run's folds order) with their fold.

    Raises:
        SpotterError: If the run was trained on photos that `data` lacks.
    """
    rows = run.read_folds("image").merge(data.train, on="image", how="left")
    missing = rows["individual_id"].isna().to_numpy()
    if missing.any():
        raise SpotterError(
            f"{int(missing.sum())} photo(s) the run trained on are not in {data.root / TRAIN_CSV}, "
            f"e.g. {rows['image'][missing].iloc[0]!r}: predict with the training data folder",
            run.folds_path,
        )
    return rows


def restore_fold_models(
    task, run: RunDir, cfg: WhaleConfig, rows: pd.DataFrame, finished: bool = True
) -> list[FoldModel]:
    """Every trained fold's model, checked against the ids of the data it will rank.

    Raises:
        SpotterError: If the ids in the data differ from those a model was trained on.
    """
    vocab = sorted(set(rows["individual_id"]))
    lookup = {name: i for i, name in enumerate(vocab)}
    models = []
    for fold, model in fold_models(task, run, cfg, finished):
        mask = np.ones(len(rows), bool) if fold == FULL_FIT else (rows["fold"] != fold).to_numpy()
        expected = [lookup[c] for c in fold_classes(rows[mask])]
        # the weights carry each class's vocabulary position: they must match the classes rebuilt from DATA
        if model.class_index.tolist() != expected:
            raise SpotterError(
                f"{fold_name(fold)}: the ids in train.csv differ from those the run was trained on", run.weights_path(fold)
            )
        models.append(FoldModel(fold_name(fold), fold, model, mask))
    return models


def answering_models(models: Sequence[FoldModel], cfg: WhaleConfig) -> list[FoldModel]:
    """The models that embed a run's gallery and queries: every one, or with `retrieval.predict_with: full` the
    full fit alone when the run has one (the fold models then serve the calibration only)."""
    full = [fm for fm in models if fm.fold == FULL_FIT]
    return full if cfg.retrieval.predict_with == "full" and full else list(models)


def embed_and_cosine(model: WhaleNet, x: torch.Tensor) -> torch.Tensor:
    """Per photo: its L2-normalized embedding, then its head's cosines (N, D + C), computed in float32."""
    raw = model.embed(x).float()
    with torch.autocast(x.device.type, enabled=False):
        return torch.cat([F.normalize(raw, dim=1), model.head.cosine(raw)], dim=1)


def embed_rows(
    model: WhaleNet,
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    flip: bool,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
    description: str = "embedding",
) -> Views:
    """Embeds the photos of `rows` (and, with `flip`, their mirror images) with one model."""
    index = model.class_index.cpu().numpy()
    dim = model.head.in_features
    parts = {}
    for mirrored in [False, True] if flip else [False]:
        dataset = photo_dataset(rows, cfg, False, boxes, flip=mirrored)
        if len(dataset):
            values = predict_dataset(
                model, dataset, runtime, embed_and_cosine, cfg.retrieval.batch_size, cfg.num_workers,
                reporter=reporter, description=description + (" (mirrored)" if mirrored else ""),
            )
        else:
            values = np.zeros((0, dim + len(index)), np.float32)
        parts[mirrored] = (values[:, :dim], values[:, dim:])
    head = np.mean([cos for _, cos in parts.values()], axis=0).astype(np.float32)
    return Views(parts[False][0], parts[True][0] if flip else None, head, index)


def dense_head(cos: np.ndarray, class_index: np.ndarray, vocab_size: int) -> np.ndarray:
    """Head cosines (N, C) of a fold's classes spread over the vocabulary (N, V).

    Ids the head lacks get each photo's lowest cosine, so mixing never favours them.
    """
    fill = cos.min(axis=1, keepdims=True) if cos.size else np.zeros((len(cos), 1), np.float32)
    dense = np.repeat(fill.astype(np.float32), vocab_size, axis=1)
    dense[:, class_index] = cos
    return dense


def subset(views: Views, mask: np.ndarray) -> Views:
    flipped = None if views.flipped is None else views.flipped[mask]
    return Views(views.plain[mask], flipped, views.head[mask], views.class_index)


def combine(parts: Sequence[Views], vocab_size: int) -> Views:
    """Views of several models as one: concatenated embeddings (mean cosine), mean head cosines."""
    if len(parts) == 1:
        return parts[0]
    scale = len(parts) ** -0.5
    plain = (np.concatenate([p.plain for p in parts], axis=1) * scale).astype(np.float32)
    flipped = None
    if parts[0].flipped is not None:
        flipped = (np.concatenate([p.flipped for p in parts], axis=1) * scale).astype(np.float32)
    head = np.mean([p.dense_head(vocab_size) for p in parts], axis=0)
    return Views(plain, flipped, head, np.arange(vocab_size))


def embed_models(
    models: Sequence[FoldModel],
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
    what: str = "photos",
) -> list[Views]:
    """Each fold model's views of the photos of `rows` (mirrored too when the config's flip TTA is on)."""
    return [
        embed_rows(fm.model, rows, cfg, boxes, cfg.retrieval.flip_tta, runtime, reporter, f"{fm.name}: {what}")
        for fm in models
    ]


def train_views(
    run: RunDir,
    models: Sequence[FoldModel],
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
) -> list[Views]:
    """`embed_models` of the run's train photos, computed once and cached in the run folder.

    The cache key covers the photos and their ids, the crop boxes, the flip setting and the weights, so
    calibration, predict, ensembles and index share one embedding of the gallery.
    """
    key = cache_key(
        "\n".join(f"{p}\t{i}" for p, i in zip(rows["path"].astype(str), rows["individual_id"])),
        repr(sorted((boxes or {}).items())), f"flips={cfg.retrieval.flip_tta}", run.weights_fingerprint(),
        ",".join(fm.name for fm in models),
    )
    path = run.cache_path(TRAIN_VIEWS, key, ".npz")
    if path.is_file():
        try:
            return _load_views(path, len(models))
        except (OSError, ValueError, KeyError):
            pass  # unreadable or cut short: embed afresh below
    views = embed_models(models, rows, cfg, boxes, runtime, reporter, "train photos")
    if runtime.is_main:
        _save_views(path, views)
    return views


def _save_views(path: Path, views: Sequence[Views]) -> None:
    arrays = {}
    for i, v in enumerate(views):
        arrays.update({f"plain{i}": v.plain, f"head{i}": v.head, f"class_index{i}": v.class_index})
        if v.flipped is not None:
            arrays[f"flipped{i}"] = v.flipped
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _load_views(path: Path, count: int) -> list[Views]:
    with np.load(path, allow_pickle=False) as z:
        return [
            Views(z[f"plain{i}"], z[f"flipped{i}"] if f"flipped{i}" in z.files else None, z[f"head{i}"],
                  z[f"class_index{i}"])
            for i in range(count)
        ]


