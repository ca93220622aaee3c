"""The short Markdown summary of a search: inputs, settings, what was found, where it went."""

from __future__ import annotations

import pandas as pd

from spotter.seti.search.config import SearchConfig
from spotter.seti.search.geometry import CadenceGeometry
from spotter.seti.search.header import FileHeader

TOP_ROWS = 10


def cadence_summary(result, headers: list[FileHeader], geometry: CadenceGeometry, coarse_width: int,
                    config: SearchConfig, run) -> str:  # fmt: skip
    """summary.md of one cadence (`result` is a `CadenceResult`)."""
    grid = geometry.grid
    first = headers[0]
    levels = result.by_level()
    n_coarse = first.nchans // coarse_width
    lines = [
        "# spotter seti search",
        "",
        f"{len(headers)} files, pattern {config.pattern.upper()} (ON: {', '.join(map(str, geometry.on_files))}); "
        f"{first.nchans} channels of {abs(first.foff_hz):.4f} Hz from {first.fch1_mhz:.6f} MHz "
        f"({n_coarse} coarse channel(s) of {coarse_width}); rows of {first.tsamp_s:.4f} s.",
        "",
        "| # | file | ON/OFF | tstart (MJD) | starts at (s) | rows | hits |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, header in enumerate(headers):
        lines.append(
            f"| {k} | {header.path.name} | {'ON' if geometry.on[k] else 'OFF'} | {header.tstart_mjd:.8f} | "
            f"{geometry.starts_s[k]:.1f} | {header.n_rows} | {result.hits_per_file[k]} |"
        )
    lines += [
        "",
        f"Search: hits need SNR >= {config.snr:g} in their file; level 3 also counts when the ON files add up to "
        f"SNR >= {config.cadence_threshold:g} along one straight path, each carrying its share; an OFF file with "
        f"SNR >= {config.off_snr:g} on or near the path vetoes levels 2 and 3. |drift| <= {config.max_drift:g} Hz/s in "
        f"steps of {grid.resolution_hz_s:.5f} Hz/s per file and {geometry.fine_rate * abs(grid.foff_hz):.5f} Hz/s "
        f"along the cadence; boxcars up to {int(grid.widths([grid.max_index])[0])} channels for smeared signals. "
        f"Device {result.device}; {result.seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU.",
        "",
        f"**{len(result.events)} events**: {levels[3]} at level 3, {levels[2]} at level 2, {levels[1]} at level 1"
        + (f"; scored by the model in `{run}`" if run is not None else "")
        + ".",
        "",
    ]
    lines += [f"Note: {note}." for note in result.notes] + ([""] if result.notes else [])
    if len(result.events):
        shown = [c for c in ("rank", "freq_mhz", "drift_hz_s", "snr", "level", "files", "model_score", "png")
                 if c in result.events.columns]  # fmt: skip
        lines += [_markdown_table(result.events.head(TOP_ROWS)[shown]), ""]
    lines += [
        "Files: `events.csv` (one row per signal, best first), "
        + ", ".join(f"`{h.path.stem}.dat`" for h in headers)
        + " (turboSETI's hit layout)"
        + (f", `event_001.png` .. `{result.pngs[-1]}`" if result.pngs else "")
        + ".",
        "",
    ]
    return "\n".join(lines)


def many_summary(table: pd.DataFrame, events: pd.DataFrame, config: SearchConfig, scheduler: str | None) -> str:
    """summary.md of a many-cadence run."""
    failed = table[table["status"] != "ok"]
    lines = [
        "# spotter seti search (many cadences)",
        "",
        f"{len(table)} cadences on Dask ({'cluster ' + scheduler if scheduler else 'local processes'}); "
        f"{len(table) - len(failed)} searched, {len(failed)} failed. SNR >= {config.snr:g}, |drift| <= "
        f"{config.max_drift:g} Hz/s.",
        "",
        f"**{len(events)} events**, {int((events.get('level', pd.Series(dtype=int)) == 3).sum())} at level 3 "
        "(all in `events.csv` with a `cadence` column; each cadence's own outputs in its folder).",
        "",
        _markdown_table(table[[c for c in ("name", "status", "level_3", "level_2", "level_1", "seconds", "error")
                               if c in table.columns]]),  # fmt: skip
        "",
    ]
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.6f}" if abs(value) > 1000 else f"{value:.4g}"
        return str(value).replace("|", "/")

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
