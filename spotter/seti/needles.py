"""Needle physics shared by the generator and training-time injection: paths, pulses, rendering, noise levels.

The signal paths and profiles are setigen's own functions (`constant_path`, `squared_path`, `sine_path`,
`gaussian_f_profile`; pulses reproduce `periodic_gaussian_t_profile`, vectorized) evaluated on the whole
cadence at once, and a signal is only rendered in a narrow band around its path. Panels are contiguous in
time, so one path is continuous across ON, OFF, ON, OFF, ON, OFF, as in setigen's
`OrderedCadence(order="ABACAD")`. setigen is imported where a path or profile is drawn, so importing this
module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spotter.errors import SpotterError
from spotter.seti import CADENCE_SHAPE, NEEDLE_KINDS, OFF_PANELS, ON_PANELS

N_PANELS, TCHANS, FCHANS = CADENCE_SHAPE
N_ROWS = N_PANELS * TCHANS  # rows of the whole cadence, panel after panel
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))  # a Gaussian's full width at half maximum in sigmas
DF_HZ = 2.7939677238464355  # Breakthrough Listen high-frequency-resolution channel width
DT_S = 18.253611008 / 16  # 273 rows ≈ one 5-minute observation


@dataclass
class NeedleRanges:
    """Ranges the needle parameters are drawn from when not given."""

    snr: tuple[float, float] = (4.0, 60.0)  # log-uniform; setigen's per-panel SNR definition
    width: tuple[float, float] = (1.0, 6.0)  # FWHM in channels
    max_drift: float = 180.0  # channels over the whole cadence (1638 rows)
    p_two_on: float = 0.15  # chance a needle is in only two ON panels
    p_one_on: float = 0.10  # ... or in only one
    p_partial: float = 0.15  # chance it lasts only part of the cadence
    p_pulsed: float = 0.15  # chance it is pulsed
    # The first generator gave a pulsed needle its pulses' width in seconds as its frequency width in channels
    # (2-55 channels wide); the `classic` preset keeps that to stay byte-for-byte reproducible.
    pulse_width_as_width: bool = False


@dataclass(frozen=True)
class NeedlePreset:
    """A named needle recipe: what the generator draws (`spotter seti synth --preset`) and injection can follow."""

    name: str
    help: str
    ranges: NeedleRanges


NEEDLE_PRESETS = {
    preset.name: preset
    for preset in (
        NeedlePreset(
            "classic",
            "the first generator, byte for byte: SNR 4-60, a quarter of needles in fewer ON panels, 15% partial, "
            "15% pulsed (pulsed needles as wide as their pulses)",
            NeedleRanges(pulse_width_as_width=True),
        ),
        # SNR down to 1.5, where the clairvoyant ceiling on the faintest fifth of positives falls to ~0.94
        # (measured: floor 1.0 -> 0.89, 1.5 -> 0.94, 2.0 -> 0.95, 3.0 -> 0.97; 200 positives against 400 negatives);
        # part-time needles about as common as whole ones (time modes ~40% whole, ~20% each of one window,
        # pulsed, one or two ON panels)
        NeedlePreset(
            "wide",
            "SNR 1.5-60 (down to where even a clairvoyant detector misses some), part-time needles common: 30% in "
            "one or two ON panels, 25% in one window of time, 20% pulsed",
            NeedleRanges(snr=(1.5, 60.0), p_two_on=0.15, p_one_on=0.15, p_partial=0.25, p_pulsed=0.2),
        ),
    )
}

DEFAULT_PRESET = "wide"  # what `spotter seti synth` draws unless told otherwise


def needle_preset(name: str) -> NeedlePreset:
    """The needle recipe called `name`.

    Raises:
        SpotterError: On an unknown name.
    """
    if name not in NEEDLE_PRESETS:
        raise SpotterError(f"unknown --preset {name!r}; expected {' | '.join(NEEDLE_PRESETS)}")
    return NEEDLE_PRESETS[name]


@dataclass
class Needle:
    """One drawn needle: its path over the whole cadence and where it is switched on."""

    kind: str
    snr: float
    width: float  # FWHM, channels
    drift: float  # mean drift, channels per row
    panels: tuple[int, ...]
    partial: bool
    pulsed: bool
    path: np.ndarray  # (N_ROWS,) centre channel per cadence row
    level: np.ndarray = field(repr=False)  # (N_ROWS,) relative intensity per row, 0 where absent

    def track(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(path as float32, level as float16, width): what `NeedleTracks` keeps of it, compactly."""
        return self.path.astype(np.float32), self.level.astype(np.float16), float(self.width)

    @property
    def time_mode(self) -> str:
        """When an ON-only needle shows: one of TIME_MODES (pulsed first, then one window, then fewer ON panels)."""
        if self.pulsed:
            return "pulsed"
        if self.partial:
            return "one_window"
        if len(set(self.panels) & set(ON_PANELS)) < len(ON_PANELS):
            return "one_or_two_on"
        return "whole"

    def meta(self) -> dict:
        """Flat description for the labels CSV."""
        return {
            "shape": self.kind,
            "snr": round(self.snr, 3),
            "drift": round(self.drift, 5),
            "width": round(self.width, 3),
            "panels": ",".join(map(str, self.panels)),
            "start_channel": round(float(self.path[0]), 2),
            "partial": self.partial,
            "pulsed": self.pulsed,
        }


