"""Atomic file writes: every output goes to a temporary name first, so a crash never leaves half a file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from spotter.errors import SpotterError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes owner-only files; give the final file the mode a plain open() would
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def require_empty_folder(path: str | Path) -> Path:
    """`path`, checked to be absent or an empty folder (what `atomic_folder` may replace).

    Raises:
        SpotterError: If it exists and is anything else.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise SpotterError("output folder exists and is not empty", path)
    return path


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yields a new folder beside `path` to fill; renames it onto `path` only if the block succeeds.

    Raises:
        SpotterError: If `path` exists and is not an empty folder (nothing already there is touched).
    """
    path = require_empty_folder(path)
    ensure_writable_dir(path.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes owner-only folders
        if path.exists():
            path.rmdir()  # empty, checked above
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def ensure_writable_dir(path: str | Path) -> Path:
    """Creates `path` if needed and checks we can write there.

    Raises:
        SpotterError: If the folder cannot be created or written to.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpotterError(f"cannot create output folder ({err.strerror})", path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SpotterError("output folder is not writable", path)
    return path


def check_output_file(path: str | Path) -> Path:
    """`path`, checked to be a file we can write (before slow work): not a folder, and in a folder that exists
    or can be made, writable. Nothing is created.

    Raises:
        SpotterError: If `path` is an existing folder, is not writable, or its folder cannot be made or written.
    """
    path = Path(path)
    if path.is_dir():
        raise SpotterError("is a folder; expected a file name to write", path)
    if path.exists() and not os.access(path, os.W_OK):
        raise SpotterError("file exists and is not writable", path)
    _check_can_create(path.parent)
    return path


def check_output_folder(path: str | Path, empty: bool = False) -> Path:
    """`path`, checked to be a folder we can write into (before slow work); nothing is created.

    Args:
        path: The folder.
        empty: Also require it to be absent or empty (a folder that is built and renamed into place).

    Raises:
        SpotterError: If `path` is a file, is not empty (with `empty`), or cannot be made or written.
    """
    path = Path(path)
    if empty:
        require_empty_folder(path)
    _check_can_create(path)
    return path


def _check_can_create(folder: Path) -> None:
    """Checks `folder` is a writable folder, or could be made: its nearest existing parent is a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpotterError(f"cannot create output folder ({existing} is not a folder)", folder)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpotterError("output folder is not writable" if existing == folder else
                           f"cannot create output folder ({existing} is not writable)", folder)


def read_csv(path: str | Path, required: list[str] | None = None, dtype: Any = None) -> pd.DataFrame:
    """Reads a CSV, raising SpotterError naming the file when it is missing, unreadable or lacks columns."""
    path = Path(path)
    if not path.is_file():
        raise SpotterError("file not found", path)
    try:
        frame = pd.read_csv(path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise SpotterError(f"cannot read CSV ({type(err).__name__}: {err})", path) from None
    missing = [c for c in (required or []) if c not in frame.columns]
    if missing:
        raise SpotterError(
            f"missing column(s) {', '.join(missing)}; expected columns {', '.join(required or [])}, "
            f"found {', '.join(map(str, frame.columns))}",
            path,
        )
    return frame
