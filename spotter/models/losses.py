"""Losses by name: BCE and focal for binary (soft) targets, cross-entropy for classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spotter.config import LossConfig
from spotter.errors import SpotterError


class BCEWithLogits(nn.Module):
    """Binary cross-entropy on logits; targets may be soft (mixup) and are reshaped to the logits."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float().view_as(logits))


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.): BCE down-weighted by (1 − p_t)^γ on easy samples.

    With γ = 0 and no α it equals BCE. Soft targets are supported through p_t = p·y + (1−p)(1−y).

    Args:
        gamma: Focusing exponent (SETI 3rd place: 0.5; 4th: 2).
        alpha: Weight of the positive class (4th: 0.7), or None for no class weighting.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        targets = targets.float().view_as(logits)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        prob = torch.sigmoid(logits)
        p_t = prob * targets + (1 - prob) * (1 - targets)
        loss = bce * (1 - p_t).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * (self.alpha * targets + (1 - self.alpha) * (1 - targets))
        return loss.mean()


class CrossEntropy(nn.Module):
    """Cross-entropy over class logits; targets are class indices or (mixed) probabilities."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)


LOSSES = {
    "bce": lambda cfg: BCEWithLogits(),
    "focal": lambda cfg: FocalLoss(cfg.gamma, cfg.alpha),
    "ce": lambda cfg: CrossEntropy(cfg.label_smoothing),
}


def create_loss(cfg: LossConfig) -> nn.Module:
    """The loss named by `cfg.name`.

    Raises:
        SpotterError: If the name is unknown.
    """
    if cfg.name not in LOSSES:
        raise SpotterError(f"unknown loss {cfg.name!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[cfg.name](cfg)
