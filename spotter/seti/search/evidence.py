"""SNR along exact straight lines in each file, from one block's cleaned data: the evidence behind an event."""

from __future__ import annotations

import numpy as np

from spotter.seti.search.geometry import CadenceGeometry, round_half_up


class BlockData:
    """One block's cleaned data of every file, as running sums over channels (`dedoppler.running_sums`).

    Args:
        sums: file -> (rows, channels) running sums of the cleaned data in units of the width-1 noise; column `i`
            holds channels `first[file] .. first[file] + i`.
        first: file -> absolute channel of column 0.
        noise: file -> boxcar width -> robust noise of a path sum (the file's `CoarseStats.noise`).
        geometry: The cadence's timing and drift trials.
    """

    def __init__(
        self,
        sums: dict[int, np.ndarray],
        first: dict[int, int],
        noise: dict[int, dict[int, float]],
        geometry: CadenceGeometry,
    ) -> None:
        self.first = first
        self.noise = noise
        self.geometry = geometry
        self.sums = sums
        self.max_width = {k: max(n) for k, n in noise.items()}

    def width_for(self, rate: np.ndarray) -> np.ndarray:
        """Channels a signal of this rate crosses in one row (the boxcar trial beside width 1)."""
        return np.maximum(1, round_half_up(np.abs(rate) * self.geometry.grid.tsamp_s))

    def snr(self, k: int, start: np.ndarray, rate: np.ndarray, width: np.ndarray) -> np.ndarray:
        """SNR of paths in file k: row t at channel `start + rate * t * tsamp`, summed over a `width` boxcar.

        The boxcar runs from the path's channel in the drift's direction (where a smeared row's power lies).
        Parts of a path outside the block's data count as zero.
        """
        start, rate = np.atleast_1d(start).astype(np.float64), np.atleast_1d(rate).astype(np.float64)
        width = np.minimum(np.atleast_1d(width).astype(np.int64), self.max_width[k])
        sums = self.sums[k]
        rows, columns = sums.shape
        times = np.arange(rows) * self.geometry.grid.tsamp_s
        channel = round_half_up(start[:, None] + rate[:, None] * times[None, :]) - self.first[k]
        low = np.where(rate[:, None] >= 0, channel, channel - width[:, None] + 1)  # the box is low .. high - 1
        high = low + width[:, None]
        inside = (low >= 0) & (high <= columns)
        row = np.broadcast_to(np.arange(rows)[None, :], low.shape)
        upper = sums[row, np.clip(high - 1, 0, columns - 1)]
        lower = np.where(low > 0, sums[row, np.clip(low - 1, 0, columns - 1)], 0.0)
        total = np.where(inside, upper.astype(np.float64) - lower, 0.0).sum(axis=1)  # in width-1 noise units
        ratio = np.array([self.noise[k][1] / self.noise[k][int(w)] for w in width])
        return total * ratio

    def best_snr(self, k: int, start: np.ndarray, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SNR of paths in file k at the better of width 1 and the rate's boxcar; and that width."""
        rate = np.atleast_1d(rate).astype(np.float64)
        narrow = self.snr(k, start, rate, np.ones(len(rate), np.int64))
        boxcar = self.width_for(rate)
        wide = np.where(boxcar > 1, self.snr(k, start, rate, boxcar), -np.inf)
        return np.maximum(narrow, wide), np.where(wide > narrow, boxcar, 1)

    def line_snr(self, k: int, channel0: np.ndarray, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best SNR in file k of lines given by their channel at the first file's start and their rate."""
        start = np.atleast_1d(channel0) + np.atleast_1d(rate) * self.geometry.starts_s[k]
        return self.best_snr(k, start, rate)

    def neighbourhood_snr(self, k: int, channel0: np.ndarray, rate: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """Strongest SNR in file k near each line: start channels within `radius`, drifts within two trials."""
        geometry = self.geometry
        channel0, rate, radius = np.atleast_1d(channel0), np.atleast_1d(rate), np.atleast_1d(radius)
        centre = channel0 + rate * geometry.starts_s[k]
        span = int(np.ceil(radius.max()))
        shifts = np.arange(-span, span + 1)
        steps = np.arange(-2, 3) * geometry.grid.step_rate
        start = (centre[:, None, None] + shifts[None, :, None] + 0 * steps[None, None, :]).ravel()
        rates = (rate[:, None, None] + 0 * shifts[None, :, None] + steps[None, None, :]).ravel()
        snr, _ = self.best_snr(k, start, rates)
        snr = snr.reshape(len(channel0), len(shifts), len(steps))
        near = np.abs(shifts)[None, :, None] <= radius[:, None, None]
        return np.where(near, snr, -np.inf).max(axis=(1, 2))
