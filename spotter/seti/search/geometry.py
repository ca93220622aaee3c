"""Drift trials and cadence timing: every time from `tstart`/`tsamp`, every drift in channels per second.

A straight signal is a line `channel(t) = c0 + rate * t`, with `t` in seconds since the first file's `tstart`
and `c0` its channel then; its frequency at file k's start is `f0 + drift * (t_k - t_0)` whatever the slews
between files. Drift rates are kept in channels per second (file order) and turned into Hz/s only for output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spotter.seti.search.header import SECONDS_PER_DAY, FileHeader


def round_half_up(values):
    """`floor(x + 0.5)` elementwise: one rounding rule for every path, so streaming and whole reads agree."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.int64)


@dataclass(frozen=True)
class DriftGrid:
    """The per-file drift trials: trial `j` moves `j` channels between the first and last row of a file.

    With `span = rows - 1` the step is `|foff| / (span * tsamp)` Hz/s (turboSETI's resolution for its row
    count, here for any row count, not only powers of two).
    """

    span: int
    max_index: int
    tsamp_s: float
    foff_hz: float

    @classmethod
    def create(cls, rows: int, tsamp_s: float, foff_hz: float, max_drift_hz_s: float) -> "DriftGrid":
        span = rows - 1
        resolution = abs(foff_hz) / (span * tsamp_s)
        return cls(span, int(math.floor(max_drift_hz_s / resolution + 1e-9)), tsamp_s, foff_hz)

    @property
    def step_rate(self) -> float:
        """Channels per second between neighbouring trials."""
        return 1.0 / (self.span * self.tsamp_s)

    @property
    def resolution_hz_s(self) -> float:
        return self.step_rate * abs(self.foff_hz)

    @property
    def max_rate(self) -> float:
        return self.max_index * self.step_rate

    def indices(self) -> np.ndarray:
        return np.arange(-self.max_index, self.max_index + 1)

    def offsets(self, indices: np.ndarray, rows: int) -> np.ndarray:
        """(trials, rows) channel offset of each row on each trial's path, exact integer rounding."""
        j = np.asarray(indices, dtype=np.int64)[:, None]
        t = np.arange(rows, dtype=np.int64)[None, :]
        return np.floor_divide(2 * j * t + self.span, 2 * self.span)

    def widths(self, indices: np.ndarray) -> np.ndarray:
        """Boxcar width per trial: the channels a signal crosses in one row (1 below 1.5 channels per row)."""
        return np.maximum(1, round_half_up(np.abs(np.asarray(indices)) / self.span))

    def hz_per_s(self, rate: np.ndarray | float) -> np.ndarray | float:
        """Channels per second (file order) to Hz/s (physical: positive when frequency rises)."""
        return np.asarray(rate) * self.foff_hz


@dataclass(frozen=True)
class CadenceGeometry:
    """When each file starts, which are ON, and the cadence-long drift trials of the ON-path search.

    Cadence trial `m` has rate `m * fine_rate` channels per second; `fine_rate` is one channel over the span
    from the first file's start to the end of the last ON file, so the path of the nearest trial stays within
    half a channel of any straight signal in every ON file.
    """

    starts_s: np.ndarray
    rows: tuple[int, ...]
    on: tuple[bool, ...]
    grid: DriftGrid
    fine_rate: float
    fine_max: int
    max_rate: float  # channels per second of the largest drift searched

    @classmethod
    def create(cls, headers: list[FileHeader], on: tuple[bool, ...], max_drift_hz_s: float) -> "CadenceGeometry":
        first = headers[0]
        starts = np.array([(h.tstart_mjd - first.tstart_mjd) * SECONDS_PER_DAY for h in headers])
        rows = tuple(h.n_rows for h in headers)
        grid = DriftGrid.create(max(rows), first.tsamp_s, first.foff_hz, max_drift_hz_s)
        span_s = max(starts[k] + (rows[k] - 1) * first.tsamp_s for k in range(len(headers)) if on[k])
        fine_rate = 1.0 / max(span_s, grid.span * grid.tsamp_s)
        # the cadence reaches max_drift even where one file's step is coarser (mid-resolution data: 9.8 Hz/s)
        max_rate = max_drift_hz_s / abs(grid.foff_hz)
        fine_max = int(math.floor(max_rate / fine_rate + 1e-9))
        return cls(starts, rows, tuple(on), grid, fine_rate, fine_max, max(max_rate, grid.max_rate))

    @property
    def n_files(self) -> int:
        return len(self.rows)

    @property
    def on_files(self) -> list[int]:
        return [k for k, is_on in enumerate(self.on) if is_on]

    @property
    def off_files(self) -> list[int]:
        return [k for k, is_on in enumerate(self.on) if not is_on]

    def fine_indices(self) -> np.ndarray:
        return np.arange(-self.fine_max, self.fine_max + 1)

    def coarse_of(self, fine: np.ndarray) -> np.ndarray:
        """The per-file trial nearest each cadence trial's rate."""
        j = round_half_up(np.asarray(fine) * self.fine_rate * self.grid.span * self.grid.tsamp_s)
        return np.clip(j, -self.grid.max_index, self.grid.max_index)

    def start_shift(self, fine: np.ndarray, k: int) -> np.ndarray:
        """Channels a cadence trial's path has moved by file k's start."""
        return round_half_up(np.asarray(fine) * self.fine_rate * self.starts_s[k])

    def reach(self, k: int) -> int:
        """The most channels any path within the drift range moves by file k's start."""
        return int(math.ceil(self.max_rate * self.starts_s[k])) + 1

    def row_times(self, k: int) -> np.ndarray:
        """Start time of each row of file k, in seconds since the first file's start."""
        return self.starts_s[k] + np.arange(self.rows[k]) * self.grid.tsamp_s

    def file_span_s(self, k: int) -> float:
        """Seconds from file k's first row to its last."""
        return (self.rows[k] - 1) * self.grid.tsamp_s
