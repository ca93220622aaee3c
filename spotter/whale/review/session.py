"""A review session: a queue of query photos, the run's matcher, the living catalogue index and the decisions log.

The log is the truth: a session starts by replaying it (photos decided before are marked) and bringing the
index in line with it; every confirm or new individual puts the photo in the index at once (a candidate for the
next query) and then appends its record; an undo takes the photo out again and appends an undo record.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.index import CatalogueIndex, add_photos, load_index, remove_photos
from spotter.whale.matcher import PhotoMatch
from spotter.whale.review.decisions import (
    CONFIRM,
    DECISIONS,
    NEW,
    SKIP,
    UNDO,
    Decision,
    DecisionLog,
    replay,
)

MAX_ID_LENGTH = 100


class UnknownPhoto(SpotterError):
    """A photo number or image that the session does not hold."""


class DecisionConflict(SpotterError):
    """A decision the photo's current state does not allow (decided twice, nothing to undo, an id taken)."""


@dataclass(frozen=True)
class QueueItem:
    """A query photo of the session.

    Attributes:
        number: Its place in the queue, from 1.
        photo: Its absolute path.
        box: Its crop box, if any.
    """

    number: int
    photo: Path
    box: tuple[float, float, float, float] | None = None

    @property
    def key(self) -> str:
        return str(self.photo)