TIME_MODES = ("whole", "one_window", "pulsed", "one_or_two_on")


@dataclass
class NeedleTracks:
    """Where each sample's needle runs: what a clairvoyant detector (`spotter.seti.ceiling`) needs.

    Written by the generator beside each split's labels (`<split>_needles.npz`). Samples without a needle (plain
    negatives) carry a path and presence drawn from the positives' distribution (`drawn` True), so the detector
    scores them on the same kind of template as the positives.

    Attributes:
        ids: Sample ids, in the labels file's order.
        path: (samples, N_ROWS) float32 centre channel per cadence row.
        level: (samples, N_ROWS) float16 relative intensity per row, 0 where absent.
        width: (samples,) FWHM in channels.
        drawn: (samples,) True where the needle was drawn for the detector only (not in the data).
    """

    ids: np.ndarray
    path: np.ndarray
    level: np.ndarray
    width: np.ndarray
    drawn: np.ndarray

    @staticmethod
    def file_name(split: str) -> str:
        return f"{split}_needles.npz"

    @classmethod
    def stack(cls, ids: Sequence[str], tracks: Sequence[tuple], drawn: Sequence[bool]) -> "NeedleTracks":
        """The tracks of a split from each sample's `Needle.track()`, in the ids' order."""
        paths, levels, widths = zip(*tracks) if tracks else ((), (), ())
        return cls(
            np.asarray(ids, dtype=str),
            np.stack(paths) if tracks else np.zeros((0, N_ROWS), np.float32),
            np.stack(levels) if tracks else np.zeros((0, N_ROWS), np.float16),
            np.asarray(widths, np.float64),
            np.asarray(drawn, bool),
        )

    def save(self, path) -> None:
        """Writes the tracks (compressed) to `path` (a file handle or name ending in .npz)."""
        np.savez_compressed(path, ids=self.ids, path=self.path, level=self.level, width=self.width, drawn=self.drawn)

    @classmethod
    def load(cls, path) -> "NeedleTracks":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["ids"], data["path"], data["level"], data["width"], data["drawn"])


def intensity_for_snr(snr: float, noise_std: float | np.ndarray) -> float | np.ndarray:
    """setigen's `Frame.get_intensity`: the per-row level whose sum over a panel has this SNR."""
    return snr * noise_std / math.sqrt(TCHANS)


def cadence_times() -> np.ndarray:
    """Seconds since the cadence start for each of its rows (panels back to back)."""
    return np.arange(N_ROWS) * DT_S


