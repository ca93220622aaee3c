"""turboSETI 2.3.2 vs `spotter seti search` on the same synthetic Breakthrough Listen cadences, side by side.

    .venv/bin/python bench/seti_search_vs_turboseti.py [--quick] [--seed 0] [--keep DIR] [--workers N]
        [--cadences standard,faint]

Cadences (bench/_blcadence.py; six GBT high-resolution-shaped `.fil` files ABACAD with real slews):
- standard: 20 needles in the ON files (SNR 10-50, |drift| 0.05-3 Hz/s), 20 RFI lines in all files (6 at zero
  drift), 5 signals in the OFF files only;
- faint: needles at SNR 6-12 per file, |drift| up to 4 Hz/s, one drifting RFI line crossing a needle, plus
  each coarse channel's bandpass roll-off, DC spikes and gain drifts;
- faint-plain (on request): the faint cadence without the instrument effects (bandpass, DC spikes, gain
  drifts), to tell faintness from instrument apart.

turboSETI runs as its users run it, from a side venv built on first use under bench/.cache/ (it needs
numpy<2): `turboSETI FILE -M 4 -s S -n <coarse channels> -o OUT` per file (S = 10, and also 6 on the faint
cadences), then `find_event_pipeline` at filter level 3 over the six `.dat` files. spotter runs
`spotter seti search FILES --out DIR --snr S --max-drift 4 --pattern ABACAD --coarse-channels <as -n> --top 0
--workers 1` (S = 10 on the standard cadence, 6 on the faint ones). No PNGs, as turboSETI's run makes none. One
thread unless `--workers` says otherwise, as turboSETI runs one: on a busy machine, threads waiting on each
other count as CPU time (spotter on the standard cadence, load average 6 on 2 cores: 8 s of CPU with one
thread, 46 s with two). If the side venv cannot be built the script says so in one line and reports spotter
alone.

Scoring: a needle is recovered at level 3 when a level-3 event's frequency at the first file's tstart is
within 4 channels (11.2 Hz) of the needle's and its drift within 2 drift steps (2 x foff / ((rows - 1) x tsamp),
0.0204 Hz/s; turboSETI's step); each needle counts once. False events: level-3 events matching no needle;
extra: further level-3 events on an already recovered needle. Drift error: median |drift - true drift| over
the recovered needles. CPU: user + system seconds of every process the tool ran (os.wait4), including
turboSETI's event pipeline. Peak memory: the largest resident set of any one process the tool ran, or of a
process with all its children at once where that is larger (sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import _blcadence as blc  # bench/ is on the path when a script here runs
import numpy as np
import pandas as pd
import psutil

from spotter.io import require_empty_folder

TURBOSETI = "turbo_seti==2.3.2"
CACHE = Path(__file__).resolve().parent / ".cache"
MAX_DRIFT = 4.0
FREQ_TOL_CHANNELS = 4
DRIFT_TOL_STEPS = 2
SPECS = {"standard": blc.STANDARD, "faint": blc.FAINT, "faint-plain": replace(blc.FAINT, instrument=False)}
SPOTTER_SNR = {"standard": 10.0, "faint": 6.0, "faint-plain": 6.0}
TURBOSETI_SNRS = {"standard": (10.0,), "faint": (10.0, 6.0), "faint-plain": (10.0, 6.0)}

# Runs in the side venv: turboSETI's event finder over a list of .dat files, at filter level 3.
FIND_EVENTS = """
import sys
from turbo_seti.find_event.find_event_pipeline import find_event_pipeline
find_event_pipeline(sys.argv[1], filter_threshold=3, number_in_cadence=int(sys.argv[3]), csv_name=sys.argv[2],
                    saving=True, user_validation=False)
"""


@dataclass
class Usage:
    """CPU seconds and peak memory of the processes one tool ran."""

    cpu_s: float = 0.0
    peak_mb: float = 0.0
    wall_s: float = 0.0

    def add(self, other: Usage) -> None:
        self.cpu_s += other.cpu_s
        self.peak_mb = max(self.peak_mb, other.peak_mb)
        self.wall_s += other.wall_s


@dataclass
class Result:
    """One tool's level-3 events on one cadence, scored, with what running it cost."""

    tool: str
    usage: Usage
    recalled: int = 0
    needles: int = 0
    false: int = 0
    extra: int = 0
    drift_error: float = float("nan")
    missed: list[int] = field(default_factory=list)  # truth rows of the needles not recovered
    detail: str = ""  # where the CPU time went, when the tool ran more than one step


class ToolFailed(RuntimeError):
    """A tool exited with an error; the message holds its command and the end of its output."""


def run_measured(command: list[str], log: Path, env: dict | None = None) -> Usage:
    """Runs `command` with its output in `log`; returns its CPU time (its children's too) and peak memory.

    Raises:
        ToolFailed: If it exits with a non-zero status.
    """
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        tree_peak = TreeMemory(process.pid)
        tree_peak.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        tree_peak.stop()
    if process.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise ToolFailed(f"{' '.join(command[:4])} ... exited {process.returncode}: {' | '.join(tail)}")
    peak_mb = max(usage.ru_maxrss / 1024, tree_peak.peak_bytes / 2**20)  # ru_maxrss is in KiB on Linux
    return Usage(usage.ru_utime + usage.ru_stime, peak_mb, time.perf_counter() - started)


class TreeMemory(threading.Thread):
    """Samples the summed resident memory of a process and all its descendants while it runs."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_bytes = pid, every_s, 0
        self._done = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.wait(self.every_s):
            try:
                processes = [root, *root.children(recursive=True)]
                self.peak_bytes = max(self.peak_bytes, sum(_rss(p) for p in processes))
            except psutil.Error:
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


# ---------------------------------------------------------------- turboSETI


def turboseti_venv() -> tuple[Path | None, str]:
    """The side venv's python with turboSETI installed (built on first use), or None and why not."""
    venv = CACHE / "turboseti-2.3.2"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and python.exists():
        return python, ""
    print(f"building a side venv for {TURBOSETI} under {venv} (first run only) ...", flush=True)
    try:
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", TURBOSETI, "numpy<2", "setuptools<82"],
            check=True, capture_output=True, timeout=1200,
        )
        subprocess.run([str(venv / "bin" / "turboSETI"), "--version"], check=True, capture_output=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        last = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(error)]
        return None, f"turboSETI: its side venv could not be built ({last[0][:160]}); reporting spotter alone"
    marker.write_text(TURBOSETI + "\n")
    return python, ""


def run_turboseti(python: Path, cadence: blc.Cadence, spec: blc.CadenceSpec, snr: float, out: Path) -> Result:
    """turboSETI on each file, then its event pipeline at level 3; returns the scored level-3 events."""
    out.mkdir(parents=True)
    usage = Usage()
    for path in cadence.files:
        command = [str(python.parent / "turboSETI"), str(path), "-M", str(MAX_DRIFT), "-s", f"{snr:g}",
                   "-n", str(spec.coarse_channels), "-o", str(out)]
        usage.add(run_measured(command, out / f"{path.stem}.log.txt"))
    search_cpu_s = usage.cpu_s
    listing = out / "dats.lst"
    listing.write_text("".join(f"{out / path.stem}.dat\n" for path in cadence.files))
    csv = out / "events.csv"
    command = [str(python), "-c", FIND_EVENTS, str(listing), str(csv), str(len(cadence.files))]
    usage.add(run_measured(command, out / "find_events.log.txt"))
    result = score(f"turboSETI -s {snr:g}", turboseti_events(csv), cadence, spec, usage)
    result.detail = (f"{search_cpu_s:.1f} s for the {len(cadence.files)} files (with .fil to .h5), "
                     f"{usage.cpu_s - search_cpu_s:.1f} s for find_event_pipeline")
    return result


def turboseti_events(csv: Path) -> pd.DataFrame:
    """turboSETI's level-3 events, one row each: its hit in the first ON file (frequency at that file's start).

    find_event_pipeline writes one row per ON file's hit (or only the first file's), grouped by Hit_ID, and
    no file at all when it finds nothing.
    """
    if not csv.exists():
        return pd.DataFrame({"freq_mhz": [], "drift_hz_s": []})
    rows = pd.read_csv(csv)
    first = rows[rows["status"] == "on_table_1"].drop_duplicates("Hit_ID")
    return pd.DataFrame({"freq_mhz": first["Freq"].to_numpy(float), "drift_hz_s": first["DriftRate"].to_numpy(float)})


# ---------------------------------------------------------------- spotter


def spotter_search_available() -> bool:
    """Whether this checkout's CLI has `spotter seti search`."""
    command = [sys.executable, "-m", "spotter", "seti", "search", "--help"]
    return subprocess.run(command, check=False, capture_output=True).returncode == 0


