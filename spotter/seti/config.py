"""The SETI training config, checked as it loads (no torch, setigen or blimpy: the CLI checks configs instantly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spotter.config import TrainConfig, require_all
from spotter.seti import NEEDLE_KINDS

# the names each choice accepts; the objects they stand for live with the code that imports torch
# (`spotter.seti.preprocess`, `spotter.models.pooling`, `spotter.engine.tta`), whose tests check the names match
PANELS = ("on", "all")
STACKS = ("time", "channels")
NORMALIZE = ("none", "panel", "frequency", "channel", "cadence")
RESIZE_MODES = ("bilinear", "bicubic", "nearest", "area")
POOLINGS = ("gem", "avg")
TTA = ("identity", "hflip", "vflip", "hvflip")
DEDOPPLER_BIN_ROWS = 16  # rows per time bin of the de-Doppler maps (`preprocess.dedoppler`): 17 of a 273-row panel


@dataclass
class SetiPreprocessConfig:
    """How a (6, 273, 256) cadence becomes a (C, H, W) float32 input; a section of the SETI training config.

    Published choices: 1st place stacked the 3 ON panels in time (819x256, one channel) after removing
    backgrounds; 2nd stacked all 6 (1638x256), transposed and resized to 512x512; 3rd used ON panels
    only resized to 768x768.
    """

    # average every N rows of each panel first (273 -> 273 // N rows, trailing rows dropped); 0 or 1 keeps them.
    # Every later step then works on N times fewer rows; with N = 8 a needle drifts under one channel per row
    bin_rows: int = 0
    panels: str = "on"  # on: panels 0, 2, 4 | all: the six panels
    stack: str = "time"  # time: panels one above the other, 1 channel | channels: one channel per panel
    transpose: bool = False  # swap time and frequency axes (2nd place)
    height: int = 0  # resize to height x width after stacking/transposing; 0 keeps the size
    width: int = 0
    resize_mode: str = "bilinear"  # bilinear | bicubic | nearest | area
    # none | panel | frequency (each panel's channel over time) | channel (output) | cadence (each channel over
    # the whole cadence, then each row: what the de-Doppler search sees; `spotter.seti.cleaning.clean_cadence`)
    normalize: str = "none"
    subtract_baseline: bool = False  # remove each panel's per-frequency-channel median over time
    subtract_off: bool = False  # remove the OFF panels' mean spectrum from the ON panels
    # append each selected panel's power along every straight cadence path (rows: |drift|, columns: channel),
    # and the de-Doppler search's score of each path (ON power less the OFF power along it), max-pooled to the
    # output: straight needles, which the classical search integrates optimally, become bright points at the
    # same place in every ON panel and the score map (stack: channels); the maps bin time by
    # DEDOPPLER_BIN_ROWS rows
    dedoppler: bool = False


@dataclass
class SetiModelConfig:
    """Backbone → optional triplet attention → pooling → one logit."""

    backbone: str = "resnet18d"  # any timm model
    backbone_args: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model arguments
    pretrained: str = "false"  # ImageNet weights: true (timm hub, or its local cache) | false | a weights file
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
    # a generator preset (`spotter seti synth --preset`) whose needle recipe injection follows: its SNR range
    # (in place of inject_snr) and its shares of part-time, pulsed and one-or-two-ON-panel needles
    inject_preset: str | None = None
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

    def check(self) -> None:
        """The common checks, then the SETI sections': known choices and the combinations that work.

        Raises:
            SpotterError: Naming the first key out of range.
        """
        from spotter.seti.needles import NEEDLE_PRESETS  # numpy only: still no torch

        super().check()
        p, m, a = self.preprocess, self.model, self.augment
        row_flips = [name for name in self.tta if name in ("vflip", "hvflip")]
        require_all(self, [
            (p.panels in PANELS, "preprocess.panels", " | ".join(PANELS)),
            (p.stack in STACKS, "preprocess.stack", " | ".join(STACKS)),
            (p.normalize in NORMALIZE, "preprocess.normalize", " | ".join(NORMALIZE)),
            (p.resize_mode in RESIZE_MODES, "preprocess.resize_mode", " | ".join(RESIZE_MODES)),
            (p.bin_rows >= 0, "preprocess.bin_rows", "0 or more"),
            (p.height >= 0 and p.width >= 0 and (p.height == 0) == (p.width == 0), "preprocess.height",
             f"0 with preprocess.width 0, or positive with it positive (width: {p.width})"),
            (not (self.image_size and p.height), "image_size", "0 when preprocess.height/.width are set"),
            (not p.dedoppler or (p.stack == "channels" and not p.transpose), "preprocess.dedoppler",
             "false unless preprocess.stack is channels and preprocess.transpose false"),
            (not (p.dedoppler and p.bin_rows > 1 and DEDOPPLER_BIN_ROWS % p.bin_rows), "preprocess.bin_rows",
             f"a divisor of {DEDOPPLER_BIN_ROWS} with preprocess.dedoppler"),
            # a flip of the rows would reverse the de-Doppler maps' |drift| axis, not follow the cadence
            (not (p.dedoppler and a.vflip > 0), "augment.vflip", "0 with preprocess.dedoppler"),
            (not (p.dedoppler and row_flips), "tta", "free of vflip and hvflip with preprocess.dedoppler"),
            (all(name in TTA for name in self.tta), "tta", f"a list of {' | '.join(TTA)}"),
            (bool(a.inject_kinds) and all(k in NEEDLE_KINDS for k in a.inject_kinds), "augment.inject_kinds",
             f"a non-empty list of {' | '.join(NEEDLE_KINDS)}"),
            (len(a.inject_snr) == 2 and 0 < a.inject_snr[0] <= a.inject_snr[1], "augment.inject_snr",
             "[low, high] with 0 < low <= high"),
            (a.inject_preset is None or a.inject_preset in NEEDLE_PRESETS, "augment.inject_preset",
             f"null or one of {' | '.join(NEEDLE_PRESETS)}"),
            *((0 <= getattr(a, key) <= 1, f"augment.{key}", "in [0, 1]")
              for key in ("hflip", "vflip", "inject", "inject_rfi")),
            (m.pooling in POOLINGS, "model.pooling", " | ".join(POOLINGS)),
            (m.gem_p > 0, "model.gem_p", "positive"),
            (len(m.stem_stride) in (0, 2) and all(s >= 1 for s in m.stem_stride), "model.stem_stride",
             "[] or [h, w] of positive strides"),
            (not m.score_head or p.dedoppler, "model.score_head", "false unless preprocess.dedoppler is true"),
        ])