def draw_path(kind: str, rng: np.random.Generator, drift: float, centre: float) -> np.ndarray:
    """Centre channel per cadence row for a needle of `kind` drifting `drift` channels/row on average.

    Args:
        kind: One of NEEDLE_KINDS.
        rng: Source of the shape's own random parameters.
        drift: Mean drift, channels per row.
        centre: Channel the path passes at mid-cadence.
    """
    import setigen as stg

    t = cadence_times()
    t_mid = t[N_ROWS // 2]
    rate = drift * DF_HZ / DT_S  # Hz/s, setigen's unit
    f_mid = centre * DF_HZ
    if kind == "straight":
        hz = stg.constant_path(f_start=f_mid, drift_rate=rate)(t - t_mid)
    elif kind == "quadratic":
        # curvature so the bend is 10-60 channels over the cadence; apex anywhere in it
        bend = rng.uniform(10, 60) * rng.choice([-1, 1])
        accel = 2 * bend * DF_HZ / (t[-1] / 2) ** 2
        t_apex = rng.uniform(0, t[-1])
        hz = stg.squared_path(f_start=0.0, drift_rate=accel)(t - t_apex)
        hz = hz - hz[N_ROWS // 2] + stg.constant_path(f_start=f_mid, drift_rate=rate)(t - t_mid)
    elif kind == "sine":
        amplitude = rng.uniform(3, 40) * DF_HZ
        period = rng.uniform(0.15, 1.5) * t[-1]
        hz = stg.sine_path(f_start=f_mid, drift_rate=rate, period=period, amplitude=amplitude)(t - t_mid)
    elif kind == "random_walk":
        steps = rng.normal(0.0, rng.uniform(0.05, 0.4), N_ROWS)
        walk = np.cumsum(steps)
        hz = (walk - walk[N_ROWS // 2]) * DF_HZ + stg.constant_path(f_start=f_mid, drift_rate=rate)(t - t_mid)
    else:
        raise ValueError(f"unknown needle kind {kind!r}; expected one of {NEEDLE_KINDS}")
    return np.asarray(hz, dtype=np.float64) / DF_HZ


def draw_needle(
    kind: str,
    rng: np.random.Generator,
    *,
    panels: tuple[int, ...] | None = None,
    snr: float | None = None,
    width: float | None = None,
    drift: float | None = None,
    partial: bool | None = None,
    pulsed: bool | None = None,
    ranges: NeedleRanges = NeedleRanges(),
) -> Needle:
    """Draws a needle; parameters left as None are drawn from `ranges`.

    Args:
        kind: Path shape, one of NEEDLE_KINDS.
        rng: The only source of randomness (same state, same needle).
        panels: Panels it appears in; None draws a subset of the ON panels (all three most often).
        snr: Per-panel SNR (setigen's definition).
        width: FWHM in channels.
        drift: Mean drift in channels per row.
        partial: Whether it lasts only part of the cadence.
        pulsed: Whether its intensity comes in pulses.
    """
    if panels is None:
        u = rng.random()
        n_on = 1 if u < ranges.p_one_on else 2 if u < ranges.p_one_on + ranges.p_two_on else 3
        panels = tuple(sorted(rng.choice(ON_PANELS, n_on, replace=False).tolist()))
    snr = float(np.exp(rng.uniform(*np.log(ranges.snr)))) if snr is None else float(snr)
    width = float(rng.uniform(*ranges.width)) if width is None else float(width)
    drift = float(rng.uniform(-1, 1) * ranges.max_drift / N_ROWS) if drift is None else float(drift)
    partial = bool(rng.random() < ranges.p_partial) if partial is None else partial
    pulsed = bool(rng.random() < ranges.p_pulsed) if pulsed is None else pulsed
    # keep the path inside the band where it is switched on, as far as the drift allows
    first, last = min(panels) * TCHANS, (max(panels) + 1) * TCHANS
    span = abs(drift) * (last - first) / 2
    margin = 8 + min(span, 100)
    centre_active = rng.uniform(margin, FCHANS - margin) if margin < FCHANS / 2 else FCHANS / 2
    centre = centre_active - drift * ((first + last) / 2 - N_ROWS // 2)
    path = draw_path(kind, rng, drift, centre)

    level = np.zeros(N_ROWS)
    for p in panels:
        level[p * TCHANS : (p + 1) * TCHANS] = 1.0
    if partial:
        # one window of the cadence's time; it always overlaps at least 40 rows of a chosen panel
        p = int(rng.choice(panels))
        length = int(rng.integers(40, TCHANS + 1))
        start = p * TCHANS + int(rng.integers(0, TCHANS - length + 1))
        stop = start + int(rng.integers(length, 2 * TCHANS))
        window = np.zeros(N_ROWS)
        window[start:stop] = 1.0
        level *= window
    if pulsed:
        t = cadence_times()
        period = rng.uniform(8, 80) * DT_S
        pulse_width = rng.uniform(0.2, 0.6) * period
        level *= np.clip(pulse_train(t, period, pulse_width, rng.uniform(0, period)), 0.0, 1.0)
        if ranges.pulse_width_as_width:
            width = pulse_width
    return Needle(kind, snr, width, drift, tuple(int(p) for p in panels), partial, pulsed, path, level)


def pulse_train(t: np.ndarray, period: float, width: float, phase: float) -> np.ndarray:
    """Gaussian pulses of FWHM `width` every `period` seconds: setigen's `periodic_gaussian_t_profile` with
    pulses up, level 0 and no timing jitter, summing the same three nearest pulses, without its per-sample
    Python calls (which made a pulsed needle cost ~6 ms in the data loader)."""
    sigma = width / FWHM_PER_SIGMA
    nearest = np.round((t + phase) / period - 1 / 4.0)
    centres = (4.0 * (nearest + np.array([-1.0, 0.0, 1.0])[:, None]) + 1.0) / 4.0 * period - phase
    return np.exp(-((t - centres) ** 2) / (2 * sigma**2)).sum(axis=0)


def render(needle: Needle, noise_std: np.ndarray | float, out: np.ndarray | None = None) -> np.ndarray:
    """Adds the needle's intensity to `out` (a (6, 273, 256) array, zeros if None) and returns it.

    Args:
        noise_std: Noise standard deviation per panel (or one for all), which sets the level from the SNR.
    """
    out = np.zeros(CADENCE_SHAPE, np.float32) if out is None else out
    std_rows = np.repeat(np.broadcast_to(np.asarray(noise_std, np.float64), (N_PANELS,)), TCHANS)
    amplitude = needle.level * intensity_for_snr(needle.snr, std_rows)
    add_track(out.reshape(N_ROWS, FCHANS), needle.path, amplitude, needle.width)
    return out


def add_track(rows: np.ndarray, path: np.ndarray, amplitude: np.ndarray, width: float) -> None:
    """Adds a Gaussian-profile line (setigen's gaussian_f_profile) along `path` to (N_ROWS, FCHANS) `rows`."""
    on = np.flatnonzero(amplitude > 0)
    if not len(on):
        return
    import setigen as stg

    half = int(math.ceil(1.5 * width)) + 1  # covers ±3.5 sigma of the FWHM-`width` Gaussian
    centres = path[on]
    cols = np.floor(centres).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    profile = stg.gaussian_f_profile(width=width * DF_HZ)
    values = profile(cols * DF_HZ, centres[:, None] * DF_HZ) * amplitude[on, None]
    inside = (cols >= 0) & (cols < rows.shape[1])
    r = np.broadcast_to(on[:, None], cols.shape)
    rows[r[inside], cols[inside]] += values[inside]  # no repeated (row, col) pairs, so += is exact


def normalized_noise_std(cadence: np.ndarray) -> np.ndarray:
    """Per-panel noise std of a cadence whose panels are normalized (as Kaggle's are): the std over every third
    row and channel, a close and ~20x cheaper estimate than `robust_std`."""
    return cadence[:, ::3, ::3].std(axis=(1, 2))


def add_signal(
    cadence: np.ndarray,
    rng: np.random.Generator,
    noise_std: np.ndarray,
    kinds: Sequence[str] = NEEDLE_KINDS,
    snr: Sequence[float] | None = (8.0, 60.0),
    panels: tuple[int, ...] | None = None,
    ranges: NeedleRanges = NeedleRanges(),
) -> np.ndarray:
    """Adds a generated needle of a random kind and SNR to a float32 cadence in place; returns it.

    Args:
        rng: The only source of randomness.
        noise_std: Noise std per panel, which sets the level from the SNR.
        kinds: The kinds drawn from, uniformly.
        snr: [low, high] of the log-uniform per-panel SNR; None for `ranges.snr`.
        panels: Where it shows; None draws ON panels as the data generator does (a needle).
        ranges: The rest of the needle's recipe (part-time, pulsed, fewer ON panels, widths), e.g. a preset's.
    """
    kind = kinds[int(rng.integers(len(kinds)))]
    level = float(np.exp(rng.uniform(*np.log(ranges.snr if snr is None else snr))))
    return render(draw_needle(kind, rng, snr=level, panels=panels, ranges=ranges), noise_std, cadence)


def add_interference(
    cadence: np.ndarray,
    rng: np.random.Generator,
    noise_std: np.ndarray,
    kinds: Sequence[str] = NEEDLE_KINDS,
    snr: Sequence[float] | None = (8.0, 60.0),
    ranges: NeedleRanges = NeedleRanges(),
) -> np.ndarray:
    """Adds a generated signal in all six panels (70%) or in some OFF panels only, in place; returns the cadence.

    Interference the cadence filter rejects: `add_signal`'s kinds, SNRs and recipe, in other panels.
    """
    if rng.random() < 0.7:
        panels = tuple(range(N_PANELS))
    else:
        panels = tuple(sorted(rng.choice(OFF_PANELS, int(rng.integers(1, 4)), replace=False).tolist()))
    return add_signal(cadence, rng, noise_std, kinds, snr, panels, ranges)
