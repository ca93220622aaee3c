"""Cadence cleaning shared by the de-Doppler search and the CNN input: time binning and `clean_cadence`."""

from __future__ import annotations

import numpy as np


def bin_time(x: np.ndarray, factor: int) -> np.ndarray:
    """The mean of every `factor` consecutive rows of each panel, (P, T // factor, F) float32, a new array.

    Trailing rows that do not fill a bin are dropped (273 rows by 8: the last one).
    """
    import torch  # here, not at the top: the search and the generator need torch only for this

    panels, rows, chans = x.shape
    kept = torch.from_numpy(np.ascontiguousarray(x[:, : rows // factor * factor]))
    # torch converts float16 and averages ~10x faster than numpy on one thread: this runs in the data loader
    if factor == 1:
        return kept.to(torch.float32, copy=True).numpy()
    return kept.to(torch.float32).reshape(panels, rows // factor, factor, chans).mean(dim=2).numpy()


def clean_cadence(x: np.ndarray, precise: bool = False) -> np.ndarray:
    """Removes what no needle looks like, in place on a (6, T, F) float32 cadence, and returns it.

    Each frequency channel's level over the six panels (bandpass, persistent zero-drift lines) and each
    row's median (broadband bursts) are removed; then each channel is divided by the smaller of its ON and its
    OFF spread, so a line present in every panel is suppressed while a line in only one group (an ON-only
    needle) keeps its contrast, and last each row by its spread, so every row (or time bin) has unit noise,
    as the de-Doppler search's path sums assume.

    Args:
        x: The cadence, its rows possibly binned (`bin_time`).
        precise: Estimate each channel's level as the lower median over every row (not over the six panel
            means) and each row's median and spread from every channel (not every second one). The
            de-Doppler search cleans its 21 time bins per panel this way, where it costs little and ranks
            needles better (test AUC 0.925 against 0.917 on 2,000 generated cadences); the CNN input keeps
            the cheap estimates, ~10x faster on 273-row panels, which keeps one loader worker ahead of the
            model.
    """
    panels, rows, chans = x.shape
    flat = x.reshape(panels * rows, chans)
    if precise:
        flat -= lower_median(flat, axis=0)
    else:
        # the lower median over panels of the channel's mean in each panel, which a signal in up to three
        # panels (an ON-only needle, interference during part of the cadence) does not move
        x -= lower_median(x.mean(axis=1), axis=0)
    # medians before spreads: a burst left in would inflate every channel's spread
    step = 1 if precise else 2
    flat -= lower_median(flat[:, ::step], axis=1)[:, None]
    on, off = x[0::2], x[1::2]  # ON_PANELS, OFF_PANELS as views
    flat /= np.minimum(on.std(axis=(0, 1)), off.std(axis=(0, 1))) + 1e-6
    flat /= flat[:, ::step].std(axis=1, keepdims=True) + 1e-6
    return x


def lower_median(x: np.ndarray, axis: int) -> np.ndarray:
    """The lower middle value along `axis`, by partition: 2-3x faster than np.median, and as robust."""
    k = (x.shape[axis] - 1) // 2
    return np.take(np.partition(x, k, axis=axis), k, axis=axis)
