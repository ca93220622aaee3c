"""Cadence → model input, with the choices the top Kaggle teams made, each a config option."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spotter.errors import SpotterError
from spotter.seti import OFF_PANELS, ON_PANELS

PANELS = ("on", "all")
STACKS = ("time", "channels")
NORMALIZE = ("none", "panel", "frequency", "channel")
RESIZE_MODES = ("bilinear", "bicubic", "nearest", "area")


@dataclass
class SetiPreprocessConfig:
    """How a (6, 273, 256) cadence becomes a (C, H, W) float32 input; a section of the SETI training config.

    Published choices: 1st place stacked the 3 ON panels in time (819x256, one channel) after removing
    backgrounds; 2nd stacked all 6 (1638x256), transposed and resized to 512x512; 3rd used ON panels
    only resized to 768x768.
    """

    panels: str = "on"  # on: panels 0, 2, 4 | all: the six panels
    stack: str = "time"  # time: panels one above the other, 1 channel | channels: one channel per panel
    transpose: bool = False  # swap time and frequency axes (2nd place)
    height: int = 0  # resize to height x width after stacking/transposing; 0 keeps the size
    width: int = 0
    resize_mode: str = "bilinear"  # bilinear | bicubic | nearest | area
    normalize: str = "none"  # none | panel | frequency (each panel's channel over time) | channel (output)
    subtract_baseline: bool = False  # remove each panel's per-frequency-channel median over time
    subtract_off: bool = False  # remove the OFF panels' mean spectrum from the ON panels


def validate_preprocess(cfg: SetiPreprocessConfig) -> None:
    """Checks the choices are known.

    Raises:
        SpotterError: Naming the bad key and the accepted values.
    """
    choices = (("panels", PANELS), ("stack", STACKS), ("normalize", NORMALIZE), ("resize_mode", RESIZE_MODES))
    for key, allowed in choices:
        if getattr(cfg, key) not in allowed:
            raise SpotterError(f"preprocess.{key} must be one of {' | '.join(allowed)}, got {getattr(cfg, key)!r}")
    if cfg.height < 0 or cfg.width < 0 or (cfg.height == 0) != (cfg.width == 0):
        raise SpotterError(
            f"preprocess.height and .width must both be 0 or both positive, got {cfg.height}, {cfg.width}"
        )


def preprocess(cadence: np.ndarray, cfg: SetiPreprocessConfig) -> np.ndarray:
    """Turns one (6, T, F) cadence into a (C, H, W) float32 array; pure (the input is not modified).

    Steps, in order: background subtraction, panel selection, normalization, stacking, transposition, resize.
    """
    validate_preprocess(cfg)
    x = np.array(cadence, dtype=np.float32, copy=True)
    if x.ndim != 3 or x.shape[0] != 6:
        raise SpotterError(f"expected a (6, T, F) cadence, got shape {x.shape}")
    if cfg.subtract_baseline:
        x -= np.median(x, axis=1, keepdims=True)
    if cfg.subtract_off:
        off_spectrum = x[list(OFF_PANELS)].mean(axis=(0, 1))
        x[list(ON_PANELS)] -= off_spectrum
    if cfg.panels == "on":
        x = x[list(ON_PANELS)]
    if cfg.normalize == "panel":
        x = _standardize(x, axis=(1, 2))
    elif cfg.normalize == "frequency":
        x = _standardize(x, axis=1)
    if cfg.stack == "time":
        x = x.reshape(1, -1, x.shape[2])
    if cfg.transpose:
        x = x.transpose(0, 2, 1)
    if cfg.normalize == "channel":
        x = _standardize(x, axis=(1, 2))
    if cfg.height:
        x = _resize(x, cfg.height, cfg.width, cfg.resize_mode)
    return np.ascontiguousarray(x, dtype=np.float32)


def _standardize(x: np.ndarray, axis) -> np.ndarray:
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / np.where(std > 0, std, 1.0)


def _resize(x: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(x))[None]
    options = {"align_corners": False, "antialias": True} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(tensor, size=(height, width), mode=mode, **options)
    return out[0].numpy()
