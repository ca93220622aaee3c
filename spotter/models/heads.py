"""Angular-margin classification heads: ArcFace and sub-center ArcFace, with per-class (dynamic) margins."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def dynamic_margins(counts: Sequence[int] | np.ndarray | torch.Tensor, a: float, lam: float, b: float) -> torch.Tensor:
    """Per-class margins m(n) = a·n^(−λ) + b from each class's train count n: rare classes get larger margins.

    Happywhale 1st place: ids a=0.27126, λ=0.364399, b=0.05; species a=0.226253, λ=0.720133, b=0.05.

    Raises:
        ValueError: If a count is below 1.
    """
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float32)
    if (counts < 1).any():
        raise ValueError("every class needs a train count of at least 1 for its dynamic margin")
    return a * counts.pow(-lam) + b


class ArcFace(nn.Module):
    """ArcFace logits s·cos(θ + m) for the target class and s·cos θ for the others.

    θ is the angle between the L2-normalized embedding and the class's normalized weight (with k
    sub-centres per class, the closest centre: max cosine). Without labels the head returns plain
    s·cos θ for every class, which retrieval can use as cosine scores.

    θ + m > π: cos(θ + m) stops decreasing there, so a larger angle would be rewarded. As in the
    reference implementation (insightface), when θ > π − m the target logit becomes the linear
    continuation s·(cos θ − m·sin m), which keeps decreasing in θ; `easy_margin=True` instead applies
    the margin only where cos θ > 0.

    Args:
        in_features: Embedding size.
        num_classes: Classes.
        scale: s (Happywhale 1st: 20.96 ids, 33.14 species).
        margins: One margin (radians) for all classes, or one per class (e.g. `dynamic_margins`).
        subcenters: k centres per class; 1 is plain ArcFace.
        easy_margin: Apply the margin only where cos θ > 0.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        scale: float = 30.0,
        margins: float | Sequence[float] | torch.Tensor = 0.5,
        subcenters: int = 1,
        easy_margin: bool = False,
    ) -> None:
        super().__init__()
        if subcenters < 1:
            raise ValueError(f"subcenters must be at least 1, got {subcenters}")
        self.in_features, self.num_classes, self.subcenters = in_features, num_classes, subcenters
        self.scale = scale
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, in_features))
        nn.init.xavier_uniform_(self.weight)
        margins = torch.as_tensor(margins, dtype=torch.float32)
        if margins.ndim == 0:
            margins = margins.expand(num_classes).clone()
        if margins.shape != (num_classes,):
            raise ValueError(f"expected one margin or {num_classes}, got shape {tuple(margins.shape)}")
        # a buffer: saved with the weights and moved with the module, never trained
        self.register_buffer("margins", margins)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos θ (N, num_classes) between embeddings and the nearest centre of each class."""
        cos = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float()))
        if self.subcenters > 1:
            cos = cos.view(-1, self.num_classes, self.subcenters).amax(dim=-1)
        return cos

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(embeddings)
        if labels is None:
            return cos * self.scale
        labels = labels.long()
        valid = labels >= 0  # −1 marks samples without a class (e.g. new individuals): no margin
        safe = labels.clamp(min=0)
        target_cos = cos.gather(1, safe[:, None]).squeeze(1)
        m = self.margins[safe]
        sin = (1.0 - target_cos.pow(2)).clamp(min=0.0).sqrt()
        phi = target_cos * torch.cos(m) - sin * torch.sin(m)
        if self.easy_margin:
            phi = torch.where(target_cos > 0, phi, target_cos)
        else:
            phi = torch.where(target_cos > torch.cos(math.pi - m), phi, target_cos - m * torch.sin(m))
        phi = torch.where(valid, phi, target_cos)
        logits = cos.scatter(1, safe[:, None], phi[:, None].to(cos.dtype))
        return logits * self.scale

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, subcenters={self.subcenters}, "
            f"scale={self.scale}, margins=[{self.margins.min():.3f}, {self.margins.max():.3f}]"
        )


class SubCenterArcFace(ArcFace):
    """ArcFace with k centres per class, the closest one used (Deng et al. 2020; Happywhale 1st: k=2)."""

    def __init__(self, in_features: int, num_classes: int, subcenters: int = 2, **kwargs) -> None:
        super().__init__(in_features, num_classes, subcenters=subcenters, **kwargs)


def plain_arcface(in_features: int, num_classes: int, *, subcenters: int = 1, **kwargs) -> ArcFace:
    """ArcFace with one centre per class, whatever `subcenters` says (that setting is the `subcenter` head's)."""
    return ArcFace(in_features, num_classes, **kwargs)


HEADS = {"arcface": plain_arcface, "subcenter": SubCenterArcFace}


def create_head(name: str, in_features: int, num_classes: int, **kwargs) -> nn.Module:
    """A margin head by name (`arcface`, `subcenter`); kwargs as `ArcFace` takes them.

    Raises:
        ValueError: On an unknown name.
    """
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")
    return HEADS[name](in_features, num_classes, **kwargs)
