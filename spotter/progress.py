"""Progress reporting passed into long-running library code; the CLI supplies the rich-backed one.

Library code takes a `Reporter` and never prints itself: `NullReporter` keeps it silent (tests, `--quiet`,
non-main DDP ranks), `RichReporter` draws progress bars with time estimates on the terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Reporter(Protocol):
    """What long-running library code may tell the user about."""

    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        """Yields `items`, advancing a progress bar with a time estimate."""
        ...

    def log(self, message: str) -> None:
        """Shows a one-line status message (an epoch's summary, where outputs went)."""
        ...

    def status(self, text: str) -> None:
        """Sets a short status beside the innermost bar (e.g. the running loss)."""
        ...


class NullReporter:
    """Reports nothing."""

    def track(self, items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
        yield from items

    def log(self, message: str) -> None:
        pass

    def status(self, text: str) -> None:
        pass


class RichReporter:
    """Progress bars and messages on stderr via rich; nested bars are shown together."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._depth = 0

    def track(self, items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self._live():
            task = self._progress.add_task(description, total=total, status="")
            try:
                for item in items:
                    yield item
                    self._progress.advance(task)
                self._progress.refresh()  # the last state drawn is N/N, not the one before the last advance
            finally:
                # inner bars vanish when done; the outermost stays as a record
                if self._depth > 1:
                    self._progress.remove_task(task)

    def status(self, text: str) -> None:
        """Sets the status text of the innermost bar (e.g. the running loss)."""
        if self._progress.task_ids:
            self._progress.update(self._progress.task_ids[-1], status=text)

    def log(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)

    @contextlib.contextmanager
    def _live(self) -> Iterator[None]:
        if self._depth == 0:
            self._progress.start()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._progress.stop()
                for task in list(self._progress.task_ids):
                    self._progress.remove_task(task)


def create_reporter(quiet: bool) -> Reporter:
    """The reporter the CLI uses: silent with `--quiet`, rich progress bars otherwise."""
    return NullReporter() if quiet else RichReporter()
