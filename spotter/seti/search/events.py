"""Cadence events: one per signal, from ON-path candidates and per-file hits, with turboSETI's filter levels.

Every candidate and hit is a straight line through the cadence. Lines are taken strongest first; one that a
stronger event already explains joins it (a hit that runs along its path; a candidate whose SNR comes from the
files where it crosses the event's path, the rest adding up to less than RESIDUAL_SNR), so a needle gives one
event, not one per ON file, and neighbouring drifts and channels of it are merged. Each event's line is then
refined and its SNR measured along it in every file, and around it in the OFF files, and its level follows:

- 3: seen in every ON file and no OFF file;
- 2: seen in at least one ON file and no OFF file;
- 1: anything else above the cut (in OFF files, or in all of them).

A file "sees" an event if it has a hit of it, or its SNR along the line reaches `--snr`, or (ON files) the ON
files' combined SNR reaches the cadence threshold and this file carries its share of it. An OFF file sees it if
any path within a few channels and two drift trials of the line reaches `--off-snr`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spotter.seti.search.cadence import Candidates
from spotter.seti.search.config import SearchConfig
from spotter.seti.search.evidence import BlockData
from spotter.seti.search.geometry import CadenceGeometry
from spotter.seti.search.hits import Hits

LINE_TOLERANCE = 1.5  # channels: a line explains a path if it stays this close (beyond the boxcars)
RESIDUAL_SNR = 5.0  # a weaker line is its own signal if the files where it leaves a stronger one add up to this
MIN_ON_SHARE_SNR = 2.0  # the least SNR an ON file must carry toward a combined (ON-path) detection
ON_SHARE = 0.5  # ... and at least this fraction of the ON files' mean SNR
NARROW_SHARE = 0.7  # width 1 beside a boxcar: a smeared signal gives ~1/sqrt(width), a narrow one more

EVENT_COLUMNS = [
    "freq_mhz", "drift_hz_s", "snr", "level", "files", "snr_on", "snr_off", "max_off_snr", "snr_per_file", "hits",
    "found_by", "channel", "coarse_channel", "boxcar",
]  # fmt: skip


@dataclass
class Event:
    """A signal's line through the cadence and what supports it (internal, before measuring)."""

    channel0: float  # channel at the first file's start
    rate: float  # channels per second
    rate_error: float  # half-width of the rate's uncertainty, channels per second
    anchor_s: float  # time where the line's position is best known
    seed: str  # "cadence" or "hits"
    strength: float
    hit_files: dict[int, list[float]] = field(default_factory=dict)  # file -> SNRs of its hits on this line
    hit_points: list[tuple[float, float]] = field(default_factory=list)  # (time s, channel) of hit ends

    def position(self, t: float | np.ndarray) -> float | np.ndarray:
        return self.channel0 + self.rate * t

    def tolerance(self, t: float | np.ndarray) -> float | np.ndarray:
        return LINE_TOLERANCE + self.rate_error * np.abs(np.asarray(t) - self.anchor_s)


def build_events(
    candidates: Candidates,
    hits: dict[int, Hits],
    data: BlockData,
    geometry: CadenceGeometry,
    config: SearchConfig,
) -> list[dict]:
    """Groups one block's candidates and hits into events and measures each one.

    Returns:
        One dict per event (the columns of `EVENT_COLUMNS` but `coarse_channel`, plus the line itself).
    """
    lines = Lines(geometry)
    _add_candidates(lines, candidates, geometry)
    _add_hits(lines, hits, geometry)
    rows = []
    for event in lines.events:
        _fit_line(event, geometry, data)
        row = measure(event, data, geometry, config)
        if row is not None:
            rows.append(row)
    return rows


