"""Synthetic Breakthrough Listen cadences for the search benchmark: six GBT-shaped `.fil` files and their truth.

Each cadence is six setigen frames in observation order (ABACAD by default) in the shape of GBT
high-resolution data: 16 rows of 18.253611008 s, 2^18 channels of 2.7939677238464355 Hz in 4 coarse channels,
chi-squared radiometer noise, descending frequencies (negative `foff`) and a slew of 5-60 s between files, so
`tstart` grows by the file length plus the slew. Every signal is one straight line in absolute time: in file k
its frequency at the file's first row is `f0 + drift * (t_k - t_0)`, where `t_k` is the file's `tstart`;
`f0` (the frequency at the first file's `tstart`) and the drift are what the truth table holds.

Signals are point-sampled once per row into the nearest channel (setigen's box profile one channel wide,
no Doppler smearing within a row), so the SNR is what a de-Doppler sum along the path over one file's rows
sees: the per-row intensity is `snr * noise_std / sqrt(rows)` (setigen's `get_intensity`).

Signals are laid out so none comes within `guard` channels of another (or of a coarse channel's DC bin or
edges) in any file: turboSETI's event finder rejects an ON hit with any OFF hit within 2 x max drift x
file length (836 channels at 4 Hz/s), and the benchmark measures detection, not crowding. The one
exception is deliberate: the faint cadence's drifting RFI line that crosses a needle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import setigen as stg

from spotter.io import atomic_path, write_csv

logging.getLogger("blimpy").setLevel(logging.WARNING)  # it logs every file it writes, at INFO

MJD_UNIX_EPOCH = 40587.0  # MJD of 1970-01-01, so unix seconds = (mjd - this) * 86400


@dataclass(frozen=True)
class CadenceSpec:
    """What one synthetic cadence holds; the defaults are the standard cadence of the benchmark.

    Ranges are (low, high), drawn uniformly; drift ranges are magnitudes, the sign is random.
    """

    rows: int = 16
    tsamp_s: float = 18.253611008
    foff_hz: float = 2.7939677238464355
    coarse_channels: int = 4
    coarse_width: int = 2**16
    fch1_mhz: float = 6000.0
    pattern: str = "ABACAD"
    slew_s: tuple[float, float] = (5.0, 60.0)
    needles: int = 20
    needle_snr: tuple[float, float] = (10.0, 50.0)
    needle_drift: tuple[float, float] = (0.05, 3.0)
    rfi: int = 20
    rfi_zero_drift: int = 6
    rfi_snr: tuple[float, float] = (15.0, 100.0)
    rfi_drift: tuple[float, float] = (0.05, 2.0)
    off_only: int = 5
    off_only_snr: tuple[float, float] = (10.0, 50.0)
    off_only_drift: tuple[float, float] = (0.05, 3.0)
    crossing_rfi: bool = False  # a drifting RFI line (in all files) crossing one needle in the second ON file
    instrument: bool = False  # bandpass roll-off per coarse channel, DC spikes, gain drifts
    guard: int = 600  # channels kept free around every signal's path
    edge: float = 0.05  # fraction of each coarse channel kept free at each edge

    @property
    def channels(self) -> int:
        return self.coarse_channels * self.coarse_width

    @property
    def file_length_s(self) -> float:
        return self.rows * self.tsamp_s


STANDARD = CadenceSpec()
FAINT = replace(STANDARD, needle_snr=(6.0, 12.0), needle_drift=(0.05, 4.0), crossing_rfi=True, instrument=True)


def quick(spec: CadenceSpec) -> CadenceSpec:
    """The same kind of cadence at a quarter of the channels (2 coarse channels of 2^15) and fewer signals."""
    return replace(spec, coarse_channels=2, coarse_width=2**15, needles=8, rfi=8, rfi_zero_drift=3, off_only=2)


@dataclass(frozen=True)
class Cadence:
    """A written cadence: its files in observation order and one truth row per signal."""

    files: list[Path]
    truth: pd.DataFrame  # kind, freq_mhz, drift_hz_s, snr, files, crosses (needle row the line crosses, or -1)
    tstarts_s: np.ndarray  # each file's tstart, seconds after the first file's


def write_cadence(spec: CadenceSpec, folder: str | Path, seed: int) -> Cadence:
    """Writes `spec`'s six `.fil` files and `truth.csv` into `folder`; returns them.

    The same spec and seed give the same files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    starts = file_starts(spec, rng)
    truth = lay_out(spec, draw_signals(spec, rng), starts, rng)
    instrument = Instrument.draw(spec, rng) if spec.instrument else None
    first_mjd = 60300.0 + rng.uniform(0.0, 300.0)
    files = []
    for k, label in enumerate(spec.pattern):
        frame = stg.Frame(
            fchans=spec.channels, tchans=spec.rows, df=spec.foff_hz, dt=spec.tsamp_s, fch1=spec.fch1_mhz * 1e6,
            t_start=(first_mjd - MJD_UNIX_EPOCH) * 86400.0 + starts[k],
            source_name="SYNTH_ON" if label == "A" else f"SYNTH_OFF_{label}", seed=rng,
        )
        frame.add_noise(x_mean=1e6, noise_type="chi2")
        for signal in truth.itertuples():
            if str(k) in signal.files.split():
                add_line(frame, signal.freq_mhz * 1e6 + signal.drift_hz_s * starts[k], signal.drift_hz_s, signal.snr)
        if instrument is not None:
            instrument.apply(frame, k)
        path = folder / f"cadence_{k}_{label}.fil"
        with atomic_path(path) as tmp:
            frame.save_fil(str(tmp))
        files.append(path)
    write_csv(folder / "truth.csv", truth)
    return Cadence(files, truth, starts)