@dataclass
class CatalogueSync:
    """What bringing the index in line with the log did at the start."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # photos the log confirmed that are no longer on disk


def image_token(path: str | Path) -> str:
    """A short stable name for a catalogue photo in image addresses (the page never sends file paths)."""
    return hashlib.sha1(str(path).encode()).hexdigest()[:16]


class ReviewSession:
    """The state behind the review page; every method is safe to call from several request threads.

    Args:
        matcher: The run's `spotter.whale.matcher.Matcher` (loaded once).
        index: The catalogue index, built with the same run.
        items: The queue, in order.
        log: The decisions log.
        user: Who decides (recorded with each decision).
        top: Answers per photo, new_individual included.
        reporter: Progress of embedding photos the log puts back in the index.
    """

    def __init__(
        self,
        matcher,
        index: CatalogueIndex,
        items: Sequence[QueueItem],
        log: DecisionLog,
        user: str,
        top: int = 5,
        reporter: Reporter | None = None,
    ) -> None:
        if top < 1:
            raise SpotterError(f"--top must be at least 1, got {top}")
        if index.description.get("fingerprint") != matcher.fingerprint:
            raise SpotterError(
                "the index was built with another run or other weights; index the catalogue again with this run",
                index.folder,
            )
        self.matcher = matcher
        self.index = index
        self.items = list(items)
        self.log = log
        self.user = user
        self.top = top
        self._lock = threading.RLock()
        self._version = 0  # bumped on every change of the index; matches are cached per version
        self._matches: dict[tuple[int, int], PhotoMatch] = {}
        reading = log.read()
        self.skipped_lines = reading.skipped
        self._decisions = list(reading.decisions)
        self._paths: tuple[int, dict[str, str]] = (-1, {})
        self._replay()
        self.sync = self._sync_catalogue(reporter or NullReporter())

    # ------------------------------------------------------------------------------------------- reading

    @property
    def run(self) -> str:
        return self.matcher.run_path

    def item(self, number: int) -> QueueItem:
        """The queue's photo `number` (from 1).

        Raises:
            UnknownPhoto: If there is none.
        """
        if not 1 <= number <= len(self.items):
            raise UnknownPhoto(f"no photo {number} in the queue (1..{len(self.items)})")
        return self.items[number - 1]

    def decision(self, number: int) -> Decision | None:
        """The photo's standing decision, if any."""
        with self._lock:
            return self.state.standing.get(self.item(number).key)

    def catalogued_as(self, number: int) -> str | None:
        """The individual a photo was already in the catalogue as before the review (not by a decision)."""
        key = self.item(number).key
        with self._lock:
            if key in self._decided_in:
                return None
            return self._index_paths().get(key)

    def is_open(self, number: int) -> bool:
        """Whether the photo still awaits a confirm or new decision (undecided or skipped, not catalogued)."""
        decision = self.decision(number)
        return (decision is None or decision.action == SKIP) and self.catalogued_as(number) is None

    def next_open(self, after: int = 0) -> int | None:
        """The next photo with no decision yet after `after` (wrapping round; skipped ones are passed over), or None
        when every photo has one."""
        with self._lock:
            count = len(self.items)
            for step in range(1, count + 1):
                number = (after + step - 1) % count + 1
                if self.decision(number) is None and self.catalogued_as(number) is None:
                    return number
            return None

    def counts(self) -> dict[str, int]:
        """How many queue photos are confirmed, new, skipped, in the catalogue before the review, and open."""
        with self._lock:
            out = {CONFIRM: 0, NEW: 0, SKIP: 0, "catalogued": 0, "open": 0}
            for number in range(1, len(self.items) + 1):
                decision = self.decision(number)
                if decision is None and self.catalogued_as(number) is not None:
                    out["catalogued"] += 1
                else:
                    out[decision.action if decision else "open"] += 1
            return out

    def match(self, number: int) -> PhotoMatch:
        """The photo's answers against the catalogue as it stands (the photo itself left out of it)."""
        item = self.item(number)
        with self._lock:
            cached = self._matches.get((number, self._version))
            if cached is None:
                index = self._index_without(item.key)
                boxes = {item.key: item.box} if item.box else {}
                cached = self.matcher.match(index, pd.DataFrame({"path": [item.key]}), boxes, self.top)[0]
                self._matches = {k: v for k, v in self._matches.items() if k[1] == self._version}
                self._matches[(number, self._version)] = cached
            return cached

    def catalogue_photo(self, token: str) -> tuple[Path, tuple | None]:
        """A catalogue photo (and its crop box) by its `image_token`.

        Raises:
            UnknownPhoto: If no photo of the catalogue has that token.
        """
        with self._lock:
            for path in self.index.photos["path"]:
                if image_token(path) == token:
                    return Path(path), self.index.boxes().get(path)
        raise UnknownPhoto(f"no catalogue photo {token!r}")

    def suggest_new_id(self) -> str:
        """A new individual id no catalogue photo or decision uses: new-<UTC date>-<n>."""
        stem = f"new-{datetime.now(timezone.utc):%Y%m%d}-"
        with self._lock:
            taken = set(self.index.ids) | {d.individual_id for d in self._decisions if d.individual_id}
        number = 1
        while f"{stem}{number}" in taken:
            number += 1
        return f"{stem}{number}"

    # ----------------------------------------------------------------------------------------- deciding

    def confirm(self, number: int, individual_id: str) -> Decision:
        """The photo shows `individual_id` of the catalogue: it joins the catalogue as that individual.

        Raises:
            UnknownPhoto: If there is no photo `number`.
            DecisionConflict: If the photo is decided already (undo first).
            SpotterError: If the id is not in the catalogue.
        """
        individual_id = _clean_id(individual_id)
        with self._lock:
            self._check_open(number)
            if individual_id not in set(self.index.ids):
                raise SpotterError(
                    f"individual {individual_id!r} is not in the catalogue; mark the photo as a new individual instead"
                )
            return self._catalogue(number, CONFIRM, individual_id)

    def new(self, number: int, individual_id: str | None = None) -> Decision:
        """The photo shows an individual the catalogue lacks: it joins as `individual_id` (default: a suggested
        unique id).

        Raises:
            UnknownPhoto: If there is no photo `number`.
            DecisionConflict: If the photo is decided already, or the id is taken.
            SpotterError: If the id is empty, too long or `new_individual`.
        """
        with self._lock:
            individual_id = self.suggest_new_id() if individual_id is None else _clean_id(individual_id)
            self._check_open(number)
            if individual_id in set(self.index.ids):
                raise DecisionConflict(f"individual {individual_id!r} is already in the catalogue; confirm it instead")
            return self._catalogue(number, NEW, individual_id)

    def skip(self, number: int) -> Decision:
        """No call for now: the photo is marked skipped and stays open."""
        with self._lock:
            self._check_open(number, allow_skipped=False)
            shown = self.match(number)
            decision = Decision.make(
                self.user, self.run, SKIP, self.item(number).photo, new_threshold=shown.new_threshold
            )
            return self._record(decision)

    def undo(self, number: int | None = None) -> Decision:
        """Takes back photo `number`'s decision, or the queue's most recent one; a photo it put in the catalogue
        leaves it again.

        Returns:
            The undo record (its `undoes` names the decision taken back, its `photo` the photo).

        Raises:
            UnknownPhoto: If there is no photo `number`.
            DecisionConflict: If there is nothing to undo.
        """
        with self._lock:
            if number is None:
                target = self.state.last(item.key for item in self.items)
                if target is None:
                    raise DecisionConflict("nothing to undo")
            else:
                target = self.state.standing.get(self.item(number).key)
                if target is None:
                    raise DecisionConflict(f"photo {number} has no decision to undo")
            if target.action in (CONFIRM, NEW):
                self._change_index(lambda: remove_photos(self.index, [target.photo]))
            undo = Decision.make(
                self.user,
                self.run,
                UNDO,
                target.photo,
                individual_id=target.individual_id,
                probability=target.probability,
                rank=target.rank,
                new_threshold=target.new_threshold,
                undoes=target.id,
            )
            try:
                return self._record(undo)
            except SpotterError:
                if target.action in (CONFIRM, NEW):  # the log still says the photo is in: put it back
                    self._change_index(lambda: self._add(target.photo, target.individual_id))
                raise

    def number_of(self, photo: str) -> int:
        """The queue number of a photo path."""
        for item in self.items:
            if item.key == photo:
                return item.number
        raise UnknownPhoto(f"photo not in the queue: {photo}")

    # ---------------------------------------------------------------------------------------- internals

    def _check_open(self, number: int, allow_skipped: bool = True) -> None:
        decision = self.decision(number)
        if decision is not None and (decision.action != SKIP or not allow_skipped):
            who = f"{decision.action} {decision.individual_id}" if decision.individual_id else decision.action
            raise DecisionConflict(f"photo {number} is decided already ({who} by {decision.user}); undo it first")
        known = self.catalogued_as(number)
        if known is not None:
            raise DecisionConflict(f"photo {number} is in the catalogue already as {known!r}")

    def _catalogue(self, number: int, action: str, individual_id: str) -> Decision:
        item = self.item(number)
        shown = self.match(number)
        shown_as = NEW_INDIVIDUAL if action == NEW else individual_id  # a new one: where new_individual stood
        answer = next((c for c in shown.candidates if c.individual_id == shown_as), None)
        decision = Decision.make(
            self.user,
            self.run,
            action,
            item.photo,
            individual_id=individual_id,
            probability=answer.probability if answer else None,
            rank=answer.rank if answer else None,
            new_threshold=shown.new_threshold,
        )
        self._change_index(lambda: self._add(item.key, individual_id))
        try:
            return self._record(decision)
        except SpotterError:
            self._change_index(lambda: remove_photos(self.index, [item.key]))  # the log is the truth
            raise

    def _add(self, photo: str, individual_id: str) -> None:
        box = next((item.box for item in self.items if item.key == photo), None)
        add_photos(
            self.matcher,
            self.index,
            pd.DataFrame({"path": [photo], "individual_id": [individual_id]}),
            {photo: box} if box else None,
            NullReporter(),
        )

    def _record(self, decision: Decision) -> Decision:
        self.log.append(decision)
        self._decisions.append(decision)
        self._replay()
        return decision

    def _replay(self) -> None:
        self.state = replay(self._decisions)
        self._decided_in = self.state.catalogue()

    def _index_paths(self) -> dict[str, str]:
        """The index's individual by photo path (kept per index version: pages ask for every queue photo)."""
        if self._paths[0] != self._version:
            self._paths = (self._version, dict(zip(self.index.photos["path"], self.index.photos["individual_id"])))
        return self._paths[1]

    def _change_index(self, change) -> None:
        try:
            change()
        except BaseException:
            self.index = load_index(self.index.folder)  # what is on disk, whatever the change left in memory
            raise
        finally:
            self._version += 1

    def _index_without(self, photo: str) -> CatalogueIndex:
        keep = (self.index.photos["path"] != photo).to_numpy()
        if keep.all():
            return self.index
        flipped = self.index.flipped[keep] if self.index.flipped is not None else None
        return CatalogueIndex(
            self.index.folder,
            self.index.photos[keep].reset_index(drop=True),
            self.index.plain[keep],
            flipped,
            self.index.description,
        )

    def _sync_catalogue(self, reporter: Reporter) -> CatalogueSync:
        """Brings the index in line with the log: photos it confirmed are in it as their individual, photos whose
        decision was undone are out (a server stopped between the two writes, or an index rebuilt since)."""
        sync = CatalogueSync()
        wanted = self.state.catalogue()
        present = dict(zip(self.index.photos["path"], self.index.photos["individual_id"]))
        stale = [p for p in self.state.touched if p in present and wanted.get(p) != present[p]]
        if stale:
            self._change_index(lambda: remove_photos(self.index, stale))
            sync.removed = sorted(stale)
        missing = [p for p in wanted if p not in present or p in stale]
        sync.missing = sorted(p for p in missing if not Path(p).is_file())
        to_add = [p for p in missing if Path(p).is_file()]
        if to_add:
            boxes = {item.key: item.box for item in self.items if item.box}
            frame = pd.DataFrame({"path": to_add, "individual_id": [wanted[p] for p in to_add]})
            self._change_index(
                lambda: add_photos(
                    self.matcher, self.index, frame, {p: boxes[p] for p in to_add if p in boxes}, reporter
                )
            )
            sync.added = sorted(to_add)
        return sync