class Lines:
    """The events found so far, indexed by where they cross the middle of each file.

    Matching a new line or hit then only looks at events that pass near it in some file, so grouping stays
    local (and fast) in bands crowded with interference.
    """

    def __init__(self, geometry: CadenceGeometry) -> None:
        self.geometry = geometry
        self.events: list[Event] = []
        files = range(geometry.n_files)
        self.middle = {k: geometry.starts_s[k] + geometry.file_span_s(k) / 2 for k in files}
        self.positions: dict[int, list[float]] = {k: [] for k in files}  # sorted
        self.members: dict[int, list[int]] = {k: [] for k in files}  # event numbers, in the same order
        # the farthest apart two lines can be mid-file and still meet inside the file or within tolerance
        longest = geometry.starts_s[-1] + geometry.file_span_s(geometry.n_files - 1)
        slack = LINE_TOLERANCE + geometry.grid.step_rate * longest + 2 * _box(geometry.max_rate, geometry) + 1
        self.radius = {k: geometry.max_rate * geometry.file_span_s(k) + slack for k in files}

    def add(self, event: Event) -> None:
        number = len(self.events)
        self.events.append(event)
        for k, middle in self.middle.items():
            position = float(event.position(middle))
            at = bisect.bisect_left(self.positions[k], position)
            self.positions[k].insert(at, position)
            self.members[k].insert(at, number)

    def near(self, files: list[int], channel0: float, rate: float) -> list[Event]:
        """Events whose line passes within reach of the line (channel0, rate) in any of `files`."""
        numbers: set[int] = set()
        for k in files:
            position = channel0 + rate * self.middle[k]
            lo = bisect.bisect_left(self.positions[k], position - self.radius[k])
            hi = bisect.bisect_right(self.positions[k], position + self.radius[k])
            numbers.update(self.members[k][lo:hi])
        return [self.events[n] for n in sorted(numbers)]


def _add_candidates(lines: Lines, candidates: Candidates, geometry: CadenceGeometry) -> None:
    on = geometry.on_files
    half_rate = geometry.fine_rate / 2
    anchor = float(np.mean([geometry.starts_s[k] + geometry.file_span_s(k) / 2 for k in on]))
    for n in np.argsort(-candidates.snr_sum, kind="stable"):
        channel0 = float(candidates.channel[n])
        rate = float(candidates.fine_index[n]) * geometry.fine_rate
        snr = dict(zip(on, candidates.on_snr[n]))
        if any(_explains(event, channel0, rate, snr, geometry) for event in lines.near(on, channel0, rate)):
            continue
        lines.add(Event(channel0, rate, half_rate, anchor, "cadence", float(candidates.snr_sum[n])))


def _explains(event: Event, channel0: float, rate: float, snr: dict[int, float], geometry: CadenceGeometry) -> bool:
    """Whether `event` accounts for the line (channel0, rate), given the line's SNR in some files.

    The files where the line runs through the event's path (their boxcars overlap somewhere inside the file)
    are explained; if the rest do not add up to RESIDUAL_SNR, the line is a partial match of the event (a
    neighbouring drift or channel, or a path crossing it in one file), not a signal of its own.
    """
    residual = []
    for k, value in snr.items():
        t0, t1 = geometry.starts_s[k], geometry.starts_s[k] + geometry.file_span_s(k)
        d0 = channel0 + rate * t0 - event.position(t0)
        d1 = channel0 + rate * t1 - event.position(t1)
        distance = 0.0 if d0 * d1 <= 0 else min(abs(d0), abs(d1))
        if distance > event.tolerance((t0 + t1) / 2) + _box(rate, geometry) / 2 + _box(event.rate, geometry) / 2:
            residual.append(max(value, 0.0))
    return not residual or sum(residual) / np.sqrt(len(residual)) < RESIDUAL_SNR


def _box(rate: float, geometry: CadenceGeometry) -> float:
    """Channels a signal of this rate crosses in one row (at least 1)."""
    return max(1.0, abs(rate) * geometry.grid.tsamp_s)


def _half_box(rate: float, geometry: CadenceGeometry) -> float:
    return _box(rate, geometry) / 2


def _add_hits(lines: Lines, hits: dict[int, Hits], geometry: CadenceGeometry) -> None:
    grid = geometry.grid
    flat = [(k, i) for k, h in hits.items() for i in range(len(h))]
    flat.sort(key=lambda item: -hits[item[0]].snr[item[1]])
    for k, i in flat:
        h = hits[k]
        j = int(h.drift_index[i])
        t0 = geometry.starts_s[k]
        t1 = t0 + geometry.file_span_s(k)
        c0 = float(h.channel[i])
        c1 = c0 + float(grid.offsets(np.array([j]), geometry.rows[k])[0, -1])
        rate = j * grid.step_rate
        slack = 0.5 + _box(rate, geometry)  # the trial's rounding at the last row, and the boxcars
        best, best_distance = None, np.inf
        for event in lines.near([k], c0 - rate * t0, rate):
            distance = max(abs(event.position(t0) - c0), abs(event.position(t1) - c1))
            if distance <= max(event.tolerance(t0), event.tolerance(t1)) + slack and distance < best_distance:
                best, best_distance = event, distance
        if best is None:
            best = Event(c0 - rate * t0, rate, grid.step_rate / 2, (t0 + t1) / 2, "hits", float(h.snr[i]))
            lines.add(best)
        best.hit_files.setdefault(k, []).append(float(h.snr[i]))
        best.hit_points += [(t0, c0), (t1, c1)]