def run_spotter(cadence: blc.Cadence, spec: blc.CadenceSpec, snr: float, out: Path, workers: int | None) -> Result:
    """`spotter seti search` on the cadence; returns its scored level-3 events."""
    command = [sys.executable, "-m", "spotter", "--quiet", "seti", "search", *map(str, cadence.files),
               "--out", str(out / "search"), "--snr", f"{snr:g}", "--max-drift", str(MAX_DRIFT),
               "--pattern", spec.pattern, "--coarse-channels", str(spec.coarse_channels), "--top", "0"]
    if workers:
        command += ["--workers", str(workers)]
    out.mkdir(parents=True)
    usage = run_measured(command, out / "search.log.txt")
    events = pd.read_csv(out / "search" / "events.csv")
    level3 = events[events["level"] == 3]
    return score(f"spotter --snr {snr:g}", level3[["freq_mhz", "drift_hz_s"]], cadence, spec, usage)


# ---------------------------------------------------------------- scoring


def tolerances(spec: blc.CadenceSpec) -> tuple[float, float]:
    """Frequency (Hz) and drift (Hz/s) within which an event matches a needle."""
    drift_step = spec.foff_hz / ((spec.rows - 1) * spec.tsamp_s)
    return FREQ_TOL_CHANNELS * spec.foff_hz, DRIFT_TOL_STEPS * drift_step


def score(tool: str, events: pd.DataFrame, cadence: blc.Cadence, spec: blc.CadenceSpec, usage: Usage) -> Result:
    """Matches level-3 events to the needles within the tolerances; each event to its nearest needle."""
    freq_tol, drift_tol = tolerances(spec)
    needles = cadence.truth[cadence.truth["kind"] == "needle"]
    result = Result(tool, usage, needles=len(needles))
    best: dict[int, float] = {}  # needle row -> smallest drift error of an event matching it
    for event in events.itertuples():
        freq_error = np.abs(needles["freq_mhz"].to_numpy() - event.freq_mhz) * 1e6
        drift_error = np.abs(needles["drift_hz_s"].to_numpy() - event.drift_hz_s)
        matches = np.flatnonzero((freq_error <= freq_tol) & (drift_error <= drift_tol))
        if not len(matches):
            result.false += 1
            continue
        nearest = matches[np.argmin(freq_error[matches] / freq_tol + drift_error[matches] / drift_tol)]
        row = int(needles.index[nearest])
        if row in best:
            result.extra += 1
        best[row] = min(best.get(row, np.inf), float(drift_error[nearest]))
    result.recalled = len(best)
    result.missed = sorted(set(needles.index) - set(best))
    if best:
        result.drift_error = float(np.median(list(best.values())))
    return result


# ---------------------------------------------------------------- report


def print_table(rows: list[tuple[str, Result]]) -> None:
    header = (f"{'cadence':12s} {'tool':22s} {'L3 recall':>9s} {'false':>5s} {'extra':>5s} "
              f"{'drift err':>9s} {'CPU s':>7s} {'wall s':>7s} {'peak MB':>8s}")
    print(header)
    print("-" * len(header))
    for name, r in rows:
        print(f"{name:12s} {r.tool:22s} {f'{r.recalled}/{r.needles}':>9s} {r.false:5d} {r.extra:5d} "
              f"{r.drift_error:9.4f} {r.usage.cpu_s:7.1f} {r.usage.wall_s:7.1f} {r.usage.peak_mb:8.0f}")


def print_ratios(name: str, ours: Result, theirs: Result) -> None:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b and np.isfinite(a / b) else "n/a"

    print(f"{name:12s} spotter / {theirs.tool}: recall {ours.recalled} vs {theirs.recalled}, "
          f"false events {ours.false} vs {theirs.false}, drift error {ratio(ours.drift_error, theirs.drift_error)}, "
          f"CPU {ratio(ours.usage.cpu_s, theirs.usage.cpu_s)}, "
          f"peak memory {ratio(ours.usage.peak_mb, theirs.usage.peak_mb)}")


