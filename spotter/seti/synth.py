"""Synthetic SETI cadences: real-GBT-statistics noise, shared bandpass, RFI, needles and hard negatives.

Noise parameters come from setigen's sample of real Green Bank Telescope observations; needles and
signals are drawn and rendered by `spotter.seti.needles`, which training-time injection shares. What
differs from plain setigen is speed: the chi-squared radiometer noise is drawn in bulk from numpy's
`Generator` (setigen uses the slow legacy global state), and a signal is only rendered in a narrow band
around its path.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import math
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.errors import SpotterError
from spotter.io import atomic_path, ensure_writable_dir, write_csv
from spotter.progress import NullReporter, Reporter
from spotter.seti import CADENCE_SHAPE, NEEDLE_KINDS, OFF_PANELS
from spotter.seti.needles import (
    DEFAULT_PRESET,
    DF_HZ,
    DT_S,
    FCHANS,
    N_PANELS,
    N_ROWS,
    Needle,
    NeedleRanges,
    NeedleTracks,
    add_track,
    draw_needle,
    draw_path,
    intensity_for_snr,
    needle_preset,
    render,
)

CHI2_DF = 4 * round(DF_HZ * DT_S)  # setigen's radiometer-noise degrees of freedom for this resolution
GBT_OBS_DT_S = 1.4316557653333333  # resolution of setigen's sample noise parameters (setigen scales by dt)

NEGATIVE_KINDS = ("none", "off_only", "all_panels")


@functools.cache
def gbt_noise_means() -> np.ndarray:
    """Mean intensities of real GBT noise frames (setigen's sample), scaled to our time resolution."""
    path = importlib.resources.files("setigen") / "assets" / "sample_noise_params.npy"
    with importlib.resources.as_file(path) as file:
        params = np.load(file)
    return params[:, 0] * (DT_S / GBT_OBS_DT_S)


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
            add_track(rows, path, all_rows * intensity_for_snr(snr, noise_std), rng.uniform(1, 3))
        added.append("zero_drift")
    if rng.random() < 0.15:
        drift = rng.uniform(-1, 1) * 180 / N_ROWS
        path = draw_path("straight", rng, drift, rng.uniform(20, FCHANS - 20))
        snr = float(np.exp(rng.uniform(np.log(5), np.log(100))))
        # real RFI flickers: a random gain per row
        flicker = rng.uniform(0.5, 1.5, N_ROWS)
        add_track(rows, path, flicker * intensity_for_snr(snr, noise_std), rng.uniform(1, 6))
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
    cadence, meta, _ = make_sample(rng, target, kind, ranges)
    return cadence, meta


def make_sample(
    rng: np.random.Generator, target: int, kind: str, ranges: NeedleRanges = NeedleRanges()
) -> tuple[np.ndarray, dict, Needle | None]:
    """`make_cadence`, plus the needle or hard-negative signal it holds (None for a plain negative)."""
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
    meta["time_mode"] = needle.time_mode if target else ""
    # the telescope's bandpass and per-panel gain act on noise and signals alike
    return normalize_panels(data, gains[:, None] * bandpass[None, :]), meta, needle


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
    preset: str = DEFAULT_PRESET,
) -> dict:
    """Writes a generated data set in the Kaggle layout.

    Writes `train/`, `test/`, `train_labels.csv`, `sample_submission.csv`, how each sample was made in
    `train_meta.csv` and `test_labels.csv` (with each positive's `time_mode` and `snr_band`, the fifth of the
    split's positives by SNR, for `spotter score --by`), and where each needle runs in `train_needles.npz` and
    `test_needles.npz` (`NeedleTracks`, for the clairvoyant ceiling). Each sample has its own seed derived from
    (`seed`, split, index), so the bytes do not depend on `workers`.

    Args:
        preset: The needle recipe (`spotter.seti.needles.NEEDLE_PRESETS`).

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
    ranges = needle_preset(preset).ranges
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
        tasks += [(str(out), split, split_index, i, sid, t, k, seed, ranges) for i, (sid, t, k) in enumerate(plan)]
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    tracks: dict[str, list[tuple[tuple, bool]]] = {"train": [], "test": []}
    with _pool(workers) as pool:
        results = pool.imap(_write_one, tasks, chunksize=4) if pool else map(_write_one, tasks)
        for split, row, track, drawn in reporter.track(results, len(tasks), "synth"):
            rows[split].append(row)
            tracks[split].append((track, drawn))
    frames = {}
    for split in ("train", "test"):
        frames[split] = with_snr_bands(pd.DataFrame(rows[split], columns=META_COLUMNS[:-1]))
        needles = NeedleTracks.stack(
            frames[split]["id"], [n for n, _ in tracks[split]], [d for _, d in tracks[split]]
        )
        with atomic_path(out / NeedleTracks.file_name(split)) as tmp, open(tmp, "wb") as handle:
            needles.save(handle)
    train, test = frames["train"], frames["test"]
    write_csv(out / "train_labels.csv", train[["id", "target"]])
    write_csv(out / "train_meta.csv", train)
    write_csv(out / "sample_submission.csv", test[["id"]].assign(target=0.5))
    write_csv(out / "test_labels.csv", test)
    return {"out": str(out), "train": len(train), "test": len(test), "train_positives": int(train["target"].sum()),
            "test_positives": int(test["target"].sum())}


META_COLUMNS = ["id", "target", "kind", "shape", "snr", "drift", "width", "panels", "start_channel", "partial",
                "pulsed", "rfi", "noise_mean", "time_mode", "snr_band"]
SNR_BANDS = ("1_faintest", "2", "3", "4", "5_brightest")


def with_snr_bands(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with column snr_band: each positive's fifth of the split's positives by SNR (SNR_BANDS), else ""."""
    bands = np.full(len(frame), "", dtype=object)
    positive = np.flatnonzero(frame["target"].to_numpy() == 1)
    if len(positive):
        order = frame["snr"].to_numpy(float)[positive].argsort(kind="stable")
        fifth = np.empty(len(positive), np.int64)
        fifth[order] = np.arange(len(positive)) * len(SNR_BANDS) // len(positive)
        bands[positive] = np.asarray(SNR_BANDS, dtype=object)[fifth]
    return frame.assign(snr_band=bands)


NULL_NEEDLE_STREAM = 1  # spawn-key suffix of the stream that draws a plain negative's template needle


def sample_rng(seed: int, split_index: int, index: int, *stream: int) -> np.random.Generator:
    """The generator of one sample: a function of (seed, split, index) only; `stream` for a side stream of it.

    SFC64 draws the bulk normals about 25% faster than numpy's default PCG64, with the same seeding.
    """
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(split_index, index, *stream))))


def _write_one(task: tuple) -> tuple[str, dict, tuple, bool]:
    root, split, split_index, index, sample_id, target, kind, seed, ranges = task
    cadence, meta, needle = make_sample(sample_rng(seed, split_index, index), target, kind, ranges)
    path = Path(root) / split / sample_id[0] / f"{sample_id}.npy"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, cadence)
    drawn = needle is None
    if drawn:  # a template for the ceiling's null, from its own stream: the cadence's bytes do not change
        rng = sample_rng(seed, split_index, index, NULL_NEEDLE_STREAM)
        needle = draw_needle(str(rng.choice(NEEDLE_KINDS)), rng, ranges=ranges)
    return split, {"id": sample_id, **meta}, needle.track(), drawn


@contextlib.contextmanager
def _pool(workers: int):
    if workers == 1:
        yield None
        return
    # fork: workers inherit the imported modules, so they start in milliseconds
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool
