"""A small trained whale run on generated data, for the whale benchmarks that run without arguments."""

from __future__ import annotations

from pathlib import Path

SMALL = ["epochs=2", "image_size=96", "n_folds=4", "train_folds=[0]", "threads=1"]


def small_whale_run(root: str | Path, individuals: int = 200, overrides: list[str] | None = None) -> tuple[Path, Path]:
    """(run, data) under `root`: `spotter whale synth` data and a short run on it, each made only once."""
    from spotter.cli import main as spotter

    root = Path(root)
    data, run = root / "data", root / "run"
    if not (data / "train.csv").is_file():
        assert spotter(["--quiet", "whale", "synth", str(data), "--individuals", str(individuals)]) == 0
    if not (run / "metrics.json").is_file():
        args = ["--quiet", "whale", "train", str(data), "--out", str(run), "--overwrite", *SMALL, *(overrides or [])]
        assert spotter(args) == 0
    return run, data