def print_targets(results: dict[str, dict[str, Result]]) -> None:
    """The issue's targets, each marked met or missed, where both tools ran on that cadence."""
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    checks = []
    standard = results.get("standard", {})
    ours, theirs = standard.get("spotter"), standard.get("turboSETI -s 10")
    if ours:
        checks.append(f"standard recall {ours.recalled}/{ours.needles} (all): {mark(ours.recalled == ours.needles)}")
        checks.append(f"standard false events {ours.false} (0): {mark(ours.false == 0)}")
    if ours and theirs:
        checks.append(f"standard drift error {ours.drift_error:.4f} <= turboSETI's {theirs.drift_error:.4f}: "
                      f"{mark(ours.drift_error <= theirs.drift_error)}")
        cpu = ours.usage.cpu_s / theirs.usage.cpu_s
        checks.append(f"standard CPU {cpu:.2f}x turboSETI's (<= 0.5x): {mark(cpu <= 0.5)}")
    faint = results.get("faint", {})
    ours, theirs = faint.get("spotter"), faint.get("turboSETI -s 6")
    if ours:
        need = int(np.ceil(0.75 * ours.needles))
        checks.append(f"faint recall {ours.recalled}/{ours.needles} (>= {need}): {mark(ours.recalled >= need)}")
    if ours and theirs:
        checks.append(f"faint false events {ours.false} <= turboSETI -s 6's {theirs.false}: "
                      f"{mark(ours.false <= theirs.false)}")
    if checks:
        print("targets: " + "; ".join(checks))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cadences (2 coarse channels of 2^15, 8 needles)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write cadences and both tools' outputs here (absent or empty) and keep them")
    parser.add_argument("--workers", type=int, default=1,
                        help="`spotter seti search --workers` (default 1: CPU seconds of one thread, as turboSETI's)")
    parser.add_argument("--cadences", default="standard,faint", help=f"comma-separated, of {', '.join(SPECS)}")
    args = parser.parse_args()
    names = [name.strip() for name in args.cadences.split(",") if name.strip()]
    unknown = [name for name in names if name not in SPECS]
    if unknown:
        parser.error(f"unknown cadence {unknown[0]!r}; expected one of {', '.join(SPECS)}")

    python, why_not = turboseti_venv()
    if why_not:
        print(why_not)
    has_search = spotter_search_available()
    if not has_search:
        print("spotter: this checkout has no `spotter seti search` yet; reporting turboSETI alone")
    if python is None and not has_search:
        return 0

    load_before = os.getloadavg()[0]
    work = Path(require_empty_folder(args.keep)) if args.keep else Path(tempfile.mkdtemp(prefix="seti-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, Result]] = []
    results: dict[str, dict[str, Result]] = {}
    truth_of: dict[str, pd.DataFrame] = {}
    failures = []
    try:
        for offset, name in enumerate(names):
            spec = blc.quick(SPECS[name]) if args.quick else SPECS[name]
            started = time.perf_counter()
            cadence = blc.write_cadence(spec, work / name / "files", seed=args.seed + offset)
            print(f"{name}: wrote 6 files of {spec.rows} x {spec.channels} channels in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            here = results.setdefault(name, {})
            truth_of[name] = cadence.truth
            if python is not None:
                for snr in TURBOSETI_SNRS[name]:
                    result = run_turboseti(python, cadence, spec, snr, work / name / f"turboseti_s{snr:g}")
                    here[result.tool] = result
                    rows.append((name, result))
                    print(f"{name}: {result.tool} done in {result.usage.wall_s:.0f} s", flush=True)
            if has_search:
                try:
                    result = run_spotter(cadence, spec, SPOTTER_SNR[name], work / name / "spotter", args.workers)
                except ToolFailed as error:
                    failures.append(f"{name}: spotter seti search failed: {error}")
                    print(failures[-1], flush=True)
                else:
                    here["spotter"] = result
                    rows.append((name, result))
                    print(f"{name}: {result.tool} done in {result.usage.wall_s:.0f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    freq_tol, drift_tol = tolerances(blc.quick(blc.STANDARD) if args.quick else blc.STANDARD)
    print()
    print(f"level-3 events vs injected needles (match: within {freq_tol:.1f} Hz at the first file's start and "
          f"{drift_tol:.4f} Hz/s); drift err = median |error| in Hz/s over recovered needles; seed {args.seed}"
          f"{', quick' if args.quick else ''}")
    print_table(rows)
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs; "
          f"spotter ran with --workers {args.workers}")
    for name in names:
        ours = results.get(name, {}).get("spotter")
        baseline = results.get(name, {}).get("turboSETI -s 10" if name == "standard" else "turboSETI -s 6")
        if ours and baseline:
            print_ratios(name, ours, baseline)
    for name, result in rows:
        if result.detail:
            print(f"{name}: {result.tool} CPU: {result.detail}")
    for name in names:
        ours = results.get(name, {}).get("spotter")
        if ours and ours.missed:
            needles = truth_of[name].loc[ours.missed]
            listed = ", ".join(f"SNR {r.snr:.1f} {r.drift_hz_s:+.2f} Hz/s" for r in needles.itertuples())
            print(f"{name}: spotter missed {listed}")
    print_targets(results)
    for line in failures:
        print(line)
    if args.keep:
        print(f"files and outputs kept in {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
