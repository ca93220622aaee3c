"""Runs the search: one cadence end to end (`search_cadence`), or many in parallel on Dask (`search_many`)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spotter.errors import SpotterError
from spotter.io import atomic_folder, read_csv, require_empty_folder, write_csv, write_text
from spotter.progress import NullReporter, Reporter
from spotter.seti.search import model
from spotter.seti.search.block import BlockBuffers, plan_blocks, search_block
from spotter.seti.search.cadence import OnPathSearch
from spotter.seti.search.clean import measure_coarse
from spotter.seti.search.config import SearchConfig
from spotter.seti.search.datfile import dat_text
from spotter.seti.search.events import deduplicate, events_table
from spotter.seti.search.geometry import CadenceGeometry
from spotter.seti.search.header import check_cadence, fine_per_coarse, parse_pattern, read_header
from spotter.seti.search.hits import Hits, suppress
from spotter.seti.search.plots import plot_event
from spotter.seti.search.reader import ChannelReader
from spotter.seti.search.summary import cadence_summary, many_summary


@dataclass
class CadenceResult:
    """What one cadence's search wrote and found."""

    out: Path
    events: pd.DataFrame
    hits_per_file: list[int]
    pngs: list[str]
    seconds: float
    cpu_seconds: float
    device: str
    notes: list[str] = field(default_factory=list)

    def by_level(self) -> dict[int, int]:
        return {level: int((self.events["level"] == level).sum()) for level in (3, 2, 1)}


@dataclass(frozen=True)
class Cadence:
    """One row of a cadence list: a name (its output folder), its files, and optionally its own pattern."""

    name: str
    files: tuple[str, ...]
    pattern: str | None = None


def pick_device(choice: str) -> torch.device:
    """CUDA when asked for or (auto) present, else CPU.

    Raises:
        SpotterError: If CUDA is asked for and absent.
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise SpotterError("--device cuda: no CUDA device is available")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def search_cadence(
    paths: list[str | Path],
    out: str | Path,
    config: SearchConfig = SearchConfig(),
    run: str | Path | None = None,
    reporter: Reporter = NullReporter(),
) -> CadenceResult:
    """Searches one cadence and writes events.csv, a `.dat` per file, PNGs of the top events and summary.md.

    Args:
        paths: The cadence's files in observation order.
        out: Output folder (absent or empty); it appears complete or not at all.
        config: Search settings.
        run: A trained `spotter seti train` run to score events with (`model_score` column).
        reporter: Progress.

    Raises:
        SpotterError: If a setting, header, file or the output folder is unusable (checked before the search).
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    config.check()
    if config.rank_by == "model_score" and run is None:
        raise SpotterError("--rank-by model_score needs --run RUN")
    headers = [read_header(p) for p in paths]
    check_cadence(headers)
    on = parse_pattern(config.pattern, len(headers))
    if run is not None:
        model.check_model_resolution(headers, on)
    coarse_width = fine_per_coarse(headers[0], config.coarse_channels)
    out = require_empty_folder(out)
    device = pick_device(config.device)
    geometry = CadenceGeometry.create(headers, on, config.max_drift)
    readers = [ChannelReader(h) for h in headers]
    for reader in readers:  # a damaged file fails here, before the slow part
        reader.read(headers[0].nchans - 1, headers[0].nchans)
    grid = geometry.grid
    widths = sorted(set(grid.widths(grid.indices()).tolist()))
    on_path = OnPathSearch(geometry)
    blocks = plan_blocks(headers[0].nchans, coarse_width, config.block_channels)
    buffers = BlockBuffers(geometry, max(b.core for b in blocks), device)
    hits: list[list[Hits]] = [[] for _ in headers]
    above: list[dict[int, int]] = [{} for _ in headers]
    rows: list[dict] = []
    stats_by_coarse: dict[int, list] = {}
    for block in reporter.track(blocks, len(blocks), "search"):
        if block.coarse not in stats_by_coarse:
            stats_by_coarse[block.coarse] = [
                measure_coarse(r, block.coarse_start, block.coarse_stop, widths, config.blank_dc) for r in readers
            ]
        result = search_block(block, readers, stats_by_coarse[block.coarse], geometry, on_path, config, buffers)
        for k in range(len(headers)):
            hits[k].append(result.peaks[k])
            above[k][block.coarse] = above[k].get(block.coarse, 0) + result.above_cut[k]
        for row in result.events:
            row["coarse"] = block.coarse
        rows.extend(result.events)
    rows = deduplicate(rows, geometry)
    table = events_table(rows, headers, geometry, coarse_width)
    notes = _notes(headers, coarse_width, config)
    if run is not None:
        scorer = model.load_scorer(str(run))
        snippets = [model.snippet(row, readers, stats_by_coarse[row["coarse"]], geometry) for row in rows]
        table["model_score"] = np.asarray(scorer(snippets), dtype=np.float64) if snippets else np.zeros(0)
    if config.rank_by == "model_score":
        order = np.argsort(-table["model_score"].to_numpy(), kind="stable")
        table, rows = table.iloc[order].reset_index(drop=True), [rows[i] for i in order]
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    all_hits = [suppress(Hits.concat(parts), grid) for parts in hits]  # one pass per file: blocks cannot differ
    pngs = []
    with atomic_folder(out) as staging:
        for k, header in enumerate(headers):
            text = dat_text(header, all_hits[k], grid, coarse_width, above[k], config.max_drift, header.path.stem)
            write_text(staging / f"{header.path.stem}.dat", text)
        png_column = [""] * len(table)
        for n in reporter.track(range(min(config.top, len(table))), min(config.top, len(table)), "plots"):
            name = f"event_{n + 1:03d}.png"
            event = {**table.iloc[n].to_dict(), "channel0": rows[n]["channel0"], "rate": rows[n]["rate"]}
            plot_event(event, n + 1, headers, readers, stats_by_coarse[rows[n]["coarse"]], geometry, staging / name)
            png_column[n] = name
            pngs.append(name)
        table["png"] = png_column
        write_csv(staging / "events.csv", table)
        result = CadenceResult(
            out, table, [len(h) for h in all_hits], pngs, time.perf_counter() - started,
            time.process_time() - cpu_started, str(device), notes,
        )  # fmt: skip
        write_text(staging / "summary.md", cadence_summary(result, headers, geometry, coarse_width, config, run))
    return result