def _clean_id(individual_id) -> str:
    """An individual id as typed, checked: non-empty, one line, not the reserved `new_individual`."""
    if not isinstance(individual_id, str) or not individual_id.strip():
        raise SpotterError("an individual id is needed (a non-empty text)")
    individual_id = individual_id.strip()
    if len(individual_id) > MAX_ID_LENGTH or not individual_id.isprintable():
        raise SpotterError(f"an individual id is one line of at most {MAX_ID_LENGTH} printable characters")
    if individual_id == NEW_INDIVIDUAL:
        raise SpotterError(f"{NEW_INDIVIDUAL!r} is the name of the answer, not an id; give the new individual an id")
    return individual_id


def open_review(
    run_dir: str | Path,
    index: str | Path,
    photos: Sequence[str | Path],
    user: str,
    bboxes: str | Path | None = None,
    decisions: str | Path | None = None,
    top: int = 5,
    reporter: Reporter | None = None,
) -> ReviewSession:
    """A review session: inputs checked first (index, photos' headers, crop boxes, decisions file), then the run's
    models loaded once and the index brought in line with the decisions log.

    Args:
        run_dir: The trained run.
        index: Its catalogue index folder.
        photos: Query photos and folders of them, in queue order.
        user: Who decides.
        bboxes: Crop boxes of the query photos (default: a `bboxes.csv` in each photo's folder).
        decisions: The decisions log (default: `INDEX/decisions.jsonl`).
        top: Answers per photo, new_individual included.

    Raises:
        SpotterError: On a missing or foreign index, a missing or unreadable photo, bad boxes, or a decisions
            file that cannot be read or written.
    """
    from spotter.whale.data import check_image
    from spotter.whale.matcher import Matcher, list_photos
    from spotter.whale.service import query_boxes

    if not user or not user.strip():
        raise SpotterError("--user must name who decides")
    if top < 1:
        raise SpotterError(f"--top must be at least 1, got {top}")
    catalogue = load_index(index)
    files = list(dict.fromkeys(list_photos(photos)))  # a photo named twice (itself and its folder) once
    for photo in files:
        check_image(photo, decode=False)
    boxes = query_boxes(files, bboxes)
    log = DecisionLog(Path(decisions) if decisions is not None else catalogue.folder / DECISIONS)
    log.check()
    log.read()
    items = [QueueItem(n, p, boxes.get(str(p))) for n, p in enumerate(files, start=1)]
    matcher = Matcher.load(run_dir)
    return ReviewSession(matcher, catalogue, items, log, user.strip(), top, reporter)
