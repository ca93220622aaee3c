"""Generalized-mean (GeM) pooling: p=1 is average pooling, large p approaches max pooling."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn


class GeM(nn.Module):
    """GeM over the spatial dims of an NCHW map: (mean(clamp(x, eps)^p))^(1/p).

    Args:
        p: Initial (or fixed) exponent; SETI 3rd place used p=4 fixed, Happywhale 1st p=3.
        learnable: Whether p is trained.
        eps: Floor applied before the power, keeping gradients finite.
    """

    def __init__(self, p: float = 3.0, learnable: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)
        return pooled.flatten(1)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, learnable={self.p.requires_grad}"


class AvgPool(nn.Module):
    """Global average pooling to (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


POOLING = {"gem": GeM, "avg": AvgPool}


def create_pooling(name: str, **options) -> nn.Module:
    """A pooling layer by name (`gem`, `avg`).

    Args:
        options: Settings of the layers that take them (GeM: `p`, `learnable`, `eps`); a layer is given only
            those its constructor names, so a model can pass its config's settings whichever layer is chosen.
    """
    if name not in POOLING:
        raise ValueError(f"unknown pooling {name!r}; expected one of {', '.join(POOLING)}")
    layer = POOLING[name]
    takes = inspect.signature(layer).parameters
    return layer(**{key: value for key, value in options.items() if key in takes})
