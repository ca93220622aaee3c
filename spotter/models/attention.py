"""Triplet attention (Misra et al., 2021): cheap attention across (C,H), (C,W) and (H,W) by rotation.

SETI 3rd place put it between the EfficientNet trunk and GeM pooling (kernel 13).
"""

from __future__ import annotations

import torch
from torch import nn


class ZPool(nn.Module):
    """Max and mean over dim 1, stacked as two channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


class AttentionGate(nn.Module):
    """Z-pool → k×k conv → BatchNorm → sigmoid, multiplied onto the input."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.pool = ZPool()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.norm(self.conv(self.pool(x))))


class TripletAttention(nn.Module):
    """Mean of three gates: over H (C–W interaction), over W (C–H), and over C (H–W, plain spatial).

    Args:
        kernel_size: Side of each gate's convolution.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.gate_cw = AttentionGate(kernel_size)
        self.gate_ch = AttentionGate(kernel_size)
        self.gate_hw = AttentionGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # rotate so the dimension to pool over sits at dim 1, gate, rotate back
        cw = self.gate_cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        ch = self.gate_ch(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        return (cw + ch + self.gate_hw(x)) / 3.0
