"""Cadence → model input: a pipeline of small steps built once from `preprocess.*`, run per sample as a loop.

Each step does one of the choices the top Kaggle teams made (time binning, background subtraction, panel
selection, normalization, stacking, transposition, resizing, the de-Doppler maps); `build_pipeline` puts
the ones a config asks for in order, so a sample pays only for those.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from spotter.errors import SpotterError
from spotter.seti import OFF_PANELS, ON_PANELS
from spotter.seti.cleaning import bin_time, clean_cadence
from spotter.seti.config import DEDOPPLER_BIN_ROWS, SetiPreprocessConfig
from spotter.seti.dedoppler import Dedoppler, DedopplerConfig

CADENCE_SCORE = 6  # the de-Doppler maps' row after the six panels'


@dataclass
class Sample:
    """What the steps hand on: the input being built, and the maps waiting to be appended to it."""

    image: np.ndarray  # the (6, T, F) cadence at first, the (C, H, W) input at the end
    shape: tuple[int, ...]  # the observed cadence's shape (the de-Doppler search grid depends on it)
    maps: np.ndarray | None = None  # (7, |drift|, channels) from `DedopplerMaps`, for `AppendMaps`


class Step(Protocol):
    """One preprocessing step: changes the sample (its image, in place or by replacing it)."""

    def __call__(self, sample: Sample) -> None: ...


@dataclass(frozen=True)
class BinRows:
    """The mean of every `rows` rows of each panel (`bin_time`): also the float32 copy later steps change in place."""

    rows: int

    def __call__(self, sample: Sample) -> None:
        sample.image = bin_time(sample.image, self.rows)


@dataclass(frozen=True)
class DedopplerMaps:
    """Keeps `dedoppler_power` of the cleaned panels for `AppendMaps`.

    Args:
        rows_per_row: Observed rows per row of the image (`BinRows`).
        clean: Clean a copy of the image first; False when the image already is the cleaned cadence.
    """

    rows_per_row: int
    clean: bool = True

    def __call__(self, sample: Sample) -> None:
        cleaned = clean_cadence(sample.image.copy()) if self.clean else sample.image
        sample.maps = dedoppler_power(cleaned, sample.shape, self.rows_per_row)


@dataclass(frozen=True)
class SubtractBaseline:
    """Removes each panel's per-channel median over time."""

    def __call__(self, sample: Sample) -> None:
        sample.image -= np.median(sample.image, axis=1, keepdims=True)


@dataclass(frozen=True)
class SubtractOff:
    """Removes the OFF panels' mean spectrum from the ON panels."""

    def __call__(self, sample: Sample) -> None:
        x = sample.image
        x[list(ON_PANELS)] -= x[list(OFF_PANELS)].mean(axis=(0, 1))


@dataclass(frozen=True)
class CleanCadence:
    """`clean_cadence`: what the de-Doppler search sees (bandpass, lines in every panel and bursts removed)."""

    def __call__(self, sample: Sample) -> None:
        sample.image = clean_cadence(sample.image)


@dataclass(frozen=True)
class RowNoiseUnits:
    """Scales a cleaned image of binned rows to units of one observed row's noise (a mean of N rows has
    1/sqrt(N) of it), so a needle's value does not depend on `bin_rows`."""

    rows_per_row: int

    def __call__(self, sample: Sample) -> None:
        sample.image *= np.float32(1 / np.sqrt(self.rows_per_row))


@dataclass(frozen=True)
class SelectPanels:
    """Keeps the given panels, in order."""

    panels: tuple[int, ...]

    def __call__(self, sample: Sample) -> None:
        sample.image = sample.image[list(self.panels)]


@dataclass(frozen=True)
class Standardize:
    """Zero mean and unit spread over `axis` of the image (constant slices are only centred)."""

    axis: int | tuple[int, ...]

    def __call__(self, sample: Sample) -> None:
        x = sample.image
        mean = x.mean(axis=self.axis, keepdims=True)
        std = x.std(axis=self.axis, keepdims=True)
        sample.image = (x - mean) / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class StackTime:
    """Puts the panels one above the other: (P, T, F) → (1, P·T, F)."""

    def __call__(self, sample: Sample) -> None:
        sample.image = sample.image.reshape(1, -1, sample.image.shape[2])


@dataclass(frozen=True)
class Transpose:
    """Swaps the time and frequency axes."""

    def __call__(self, sample: Sample) -> None:
        sample.image = sample.image.transpose(0, 2, 1)


@dataclass(frozen=True)
class Resize:
    """Interpolates each channel to `height` x `width` (torch; antialiased when shrinking bilinear/bicubic)."""

    height: int
    width: int
    mode: str

    def __call__(self, sample: Sample) -> None:
        import torch
        import torch.nn.functional as F

        tensor = torch.from_numpy(np.ascontiguousarray(sample.image))[None]
        options = {"align_corners": False, "antialias": True} if self.mode in ("bilinear", "bicubic") else {}
        sample.image = F.interpolate(tensor, size=(self.height, self.width), mode=self.mode, **options)[0].numpy()


