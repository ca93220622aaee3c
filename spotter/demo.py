"""`spotter demo`: each task end to end on generated data, small enough for a laptop CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spotter.progress import NullReporter, Reporter


def run_demo(out: str | Path, reporter: Reporter = NullReporter()) -> Iterator[str]:
    """Runs the demo of every task, yielding one line per result for the CLI to print."""
    from spotter.seti.demo import seti_demo
    from spotter.whale.demo import whale_demo

    yield from seti_demo(Path(out) / "seti", reporter)
    yield from whale_demo(Path(out) / "whale", reporter)
