"""The review decisions log: one JSON line per decision, appended atomically; the current state is the log replayed.

A decision is never rewritten: an undo is a record of its own that names the decision it takes back. Each record
goes to the file with a single `os.write` on an `O_APPEND` descriptor followed by `fsync`, so a server killed
mid-write leaves at worst one cut-short last line. Reading skips such a line and reports it; the next append
starts on a fresh line, so the cut-short fragment never swallows a whole record.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from spotter.errors import SpotterError

DECISIONS = "decisions.jsonl"  # the default log, inside the index folder it feeds

CONFIRM = "confirm"  # the photo shows a catalogue individual
NEW = "new"  # the photo shows an individual the catalogue lacks, given a new id
SKIP = "skip"  # no call made (the photo stays in the queue, marked)
UNDO = "undo"  # takes back the decision named by `undoes`
ACTIONS = (CONFIRM, NEW, SKIP, UNDO)
CATALOGUE_ACTIONS = (CONFIRM, NEW)  # the decisions that put the photo in the catalogue


@dataclass(frozen=True)
class Decision:
    """One line of the log.

    Attributes:
        id: A unique id (an undo names the decision it takes back by it).
        time: When it was made, UTC, ISO 8601.
        user: Who made it.
        run: The run whose probabilities were shown.
        action: One of `ACTIONS`.
        photo: The query photo's absolute path.
        individual_id: The id chosen (confirm), created (new), or of the decision undone; None for a skip.
        probability: The calibrated probability shown for that id (None where none was shown: new, skip).
        rank: Its rank on the page (for a new individual, the rank of the new_individual answer; None if it was
            not among the answers shown).
        new_threshold: The new_individual threshold shown beside the answers.
        undoes: For an undo, the id of the decision it takes back.
    """

    id: str
    time: str
    user: str
    run: str
    action: str
    photo: str
    individual_id: str | None = None
    probability: float | None = None
    rank: int | None = None
    new_threshold: float | None = None
    undoes: str | None = None

    @classmethod
    def make(cls, user: str, run: str, action: str, photo: str | Path, **fields) -> Decision:
        """A new decision stamped with a fresh id and the current UTC time."""
        return cls(uuid.uuid4().hex, utc_now(), user, run, action, str(photo), **fields)

    def line(self) -> bytes:
        """The record as one log line (UTF-8 JSON and a newline)."""
        return (json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def parse(cls, line: str) -> Decision:
        """A decision from one log line.

        Raises:
            ValueError: If the line is not a whole record.
        """
        record = json.loads(line)
        if not isinstance(record, dict) or record.get("action") not in ACTIONS:
            raise ValueError("not a decision record")
        if record["action"] == UNDO and not record.get("undoes"):
            raise ValueError("an undo without the decision it undoes")
        try:
            return cls(**record)
        except TypeError as err:
            raise ValueError(str(err)) from None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class LogReading:
    """What a read of the log found.

    Attributes:
        decisions: The whole records, in the order they were written.
        skipped: 1-based numbers of the lines that were not whole records (a write cut short by a kill).
    """

    decisions: list[Decision]
    skipped: list[int] = field(default_factory=list)


class DecisionLog:
    """An append-only decisions file.

    Args:
        path: The `.jsonl` file (created on the first append, with its folder).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def check(self) -> None:
        """Checks, before any work, that the log can be read and appended to.

        Raises:
            SpotterError: If it is a folder, or it or its folder is not readable/writable.
        """
        if self.path.is_dir():
            raise SpotterError("is a folder; expected a decisions file (.jsonl)", self.path)
        if self.path.exists():
            if not os.access(self.path, os.R_OK | os.W_OK):
                raise SpotterError("decisions file is not readable and writable", self.path)
            return
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SpotterError("cannot create the decisions file here (folder not writable)", self.path)

    def append(self, decision: Decision) -> Decision:
        """Appends one record durably: one `os.write` on an `O_APPEND` descriptor, then `fsync`.

        Raises:
            SpotterError: If the file cannot be written.
        """
        line = decision.line()
        try:
            created = not self.path.exists()
            if created:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                if _ends_mid_line(fd):
                    line = b"\n" + line  # a write cut short before: keep its fragment on a line of its own
                written = os.write(fd, line)
                if written != len(line):  # only on a full disk or a hard limit; the reader skips the fragment
                    raise OSError(f"wrote {written} of {len(line)} bytes")
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_folder(self.path.parent)  # the new file's name is durable too
        except OSError as err:
            raise SpotterError(f"cannot append to the decisions file ({err})", self.path) from None
        return decision

    def read(self) -> LogReading:
        """Every whole record in order; lines that are not whole records (cut short) are skipped and reported.

        Raises:
            SpotterError: If the file exists but cannot be read.
        """
        if not self.path.exists():
            return LogReading([])
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise SpotterError(f"cannot read the decisions file ({err.strerror})", self.path) from None
        reading = LogReading([])
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                reading.decisions.append(Decision.parse(raw.decode()))
            except (ValueError, UnicodeDecodeError):
                reading.skipped.append(number)
        return reading


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class ReviewState:
    """The log replayed: each photo's standing decision.

    Attributes:
        standing: Each photo's decision in force (the last one not undone), by photo path.
        order: The standing decisions, oldest first (the last is what "undo" takes back).
        touched: Every photo a confirm or new decision ever put in the catalogue (the ones the log owns there).
    """

    standing: dict[str, Decision]
    order: list[Decision]
    touched: set[str]

    def catalogue(self) -> dict[str, str]:
        """The individual each photo joined the catalogue as, by path (standing confirm and new decisions)."""
        return {p: d.individual_id for p, d in self.standing.items() if d.action in CATALOGUE_ACTIONS}

    def last(self, photos: Iterable[str] | None = None) -> Decision | None:
        """The most recent standing decision (among `photos`, if given)."""
        allowed = None if photos is None else set(photos)
        for decision in reversed(self.order):
            if allowed is None or decision.photo in allowed:
                return decision
        return None


def replay(decisions: Sequence[Decision]) -> ReviewState:
    """The state the decisions leave, applied in order: a later decision on a photo stands over an earlier one,
    and an undo takes its decision back (the photo's earlier one, if any, stands again)."""
    undone = {d.undoes for d in decisions if d.action == UNDO}
    position = {d.id: i for i, d in enumerate(decisions)}
    history: dict[str, list[Decision]] = {}
    for decision in decisions:
        if decision.action != UNDO and decision.id not in undone:
            history.setdefault(decision.photo, []).append(decision)
    standing = {photo: kept[-1] for photo, kept in history.items()}
    order = sorted(standing.values(), key=lambda d: position[d.id])
    touched = {d.photo for d in decisions if d.action in CATALOGUE_ACTIONS}
    return ReviewState(standing, order, touched)
