"""The toy task's config (kept free of torch imports so the CLI checks configs instantly)."""

from __future__ import annotations

from dataclasses import dataclass

from spotter.config import TrainConfig


@dataclass
class ToyConfig(TrainConfig):
    """Toy training config: a timm backbone name and its pooling."""

    model: str = "test_resnet"  # timm model name
    pooling: str = "gem"  # gem | avg