def _notes(headers, coarse_width: int, config: SearchConfig) -> list[str]:
    notes = []
    if config.coarse_channels is None and coarse_width == headers[0].nchans and headers[0].nchans > 1:
        notes.append(
            "the header does not say how many coarse channels the band has, so it was cleaned as one "
            "(give --coarse-channels N to remove each coarse channel's bandpass and DC spike separately)"
        )
    return notes


def read_cadence_list(path: str | Path) -> list[Cadence]:
    """Cadences from a CSV: one row per cadence, its files in observation order in the columns.

    Optional columns `name` (output subfolder; default cadence_<row>) and `pattern`; every other column holds a
    file (relative paths are taken from the CSV's folder; empty cells are skipped).

    Raises:
        SpotterError: Naming the row when it has no files or a name repeats.
    """
    path = Path(path)
    frame = read_csv(path, dtype=str).fillna("")
    file_columns = [c for c in frame.columns if c not in ("name", "pattern")]
    if not file_columns or frame.empty:
        raise SpotterError("expected one row per cadence with its files in columns (optional name, pattern)", path)
    cadences, names = [], set()
    for n, record in enumerate(frame.to_dict("records"), start=2):  # row 1 is the header
        files = tuple(str((path.parent / record[c].strip()).resolve()) for c in file_columns if record[c].strip())
        name = record.get("name", "").strip() or f"cadence_{n - 1:03d}"
        if len(files) < 2:
            raise SpotterError(f"row {n} ({name}) lists {len(files)} file(s); a cadence needs ON and OFF files", path)
        if name in names or "/" in name or name.startswith("."):
            raise SpotterError(f"row {n}: name {name!r} repeats or is not a plain folder name", path)
        names.add(name)
        cadences.append(Cadence(name, files, record.get("pattern", "").strip() or None))
    return cadences


def search_many(
    list_path: str | Path,
    out: str | Path,
    config: SearchConfig = SearchConfig(),
    workers: int | None = None,
    scheduler: str | None = None,
    run: str | Path | None = None,
    reporter: Reporter = NullReporter(),
) -> pd.DataFrame:
    """Searches every cadence of a list in parallel with Dask, each into OUT/<name>/.

    Local worker processes by default (one thread each), or the workers of an existing Dask cluster
    (`scheduler`, e.g. tcp://host:8786); those must see the files and OUT at the same paths. Every cadence's
    headers are checked first; a cadence that still fails is reported in cadences.csv and the rest go on.

    Returns:
        One row per cadence: name, status, events per level, error.

    Raises:
        SpotterError: If the list, a cadence's headers or pattern, or the output folder is unusable.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    config.check()
    cadences = read_cadence_list(list_path)
    for n, cadence in enumerate(cadences, start=2):
        try:
            headers = [read_header(p) for p in cadence.files]
            check_cadence(headers)
            on = parse_pattern(cadence.pattern or config.pattern, len(headers))
            fine_per_coarse(headers[0], config.coarse_channels)
            if run is not None:
                model.check_model_resolution(headers, on)
        except SpotterError as err:
            raise SpotterError(f"row {n} ({cadence.name}): {err}", list_path) from None
    out = require_empty_folder(out)
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)
    records = []
    with atomic_folder(out) as staging:
        if scheduler:
            cluster, client = None, Client(scheduler)
        else:
            n_workers = workers or max(1, min(len(cadences), os.cpu_count() or 1))
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            futures = [
                client.submit(_search_one, c, str(staging / c.name), replace(config, pattern=c.pattern or config.pattern),
                              None if run is None else str(run), key=f"spotter-search-{c.name}-{n}")
                for n, c in enumerate(cadences)
            ]  # fmt: skip
            for future in reporter.track(as_completed(futures), len(futures), "cadences"):
                records.append(future.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        table = pd.DataFrame.from_records(sorted(records, key=lambda r: [c.name for c in cadences].index(r["name"])))
        parts = []
        for record in table.to_dict("records"):
            if record["status"] == "ok":
                events = pd.read_csv(staging / record["name"] / "events.csv")
                events.insert(0, "cadence", record["name"])
                parts.append(events)
        combined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["cadence"])
        write_csv(staging / "cadences.csv", table)
        write_csv(staging / "events.csv", combined)
        write_text(staging / "summary.md", many_summary(table, combined, config, scheduler))
    return table


def _search_one(cadence: Cadence, out: str, config: SearchConfig, run: str | None) -> dict:
    """A Dask task: one cadence, one thread; bad input becomes an error row instead of stopping the others."""
    torch.set_num_threads(1)
    record = {"name": cadence.name, "files": ";".join(cadence.files), "status": "ok", "error": ""}
    try:
        result = search_cadence(list(cadence.files), out, config, run)
    except SpotterError as err:
        return {**record, "status": "error", "error": str(err), "level_3": 0, "level_2": 0, "level_1": 0,
                "seconds": 0.0}  # fmt: skip
    levels = result.by_level()
    return {**record, "level_3": levels[3], "level_2": levels[2], "level_1": levels[1], "seconds": round(result.seconds, 2)}
