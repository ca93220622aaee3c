"""The plain ArcFace loop a Kaggler writes in an hour: the anchor `bench/whale_map.py` measures spotter against.

EfficientNet-Lite0 with its bundled ImageNet weights (spotter's backbone factory) → GeM → linear → BatchNorm
embedding, plain ArcFace (s=30, m=0.3) over every train id, AdamW (backbone lr 1e-3, head and neck 1e-2),
a few epochs on *all* train photos at a small size. Prediction: faiss kNN over the train photos, the max
cosine per id; `new_individual` goes where the scores fall below one threshold, the one with the best MAP@5
when a held-out fifth of the train photos is ranked against the rest (ids left without a photo there count
as new). No folds, no flips, no species head, no calibration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from spotter.metrics import NEW_INDIVIDUAL
from spotter.models.backbones import create_backbone
from spotter.models.heads import ArcFace
from spotter.models.pooling import create_pooling
from spotter.whale.data import WhaleDataset, build_transform, normalization, read_whale_data
from spotter.whale.retrieval import top_individuals
from spotter.whale.threshold import best_threshold, insert_new_individual, relabel_unseen

BACKBONE = "tf_efficientnet_lite0"


@dataclass
class PlainResult:
    """What the plain loop produced.

    Attributes:
        submission: Kaggle's `image,predictions` table for the test photos.
        train_seconds: Wall time of the training epochs.
        expected_new_first: Share of the held-out photos its threshold put `new_individual` first for.
        threshold: The new_individual threshold (a raw cosine).
    """

    submission: pd.DataFrame
    train_seconds: float
    expected_new_first: float
    threshold: float


class PlainNet(nn.Module):
    """Trunk → GeM → linear → BatchNorm: the embedding."""

    def __init__(self, embedding_size: int = 512) -> None:
        super().__init__()
        self.backbone = create_backbone(BACKBONE, True, features_only=True, out_indices=(-1,))
        self.pool = create_pooling("gem", p=3.0)
        self.neck = nn.Linear(self.backbone.feature_info.channels()[-1], embedding_size)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.neck(self.pool(self.backbone(x)[-1])))


def plain_arcface(
    data_dir: str | Path, epochs: int = 4, image_size: int = 96, batch_size: int = 32, seed: int = 0
) -> PlainResult:
    """Trains the plain loop on DATA's train photos and answers its test photos."""
    torch.manual_seed(seed)
    data = read_whale_data(data_dir)
    train = data.train.reset_index(drop=True)
    classes = sorted(set(train["individual_id"]))
    labels = np.searchsorted(classes, train["individual_id"].to_numpy().astype(str))
    mean, std = normalization(BACKBONE)
    augment = build_transform(image_size, True, mean, std, flip=0.0)
    loader = DataLoader(WhaleDataset(list(train["path"]), labels, augment), batch_size=batch_size, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(seed))
    net, head = PlainNet(), ArcFace(512, len(classes), scale=30.0, margins=0.3)
    optimizer = torch.optim.AdamW([
        {"params": net.backbone.parameters(), "lr": 1e-3},
        {"params": [*net.pool.parameters(), *net.neck.parameters(), *net.bn.parameters(), *head.parameters()],
         "lr": 1e-2},
    ], weight_decay=1e-2)
    started = time.perf_counter()
    net.train()
    for _ in range(epochs):
        for batch in loader:
            loss = F.cross_entropy(head(net(batch["input"]), batch["target"]), batch["target"])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    train_seconds = time.perf_counter() - started

    plain = build_transform(image_size, False, mean, std)
    gallery = embed(net, list(train["path"]), plain, batch_size)
    queries = embed(net, list(data.test["path"]), plain, batch_size)
    threshold, expected = holdout_threshold(gallery, train["individual_id"].to_numpy().astype(str), seed)
    found = top_individuals(queries, gallery, labels, num_classes=len(classes), k=100, top=5)
    names = found.names(classes)
    answers = insert_new_individual(names, found.scores, threshold)
    submission = pd.DataFrame({"image": list(data.test["image"]), "predictions": [" ".join(a) for a in answers]})
    return PlainResult(submission, train_seconds, expected, threshold)


@torch.no_grad()
def embed(net: PlainNet, paths: list, transform, batch_size: int) -> np.ndarray:
    """L2-normalized embeddings of photos."""
    net.eval()
    loader = DataLoader(WhaleDataset(paths, None, transform), batch_size=batch_size)
    return torch.cat([F.normalize(net(b["input"]), dim=1) for b in loader]).numpy()


def holdout_threshold(embeddings: np.ndarray, ids: np.ndarray, seed: int, share: float = 0.2) -> tuple[float, float]:
    """(threshold, share of held-out photos it puts new_individual first for): a random `share` of the train photos
    ranked against the others, ids without a photo among the others counting as new."""
    held = np.random.default_rng(seed).random(len(ids)) < share
    rest_ids = ids[~held]
    classes = sorted(set(rest_ids))
    found = top_individuals(embeddings[held], embeddings[~held], np.searchsorted(classes, rest_ids),
                            num_classes=len(classes), k=100, top=5)
    names = found.names(classes)
    truths = relabel_unseen(list(ids[held]), classes)
    threshold, _ = best_threshold(names, found.scores, truths)
    answers = insert_new_individual(names, found.scores, threshold)
    return threshold, float(np.mean([a[0] == NEW_INDIVIDUAL for a in answers]))
