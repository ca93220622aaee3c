"""Cadence → model input, with the choices the top Kaggle teams made, each a config option."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from spotter.errors import SpotterError
from spotter.seti import OFF_PANELS, ON_PANELS

PANELS = ("on", "all")
STACKS = ("time", "channels")
NORMALIZE = ("none", "panel", "frequency", "channel", "cadence")
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
    # none | panel | frequency (each panel's channel over time) | channel (output) | cadence (each channel over
    # the whole cadence, then each row: what the de-Doppler search sees; see `standardize_cadence`)
    normalize: str = "none"
    subtract_baseline: bool = False  # remove each panel's per-frequency-channel median over time
    subtract_off: bool = False  # remove the OFF panels' mean spectrum from the ON panels
    # append each selected panel's power along every straight cadence path (rows: |drift|, columns: channel),
    # resized to the output: straight needles, which the classical search integrates optimally, become bright
    # points at the same place in every ON panel (stack: channels)
    dedoppler: bool = False


def validate_preprocess(cfg: SetiPreprocessConfig) -> None:
    """Checks the choices are known.

    Raises:
        SpotterError: Naming the bad key and the accepted values.
    """
    choices = (("panels", PANELS), ("stack", STACKS), ("normalize", NORMALIZE), ("resize_mode", RESIZE_MODES))
    for key, allowed in choices:
        if getattr(cfg, key) not in allowed:
            raise SpotterError(f"preprocess.{key} must be one of {' | '.join(allowed)}, got {getattr(cfg, key)!r}")
    if cfg.dedoppler and (cfg.stack != "channels" or cfg.transpose):
        raise SpotterError("preprocess.dedoppler needs stack: channels and no transpose")
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
    power = dedoppler_power(cadence) if cfg.dedoppler else None
    if cfg.subtract_baseline:
        x -= np.median(x, axis=1, keepdims=True)
    if cfg.subtract_off:
        off_spectrum = x[list(OFF_PANELS)].mean(axis=(0, 1))
        x[list(ON_PANELS)] -= off_spectrum
    if cfg.normalize == "cadence":
        x = standardize_cadence(x)
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
    if power is not None:
        if cfg.panels == "on":
            power = power[list(ON_PANELS)]
        power = _max_resize(power, x.shape[1], x.shape[2])
        x = np.concatenate([x, power])
    return np.ascontiguousarray(x, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _search(shape: tuple[int, int, int]):
    from spotter.seti.dedoppler import Dedoppler

    return Dedoppler(shape)


def dedoppler_power(cadence: np.ndarray) -> np.ndarray:
    """Each panel's power along every straight cadence path: (6, |drift| rows, channels), in noise stds.

    Entry (p, i, c) is panel p's power along the path through channel c at the cadence's middle row that
    drifts +i or −i steps of the de-Doppler search's fine grid, whichever is larger. A needle continuous
    across the cadence lights the same cell in every ON panel, so the first convolution can weigh ON
    against OFF there, as the classical search does. Folding the sign makes the map follow frequency
    flips of the cadence, so flip augmentation and TTA stay consistent with the cadence channels.
    """
    search = _search(tuple(np.shape(cadence)))
    power = search.path_power(cadence)
    centre = power.shape[1] // 2  # the drift grid is symmetric: the middle row is zero drift
    return np.maximum(power[:, centre:], power[:, centre::-1])


def _max_resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    # max pooling keeps a path's peak, which averaging would spread over its neighbours
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(x))[None]
    if tensor.shape[-2] >= height and tensor.shape[-1] >= width:
        return F.adaptive_max_pool2d(tensor, (height, width))[0].numpy()
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()


def standardize_cadence(x: np.ndarray) -> np.ndarray:
    """Removes what no needle looks like, in place on a (6, T, F) float32 cadence, and returns it.

    The median of each frequency channel over all six panels (bandpass, persistent zero-drift lines) and of
    each row (broadband bursts) is removed; then each channel is divided by the smaller of its ON and its
    OFF spread, so a line present in every panel is suppressed while a line in only one group (an ON-only
    needle) keeps its contrast, and each row by its spread.
    """
    panels, rows, chans = x.shape
    flat = x.reshape(panels * rows, chans)
    # statistics from every 4th row / 2nd channel: as good an estimate at a fraction of the cost, which
    # keeps one loader worker ahead of the model
    flat -= _lower_median(flat[::4], axis=0)
    # medians before spreads: a burst left in would inflate every channel's spread
    flat -= _lower_median(flat[:, ::2], axis=1)[:, None]
    on, off = x[list(ON_PANELS), ::4], x[list(OFF_PANELS), ::4]
    flat /= np.minimum(on.std(axis=(0, 1)), off.std(axis=(0, 1))) + 1e-6
    flat /= flat[:, ::2].std(axis=1, keepdims=True) + 1e-6
    return x


def _lower_median(x: np.ndarray, axis: int) -> np.ndarray:
    # the lower middle value by partition: 2-3x faster than np.median, and as robust
    k = (x.shape[axis] - 1) // 2
    return np.take(np.partition(x, k, axis=axis), k, axis=axis)


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
