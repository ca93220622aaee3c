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
        if where is None and message.startswith(_WORKER_REPORT):
            message = _original_message(message)
        self.where = str(where) if where is not None else None
        super().__init__(f"{where}: {message}" if where is not None else message)


# torch's DataLoader re-raises a worker's exception as `type(err)(text)`, where the text is "Caught SpotterError in
# DataLoader worker process N." and the worker's whole traceback; the user needs only its last line
_WORKER_REPORT = "Caught SpotterError in DataLoader worker"


def _original_message(report: str) -> str:
    last = report.strip().splitlines()[-1]
    return last.split("SpotterError: ", 1)[1] if "SpotterError: " in last else last