def file_starts(spec: CadenceSpec, rng: np.random.Generator) -> np.ndarray:
    """Each file's start in seconds after the first: the previous start, one file length and a slew."""
    slews = rng.uniform(*spec.slew_s, size=len(spec.pattern) - 1)
    return np.concatenate([[0.0], np.cumsum(spec.file_length_s + slews)])


def draw_signals(spec: CadenceSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Kinds, drifts, SNRs and files of every signal; frequencies come later from `lay_out`."""
    on = " ".join(str(k) for k, label in enumerate(spec.pattern) if label == "A")
    off = " ".join(str(k) for k, label in enumerate(spec.pattern) if label != "A")
    every = " ".join(str(k) for k in range(len(spec.pattern)))

    def drifts(n: int, span: tuple[float, float]) -> np.ndarray:
        return rng.uniform(*span, size=n) * rng.choice([-1.0, 1.0], size=n)

    rfi_drifts = drifts(spec.rfi, spec.rfi_drift)
    rfi_drifts[: spec.rfi_zero_drift] = 0.0
    parts = [
        pd.DataFrame({"kind": "needle", "drift_hz_s": drifts(spec.needles, spec.needle_drift),
                      "snr": rng.uniform(*spec.needle_snr, size=spec.needles), "files": on}),
        pd.DataFrame({"kind": "rfi", "drift_hz_s": rfi_drifts,
                      "snr": rng.uniform(*spec.rfi_snr, size=spec.rfi), "files": every}),
        pd.DataFrame({"kind": "off_only", "drift_hz_s": drifts(spec.off_only, spec.off_only_drift),
                      "snr": rng.uniform(*spec.off_only_snr, size=spec.off_only), "files": off}),
    ]
    signals = pd.concat(parts, ignore_index=True)
    signals["crosses"] = -1
    if spec.crossing_rfi and spec.needles:
        # Crosses the first needle at the middle of the second ON file, at a drift 0.5-1.5 Hz/s away from it.
        needle = signals.loc[0]
        offset = rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0])
        drift = float(np.clip(needle.drift_hz_s + offset, -spec.rfi_drift[1], spec.rfi_drift[1]))
        if abs(drift - needle.drift_hz_s) < 0.5:
            drift = needle.drift_hz_s - offset
        line = {"kind": "rfi", "drift_hz_s": drift, "snr": rng.uniform(*spec.rfi_snr), "files": every, "crosses": 0}
        signals = pd.concat([signals, pd.DataFrame([line])], ignore_index=True)
    return signals


def lay_out(spec: CadenceSpec, signals: pd.DataFrame, starts: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Gives every signal its `freq_mhz` at the first file's start so no two paths come within `spec.guard`.

    Each signal (or a needle with the line crossing it) is a block as wide as the channels its path spans
    over the cadence plus a guard on each side. Blocks go, widest first, into the least filled of the free
    stretches (each coarse channel's halves, between its edge margins and its DC bin), then each stretch's
    slack is shared out as random gaps between its blocks.
    """
    duration_s = starts[-1] + spec.file_length_s
    second_on = [k for k, label in enumerate(spec.pattern) if label == "A"][1:2]
    blocks = []  # (signal rows, f0 of each relative to the block's lowest frequency in Hz, width in channels)
    for row in signals.index[signals["crosses"] < 0]:
        members = [row, *signals.index[signals["crosses"] == row]]
        drifts = signals.loc[members, "drift_hz_s"].to_numpy()
        if len(members) > 1 and not second_on:
            raise ValueError("a crossing line needs a pattern with at least two ON files")
        # A crossing line meets its needle in the middle of the second ON file.
        meet_s = starts[second_on[0]] + spec.file_length_s / 2 if len(members) > 1 else 0.0
        f0 = (drifts[0] - drifts) * meet_s
        ends = np.stack([f0, f0 + drifts * duration_s])
        span = int(np.ceil((ends.max() - ends.min()) / spec.foff_hz)) + 2
        blocks.append((members, f0 - ends.min(), span + 2 * spec.guard))
    stretches = free_stretches(spec)
    room = np.array([hi - lo for lo, hi in stretches], dtype=float)
    contents: list[list[int]] = [[] for _ in stretches]
    for b in sorted(range(len(blocks)), key=lambda b: -blocks[b][2]):
        choice = int(np.argmax(room))
        if room[choice] < blocks[b][2]:
            raise ValueError(f"the cadence's {len(signals)} signals do not fit in {spec.channels} channels")
        contents[choice].append(b)
        room[choice] -= blocks[b][2]
    laid = signals.copy()
    laid["freq_mhz"] = np.nan
    lowest_channel_hz = spec.fch1_mhz * 1e6 - (spec.channels - 1) * spec.foff_hz
    for (lo, _), slack, chosen in zip(stretches, room, contents):
        rng.shuffle(chosen)
        gaps = np.floor(rng.dirichlet(np.ones(len(chosen) + 1)) * slack).astype(int)
        cursor = lo
        for gap, b in zip(gaps, chosen):
            cursor += gap
            members, offsets, width = blocks[b]
            # Anywhere within a channel: a real line need not start on a channel centre.
            base_hz = lowest_channel_hz + (cursor + spec.guard + rng.uniform(0.5, 1.5)) * spec.foff_hz
            laid.loc[members, "freq_mhz"] = (base_hz + offsets) / 1e6
            cursor += width
    return laid[["kind", "freq_mhz", "drift_hz_s", "snr", "files", "crosses"]]


def free_stretches(spec: CadenceSpec) -> list[tuple[int, int]]:
    """Ascending channel ranges [lo, hi) where signals may go: coarse channels minus edges and the DC bin."""
    edge = int(spec.edge * spec.coarse_width)
    half = spec.coarse_width // 2
    stretches = []
    for c in range(spec.coarse_channels):
        start = c * spec.coarse_width
        stretches.append((start + edge, start + half - spec.guard))
        stretches.append((start + half + spec.guard + 1, start + spec.coarse_width - edge))
    return stretches


def add_line(frame: stg.Frame, start_hz: float, drift_hz_s: float, snr: float) -> None:
    """Adds a straight line starting at `start_hz` at the frame's first row, one channel wide, at `snr`."""
    end_hz = start_hz + drift_hz_s * frame.obs_length
    margin = 4 * frame.df
    frame.add_signal(
        stg.constant_path(f_start=start_hz, drift_rate=drift_hz_s),
        frame.get_intensity(snr),
        stg.box_f_profile(width=frame.df),
        bounding_f_range=(min(start_hz, end_hz) - margin, max(start_hz, end_hz) + margin),
    )


@dataclass(frozen=True)
class Instrument:
    """What a real receiver adds that plain synthetic noise lacks, multiplied into every file.

    - bandpass: each coarse channel's polyphase filter-bank response, flat in the middle and rolling off to
      about half power at its edges, with its own level and a slight tilt;
    - DC spikes: a bright constant bin at each coarse channel's centre;
    - gain drifts: each file's own level (ON and OFF pointings differ) and a slow linear drift over its rows,
      plus a little row-to-row jitter.
    """

    bandpass: np.ndarray  # (channels,), ascending frequency
    dc_bins: np.ndarray  # ascending channel index of each coarse channel's centre
    dc_level: np.ndarray  # spike height over the local mean, per coarse channel
    gains: np.ndarray  # (files, rows)

    @classmethod
    def draw(cls, spec: CadenceSpec, rng: np.random.Generator) -> Instrument:
        x = (np.arange(spec.coarse_width) + 0.5) / spec.coarse_width - 0.5  # -0.5 .. 0.5 across a coarse channel
        shape = 1.0 / (1.0 + np.abs(2.0 * x) ** 20)
        levels = rng.uniform(0.6, 1.4, spec.coarse_channels)
        tilts = rng.uniform(-0.01, 0.01, spec.coarse_channels)
        bandpass = np.concatenate([lv * shape * (1.0 + tl * 2.0 * x) for lv, tl in zip(levels, tilts)])
        # A coarse channel's DC bin is fine channel W/2 in file order (descending frequency), one below the
        # middle when counted in ascending frequency as setigen's frames are.
        dc_bins = np.arange(spec.coarse_channels) * spec.coarse_width + spec.coarse_width // 2 - 1
        t = (np.arange(spec.rows) + 0.5) / spec.rows - 0.5
        files = len(spec.pattern)
        gains = (rng.uniform(0.85, 1.15, (files, 1)) * (1.0 + rng.uniform(-0.03, 0.03, (files, 1)) * t)
                 * (1.0 + 0.003 * rng.standard_normal((files, spec.rows))))
        return cls(bandpass, dc_bins, rng.uniform(2.0, 10.0, spec.coarse_channels), gains)

    def apply(self, frame: stg.Frame, file_index: int) -> None:
        """Multiplies the frame (noise and signals alike) by the bandpass and gains, then adds the DC spikes."""
        frame.data *= self.bandpass[None, :]
        frame.data *= self.gains[file_index][:, None]
        local_mean = frame.data[:, self.dc_bins - 2].mean(axis=0)
        frame.data[:, self.dc_bins] += self.dc_level * local_mean
