"""The pseudo-label data folder both tasks write: a data layout in its own right, files symlinked, not copied.

`DATA2` holds the training files plus chosen test files (as links), the data folder's other parts (as links),
the new label tables, and `pseudo.json` (what was chosen and how). It is built beside `out` and renamed into
place, so a failure never leaves half a folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from spotter.errors import SpotterError
from spotter.io import atomic_folder, check_output_folder, write_csv, write_json

SUMMARY = "pseudo.json"


def check_pseudo_output(out: str | Path, data_dir: str | Path) -> Path:
    """`out`, checked before slow work: absent or empty, writable, and not the data folder itself.

    Raises:
        SpotterError: If `out` exists and is not an empty folder, cannot be made, or is the data folder.
    """
    out = check_output_folder(out, empty=True)
    if out.resolve() == Path(data_dir).resolve():
        raise SpotterError("output folder must differ from the data folder", out)
    return out


def write_pseudo_folder(
    out: str | Path,
    data_dir: str | Path,
    files: Sequence[tuple[str, str | Path]],
    linked: Sequence[str],
    tables: dict[str, pd.DataFrame],
    summary: dict,
) -> Path:
    """Writes a pseudo-labelled data folder.

    Args:
        out: The new folder (absent or empty).
        data_dir: The data folder it derives from.
        files: (path inside `out`, source file) of every training file, the chosen test files included.
        linked: Names of `data_dir` entries linked as they are when present (test files, sample submission, ...).
        tables: Label tables to write, by path inside `out`.
        summary: Written to `out/pseudo.json`.

    Returns:
        `out`.
    """
    data_dir = Path(data_dir)
    with atomic_folder(out) as staging:
        for inside, source in files:
            link = staging / inside
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(Path(source).resolve(), link)
        for name in linked:
            if (data_dir / name).exists():
                os.symlink((data_dir / name).resolve(), staging / name)
        for inside, frame in tables.items():
            write_csv(staging / inside, frame)
        write_json(staging / SUMMARY, summary)
    return Path(out)
