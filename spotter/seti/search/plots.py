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

    first = headers[0]
    foff_hz = first.foff_hz
    channel0, rate = float(event["channel0"]), float(event["rate"])
    margin = MARGIN + int(np.ceil(abs(rate) * geometry.grid.tsamp_s))
    ends = [(channel0 + rate * geometry.starts_s[k], channel0 + rate * (geometry.starts_s[k] + geometry.file_span_s(k)))
            for k in range(geometry.n_files)]  # fmt: skip
    lowest, highest = min(min(e) for e in ends), max(max(e) for e in ends)
    common = highest - lowest + 2 * margin <= COMMON_WINDOW_MAX
    if common:
        windows = [(int(np.floor(lowest)) - margin, int(np.ceil(highest)) + margin + 1)] * geometry.n_files
    else:
        half = int(np.ceil(max(abs(b - a) for a, b in ends) / 2)) + margin
        windows = [(int(round((a + b) / 2)) - half, int(round((a + b) / 2)) + half + 1) for a, b in ends]
    panels = [read_clean(readers[k], stats[k], lo, hi) for k, (lo, hi) in enumerate(windows)]
    values = np.concatenate([p.ravel() for p in panels])
    # dark below the median, bright from the top half percent: faint needles (2-3 sigma per pixel) stand out
    vmin, vmax = np.percentile(values, [50, 99.5]) if values.size else (0.0, 1.0)
    # x: Hz from the event's frequency at the first file's start; y: seconds since that start (slews show as gaps)
    extents = []
    for k, (lo, hi) in enumerate(windows):
        t_lo = geometry.starts_s[k]
        extents.append(((lo - 0.5 - channel0) * foff_hz, (hi - 0.5 - channel0) * foff_hz,
                        t_lo + geometry.rows[k] * geometry.grid.tsamp_s, t_lo))  # fmt: skip
    if common:  # one axes: the panels at their true times, the line straight through all of them
        fig, ax = plt.subplots(figsize=(8, 1.0 * geometry.n_files + 1.6))
        axes = [ax] * geometry.n_files
    else:
        fig, grid = plt.subplots(geometry.n_files, 1, figsize=(8, 1.3 * geometry.n_files + 1.4), squeeze=False,
                                 gridspec_kw={"hspace": 0.6})  # fmt: skip
        axes = list(grid[:, 0])
    image = None
    for k, ax in enumerate(axes):
        x_lo, x_hi, t_hi, t_lo = extents[k]
        image = ax.imshow(panels[k], aspect="auto", interpolation="nearest", cmap="viridis", vmin=vmin, vmax=vmax,
                          extent=extents[k], origin="upper")  # fmt: skip
        label = f"{'ON' if geometry.on[k] else 'OFF'}  {k}: {headers[k].path.name[:32]}"
        ax.text(min(x_lo, x_hi), t_lo, label, fontsize=7, ha="left", va="top", zorder=5,
                fontweight="bold" if geometry.on[k] else "normal",
                bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5})  # fmt: skip
        # few ticks: matplotlib spends most of a figure's time laying out tick labels
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.yaxis.set_major_locator(MaxNLocator(3 if not common else 8))
        if not common:
            times = np.array([t_lo, t_hi])
            ax.plot(event["drift_hz_s"] * times, times, color="#ff4040", lw=0.9, ls=(0, (2, 5)), alpha=0.9)
            ax.set_xlim(min(x_lo, x_hi), max(x_lo, x_hi))
            ax.set_ylim(t_hi, t_lo)
            ax.tick_params(labelsize=7)
            ax.set_ylabel("time (s)", fontsize=7)
    if common:
        ax = axes[0]
        x_all = [x for e in extents for x in e[:2]]
        t_end = max(e[2] for e in extents)
        times = np.array([0.0, t_end])
        ax.plot(event["drift_hz_s"] * times, times, color="#ff4040", lw=0.9, ls=(0, (2, 5)), alpha=0.9)
        ax.set_xlim(min(x_all), max(x_all))
        ax.set_ylim(t_end, 0.0)
        ax.set_facecolor("0.85")  # slews between files show as grey
        ax.tick_params(labelsize=7)
        ax.set_ylabel("time since the first file's start (s)", fontsize=7)
    axes[-1].set_xlabel(f"frequency offset from {event['freq_mhz']:.6f} MHz (Hz)", fontsize=7)
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
