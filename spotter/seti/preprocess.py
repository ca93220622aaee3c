"""Cadence → model input, with the choices the top Kaggle teams made, each a config option."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from spotter.errors import SpotterError
from spotter.seti import OFF_PANELS, ON_PANELS
from spotter.seti.cleaning import bin_time, clean_cadence
from spotter.seti.dedoppler import Dedoppler, DedopplerConfig

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
    # the whole cadence, then each row: what the de-Doppler search sees; see `clean_cadence`)
    normalize: str = "none"
    subtract_baseline: bool = False  # remove each panel's per-frequency-channel median over time
    subtract_off: bool = False  # remove the OFF panels' mean spectrum from the ON panels
    # append each selected panel's power along every straight cadence path (rows: |drift|, columns: channel),
    # and the de-Doppler search's score of each path (ON power less the OFF power along it), max-pooled to the
    # output: straight needles, which the classical search integrates optimally, become bright points at the
    # same place in every ON panel and the score map (stack: channels); the search bins time by 16 rows
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
    if cfg.bin_rows < 0 or (cfg.dedoppler and cfg.bin_rows > 1 and DEDOPPLER_BIN_ROWS % cfg.bin_rows):
        raise SpotterError(
            f"preprocess.bin_rows must be 0 or positive (a divisor of {DEDOPPLER_BIN_ROWS} with dedoppler), "
            f"got {cfg.bin_rows}"
        )
    if cfg.height < 0 or cfg.width < 0 or (cfg.height == 0) != (cfg.width == 0):
        raise SpotterError(
            f"preprocess.height and .width must both be 0 or both positive, got {cfg.height}, {cfg.width}"
        )


def preprocess(cadence: np.ndarray, cfg: SetiPreprocessConfig) -> np.ndarray:
    """Turns one (6, T, F) cadence into a (C, H, W) float32 array; pure (the input is not modified).

    Steps, in order: time binning, background subtraction, panel selection, normalization, stacking,
    transposition, resize; the de-Doppler maps are computed from the binned, cleaned panels.
    """
    validate_preprocess(cfg)
    if np.ndim(cadence) != 3 or np.shape(cadence)[0] != 6:
        raise SpotterError(f"expected a (6, T, F) cadence, got shape {np.shape(cadence)}")
    rows_per_row = max(cfg.bin_rows, 1)
    x = bin_time(np.asarray(cadence), rows_per_row)
    # the de-Doppler maps search the cleaned panels; when the input is normalized the same way, clean once
    cleaned_once = cfg.dedoppler and cfg.normalize == "cadence" and not (cfg.subtract_baseline or cfg.subtract_off)
    power = None
    if cfg.dedoppler:
        cleaned = clean_cadence(x if cleaned_once else x.copy())
        power = dedoppler_power(cleaned, np.shape(cadence), rows_per_row)
    if cfg.subtract_baseline:
        x -= np.median(x, axis=1, keepdims=True)
    if cfg.subtract_off:
        off_spectrum = x[list(OFF_PANELS)].mean(axis=(0, 1))
        x[list(ON_PANELS)] -= off_spectrum
    if cfg.normalize == "cadence" and not cleaned_once:
        x = clean_cadence(x)
    if cfg.normalize == "cadence" and rows_per_row > 1:
        # in units of one observed row's noise (a mean of N rows has 1/sqrt(N) of it), so a needle's value
        # does not depend on bin_rows
        x *= np.float32(1 / np.sqrt(rows_per_row))
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
            power = power[[*ON_PANELS, CADENCE_SCORE]]
        power = _max_resize(power, x.shape[1], x.shape[2])
        x = np.concatenate([x, power])
    return np.ascontiguousarray(x, dtype=np.float32)


DEDOPPLER_BIN_ROWS = 16  # rows per time bin of the de-Doppler maps: 17 bins of a 273-row panel
CADENCE_SCORE = 6  # the de-Doppler maps' row after the six panels'


@functools.lru_cache(maxsize=4)
def _search(shape: tuple[int, int, int]) -> Dedoppler:
    return Dedoppler(shape, DedopplerConfig(bin_rows=DEDOPPLER_BIN_ROWS))


def dedoppler_power(
    cleaned: np.ndarray, shape: tuple[int, int, int] | None = None, rows_per_row: int = 1
) -> np.ndarray:
    """Each panel's power along every straight cadence path, then the paths' cadence score: (7, |drift|, channels).

    Entry (p, i, c) is panel p's power, in noise stds, along the path through channel c at the cadence's
    middle row that drifts +i or −i steps of the de-Doppler search's fine grid, whichever is larger. A
    needle continuous across the cadence lights the same cell in every ON panel, so the first convolution
    can weigh ON against OFF there. Row `CADENCE_SCORE` is that weighing done as the classical search does
    it, path by path before the sign is folded: ON power less the OFF power along the path and near where it
    crosses the OFF panels (`Dedoppler.score_paths`). Folding the sign makes the maps follow frequency flips of
    the cadence, so flip augmentation and TTA stay consistent with the cadence channels.

    Args:
        cleaned: A (6, rows, channels) cadence after `clean_cadence`, its rows possibly averaged in
            groups of `rows_per_row` (`bin_time`) first.
        shape: The observed cadence's shape when `cleaned` is binned (it sets where paths cross panels).
        rows_per_row: Observed rows per row of `cleaned`, a divisor of `DEDOPPLER_BIN_ROWS`.
    """
    search = _search(tuple(shape or np.shape(cleaned)))
    # the search's time bins, each rescaled to unit spread as its sums assume
    bins = bin_time(cleaned, DEDOPPLER_BIN_ROWS // rows_per_row)
    flat = bins.reshape(-1, bins.shape[-1])
    flat /= flat.std(axis=1, keepdims=True) + 1e-6
    power = search.paths_of_prepared(bins)
    power = np.concatenate([power, search.score_paths(power, bins)[None]])
    centre = power.shape[1] // 2  # the drift grid is symmetric: the middle row is zero drift
    return np.maximum(power[:, centre:], power[:, centre::-1])


def _max_resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    # max pooling keeps a path's peak, which averaging would spread over its neighbours
    if x.shape[-2] >= height and x.shape[-1] >= width:
        # each output cell takes the max over its own run of input rows/columns (they partition the input),
        # gathered as (runs, longest run) with short runs repeating their last index: ~10x faster than torch's
        # adaptive pooling on one thread
        for axis, size in ((1, height), (2, width)):
            length = x.shape[axis]
            if length != size:
                starts = np.arange(size + 1) * length // size
                index = np.minimum(starts[:-1, None] + np.arange(-(-length // size)), starts[1:, None] - 1)
                x = np.take(x, index, axis=axis).max(axis=axis + 1)
        return x
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(x))[None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()


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
