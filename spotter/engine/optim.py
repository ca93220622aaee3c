"""Optimizers by name (via timm.optim), backbone/head parameter groups, and the warmup-cosine schedule."""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from torch import nn

from spotter.errors import SpotterError

# our name -> timm.optim name
OPTIMIZERS = {"adamw": "adamw", "adam": "adam", "sgd": "sgd", "madgrad": "madgrad", "radam": "radam"}

BACKBONE_PREFIX = "backbone."


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at `step`: linear warmup to 1, then cosine decay to `min_ratio`.

    A pure function of the step, so resuming needs no scheduler state.

    Args:
        step: Optimizer steps taken so far (0 for the first update).
        total_steps: Optimizer steps in the whole run.
        warmup_steps: Steps of linear warmup; the first update uses 1/warmup_steps of the peak.
        min_ratio: The multiplier reached at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(model: nn.Module, lr: float, head_lr_mult: float) -> list[dict]:
    """Splits trainable parameters into a backbone group (names under `backbone.`) and a head group.

    Models mark their pretrained trunk by naming it `backbone`; everything else trains at
    `lr * head_lr_mult` (the Happywhale winners used ×10 for the ArcFace head).
    """
    backbone, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (backbone if name.startswith(BACKBONE_PREFIX) else head).append(param)
    groups = [
        {"params": backbone, "lr": lr, "base_lr": lr, "name": "backbone"},
        {"params": head, "lr": lr * head_lr_mult, "base_lr": lr * head_lr_mult, "name": "head"},
    ]
    return [g for g in groups if g["params"]]


def create_optimizer(
    name: str, model: nn.Module, lr: float, weight_decay: float, head_lr_mult: float = 1.0
) -> torch.optim.Optimizer:
    """Builds the named optimizer over the backbone/head groups.

    Raises:
        SpotterError: If the optimizer name is unknown.
    """
    if name not in OPTIMIZERS:
        raise SpotterError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    groups = parameter_groups(model, lr, head_lr_mult)
    return create_optimizer_v2(groups, opt=OPTIMIZERS[name], lr=lr, weight_decay=weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    """Sets every group's LR to its base LR times `multiplier`."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * multiplier
