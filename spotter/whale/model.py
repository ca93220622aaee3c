"""The whale embedding network: timm trunk → GeM (last one or two stages) → BatchNorm neck → margin heads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spotter.models.backbones import create_backbone
from spotter.models.heads import ArcFace, create_head, dynamic_margins
from spotter.models.pooling import create_pooling
from spotter.config import pretrained_value
from spotter.whale.config import WhaleConfig, WhaleHeadConfig

HEAD_TOP = 10  # head candidates kept per validation photo in the out-of-fold predictions


class WhaleNet(nn.Module):
    """Photos → L2-normalizable embeddings, with id (and species) margin heads for training.

    Args:
        cfg: The whale config (model and head sections).
        class_counts: Train photos per id class, in class order (sets the dynamic margins).
        species_counts: Train photos per species class, or None without a species head.
        class_index: Global vocabulary position of each id class (kept as a buffer, saved with the weights).
        pretrained: Override of `cfg.model.pretrained` (False when the weights are loaded right after).
    """

    def __init__(
        self,
        cfg: WhaleConfig,
        class_counts: Sequence[int],
        species_counts: Sequence[int] | None = None,
        class_index: Sequence[int] | None = None,
        pretrained: bool | str | None = None,
    ) -> None:
        super().__init__()
        m = cfg.model
        pretrained = pretrained_value(m.pretrained) if pretrained is None else pretrained
        out_indices = (-2, -1) if m.two_stages else (-1,)
        self.backbone = create_backbone(m.backbone, pretrained, features_only=True, out_indices=out_indices)
        channels = self.backbone.feature_info.channels()
        self.pools = nn.ModuleList(create_pooling("gem", p=m.gem_p, learnable=m.gem_learnable) for _ in channels)
        self.dropout = nn.Dropout(m.drop_rate)
        self.neck = nn.Linear(sum(channels), m.embedding_size)
        self.bn = nn.BatchNorm1d(m.embedding_size) if m.bn_neck else nn.Identity()
        self.head = _margin_head(cfg.head, m.embedding_size, class_counts, species=False)
        self.species_head = (
            _margin_head(cfg.head, m.embedding_size, species_counts, species=True) if species_counts is not None else None
        )
        index = np.arange(len(class_counts)) if class_index is None else np.asarray(class_index)
        self.register_buffer("class_index", torch.as_tensor(index, dtype=torch.int64))

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Raw embeddings (N, D), before L2 normalization."""
        maps = self.backbone(x)
        pooled = torch.cat([pool(fmap) for pool, fmap in zip(self.pools, maps)], dim=1)
        return self.bn(self.neck(self.dropout(pooled)))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Embeddings and head logits; with labels (N, 2) = (id, species) the logits carry the margins.

        Returns:
            `embedding` (N, D), `id_logits` (N, C), `id_cosine` (N, C), `class_index` (C,) and, with a species
            head, `species_logits`.
        """
        emb = self.embed(x)
        out = {"embedding": emb, "class_index": self.class_index}
        if labels is not None:
            out["id_logits"] = self.head(emb, labels[:, 0])
            out["id_cosine"] = out["id_logits"].detach() / self.head.scale
        else:
            out["id_cosine"] = self.head.cosine(emb)
            out["id_logits"] = out["id_cosine"] * self.head.scale
        if self.species_head is not None:
            out["species_logits"] = self.species_head(emb, None if labels is None else labels[:, 1])
        return out


def _margin_head(cfg: WhaleHeadConfig, dim: int, counts, species: bool) -> ArcFace:
    """The id head (`head.name` from the heads registry) or the species head (plain ArcFace), with margins."""
    counts = np.maximum(np.asarray(counts, dtype=np.int64), 1)
    if species:
        margins = dynamic_margins(counts, cfg.species_margin_a, cfg.species_margin_lambda, cfg.species_margin_b)
        return create_head("arcface", dim, len(counts), scale=cfg.species_scale,
                           margins=margins if cfg.dynamic_margin else cfg.margin)
    margins = dynamic_margins(counts, cfg.margin_a, cfg.margin_lambda, cfg.margin_b) if cfg.dynamic_margin else cfg.margin
    return create_head(cfg.name, dim, len(counts), subcenters=cfg.subcenters, scale=cfg.scale, margins=margins)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over samples whose target is ≥ 0 (−1: no class, e.g. a new individual); 0 if none."""
    valid = targets >= 0
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float()[valid], targets[valid])


class WhaleLoss(nn.Module):
    """id_weight·CE(id logits) + species_weight·CE(species logits); targets are (N, 2) = (id, species)."""

    def __init__(self, id_weight: float = 1.0, species_weight: float = 0.0) -> None:
        super().__init__()
        self.id_weight, self.species_weight = id_weight, species_weight

    def forward(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        loss = self.id_weight * masked_cross_entropy(outputs["id_logits"], targets[:, 0])
        if self.species_weight > 0 and "species_logits" in outputs:
            loss = loss + self.species_weight * masked_cross_entropy(outputs["species_logits"], targets[:, 1])
        return loss