def _fit_line(event: Event, geometry: CadenceGeometry, data: BlockData) -> None:
    """The event's final line: the ON-path trial refined, or a least-squares line through its hits' ends."""
    if event.seed == "cadence":
        _refine_on_path(event, geometry, data)
        _sharpen(event, geometry, data, geometry.on_files)
        return
    if len(event.hit_files) >= 2:
        times, channels = np.array(event.hit_points).T
        rate, channel0 = np.polyfit(times, channels, 1)
        event.channel0, event.rate = float(channel0), float(rate)
        event.rate_error = geometry.fine_rate  # a fit over several files: about one cadence trial
        event.anchor_s = float(times.mean())
    _sharpen(event, geometry, data, sorted(event.hit_files))


def _sharpen(event: Event, geometry: CadenceGeometry, data: BlockData, files: list[int]) -> None:
    """Places a boxcar-found line on its signal's peak channel when the signal is narrow, not smeared.

    A boxcar of w channels gives the same SNR wherever a narrow signal falls inside it, so its start channel is
    uncertain by w. A smeared signal fills the box (width 1 then sees about 1/sqrt(w) of the boxcar's SNR);
    a narrow one does not, and width 1 pins it down.
    """
    box = int(np.floor(_box(event.rate, geometry) + 0.5))
    if box < 2 or not files:
        return
    shifts = np.arange(-box, box + 1, dtype=np.float64)
    rates = np.full(len(shifts), event.rate)
    narrow = sum(data.snr(k, event.channel0 + shifts + event.rate * geometry.starts_s[k], rates, np.ones(len(shifts)))
                 for k in files)  # fmt: skip
    wide = sum(data.line_snr(k, np.array([event.channel0]), np.array([event.rate]))[0][0] for k in files)
    if narrow.max() < NARROW_SHARE * wide:
        return
    event.channel0 += float(shifts[int(np.argmax(narrow))])
    # the boxcar also blurred the drift: settle both on the narrow signal
    offsets = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    steps = np.array([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]) * geometry.fine_rate
    channel0 = (event.channel0 + offsets[:, None] + 0 * steps[None, :]).ravel()
    rates = (event.rate + 0 * offsets[:, None] + steps[None, :]).ravel()
    narrow = sum(data.snr(k, channel0 + rates * geometry.starts_s[k], rates, np.ones(len(rates))) for k in files)
    best = int(np.argmax(narrow))
    event.channel0, event.rate = float(channel0[best]), float(rates[best])


def _refine_on_path(event: Event, geometry: CadenceGeometry, data: BlockData) -> None:
    """Sub-trial refinement: the line near the candidate's whose ON files add up to the most SNR."""
    shifts = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])  # sub-channel starts: each rounds the path differently
    steps = np.array([-0.5, -0.25, 0.0, 0.25, 0.5]) * geometry.fine_rate
    channel0 = (event.channel0 + shifts[:, None] + 0 * steps[None, :]).ravel()
    rate = (event.rate + 0 * shifts[:, None] + steps[None, :]).ravel()
    total = sum(data.line_snr(k, channel0, rate)[0] for k in geometry.on_files)
    best = int(np.argmax(total))
    event.channel0, event.rate = float(channel0[best]), float(rate[best])