@dataclass(frozen=True)
class AppendMaps:
    """Appends the de-Doppler maps, max-pooled to the image's size, as channels after the image's.

    Args:
        rows: The maps to keep (`DedopplerMaps` rows: panels, then `CADENCE_SCORE`); None keeps all seven.
    """

    rows: tuple[int, ...] | None = None

    def __call__(self, sample: Sample) -> None:
        maps = sample.maps if self.rows is None else sample.maps[list(self.rows)]
        x = sample.image
        sample.image = np.concatenate([x, _max_resize(maps, x.shape[1], x.shape[2])])


STAGES = ("cadence", "panels", "image")  # where a normalizer's steps go


class Normalizer(NamedTuple):
    """A `preprocess.normalize` choice: the steps it adds (given the rows per image row) and where they go."""

    stage: str  # cadence: the six panels, after background subtraction | panels: the selected panels | image
    steps: Callable[[int], list[Step]]


def _cadence_steps(rows_per_row: int) -> list[Step]:
    return [CleanCadence(), *([RowNoiseUnits(rows_per_row)] if rows_per_row > 1 else [])]


NORMALIZERS: dict[str, Normalizer] = {
    "none": Normalizer("cadence", lambda rows: []),
    "panel": Normalizer("panels", lambda rows: [Standardize((1, 2))]),
    "frequency": Normalizer("panels", lambda rows: [Standardize(1)]),  # each panel's channel over time
    "channel": Normalizer("image", lambda rows: [Standardize((1, 2))]),  # each channel of the stacked image
    "cadence": Normalizer("cadence", _cadence_steps),
}
PANEL_CHOICES: dict[str, tuple[int, ...] | None] = {"on": ON_PANELS, "all": None}  # None: no selection
STACK_STEPS: dict[str, list[Step]] = {"time": [StackTime()], "channels": []}


class Pipeline:
    """Turns one (6, T, F) cadence into a (C, H, W) float32 array by running its steps in order; pure (the
    input is not modified). Build it once with `build_pipeline`."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = tuple(steps)

    def __call__(self, cadence: np.ndarray) -> np.ndarray:
        if np.ndim(cadence) != 3 or np.shape(cadence)[0] != 6:
            raise SpotterError(f"expected a (6, T, F) cadence, got shape {np.shape(cadence)}")
        sample = Sample(np.asarray(cadence), np.shape(cadence))
        for step in self.steps:
            step(sample)
        return np.ascontiguousarray(sample.image, dtype=np.float32)

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(map(repr, self.steps))})"


def build_pipeline(cfg: SetiPreprocessConfig) -> Pipeline:
    """The steps a (checked, see `SetiConfig.check`) preprocessing config asks for, in order.

    Order: time binning; the de-Doppler maps, from the binned and cleaned panels; background subtraction;
    cadence normalization; panel selection; panel normalization; stacking; transposition; image
    normalization; resize; the maps appended.

    Raises:
        SpotterError: On an unknown choice, naming the key.
    """
    rows = max(cfg.bin_rows, 1)
    normalizer = _choose(NORMALIZERS, "normalize", cfg.normalize)
    panels = _choose(PANEL_CHOICES, "panels", cfg.panels)
    normalizing = {stage: normalizer.steps(rows) if stage == normalizer.stage else [] for stage in STAGES}
    cadence_steps = [
        *([SubtractBaseline()] if cfg.subtract_baseline else []),
        *([SubtractOff()] if cfg.subtract_off else []),
        *normalizing["cadence"],
    ]
    steps: list[Step] = [BinRows(rows)]
    if cfg.dedoppler:
        # the maps search the cleaned panels: when the input is cleaned first thing, clean once
        cleaned_first = bool(cadence_steps) and isinstance(cadence_steps[0], CleanCadence)
        if cleaned_first:
            steps.append(cadence_steps.pop(0))
        steps.append(DedopplerMaps(rows, clean=not cleaned_first))
    steps += cadence_steps
    if panels is not None:
        steps.append(SelectPanels(panels))
    steps += normalizing["panels"]
    steps += _choose(STACK_STEPS, "stack", cfg.stack)
    if cfg.transpose:
        steps.append(Transpose())
    steps += normalizing["image"]
    if cfg.height:
        steps.append(Resize(cfg.height, cfg.width, cfg.resize_mode))
    if cfg.dedoppler:
        steps.append(AppendMaps(None if panels is None else (*panels, CADENCE_SCORE)))
    return Pipeline(steps)


def preprocess(cadence: np.ndarray, cfg: SetiPreprocessConfig) -> np.ndarray:
    """`build_pipeline(cfg)(cadence)`, for one-off use; a data set builds its pipeline once."""
    return build_pipeline(cfg)(cadence)


def _choose(registry: dict, key: str, name: str):
    if name not in registry:
        raise SpotterError(f"preprocess.{key} must be one of {' | '.join(registry)}, got {name!r}")
    return registry[name]


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
