"""`spotter seti search` (a Breakthrough Listen search over .fil/.h5 cadences) and the `scan` pointer to it."""

from __future__ import annotations

import argparse

from spotter.errors import SpotterError

SCAN_MOVED = (
    "`spotter seti scan` was replaced by `spotter seti search FILE... --out DIR`: it searches real .fil/.h5 "
    "cadences and writes DIR/events.csv (one row per signal), turboSETI .dat hit tables and PNGs (see README)"
)


def add_search_commands(sub, common: argparse.ArgumentParser) -> None:
    """Adds `search` and the `scan` pointer to the `spotter seti` sub-commands."""
    search = sub.add_parser(
        "search",
        parents=[common],
        help="search Breakthrough Listen .fil/.h5 cadences for narrowband signals (turboSETI-compatible)",
        description="Search one cadence (FILE... in observation order) or many (--cadences) for drifting "
        "narrowband signals; writes events.csv, a turboSETI .dat per file, PNGs and summary.md to --out.",
    )
    search.add_argument("files", nargs="*", metavar="FILE", help="the cadence's .fil/.h5 files in observation order")
    search.add_argument("--out", required=True, help="output folder (absent or empty)")
    search.add_argument("--snr", type=float, default=10.0, help="SNR a hit needs in its file (default 10)")
    search.add_argument("--max-drift", type=float, default=4.0, help="largest |drift| searched, Hz/s (default 4)")
    search.add_argument("--pattern", default="ABACAD", help="ON/OFF letters per file, A = ON (default ABACAD)")
    search.add_argument(
        "--workers", type=int, help="CPU threads for one cadence; worker processes with --cadences (default: all cores)"
    )
    search.add_argument("--run", help="a trained `spotter seti train` run: adds model_score (mid-resolution data only)")
    search.add_argument("--rank-by", choices=("snr", "model_score"), default="snr",
                        help="order of events.csv: level then SNR (default), or model_score (needs --run)")  # fmt: skip
    search.add_argument("--cadences", metavar="LIST.csv", help="many cadences: one row each, its files in the columns")
    search.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask cluster for --cadences (tcp://host:8786)")
    search.add_argument("--top", type=int, default=10, help="events that get a PNG (default 10)")
    search.add_argument("--coarse-channels", type=int, help="coarse channels per file (default: from the header)")
    search.add_argument("--cadence-snr", type=float,
                        help="combined ON SNR along one path that counts for level 3 (default: max(--snr, 8))")  # fmt: skip
    search.add_argument("--off-snr", type=float, default=5.0, help="OFF-file SNR near a path that vetoes it (default 5)")
    search.add_argument("--block-channels", type=int, default=16384, help="channels searched at once (default 16384)")
    search.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: CUDA when present")
    search.add_argument("--keep-dc", action="store_true", help="do not blank each coarse channel's centre channel")
    search.set_defaults(func=_search)

    scan = sub.add_parser("scan", parents=[common], help="replaced by `spotter seti search`")
    scan.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    scan.set_defaults(func=_scan_moved)


def _search(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.seti.search.config import SearchConfig

    config = SearchConfig(
        snr=args.snr, max_drift=args.max_drift, pattern=args.pattern, cadence_snr=args.cadence_snr,
        off_snr=args.off_snr, coarse_channels=args.coarse_channels, block_channels=args.block_channels,
        top=args.top, blank_dc=not args.keep_dc, device=args.device, rank_by=args.rank_by,
    )  # fmt: skip
    if args.workers is not None and args.workers < 1:
        raise SpotterError(f"--workers must be at least 1, got {args.workers}")
    reporter = create_reporter(args.quiet)
    if args.cadences:
        if args.files:
            raise SpotterError("give either FILE... (one cadence) or --cadences LIST.csv, not both")
        from spotter.seti.search.runner import search_many

        table = search_many(args.cadences, args.out, config, args.workers, args.scheduler, args.run, reporter)
        failed = table[table["status"] != "ok"]
        print(f"searched {len(table) - len(failed)} of {len(table)} cadences into {args.out} "
              f"({int(table['level_3'].sum())} level-3 events; see {args.out}/cadences.csv, events.csv)")  # fmt: skip
        for row in failed.itertuples():
            print(f"failed: {row.name}: {row.error}")
        return 0
    if not args.files:
        raise SpotterError("give the cadence's files (FILE... in observation order) or --cadences LIST.csv")
    if args.scheduler:
        raise SpotterError("--scheduler runs --cadences on a Dask cluster; one cadence runs here")
    if args.workers:
        import torch

        torch.set_num_threads(args.workers)
    from spotter.seti.search.runner import search_cadence

    result = search_cadence(args.files, args.out, config, args.run, reporter)
    levels = result.by_level()
    print(f"wrote {len(result.events)} events ({levels[3]} level 3, {levels[2]} level 2, {levels[1]} level 1) "
          f"and {len(result.pngs)} PNGs to {result.out} in {result.seconds:.1f} s")  # fmt: skip
    if len(result.events):
        best = result.events.iloc[0]
        model = f", model score {best['model_score']:.4f}" if "model_score" in result.events else ""
        print(f"best: {best['freq_mhz']:.6f} MHz, drift {best['drift_hz_s']:+.4f} Hz/s, SNR {best['snr']:.1f}, "
              f"level {best['level']}, files {best['files']}{model}")  # fmt: skip
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _scan_moved(args: argparse.Namespace) -> int:
    raise SpotterError(SCAN_MOVED)
