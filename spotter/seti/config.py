"""The SETI training config (free of torch imports so the CLI checks configs instantly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from spotter.config import TrainConfig
from spotter.seti import NEEDLE_KINDS
from spotter.seti.preprocess import SetiPreprocessConfig


@dataclass
class SetiModelConfig:
    """Backbone → optional triplet attention → pooling → one logit."""

    backbone: str = "resnet18d"  # any timm model
    backbone_args: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model arguments
    weights: Optional[str] = None  # a local weights file (.safetensors or torch); None trains from scratch
    stem_stride: list[int] = field(default_factory=list)  # e.g. [1, 2]: (H, W) stride of the first conv
    pooling: str = "gem"  # gem | avg
    gem_p: float = 3.0
    gem_learnable: bool = True
    triplet_attention: bool = False
    attention_kernel: int = 7
    drop_rate: float = 0.0
    # also give the head the peak of the input's de-Doppler score map (needs preprocess.dedoppler), so the
    # classical search's statistic reaches the logit directly, beside the pooled features
    score_head: bool = False


@dataclass
class SetiAugmentConfig:
    """Training augmentations; flips act on the preprocessed (C, H, W) input."""

    hflip: float = 0.5  # chance of flipping W (frequency, unless transposed)
    vflip: float = 0.0  # chance of flipping H (time, unless transposed)
    inject: float = 0.0  # chance a training negative gets a generated needle and becomes positive
    inject_kinds: list[str] = field(default_factory=lambda: list(NEEDLE_KINDS))
    inject_snr: list[float] = field(default_factory=lambda: [8.0, 60.0])  # log-uniform range
    # chance a training sample (either class) gets a generated signal in all six panels or in OFF panels
    # only, label unchanged: interference the cadence filter rejects, so a detector must compare ON and OFF
    inject_rfi: float = 0.0


@dataclass
class SetiConfig(TrainConfig):
    """SETI training: the common keys plus preprocessing, model, augmentation and TTA.

    `image_size` > 0 resizes the preprocessed input to a square (the published recipes: 512, 768);
    `preprocess.height`/`.width` give a rectangle instead.
    """

    preprocess: SetiPreprocessConfig = field(default_factory=SetiPreprocessConfig)
    model: SetiModelConfig = field(default_factory=SetiModelConfig)
    augment: SetiAugmentConfig = field(default_factory=SetiAugmentConfig)
    tta: list[str] = field(default_factory=lambda: ["identity", "hflip"])
    old_data: bool = False  # also train on old_leaky_data (train_old and, when labelled, test_old)
