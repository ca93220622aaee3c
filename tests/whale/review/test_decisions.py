"""The decisions log: whole-record appends, replay (undo, decisions over decisions), cut-short lines, a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from spotter.errors import SpotterError
from spotter.whale.review.decisions import CONFIRM, NEW, SKIP, UNDO, Decision, DecisionLog, replay

REPO = Path(__file__).resolve().parents[3]


def _decision(action: str, photo: str = "/q/a.jpg", individual_id: str | None = "w1", **fields) -> Decision:
    return Decision.make("ana", "/runs/r", action, photo, individual_id=individual_id, **fields)


def _undo(target: Decision) -> Decision:
    return Decision.make("ana", "/runs/r", UNDO, target.photo, individual_id=target.individual_id, undoes=target.id)


def test_appends_are_whole_json_lines_that_read_back(tmp_path):
    log = DecisionLog(tmp_path / "sub" / "decisions.jsonl")
    log.check()  # the folder does not exist yet: it is made on the first append
    first = log.append(_decision(CONFIRM, probability=0.83, rank=2, new_threshold=0.4))
    second = log.append(_decision(NEW, "/q/b.jpg", "new-20250101-1", rank=1, new_threshold=0.4))
    lines = log.path.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("{") for line in lines)
    record = json.loads(lines[0])
    assert record["user"] == "ana" and record["run"] == "/runs/r" and record["action"] == CONFIRM
    assert record["photo"] == "/q/a.jpg" and record["individual_id"] == "w1" and record["probability"] == 0.83
    assert datetime.fromisoformat(record["time"]).utcoffset() == timezone.utc.utcoffset(None)
    reading = log.read()
    assert reading.decisions == [first, second] and reading.skipped == []


def test_replay_undo_takes_a_decision_back_and_a_later_one_stands():
    confirm = _decision(CONFIRM)
    skip = _decision(SKIP, "/q/b.jpg", None)
    new = _decision(NEW, "/q/c.jpg", "new-1")
    state = replay([confirm, skip, new])
    assert {p: d.action for p, d in state.standing.items()} == {"/q/a.jpg": CONFIRM, "/q/b.jpg": SKIP, "/q/c.jpg": NEW}
    assert state.catalogue() == {"/q/a.jpg": "w1", "/q/c.jpg": "new-1"}
    assert state.last() is new and state.last(["/q/a.jpg", "/q/b.jpg"]) is skip

    state = replay([confirm, skip, new, _undo(new)])
    assert "/q/c.jpg" not in state.standing and state.last() is skip
    assert state.touched == {"/q/a.jpg", "/q/c.jpg"}  # c was in the catalogue once: the log owns its entry

    # a skipped photo confirmed later; undoing the confirmation leaves the skip standing again
    later = _decision(CONFIRM, "/q/b.jpg", "w2")
    assert replay([skip, later]).standing["/q/b.jpg"] is later
    assert replay([skip, later, _undo(later)]).standing["/q/b.jpg"] is skip


def test_a_cut_short_last_line_is_skipped_reported_and_the_next_append_starts_afresh(tmp_path):
    log = DecisionLog(tmp_path / "decisions.jsonl")
    first = log.append(_decision(CONFIRM))
    whole = _decision(NEW, "/q/b.jpg", "new-1").line()
    with open(log.path, "ab") as handle:
        handle.write(whole[: len(whole) // 2])  # what a kill in the middle of a write would leave
    reading = log.read()
    assert reading.decisions == [first] and reading.skipped == [2]

    after = log.append(_decision(SKIP, "/q/c.jpg", None))
    reading = log.read()
    assert reading.decisions == [first, after]  # the fragment did not swallow the new record
    assert reading.skipped == [2]
    assert log.path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize(
    "line", ['{"action": "confirm"}', '["not", "a", "record"]', '{"action": "undo", "id": "x"}', "\xff\xfe"]
)
def test_lines_that_are_not_decision_records_are_skipped(tmp_path, line):
    log = DecisionLog(tmp_path / "decisions.jsonl")
    kept = log.append(_decision(CONFIRM))
    with open(log.path, "a", encoding="latin-1") as handle:
        handle.write(line + "\n")
    assert log.read().decisions == [kept] and log.read().skipped == [2]


def test_a_decisions_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(SpotterError, match="is a folder"):
        DecisionLog(tmp_path).check()


WRITER = """
import sys
from spotter.whale.review.decisions import Decision, DecisionLog
log = DecisionLog(sys.argv[1])
photo = "/q/" + "p" * 6000  # records of about 6 KB: a write spans pages, where a kill could cut it short
n = 0
while True:
    log.append(Decision.make("writer", "/runs/r", "confirm", photo + str(n), individual_id=f"w{n}"))
    n += 1
"""


def test_the_log_survives_a_writer_killed_mid_loop(tmp_path):
    """A writer appending as fast as it can is killed (SIGKILL) several times; every record before the last line
    is whole, at most the last line is cut short, and appends after the kill read back whole."""
    log = DecisionLog(tmp_path / "decisions.jsonl")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    expected_min, cut_short = 0, set()
    for _ in range(4):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log.path)], env=env)
        try:
            deadline = time.monotonic() + 30
            while _lines(log.path) < expected_min + 20 and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        reading = log.read()
        last_line = _lines(log.path) + 1  # a line cut short has no newline yet
        assert set(reading.skipped) <= cut_short | {last_line}, "only the line written at the kill may be cut short"
        cut_short = set(reading.skipped)
        assert len(reading.decisions) >= expected_min + 20
        assert all(d.individual_id == f"w{i}" for i, d in enumerate(_by_writer_run(reading.decisions)[-1]))
        marker = log.append(_decision(SKIP, "/q/after-kill.jpg", None))
        assert log.read().decisions[-1] == marker
        expected_min = len(log.read().decisions)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _by_writer_run(decisions: list[Decision]) -> list[list[Decision]]:
    """The writer's records, split at each marker the test appended after a kill."""
    runs: list[list[Decision]] = [[]]
    for decision in decisions:
        if decision.user == "writer":
            runs[-1].append(decision)
        else:
            runs.append([])
    return [run for run in runs if run]
