"""Scans real Breakthrough Listen cadences (six .fil/.h5 files, ON OFF ON OFF ON OFF) with the baseline."""

from __future__ import annotations

from collections.abc import Callable

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.errors import SpotterError
from spotter.io import atomic_path
from spotter.progress import NullReporter, Reporter
from spotter.seti import CADENCE_SHAPE, ON_PANELS
from spotter.seti.dedoppler import Dedoppler, DedopplerConfig

log = logging.getLogger(__name__)

CANDIDATE_COLUMNS = ["file", "channel_start", "channel_stop", "freq_mhz", "drift_hz_s", "drift_ch_per_row", "score",
                     "snr_on", "snr_off"]


@dataclass
class Observation:
    """One file of a cadence: its (time, channel) power with the header values we need."""

    path: Path
    data: np.ndarray  # (time, channels) float32, in the file's channel order
    fch1_mhz: float  # frequency of channel 0
    foff_mhz: float  # channel width, negative for descending bands
    tstart_mjd: float
    tsamp_s: float


def read_observation(path: str | Path) -> Observation:
    """Reads one filterbank or HDF5 file with blimpy.

    Raises:
        SpotterError: If the file is missing or blimpy cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise SpotterError("observation file not found", path)
    try:
        from blimpy import Waterfall

        waterfall = Waterfall(str(path))
        data = np.asarray(waterfall.data, dtype=np.float32)[:, 0, :]  # first IF / Stokes I
        header = waterfall.header
        return Observation(path, data, float(header["fch1"]), float(header["foff"]), float(header["tstart"]),
                           float(header["tsamp"]))
    except SpotterError:
        raise
    except Exception as err:  # blimpy raises many kinds (IOError, ValueError, KeyError, struct.error)
        raise SpotterError(f"cannot read filterbank/HDF5 file ({type(err).__name__}: {err})", path) from None


def check_alignment(observations: list[Observation]) -> None:
    """Checks six files form one cadence: same channels, same shape, times in order.

    Raises:
        SpotterError: Naming the first file that does not line up and why.
    """
    if len(observations) != 6:
        raise SpotterError(f"a cadence needs 6 files (ON OFF ON OFF ON OFF), got {len(observations)}")
    first = observations[0]
    for obs in observations[1:]:
        if obs.data.shape[1] != first.data.shape[1]:
            raise SpotterError(
                f"has {obs.data.shape[1]} channels, {first.path.name} has {first.data.shape[1]}", obs.path
            )
        if not np.isclose(obs.foff_mhz, first.foff_mhz, rtol=1e-6) or not np.isclose(
            obs.fch1_mhz, first.fch1_mhz, rtol=0, atol=abs(first.foff_mhz) / 2
        ):
            raise SpotterError(
                f"channels differ from {first.path.name} (fch1 {obs.fch1_mhz} vs {first.fch1_mhz} MHz, "
                f"foff {obs.foff_mhz} vs {first.foff_mhz} MHz)",
                obs.path,
            )
        if not np.isclose(obs.tsamp_s, first.tsamp_s, rtol=1e-6):
            raise SpotterError(
                f"time resolution {obs.tsamp_s} s differs from {first.path.name}'s {first.tsamp_s} s", obs.path
            )
    for before, after in zip(observations, observations[1:]):
        if after.tstart_mjd <= before.tstart_mjd:
            raise SpotterError(
                f"starts at MJD {after.tstart_mjd} (not after {before.path.name} at MJD {before.tstart_mjd}); "
                "give the files in cadence order ON OFF ON OFF ON OFF",
                after.path,
            )
    if first.data.shape[1] < CADENCE_SHAPE[2]:
        raise SpotterError(
            f"has {first.data.shape[1]} channels, fewer than one {CADENCE_SHAPE[2]}-channel window", first.path
        )


def resample_time(panel: np.ndarray, rows: int) -> np.ndarray:
    """Linear interpolation of a (T, F) panel to (rows, F); unchanged when T == rows."""
    t = panel.shape[0]
    if t == rows:
        return panel
    position = np.linspace(0, t - 1, rows)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, t - 1)
    weight = (position - low)[:, None].astype(np.float32)
    return panel[low] * (1 - weight) + panel[high] * weight


def window_starts(n_channels: int, window: int, step: int) -> list[int]:
    """Window starts covering the band with overlap; the last window ends on the last channel."""
    starts = list(range(0, n_channels - window + 1, step))
    if starts[-1] != n_channels - window:
        starts.append(n_channels - window)
    return starts


def scan(
    paths: list[str | Path],
    step: int = 128,
    config: DedopplerConfig = DedopplerConfig(),
    reporter: Reporter = NullReporter(),
    model_scorer: Callable[[list[np.ndarray]], np.ndarray] | None = None,
) -> tuple[pd.DataFrame, list[Observation]]:
    """Slides a 256-channel window across a six-file cadence and scores each snippet with the baseline.

    Args:
        paths: Six files in cadence order (ON, OFF, ON, OFF, ON, OFF).
        step: Channels between window starts (128 = half-overlapping windows).
        model_scorer: Scores (6, 273, 256) snippets with a trained model (`spotter.seti.task.run_scorer`);
            when given, candidates get a `model_score` column and are ranked by it.

    Returns:
        Candidates, one per window, sorted by score (highest first), and the observations read.

    Raises:
        SpotterError: If a file cannot be read or the files do not line up.
    """
    if step < 1:
        raise SpotterError(f"--step must be at least 1, got {step}")
    observations = [read_observation(p) for p in paths]
    check_alignment(observations)
    _, rows, window = CADENCE_SHAPE
    search = Dedoppler(CADENCE_SHAPE, config)
    first = observations[0]
    # a drift of one channel per resampled row, in Hz/s, for this cadence's resolution
    unit_drift_hz_s = abs(first.foff_mhz) * 1e6 / (first.tsamp_s * first.data.shape[0] / rows)
    records, snippets = [], []
    starts = window_starts(first.data.shape[1], window, step)
    for start in reporter.track(starts, len(starts), "scan"):
        snippet = np.stack([_standardize(resample_time(o.data[:, start : start + window], rows)) for o in observations])
        if model_scorer is not None:
            snippets.append(snippet.astype(np.float16))  # the competition's storage type, as models were trained
        hit = search.search(snippet)
        records.append(
            {
                "file": first.path.name,
                "channel_start": start,
                "channel_stop": start + window,
                "freq_mhz": first.fch1_mhz + first.foff_mhz * (start + hit.channel_mid),
                "drift_hz_s": hit.drift * unit_drift_hz_s * np.sign(first.foff_mhz),
                "drift_ch_per_row": hit.drift,
                "score": hit.score,
                "snr_on": hit.snr_on,
                "snr_off": hit.snr_off,
            }
        )
    candidates = pd.DataFrame.from_records(records, columns=CANDIDATE_COLUMNS)
    rank_by = "score"
    if model_scorer is not None:
        candidates["model_score"] = model_scorer(snippets)
        rank_by = "model_score"
    candidates = candidates.sort_values(rank_by, ascending=False, kind="stable").reset_index(drop=True)
    return candidates, observations


def plot_candidates(candidates: pd.DataFrame, observations: list[Observation], path: str | Path, top: int = 4) -> None:
    """Saves a PNG of the top candidates' six panels (rows: candidates; columns: ON OFF ON OFF ON OFF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = candidates.head(top)
    fig, axes = plt.subplots(max(len(shown), 1), 6, figsize=(12, 2.2 * max(len(shown), 1)), squeeze=False)
    for row, (_, cand) in enumerate(shown.iterrows()):
        lo, hi = int(cand["channel_start"]), int(cand["channel_stop"])
        for p, obs in enumerate(observations):
            ax = axes[row, p]
            ax.imshow(obs.data[:, lo:hi], aspect="auto", interpolation="nearest", cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("ON" if p in ON_PANELS else "OFF", fontsize=9)
            if p == 0:
                ax.set_ylabel(f"{cand['freq_mhz']:.6f} MHz\nscore {cand['score']:.1f}", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def _standardize(panel: np.ndarray) -> np.ndarray:
    std = panel.std()
    return (panel - panel.mean()) / (std if std > 0 else 1.0)
