"""The one exception type for bad input; the CLI turns it into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class SpotterError(Exception):
    """Bad input from the user: what was wrong, where, and what was expected.

    Args:
        message: What was wrong and what was expected.
        where: The file (and row) the problem is in, if any; prefixed to the message.
    """

    def __init__(self, message: str, where: str | Path | None = None) -> None:
        self.where = str(where) if where is not None else None
        super().__init__(f"{where}: {message}" if where is not None else message)
