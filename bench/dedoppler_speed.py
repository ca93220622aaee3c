"""De-Doppler baseline cadences per second: the two-level search against one-level brute force, same run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/dedoppler_speed.py [--n 200]

Both search the same straight paths (every fine drift x every channel) on the same binned cadences;
the one-level reference sums all 126 time bins for each drift, the library de-drifts each panel once
over a coarse grid and reuses it. "load + search" adds reading float16 .npy files as `spotter seti
baseline` does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from spotter.seti import OFF_PANELS, ON_PANELS
from spotter.seti.dedoppler import Dedoppler, baseline_scores
from spotter.seti.synth import make_cadence, write_synthetic


def brute_force(search: Dedoppler, cadence: np.ndarray) -> float:
    """Best score by summing every time bin along every path directly."""
    x = search.prepare(cadence)
    n_panels, bins, chans = x.shape
    b = search.config.bin_rows
    rows = (np.arange(n_panels)[:, None] * search.shape[1] + np.arange(bins)[None, :] * b + (b - 1) / 2).ravel()
    shifts = np.rint(search.drifts[:, None] * (rows - search.row_mid)[None, :]).astype(np.int64)
    pad = int(np.abs(shifts).max())
    padded = np.zeros((n_panels * bins, chans + 2 * pad), np.float32)
    padded[:, pad : pad + chans] = x.reshape(-1, chans)
    windows = sliding_window_view(padded, chans, axis=1)
    power = np.zeros((n_panels, len(search.drifts), chans), np.float32)
    for k in range(n_panels * bins):
        power[k // bins] += windows[k, pad + shifts[:, k]]
    power /= np.sqrt(bins)
    on = power[list(ON_PANELS)].sum(0) / np.sqrt(3)
    off = power[list(OFF_PANELS)].sum(0) / np.sqrt(3)
    return float((on - search.config.off_penalty * np.maximum(off, 0)).max())


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def rate(func, cadences) -> tuple[float, float]:
    """Cadences per second (wall) and CPU seconds per cadence."""
    func(cadences[0])
    start, cpu = time.perf_counter(), cpu_seconds()
    for cadence in cadences:
        func(cadence)
    return len(cadences) / (time.perf_counter() - start), (cpu_seconds() - cpu) / len(cadences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="cadences")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cadences = [make_cadence(rng, 1, "straight")[0] for _ in range(args.n)]
    search = Dedoppler()
    ours = rate(search.search, cadences)
    reference = rate(lambda c: brute_force(search, c), cadences[: max(args.n // 4, 2)])
    with tempfile.TemporaryDirectory() as folder:
        write_synthetic(Path(folder), 0, args.n, seed=0, workers=2)
        loaded = {}
        for workers in (1, 2):
            start, cpu = time.perf_counter(), cpu_seconds()
            baseline_scores(folder, workers=workers)
            loaded[workers] = (args.n / (time.perf_counter() - start), (cpu_seconds() - cpu) / args.n)
    # CPU seconds per cadence show what idle cores would give when other jobs share the machine
    rows = [("one-level brute force", 1, reference), ("two-level search", 1, ours)]
    rows += [("load + search (baseline)", w, value) for w, value in loaded.items()]
    for name, workers, (wall, cpu) in rows:
        print(f"{name:25s} {wall:7.1f} cadences/s ({workers} process{'es' if workers > 1 else ''}), "
              f"{cpu * 1e3:5.2f} CPU ms/cadence -> {workers / cpu:6.1f}/s on {workers} idle core(s)")
    print(f"ratio two-level / brute force: {ours[0] / reference[0]:.2f}x (wall), {reference[1] / ours[1]:.2f}x (CPU)")


if __name__ == "__main__":
    main()
