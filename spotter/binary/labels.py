"""Label tables of id,target tasks checked line by line: what `check` reports is what training refuses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.errors import SpotterError

PSEUDO = "pseudo"  # the column a pseudo-label folder sets to 1 on the rows it took from the test set


def label_problems(frame: pd.DataFrame, path: str | Path, labelled: bool = True) -> list[SpotterError]:
    """Every problem in an `id,target` table, each naming the file and line (the header is line 1).

    Ids must be present and unique, targets numbers. In a labelled table a target must be 0 or 1, except in
    the rows a pseudo-label folder marks `pseudo` (its soft labels), where it must be in [0, 1]. An unlabelled
    table's targets (a sample submission's) are placeholders: numbers, or empty.

    Args:
        frame: The table as read, ids as strings.
        path: The file, named in each problem.
        labelled: Whether the targets are labels.
    """
    lines = np.arange(len(frame)) + 2
    found: list[tuple[int, str]] = [(line, "empty id") for line in lines[frame["id"].isna().to_numpy()]]
    duplicated = (frame["id"].duplicated() & frame["id"].notna()).to_numpy()
    found += [(line, f"duplicate id {value!r}") for line, value in zip(lines[duplicated], frame["id"][duplicated])]
    raw = frame["target"]
    targets = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    empty = raw.isna().to_numpy()
    not_number = np.isnan(targets) & ~empty
    found += [(line, f"target {value!r} is not a number") for line, value in zip(lines[not_number], raw[not_number])]
    if labelled:
        soft = pseudo_rows(frame)
        found += [(line, "empty or NaN target; expected 0 or 1") for line in lines[empty]]
        with np.errstate(invalid="ignore"):
            hard_bad = ~soft & ~np.isnan(targets) & (targets != 0) & (targets != 1)
            soft_bad = soft & ~np.isnan(targets) & ~((targets >= 0) & (targets <= 1))
        found += [(line, f"target {t:g} is not 0 or 1") for line, t in zip(lines[hard_bad], targets[hard_bad])]
        found += [
            (line, f"pseudo-label target {t:g} is outside [0, 1]") for line, t in zip(lines[soft_bad], targets[soft_bad])
        ]
    return [SpotterError(f"line {line}: {what}", path) for line, what in sorted(found, key=lambda item: item[0])]


def pseudo_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows a pseudo-label folder marks as test predictions (`pseudo` 1), whose soft labels are allowed."""
    if PSEUDO not in frame.columns:
        return np.zeros(len(frame), bool)
    return pd.to_numeric(frame[PSEUDO], errors="coerce").fillna(0).to_numpy() > 0


def raise_first(problems: Sequence[SpotterError], check_command: str | None = None) -> None:
    """Raises the first problem, with the count of the others (and the command that lists them all).

    Raises:
        SpotterError: If there are problems.
    """
    if problems:
        listed = f"; run `{check_command}`" if check_command else ""
        more = f" (and {len(problems) - 1} more{listed})" if len(problems) > 1 else ""
        raise SpotterError(f"{problems[0]}{more}")
