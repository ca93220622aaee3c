"""Peak memory of `spotter seti search` on six 16-row files of 2^22 channels, beside a process that only imports.

`python bench/seti_search_memory.py [--channels N] [--folder DIR]` writes an ABACAD cadence of GBT
high-resolution shape (16 rows of 18.25 s, 2.79 Hz channels, chi-squared noise, a few needles) and runs the
search on it in a child process. Each child's peak resident memory comes from `wait4` (what `/usr/bin/time -v`
reports as "Maximum resident set size"), so the numbers include the interpreter's start and exit. The baseline is
a child that only imports torch and blimpy: the difference is what the search itself adds, which must not grow
with the file (the target: the whole run under 1 GB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS, TSAMP_S, FOFF_HZ, FCH1_MHZ = 16, 18.253611008, 2.7939677238464355, 8000.0
SLEWS_S = (12.0, 47.0, 9.0, 33.0, 21.0)


def write_cadence(folder: Path, channels: int, seed: int = 0) -> list[Path]:
    """Six .fil files: chi-squared noise (numpy, fast at this size) and five needles in the ON files."""
    import setigen as stg
    from astropy import units as u
    from astropy.time import Time

    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0.0], np.cumsum(ROWS * TSAMP_S + np.asarray(SLEWS_S))])
    needles = [(rng.uniform(0.1, 0.9) * channels, rng.uniform(-2, 2), 30.0) for _ in range(5)]
    paths = []
    for k, start in enumerate(starts):
        data = rng.chisquare(200, size=(ROWS, channels)).astype(np.float32) / 20.0
        frame = stg.Frame.from_data(FOFF_HZ * u.Hz, TSAMP_S * u.s, FCH1_MHZ * u.MHz, False, data)
        frame.t_start = Time(60000 + start / 86400, format="mjd").unix  # tstart: the slews are real
        frame.noise_mean, frame.noise_std = 10.0, float(data[:, :4096].std())
        for channel, drift, snr in needles if k % 2 == 0 else []:
            frame.add_signal(
                stg.constant_path(
                    f_start=FCH1_MHZ * 1e6 - channel * FOFF_HZ + drift * start, drift_rate=drift * u.Hz / u.s
                ),
                stg.constant_t_profile(level=frame.get_intensity(snr=snr)),
                stg.box_f_profile(width=FOFF_HZ * u.Hz),
                stg.constant_bp_profile(level=1),
            )
        paths.append(folder / f"obs{k}.fil")
        frame.save_fil(str(paths[-1]))
        del frame, data
    return paths


# runs the CLI (or only the imports), then leaves without the interpreter's teardown, which pages in ~190 MB of
# torch's libraries after all the work is done and would hide what the search itself holds
PEAK_BEFORE_EXIT = "import os, sys; from spotter.cli import main; os._exit(main(sys.argv[1:]))"
IMPORTS_ONLY = "import os, torch, blimpy; os._exit(0)"


def run_child(command: list[str]) -> tuple[float, float, float]:
    """Runs a command; returns its peak resident memory (MB, from wait4), CPU seconds and wall seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command[:6])} ...: {process.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2**22, help="channels per file (default 2^22)")
    parser.add_argument("--folder", help="keep the cadence here (default: a temporary folder, removed)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="seti_memory_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        paths = sorted(folder.glob("obs*.fil")) or write_cadence(folder, args.channels)
        size_gb = sum(p.stat().st_size for p in paths) / 1e9
        plain = run_child([sys.executable, "-W", "ignore", "-c", "import torch, blimpy"])
        imports = run_child([sys.executable, "-W", "ignore", "-c", IMPORTS_ONLY])
        out = folder / "search"
        shutil.rmtree(out, ignore_errors=True)
        cli = ["--quiet", "seti", "search", *map(str, paths), "--out", str(out)]
        search = run_child([sys.executable, "-W", "ignore", "-c", PEAK_BEFORE_EXIT, *cli])
        events = (out / "events.csv").read_text().count("\n") - 1
        teardown = plain[0] - imports[0]
        print(f"cadence: 6 files x {ROWS} rows x {args.channels} channels ({size_gb:.2f} GB on disk)")
        print(f"{'process (peak before exit)':28s} {'peak MB':>8s} {'CPU s':>7s} {'wall s':>7s}")
        print(f"{'import torch, blimpy':28s} {imports[0]:8.0f} {imports[1]:7.1f} {imports[2]:7.1f}")
        print(f"{'spotter seti search':28s} {search[0]:8.0f} {search[1]:7.1f} {search[2]:7.1f}  ({events} events)")
        print(
            f"the search adds {search[0] - imports[0]:.0f} MB to its imports; target under 1024 MB: "
            f"{'met' if search[0] < 1024 else 'missed'}. A normal interpreter exit pages in {teardown:.0f} MB more "
            f"of torch's libraries after the work (import torch, blimpy alone: {plain[0]:.0f} MB by wait4), so "
            f"`/usr/bin/time -v` on the command reads about {search[0] + teardown:.0f} MB"
        )
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
