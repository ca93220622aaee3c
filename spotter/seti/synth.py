"""Synthetic SETI cadences: real-GBT-statistics noise, shared bandpass, RFI, needles and hard negatives.

Noise parameters come from setigen's sample of real Green Bank Telescope observations, and the signal
paths and profiles are setigen's own functions (`constant_path`, `squared_path`, `sine_path`,
`gaussian_f_profile`; pulses reproduce `periodic_gaussian_t_profile`, vectorized) evaluated on the whole
cadence at once. What differs from plain setigen is speed: the chi-squared radiometer noise is drawn in bulk
from numpy's `Generator` (setigen uses the slow legacy global state), and a signal is only rendered in a
narrow band around its path. Panels are contiguous in time, so one path is continuous across ON, OFF, ON,
OFF, ON, OFF, as in setigen's `OrderedCadence(order="ABACAD")`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import math
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import setigen as stg

from spotter.errors import SpotterError
from spotter.io import atomic_path, ensure_writable_dir, write_csv
from spotter.progress import NullReporter, Reporter
from spotter.seti import CADENCE_SHAPE, OFF_PANELS, ON_PANELS

N_PANELS, TCHANS, FCHANS = CADENCE_SHAPE
N_ROWS = N_PANELS * TCHANS  # rows of the whole cadence, panel after panel
DF_HZ = 2.7939677238464355  # Breakthrough Listen high-frequency-resolution channel width
DT_S = 18.253611008 / 16  # 273 rows ≈ one 5-minute observation
CHI2_DF = 4 * round(DF_HZ * DT_S)  # setigen's radiometer-noise degrees of freedom for this resolution
GBT_OBS_DT_S = 1.4316557653333333  # resolution of setigen's sample noise parameters (setigen scales by dt)

NEEDLE_KINDS = ("straight", "quadratic", "sine", "random_walk")
NEGATIVE_KINDS = ("none", "off_only", "all_panels")


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


@functools.cache
def gbt_noise_means() -> np.ndarray:
    """Mean intensities of real GBT noise frames (setigen's sample), scaled to our time resolution."""
    path = importlib.resources.files("setigen") / "assets" / "sample_noise_params.npy"
    with importlib.resources.as_file(path) as file:
        params = np.load(file)
    return params[:, 0] * (DT_S / GBT_OBS_DT_S)


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
        width = rng.uniform(0.2, 0.6) * period
        level *= np.clip(pulse_train(t, period, width, rng.uniform(0, period)), 0.0, 1.0)
    return Needle(kind, snr, width, drift, tuple(int(p) for p in panels), partial, pulsed, path, level)


def pulse_train(t: np.ndarray, period: float, width: float, phase: float) -> np.ndarray:
    """Gaussian pulses of FWHM `width` every `period` seconds: setigen's `periodic_gaussian_t_profile` with
    pulses up, level 0 and no timing jitter, summing the same three nearest pulses, without its per-sample
    Python calls (which made a pulsed needle cost ~6 ms in the data loader)."""
    sigma = width / (2 * np.sqrt(2 * np.log(2)))
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
    _add_track(out.reshape(N_ROWS, FCHANS), needle.path, amplitude, needle.width)
    return out


def inject_needle(
    cadence: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    *,
    noise_std: np.ndarray | float | None = None,
    **params,
) -> tuple[np.ndarray, Needle]:
    """Injects a needle into a copy of a (6, 273, 256) cadence, e.g. to turn a training negative positive.

    Args:
        cadence: Raw or normalized cadence; it is not modified.
        kind: Path shape, one of NEEDLE_KINDS.
        rng: The only source of randomness.
        noise_std: Noise std per panel; None estimates it robustly from each panel (median absolute deviation).
        **params: Passed to `draw_needle` (panels, snr, width, drift, partial, pulsed, ranges).

    Returns:
        The float32 cadence with the needle added, and the needle drawn.
    """
    out = np.array(cadence, dtype=np.float32, copy=True)
    if noise_std is None:
        noise_std = robust_std(out)
    needle = draw_needle(kind, rng, **params)
    return render(needle, noise_std, out), needle


def robust_std(cadence: np.ndarray) -> np.ndarray:
    """Per-panel noise std from the median absolute deviation, so bright signals barely move it."""
    flat = cadence.reshape(cadence.shape[0], -1)[:, ::7]  # a subsample is plenty and 7x faster
    med = np.median(flat, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(flat - med), axis=1)


def _add_track(rows: np.ndarray, path: np.ndarray, amplitude: np.ndarray, width: float) -> None:
    """Adds a Gaussian-profile line (setigen's gaussian_f_profile) along `path` to (N_ROWS, FCHANS) `rows`."""
    on = np.flatnonzero(amplitude > 0)
    if not len(on):
        return
    half = int(math.ceil(1.5 * width)) + 1  # covers ±3.5 sigma of the FWHM-`width` Gaussian
    centres = path[on]
    cols = np.floor(centres).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    profile = stg.gaussian_f_profile(width=width * DF_HZ)
    values = profile(cols * DF_HZ, centres[:, None] * DF_HZ) * amplitude[on, None]
    inside = (cols >= 0) & (cols < rows.shape[1])
    r = np.broadcast_to(on[:, None], cols.shape)
    rows[r[inside], cols[inside]] += values[inside]  # no repeated (row, col) pairs, so += is exact


# ---------------------------------------------------------------------------------------------- backgrounds


def background(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Chi-squared radiometer noise at a real GBT level, before the bandpass is applied.

    Returns:
        Noise (6, 273, 256) float32, the bandpass (256,), the per-panel gains (6,), and the noise std.
    """
    x_mean = float(rng.choice(gbt_noise_means()))
    noise = chi2_noise(rng, x_mean)
    noise_std = math.sqrt(2 * CHI2_DF) * x_mean / CHI2_DF  # setigen's std of ideal chi2 noise
    c = np.linspace(-1, 1, FCHANS)
    bandpass = (
        1
        + rng.uniform(-0.15, 0.15) * c
        + rng.uniform(-0.1, 0.1) * c**2
        + rng.uniform(0, 0.05) * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * c + rng.random()))
    )
    gains = 1 + rng.normal(0, 0.03, N_PANELS)
    return noise, bandpass, gains, noise_std


def chi2_noise(rng: np.random.Generator, x_mean: float, shape: tuple[int, ...] = CADENCE_SHAPE) -> np.ndarray:
    """setigen's chi-squared radiometer noise with mean `x_mean` (CHI2_DF degrees of freedom), float32.

    Drawn with the Wilson-Hilferty transform of bulk float32 normals, chi2_k / k ≈ (1 - 2/9k + z·sqrt(2/9k))³,
    which keeps the chi-squared mean, variance and skew (the error is far below the noise at k = 12) at
    half the cost of numpy's gamma sampler and a fifth of setigen's legacy `np.random.chisquare`.
    """
    k = CHI2_DF
    scale = x_mean ** (1 / 3)  # folded into the cubed term, saving a pass over the array
    a, b = np.float32(scale * math.sqrt(2 / (9 * k))), np.float32(scale * (1 - 2 / (9 * k)))
    noise = rng.standard_normal(size=shape, dtype=np.float32)
    # one panel at a time, so the chain of operations stays in the CPU cache (~1.5x faster)
    for block in noise.reshape(shape[0], -1) if len(shape) > 1 else [noise]:
        block *= a
        block += b
        square = block * block
        block *= square
    return noise


def add_rfi(data: np.ndarray, rng: np.random.Generator, noise_std: float) -> list[str]:
    """Adds RFI seen in real data to a raw cadence, in place; returns what was added.

    Persistent zero-drift lines and drifting lines are present in all six panels (so a cadence filter
    rejects them); short broadband bursts hit a few rows of one panel.
    """
    added = []
    rows = data.reshape(N_ROWS, FCHANS)
    all_rows = np.ones(N_ROWS)
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            snr = float(np.exp(rng.uniform(np.log(5), np.log(200))))
            path = np.full(N_ROWS, rng.uniform(0, FCHANS))
            _add_track(rows, path, all_rows * intensity_for_snr(snr, noise_std), rng.uniform(1, 3))
        added.append("zero_drift")
    if rng.random() < 0.15:
        drift = rng.uniform(-1, 1) * 180 / N_ROWS
        path = draw_path("straight", rng, drift, rng.uniform(20, FCHANS - 20))
        snr = float(np.exp(rng.uniform(np.log(5), np.log(100))))
        # real RFI flickers: a random gain per row
        flicker = rng.uniform(0.5, 1.5, N_ROWS)
        _add_track(rows, path, flicker * intensity_for_snr(snr, noise_std), rng.uniform(1, 6))
        added.append("drifting")
    if rng.random() < 0.15:
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(0, N_ROWS - 5))
            length = int(rng.integers(1, 6))
            rows[start : start + length] += np.float32(rng.uniform(0.3, 3.0) * noise_std)
        added.append("burst")
    return added


def normalize_panels(data: np.ndarray, gain: np.ndarray | None = None) -> np.ndarray:
    """Each panel (times `gain`, if given) to zero mean and unit std, as float16 (how Kaggle stored them).

    Args:
        data: (6, T, F) float32, used as scratch space.
        gain: Optional (6, F) per-panel, per-channel gain (bandpass) applied first.

    One panel at a time, so the passes stay in the CPU cache; the squares are summed by einsum, far
    faster than `np.std`'s temporaries, and the subtract-scale-cast is fused into the float16 output.
    """
    out = np.empty(data.shape, np.float16)
    for p in range(data.shape[0]):
        panel = data[p]
        if gain is not None:
            panel *= gain[p].astype(np.float32)
        flat = panel.reshape(-1)
        mean = flat.sum(dtype=np.float64) / flat.size
        std = math.sqrt(max(float(np.einsum("i,i->", flat, flat, dtype=np.float64)) / flat.size - mean**2, 0.0))
        panel -= np.float32(mean)
        np.multiply(panel, np.float32(1 / std if std > 0 else 1.0), out=out[p], casting="same_kind")
    return out


def make_cadence(
    rng: np.random.Generator, target: int, kind: str, ranges: NeedleRanges = NeedleRanges()
) -> tuple[np.ndarray, dict]:
    """One complete sample: background, RFI, and a needle (positive) or hard-negative signal.

    Args:
        rng: The only source of randomness: the same state gives the same bytes.
        target: 1 for a needle in ON panels only, 0 otherwise.
        kind: For positives one of NEEDLE_KINDS; for negatives one of NEGATIVE_KINDS.

    Returns:
        The normalized (6, 273, 256) float16 cadence and a flat description of how it was made.
    """
    data, bandpass, gains, noise_std = background(rng)
    meta: dict = {"target": int(target), "kind": kind}
    rfi = add_rfi(data, rng, noise_std)
    needle = None
    if target:
        needle = draw_needle(kind, rng, ranges=ranges)
    elif kind == "off_only":
        needle = draw_needle(str(rng.choice(NEEDLE_KINDS)), rng, panels=OFF_PANELS, ranges=ranges)
    elif kind == "all_panels":
        needle = draw_needle(str(rng.choice(NEEDLE_KINDS)), rng, panels=tuple(range(N_PANELS)), ranges=ranges)
    elif kind != "none":
        raise ValueError(f"unknown negative kind {kind!r}; expected one of {NEGATIVE_KINDS}")
    if needle is not None:
        render(needle, noise_std, data)
        meta.update(needle.meta())
    else:
        meta.update(shape="", snr=0.0, drift=0.0, width=0.0, panels="", start_channel=0.0, partial=False, pulsed=False)
    meta["rfi"] = ";".join(rfi)
    meta["noise_mean"] = round(noise_std * CHI2_DF / math.sqrt(2 * CHI2_DF), 4)
    # the telescope's bandpass and per-panel gain act on noise and signals alike
    return normalize_panels(data, gains[:, None] * bandpass[None, :]), meta


# ---------------------------------------------------------------------------------------------- data sets


HARD_NEGATIVE_RATE = 0.1  # of the negatives, each of off_only and all_panels


def plan_split(n: int, positive_rate: float, rng: np.random.Generator) -> list[tuple[str, int, str]]:
    """(id, target, kind) for `n` samples: exactly round(n * positive_rate) positives, shuffled.

    Ids are 15 hex characters like the competition's, unique within the plan.
    """
    n_pos = int(round(n * positive_rate))
    targets = np.zeros(n, dtype=int)
    targets[rng.permutation(n)[:n_pos]] = 1
    kinds = []
    for t in targets:
        if t:
            kinds.append(str(rng.choice(NEEDLE_KINDS)))
        else:
            u = rng.random()
            hard = "off_only" if u < HARD_NEGATIVE_RATE else "all_panels" if u < 2 * HARD_NEGATIVE_RATE else None
            kinds.append(hard or "none")
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        sample_id = f"{int(rng.integers(0, 16**15)):015x}"
        if sample_id not in seen:
            seen.add(sample_id)
            ids.append(sample_id)
    return list(zip(ids, targets.tolist(), kinds))


def write_synthetic(
    out: str | Path,
    n_train: int,
    n_test: int,
    positive_rate: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    reporter: Reporter = NullReporter(),
) -> dict:
    """Writes a generated data set in the Kaggle layout.

    Writes `train/`, `test/`, `train_labels.csv`, `sample_submission.csv`, and how each sample was made in
    `train_meta.csv` and `test_labels.csv`. Each sample has its own seed derived from (`seed`, split,
    index), so the bytes do not depend on `workers`.

    Returns:
        Counts per split and where the files went.

    Raises:
        SpotterError: On bad arguments or an unwritable output folder.
    """
    if n_train < 0 or n_test < 0:
        raise SpotterError("--train and --test must be 0 or more")
    if not 0 <= positive_rate <= 1:
        raise SpotterError(f"--positive-rate must be in [0, 1], got {positive_rate}")
    if workers < 1:
        raise SpotterError(f"--workers must be at least 1, got {workers}")
    out = ensure_writable_dir(out)
    # stale cadences from an earlier run would become files with no id
    if any(next((out / split).glob("*/*.npy"), None) for split in ("train", "test") if (out / split).is_dir()):
        raise SpotterError("already holds generated cadences; choose an empty or new folder", out)
    plan_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    plans = {"train": plan_split(n_train, positive_rate, plan_rng), "test": plan_split(n_test, positive_rate, plan_rng)}
    tasks = []
    for split_index, (split, plan) in enumerate(plans.items(), start=1):
        for folder in {sample_id[0] for sample_id, _, _ in plan}:
            ensure_writable_dir(out / split / folder)
        tasks += [(str(out), split, split_index, i, sid, t, k, seed) for i, (sid, t, k) in enumerate(plan)]
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    with _pool(workers) as pool:
        results = pool.imap(_write_one, tasks, chunksize=4) if pool else map(_write_one, tasks)
        for split, row in reporter.track(results, len(tasks), "synth"):
            rows[split].append(row)
    train, test = pd.DataFrame(rows["train"], columns=META_COLUMNS), pd.DataFrame(rows["test"], columns=META_COLUMNS)
    write_csv(out / "train_labels.csv", train[["id", "target"]])
    write_csv(out / "train_meta.csv", train)
    write_csv(out / "sample_submission.csv", test[["id"]].assign(target=0.5))
    write_csv(out / "test_labels.csv", test)
    return {"out": str(out), "train": len(train), "test": len(test), "train_positives": int(train["target"].sum()),
            "test_positives": int(test["target"].sum())}


META_COLUMNS = ["id", "target", "kind", "shape", "snr", "drift", "width", "panels", "start_channel", "partial",
                "pulsed", "rfi", "noise_mean"]


def sample_rng(seed: int, split_index: int, index: int) -> np.random.Generator:
    """The generator of one sample: a function of (seed, split, index) only.

    SFC64 draws the bulk normals about 25% faster than numpy's default PCG64, with the same seeding.
    """
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(split_index, index))))


def _write_one(task: tuple) -> tuple[str, dict]:
    root, split, split_index, index, sample_id, target, kind, seed = task
    cadence, meta = make_cadence(sample_rng(seed, split_index, index), target, kind)
    path = Path(root) / split / sample_id[0] / f"{sample_id}.npy"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, cadence)
    return split, {"id": sample_id, **meta}


@contextlib.contextmanager
def _pool(workers: int):
    if workers == 1:
        yield None
        return
    # fork: workers inherit the imported modules, so they start in milliseconds
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool
