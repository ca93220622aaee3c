"""Test-time augmentation: named input transforms whose predictions are averaged."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]

TRANSFORMS: dict[str, Transform] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(-1),  # width: frequency for SETI snippets
    "vflip": lambda x: x.flip(-2),  # height: time for SETI snippets
    "hvflip": lambda x: x.flip(-1).flip(-2),
}


def create_tta(names: Sequence[str]) -> list[Transform]:
    """The transforms named (e.g. ["identity", "hflip"]); raises ValueError on an unknown name."""
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown TTA transform(s) {unknown}; expected {', '.join(TRANSFORMS)}")
    return [TRANSFORMS[n] for n in names]


def predict_with_tta(predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    """Mean of `predict(t(x))` over the transforms (identity alone when none are given)."""
    transforms = list(transforms) or [TRANSFORMS["identity"]]
    return torch.stack([predict(t(x)).float() for t in transforms]).mean(0)