def measure(event: Event, data: BlockData, geometry: CadenceGeometry, config: SearchConfig) -> dict | None:
    """The event's SNR in every file along its line, OFF files' SNR around it, its level; None if nothing is seen."""
    n_files = geometry.n_files
    on, off = geometry.on_files, geometry.off_files
    snr = np.zeros(n_files)
    width = np.ones(n_files, dtype=np.int64)
    for k in range(n_files):
        value, used = data.line_snr(k, np.array([event.channel0]), np.array([event.rate]))
        snr[k], width[k] = value[0], used[0]
    off_near = np.full(n_files, -np.inf)
    for k in off:
        t = geometry.starts_s[k] + geometry.file_span_s(k) / 2
        radius = np.array([event.tolerance(t) + _half_box(event.rate, geometry)])
        off_near[k] = data.neighbourhood_snr(k, np.array([event.channel0]), np.array([event.rate]), radius)[0]
    snr_on = snr[on].sum() / np.sqrt(len(on))
    snr_off = snr[off].sum() / np.sqrt(len(off))
    share = max(MIN_ON_SHARE_SNR, ON_SHARE * snr[on].mean())
    combined = snr_on >= config.cadence_threshold
    seen = np.zeros(n_files, dtype=bool)
    for k in range(n_files):
        hit = k in event.hit_files
        if geometry.on[k]:
            seen[k] = hit or snr[k] >= config.snr or (combined and snr[k] >= share)
        else:
            seen[k] = hit or off_near[k] >= config.off_snr
    if not seen.any():
        return None
    on_seen, off_seen = seen[on], seen[off]
    if off_seen.any() or not on_seen.any():
        level = 1
    else:
        level = 3 if on_seen.all() else 2
    hit_snr = max((max(v) for v in event.hit_files.values()), default=-np.inf)
    found_by = {"cadence": "cadence", "hits": "hits"}[event.seed]
    if event.seed == "cadence" and event.hit_files:
        found_by = "cadence+hits"
    max_off = float(off_near[off].max()) if off else float("nan")
    boxcar = int(width[on][np.argmax(snr[on])]) if on else 1
    return {
        "channel0": event.channel0,
        "rate": event.rate,
        "rate_error": event.rate_error,
        "snr": float(max(snr_on, snr.max(), hit_snr)),
        "level": level,
        "files": ";".join(str(k) for k in np.flatnonzero(seen)),
        "seen": seen,
        "snr_on": float(snr_on),
        "snr_off": float(snr_off),
        "max_off_snr": max_off,
        "snr_per_file": ";".join(f"{v:.1f}" for v in snr),
        "snr_files": snr,
        "hits": int(sum(len(v) for v in event.hit_files.values())),
        "found_by": found_by,
        "boxcar": boxcar,
    }


def deduplicate(rows: list[dict], geometry: CadenceGeometry) -> list[dict]:
    """Drops events a stronger one accounts for (`_explains`); blocks meet at their edges, and see both sides."""
    order = sorted(range(len(rows)), key=lambda n: -rows[n]["snr"])
    reach = 2 * geometry.max_rate * (geometry.starts_s[-1] + geometry.file_span_s(geometry.n_files - 1)) + 10
    anchor = float(np.mean(geometry.starts_s))
    kept: list[int] = []
    kept_channels: list[float] = []
    kept_at: list[int] = []
    for n in order:
        row = rows[n]
        lo = bisect.bisect_left(kept_channels, row["channel0"] - reach)
        hi = bisect.bisect_right(kept_channels, row["channel0"] + reach)
        snr = dict(enumerate(row["snr_files"]))
        stronger = (rows[kept_at[i]] for i in range(lo, hi))
        if any(
            _explains(Event(o["channel0"], o["rate"], o["rate_error"], anchor, "cadence", 0.0), row["channel0"],
                      row["rate"], snr, geometry)
            for o in stronger
        ):  # fmt: skip
            continue
        kept.append(n)
        at = bisect.bisect_left(kept_channels, row["channel0"])
        kept_channels.insert(at, row["channel0"])
        kept_at.insert(at, n)
    return [rows[n] for n in sorted(kept, key=lambda n: (-rows[n]["level"], -rows[n]["snr"]))]


def events_table(rows: list[dict], headers, geometry: CadenceGeometry, coarse_width: int) -> pd.DataFrame:
    """The events CSV: one row per signal, best first (level, then SNR)."""
    first = headers[0]
    records = []
    for row in sorted(rows, key=lambda r: (-r["level"], -r["snr"])):
        records.append(
            {
                "freq_mhz": first.frequency_mhz(row["channel0"]),
                "drift_hz_s": float(geometry.grid.hz_per_s(row["rate"])),
                **{k: row[k] for k in ("snr", "level", "files", "snr_on", "snr_off", "max_off_snr", "snr_per_file")},
                "hits": row["hits"],
                "found_by": row["found_by"],
                "channel": int(np.floor(row["channel0"] + 0.5)),
                "coarse_channel": int(np.floor(row["channel0"] + 0.5)) // coarse_width,
                "boxcar": row["boxcar"],
            }
        )
    return pd.DataFrame.from_records(records, columns=EVENT_COLUMNS)
