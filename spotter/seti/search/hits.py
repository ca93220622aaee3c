"""Per-file hits: the strongest drift of each channel above the SNR cut, one hit per signal.

Like turboSETI's top hits, a hit is a local maximum over channels of the best SNR over drifts. Instead of
turboSETI's fixed window (every hit within 2 * max drift / resolution channels of a stronger one is dropped)
a weaker hit is dropped only when its path comes within a few channels of a stronger hit's path inside the file:
the "bow tie" of partial matches around a strong signal goes, a separate signal nearby stays.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from spotter.seti.search.geometry import DriftGrid

PATH_TOLERANCE = 1.0  # channels between two paths (beyond their boxcar half-widths) that still count as one signal


@dataclass
class Hits:
    """Hits of one file: channel at the file's first row (absolute, file order), drift trial, SNR."""

    channel: np.ndarray
    drift_index: np.ndarray
    snr: np.ndarray

    @classmethod
    def empty(cls) -> "Hits":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.channel)

    def select(self, keep: np.ndarray) -> "Hits":
        return Hits(self.channel[keep], self.drift_index[keep], self.snr[keep])

    @classmethod
    def concat(cls, parts: list["Hits"]) -> "Hits":
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("channel", "drift_index", "snr")))


def find_peaks(best_snr: np.ndarray, best_index: np.ndarray, first_channel: int, threshold: float) -> Hits:
    """Channels whose best SNR over drifts clears the cut and beats both neighbours (before `suppress`).

    Args:
        best_snr: (channels,) best SNR of any drift trial starting at each channel.
        best_index: (channels,) the drift trial that gave it.
        first_channel: Absolute index of `best_snr[0]`.
        threshold: The SNR cut.
    """
    left = np.concatenate([[-np.inf], best_snr[:-1]])
    right = np.concatenate([best_snr[1:], [-np.inf]])
    peaks = np.flatnonzero((best_snr >= threshold) & (best_snr >= left) & (best_snr > right))
    return Hits(peaks.astype(np.int64) + first_channel, best_index[peaks].astype(np.int64),
                best_snr[peaks].astype(np.float64))  # fmt: skip


def suppress(peaks: Hits, grid: DriftGrid) -> Hits:
    """One hit per signal: peaks strongest first, each dropped if its path meets a kept, stronger one's.

    Returns:
        The kept hits in channel order.
    """
    if len(peaks) == 0:
        return peaks
    order = np.argsort(-peaks.snr, kind="stable")
    channels, indices = peaks.channel[order], peaks.drift_index[order]
    widths = grid.widths(indices)
    reach = 2 * grid.max_index + 2 * int(widths.max()) + 2  # no path further than this can touch another
    kept: list[int] = []
    kept_channels: list[int] = []  # sorted, for the window search
    kept_by_channel: list[int] = []
    for n in range(len(order)):
        c, j, w = channels[n], indices[n], widths[n]
        lo = bisect.bisect_left(kept_channels, c - reach)
        hi = bisect.bisect_right(kept_channels, c + reach)
        if any(
            _segments_meet(c, j, w, channels[m], indices[m], widths[m])
            for m in (kept_by_channel[i] for i in range(lo, hi))
        ):
            continue
        kept.append(n)
        at = bisect.bisect_left(kept_channels, c)
        kept_channels.insert(at, c)
        kept_by_channel.insert(at, n)
    return peaks.select(np.sort(order[np.array(kept, dtype=np.int64)]))


def find_hits(best_snr: np.ndarray, best_index: np.ndarray, first_channel: int, threshold: float, grid: DriftGrid) -> Hits:
    """`suppress(find_peaks(...))`: the hits of one stretch of channels."""
    return suppress(find_peaks(best_snr, best_index, first_channel, threshold), grid)


def _segments_meet(c1: int, j1: int, w1: int, c2: int, j2: int, w2: int) -> bool:
    """Whether two paths (channel c at the first row, c + j at the last) come within tolerance inside the file."""
    start = c1 - c2
    end = start + (j1 - j2)
    distance = 0.0 if start * end <= 0 else min(abs(start), abs(end))
    return distance <= PATH_TOLERANCE + (w1 + w2) / 2
