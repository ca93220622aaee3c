"""A PNG per event: every file's panel on frequency-offset and time axes, one colour scale, the fitted line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spotter.io import atomic_path
from spotter.seti.search.clean import CoarseStats, read_clean
from spotter.seti.search.geometry import CadenceGeometry
from spotter.seti.search.header import FileHeader

COMMON_WINDOW_MAX = 1024  # channels: beyond this each panel gets its own window around the line
MARGIN = 24  # channels shown on each side of the line


def plot_event(
    event: dict,
    rank: int,
    headers: list[FileHeader],
    readers: list,
    stats: list[CoarseStats],
    geometry: CadenceGeometry,
    path: str | Path,
) -> None:
    """Saves one event's panels (top to bottom in observation order) as a PNG.

    Args:
        event: A row of the events table (needs freq_mhz, drift_hz_s, snr, level, channel0 and rate).
        rank: Its rank in the table (for the title).
        headers: The cadence's file headers.
        readers: A `ChannelReader` per file.
        stats: The cleaning of the event's coarse channel, per file.
        geometry: The cadence's timing.
        path: Where the PNG goes (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    foff_hz = headers[0].foff_hz
    channel0, rate = float(event["channel0"]), float(event["rate"])
    margin = MARGIN + int(np.ceil(abs(rate) * geometry.grid.tsamp_s))
    files = range(geometry.n_files)
    starts = [channel0 + rate * geometry.starts_s[k] for k in files]  # the line at each file's first row
    ends = [starts[k] + rate * geometry.file_span_s(k) for k in files]
    lowest, highest = min(starts + ends), max(starts + ends)
    common = highest - lowest + 2 * margin <= COMMON_WINDOW_MAX
    if common:  # one window: offsets from the event's frequency, the line straight through every panel
        windows = [(int(np.floor(lowest)) - margin, int(np.ceil(highest)) + margin + 1)] * geometry.n_files
        origins = [channel0] * geometry.n_files
    else:  # a fast drift: each panel its own window, offsets from where the line enters that file
        half = int(np.ceil(max(abs(ends[k] - starts[k]) for k in files) / 2)) + margin
        windows = [
            (round((starts[k] + ends[k]) / 2) - half, round((starts[k] + ends[k]) / 2) + half + 1) for k in files
        ]
        origins = starts
    panels = [read_clean(readers[k], stats[k], lo, hi) for k, (lo, hi) in enumerate(windows)]
    values = np.concatenate([p.ravel() for p in panels])
    # dark below the median, bright from the top half percent, so faint needles (2-3 sigma per pixel) stand out;
    # a strong signal sets the top itself, or the noise's brightest pixels would look just like it
    vmin, vmax = np.percentile(values, [50, 99.5]) if values.size else (0.0, 1.0)
    vmax = max(vmax, 0.7 * _level_on_line(panels, windows, starts, rate, geometry))
    # one axes for all panels (few tick labels to lay out, the costly part): y is seconds since the first file's
    # start, so the panels sit at their true times and slews show as gaps
    fig, ax = plt.subplots(figsize=(8, 1.0 * geometry.n_files + 1.6))
    image = None
    x_all, t_end = [], 0.0
    for k in files:
        lo, hi = windows[k]
        t_lo = geometry.starts_s[k]
        t_hi = t_lo + geometry.rows[k] * geometry.grid.tsamp_s
        x_lo, x_hi = (lo - 0.5 - origins[k]) * foff_hz, (hi - 0.5 - origins[k]) * foff_hz
        image = ax.imshow(
            panels[k],
            aspect="auto",
            interpolation="nearest",
            cmap="viridis",
            vmin=vmin,
            vmax=vmax,
            extent=(x_lo, x_hi, t_hi, t_lo),
            origin="upper",
        )
        if not common:
            times = np.array([t_lo, t_hi])
            ax.plot(event["drift_hz_s"] * (times - t_lo), times, color="white", lw=1.1, ls=(0, (3, 6)), alpha=0.85)
        # the label goes in the top corner the line leaves free: it starts left of centre when it drifts right
        rightwards = event["drift_hz_s"] > 0
        ax.text(
            max(x_lo, x_hi) if rightwards else min(x_lo, x_hi),
            t_lo,
            f"{'ON' if geometry.on[k] else 'OFF'}  {k}: {headers[k].path.name[:32]}",
            fontsize=7,
            ha="right" if rightwards else "left",
            va="top",
            zorder=5,
            fontweight="bold" if geometry.on[k] else "normal",
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5},
        )
        x_all += [x_lo, x_hi]
        t_end = max(t_end, t_hi)
    if common:
        times = np.array([0.0, t_end])
        ax.plot(event["drift_hz_s"] * times, times, color="white", lw=1.1, ls=(0, (3, 6)), alpha=0.85)
        ax.set_xlabel(f"frequency offset from {event['freq_mhz']:.6f} MHz (Hz)", fontsize=7)
    else:
        ax.set_xlabel("frequency offset from the fitted line at each file's first row (Hz)", fontsize=7)
    ax.set_xlim(min(x_all), max(x_all))
    ax.set_ylim(t_end, 0.0)
    ax.set_facecolor("0.85")  # slews between files show as grey
    ax.xaxis.set_major_locator(MaxNLocator(8))
    ax.yaxis.set_major_locator(MaxNLocator(8))
    ax.tick_params(labelsize=7)
    ax.set_ylabel("time since the first file's start (s)", fontsize=7)
    fig.suptitle(
        f"event {rank}: {event['freq_mhz']:.6f} MHz, drift {event['drift_hz_s']:+.4f} Hz/s, "
        f"SNR {event['snr']:.1f}, level {event['level']} (seen in files {event['files'] or '-'})",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.1, right=0.87, top=0.92, bottom=0.1)
    bar = fig.add_axes((0.89, 0.1, 0.02, 0.82))
    fig.colorbar(image, cax=bar).set_label("power / (bandpass x gain) - 1", fontsize=7)
    bar.tick_params(labelsize=7)
    bar.yaxis.set_major_locator(MaxNLocator(5))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _level_on_line(panels: list[np.ndarray], windows, starts: list[float], rate: float, geometry) -> float:
    """The power on the event's line in the panel where it is brightest (median over rows of the best of three
    channels around the line, which allows for rounding)."""
    levels = [0.0]
    for k, panel in enumerate(panels):
        rows, width = panel.shape
        column = np.floor(starts[k] + rate * np.arange(rows) * geometry.grid.tsamp_s + 0.5).astype(int) - windows[k][0]
        around = [
            np.where(
                (column + step >= 0) & (column + step < width),
                panel[np.arange(rows), np.clip(column + step, 0, width - 1)],
                -np.inf,
            )
            for step in (-1, 0, 1)
        ]
        levels.append(float(np.median(np.max(around, axis=0))))
    return max(levels)
