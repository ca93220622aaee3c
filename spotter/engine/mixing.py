"""Batch mixing: mixup, cutmix, and their OR-label forms for binary targets (y = y1 + y2 − y1·y2).

OR labels say "a needle is present if either image had one", which suits detection: blending a positive
into a negative still contains the needle, so its target stays 1 rather than dropping to λ.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from spotter.errors import SpotterError


def or_labels(y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
    """Probabilistic OR of two binary (or soft) targets."""
    return y1 + y2 - y1 * y2


class Mixup:
    """Blends each sample with a random partner: x = λ·x1 + (1−λ)·x2, λ ~ Beta(α, α).

    Args:
        alpha: Beta distribution parameter.
        or_targets: Combine targets by OR instead of by λ (OR-mixup, SETI 2nd/3rd place).
    """

    def __init__(self, alpha: float = 1.0, or_targets: bool = False) -> None:
        self.alpha = alpha
        self.or_targets = or_targets

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lam = float(rng.beta(self.alpha, self.alpha))
        perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
        mixed_x = lam * x + (1.0 - lam) * x[perm]
        return mixed_x, _mix_targets(y, perm, lam, self.or_targets)


class CutMix:
    """Pastes a random box from a partner sample; targets mix by the pasted area (or by OR).

    Args:
        alpha: Beta distribution parameter for the kept area.
        or_targets: Combine targets by OR instead of by area.
    """

    def __init__(self, alpha: float = 1.0, or_targets: bool = False) -> None:
        self.alpha = alpha
        self.or_targets = or_targets

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = x.shape[-2:]
        lam = float(rng.beta(self.alpha, self.alpha))
        cut_h, cut_w = int(height * np.sqrt(1 - lam)), int(width * np.sqrt(1 - lam))
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
        mixed_x = x.clone()
        mixed_x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        kept = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)  # the exact area after clipping
        return mixed_x, _mix_targets(y, perm, kept, self.or_targets)


def _mix_targets(y: torch.Tensor, perm: torch.Tensor, lam: float, use_or: bool) -> torch.Tensor:
    y = y.float()
    return or_labels(y, y[perm]) if use_or else lam * y + (1.0 - lam) * y[perm]


Mixer = Callable[[torch.Tensor, torch.Tensor, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]

MIXERS: dict[str, Callable[[float], Mixer]] = {
    "mixup": lambda alpha: Mixup(alpha),
    "or_mixup": lambda alpha: Mixup(alpha, or_targets=True),
    "cutmix": lambda alpha: CutMix(alpha),
    "or_cutmix": lambda alpha: CutMix(alpha, or_targets=True),
}


def create_mixer(name: str, alpha: float) -> Mixer | None:
    """The named mixer, or None for `none`.

    Raises:
        SpotterError: If the name is unknown.
    """
    if name == "none":
        return None
    if name not in MIXERS:
        raise SpotterError(f"unknown mixing {name!r}; expected none or one of {', '.join(MIXERS)}")
    return MIXERS[name](alpha)
