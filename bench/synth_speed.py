"""Synthetic SETI cadences per second: spotter's generator against plain setigen, measured in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/synth_speed.py [--n 400] [--workers 2]

Plain setigen builds six 273x256 Frames with `add_noise_from_obs()` (real GBT statistics, legacy global
RNG), adds one drifting needle to the ON frames through a `Cadence`, normalizes each panel and saves the
float16 cadence: the same work `spotter seti synth` does per sample (which also adds a bandpass and RFI).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def setigen_cadence(task: tuple[int, str]) -> None:
    """One cadence the plain setigen way."""
    import setigen as stg
    from astropy import units as u

    from spotter.seti.needles import DF_HZ, DT_S
    from spotter.seti.synth import normalize_panels

    seed, folder = task
    np.random.seed(seed)
    frames = []
    for i in range(6):
        frame = stg.Frame(
            fchans=256, tchans=273, df=DF_HZ * u.Hz, dt=DT_S * u.s, fch1=6 * u.GHz, t_start=i * 273 * DT_S
        )
        frame.add_noise_from_obs()
        frames.append(frame)
    stg.Cadence(frames[0::2]).add_signal(
        stg.constant_path(f_start=frames[0].get_frequency(index=128), drift_rate=0.05 * DF_HZ / DT_S * u.Hz / u.s),
        stg.constant_t_profile(level=frames[0].get_intensity(snr=20)),
        stg.gaussian_f_profile(width=3 * DF_HZ * u.Hz),
        stg.constant_bp_profile(level=1),
    )
    cadence = normalize_panels(np.stack([f.data for f in frames]).astype(np.float32))
    np.save(Path(folder) / f"{seed}.npy", cadence)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def rate_setigen(n: int, workers: int, folder: str) -> tuple[float, float]:
    tasks = [(i, folder) for i in range(n)]
    pool = multiprocessing.get_context("fork").Pool(workers)
    pool.map(setigen_cadence, tasks[: 2 * workers])  # warm the workers' imports
    start, cpu = time.perf_counter(), cpu_seconds()
    pool.map(setigen_cadence, tasks, chunksize=4)
    wall = time.perf_counter() - start
    pool.close()
    pool.join()
    return n / wall, (cpu_seconds() - cpu) / n


def rate_spotter(n: int, workers: int, folder: str) -> tuple[float, float]:
    from spotter.seti.synth import write_synthetic

    start, cpu = time.perf_counter(), cpu_seconds()
    write_synthetic(Path(folder) / "syn", n, 0, seed=0, workers=workers)
    return n / (time.perf_counter() - start), (cpu_seconds() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="cadences per method")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plain = rate_setigen(args.n, args.workers, folder)
        ours = rate_spotter(args.n, args.workers, folder)
    # CPU seconds per cadence show what idle cores would give when other jobs share the machine
    for name, (rate, cpu) in (("plain setigen:     ", plain), ("spotter seti synth:", ours)):
        print(f"{name} {rate:7.1f} cadences/s ({args.workers} workers), {cpu * 1e3:6.1f} CPU ms/cadence "
              f"-> {args.workers / cpu:6.1f}/s on {args.workers} idle cores")
    print(f"ratio: {ours[0] / plain[0]:.2f}x (wall), {plain[1] / ours[1]:.2f}x (CPU)")


if __name__ == "__main__":
    main()
