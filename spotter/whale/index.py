"""A living photo-ID catalogue index: every catalogue photo embedded once by a run's models, kept up to date.

An index folder holds `photos.csv` (one row per photo: its path, individual, content hash and crop box),
`embeddings.npz` (the run's combined embedding of each photo, and of its mirror image when the run flips) and
`index.json` (the run it belongs to and counts). Running `index` again on the same folder embeds only photos it
has not seen (the cache key is the file's content, its crop box and the run) and drops photos no longer listed;
`add_photos` appends confirmed photos one by one and `remove_photos` takes them out again (the review page does,
on a confirmation and its undo). Every file is written atomically, the
description last.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.errors import SpotterError
from spotter.io import atomic_path, ensure_writable_dir, read_csv, write_csv, write_json
from spotter.progress import NullReporter, Reporter

PHOTOS = "photos-{generation}.csv"
EMBEDDINGS = "embeddings-{generation}.npz"
DESCRIPTION = "index.json"
CATALOGUE_CSV = "catalogue.csv"  # a catalogue folder's table of known photos: image,individual_id
BOXES_CSV = "bboxes.csv"  # optional crop boxes beside it: image,x1,y1,x2,y2
FORMAT_VERSION = 3
COLUMNS = ["image", "individual_id", "path", "sha1", "box"]


def content_hash(path: str | Path) -> str:
    """The SHA-1 of a file's bytes: a photo moved or renamed keeps its embedding, an edited one does not."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def box_text(box: Sequence[float] | None) -> str:
    """A crop box as stored in `photos.csv` ("" for the whole photo)."""
    return "" if box is None else " ".join(f"{float(v):g}" for v in box)


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    values = str(text).split() if isinstance(text, str) else []
    return tuple(float(v) for v in values) if len(values) == 4 else None


@dataclass
class CatalogueIndex:
    """The photos of an index and their embeddings.

    Attributes:
        folder: The index folder.
        photos: One row per photo: image (as listed), individual_id, path (absolute), sha1, box.
        plain: (N, D) L2-normalized combined embeddings.
        flipped: (N, D) of the mirror images, or None when the run does not flip.
        description: The run it belongs to (`run`, `fingerprint`), counts and times.
    """

    folder: Path
    photos: pd.DataFrame
    plain: np.ndarray
    flipped: np.ndarray | None
    description: dict

    @property
    def ids(self) -> list[str]:
        return list(self.photos["individual_id"])

    def boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Crop boxes by photo path (for embedding)."""
        return {str(p): parse_box(b) for p, b in zip(self.photos["path"], self.photos["box"]) if parse_box(b)}

    def save(self) -> Path:
        """Writes a new generation of the index's files, switches the description to it, removes the old one."""
        ensure_writable_dir(self.folder)
        generation = self._next_generation()
        arrays = {"plain": np.ascontiguousarray(self.plain, np.float32)}
        if self.flipped is not None:
            arrays["flipped"] = np.ascontiguousarray(self.flipped, np.float32)
        with atomic_path(self.folder / EMBEDDINGS.format(generation=generation)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        write_csv(self.folder / PHOTOS.format(generation=generation), self.photos[COLUMNS])
        description = {
            **self.description,
            "generation": generation,
            "format_version": FORMAT_VERSION,
            "photos": int(len(self.photos)),
            "individuals": int(self.photos["individual_id"].nunique()),
            "dim": int(self.plain.shape[1]) if self.plain.ndim == 2 else 0,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(self.folder / DESCRIPTION, description)  # the switch: one rename
        self.description = description
        for stale in (PHOTOS, EMBEDDINGS):
            for path in self.folder.glob(stale.format(generation="*")):
                if path.name != stale.format(generation=generation):
                    path.unlink(missing_ok=True)
        return self.folder

    def _next_generation(self) -> int:
        """One past every generation the folder holds files of (never a name a current index reads)."""
        import re

        seen = [int(m.group(1)) for p in self.folder.iterdir()
                if (m := re.fullmatch(r"(?:photos|embeddings)-(\d+)\.(?:csv|npz)", p.name))]
        if self.description.get("generation") is not None:
            seen.append(int(self.description["generation"]))
        return max(seen) + 1 if seen else 0

    def append(self, photos: pd.DataFrame, plain: np.ndarray, flipped: np.ndarray | None) -> None:
        """Adds embedded photos (rows as in `photos`) in memory; `save` writes them."""
        self.photos = pd.concat([self.photos, photos[COLUMNS]], ignore_index=True)
        self.plain = np.concatenate([self.plain, plain]) if len(self.plain) else np.asarray(plain, np.float32)
        if self.flipped is not None or flipped is not None:
            old = self.flipped if self.flipped is not None else np.zeros((0, plain.shape[1]), np.float32)
            self.flipped = np.concatenate([old, flipped]) if len(old) else np.asarray(flipped, np.float32)

    def remove(self, paths: Sequence[str | Path]) -> int:
        """Drops photos (by path) in memory; `save` writes the change. Returns how many rows went."""
        gone = self.photos["path"].isin({str(Path(p).resolve()) for p in paths}).to_numpy()
        self.photos = self.photos[~gone].reset_index(drop=True)
        self.plain = self.plain[~gone]
        if self.flipped is not None:
            self.flipped = self.flipped[~gone]
        return int(gone.sum())


def load_index(folder: str | Path) -> CatalogueIndex:
    """Reads an index folder (no pickles).

    Raises:
        SpotterError: If a file is missing or unreadable, or the files disagree.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpotterError("index folder not found; build it with `spotter whale index RUN CATALOGUE --out INDEX`",
                           folder)
    if not (folder / DESCRIPTION).is_file():
        raise SpotterError(f"not an index folder: {DESCRIPTION} missing", folder)
    try:
        description = json.loads((folder / DESCRIPTION).read_text())
    except (OSError, ValueError) as err:
        raise SpotterError(f"cannot read the index ({type(err).__name__}: {err})", folder / DESCRIPTION) from None
    if not isinstance(description, dict) or description.get("format_version") != FORMAT_VERSION:
        raise SpotterError("an index of another spotter version; build it again with `spotter whale index`", folder)
    names = {k: v.format(generation=description.get("generation")) for k, v in (("photos", PHOTOS),
                                                                               ("embeddings", EMBEDDINGS))}
    for name in names.values():
        if not (folder / name).is_file():
            raise SpotterError(f"not a whole index folder: {name} missing", folder)
    try:
        with np.load(folder / names["embeddings"], allow_pickle=False) as z:
            plain = z["plain"].astype(np.float32)
            flipped = z["flipped"].astype(np.float32) if "flipped" in z.files else None
    except (OSError, ValueError, KeyError) as err:
        raise SpotterError(f"cannot read the index ({type(err).__name__}: {err})", folder) from None
    photos = read_csv(folder / names["photos"], required=COLUMNS, dtype=str).fillna({"box": ""})
    if plain.ndim != 2 or len(plain) != len(photos) or (flipped is not None and flipped.shape != plain.shape):
        raise SpotterError(f"{names['embeddings']} holds {plain.shape} embeddings but {names['photos']} lists "
                           f"{len(photos)} photos", folder)
    return CatalogueIndex(folder, photos, plain, flipped, description)


def catalogue_table(catalogue: str | Path, table: str | Path | None = None) -> tuple[pd.DataFrame, dict]:
    """The photos a catalogue argument lists: image, individual_id, path; and its crop boxes by path.

    A folder with `catalogue.csv` (image, individual_id; images relative to the folder) and optional
    `bboxes.csv`; or a whale data folder (`train.csv`, `train_images/`, its `bboxes.csv`); `table` overrides the
    table. Rows are checked: columns, empty cells, duplicates, missing photos.

    Raises:
        SpotterError: On the first problem, naming the file and line.
    """
    from spotter.whale.layout import BBOX_CSV, TRAIN_CSV, TRAIN_DIR

    folder = Path(catalogue)
    if not folder.is_dir():
        raise SpotterError("catalogue folder not found", folder)
    if table is not None:
        table, photo_dir, boxes_csv = Path(table), folder, folder / BOXES_CSV
    elif (folder / CATALOGUE_CSV).is_file():
        table, photo_dir, boxes_csv = folder / CATALOGUE_CSV, folder, folder / BOXES_CSV
    elif (folder / TRAIN_CSV).is_file() and (folder / TRAIN_DIR).is_dir():
        table, photo_dir, boxes_csv = folder / TRAIN_CSV, folder / TRAIN_DIR, folder / BBOX_CSV
    else:
        raise SpotterError(f"no {CATALOGUE_CSV} (image,individual_id) or {TRAIN_CSV} in the catalogue folder; pass "
                           "--csv", folder)
    frame = read_csv(table, required=["image", "individual_id"], dtype=str)
    if frame.empty:
        raise SpotterError("no photos listed", table)
    for column in ("image", "individual_id"):
        empty = np.flatnonzero(frame[column].isna().to_numpy())
        if len(empty):
            raise SpotterError(f"line {empty[0] + 2}: empty {column}", table)
    duplicated = np.flatnonzero(frame["image"].duplicated().to_numpy())
    if len(duplicated):
        raise SpotterError(f"line {duplicated[0] + 2}: duplicate image {frame['image'].iloc[duplicated[0]]!r}", table)
    frame = frame[["image", "individual_id"]].reset_index(drop=True)
    frame["path"] = [str((photo_dir / name).resolve()) for name in frame["image"]]
    missing = [i for i, p in enumerate(frame["path"]) if not Path(p).is_file()]
    if missing:
        raise SpotterError(f"line {missing[0] + 2}: photo not found ({frame['path'][missing[0]]})", table)
    boxes = read_boxes(boxes_csv, photo_dir) if boxes_csv.is_file() else {}
    return frame, boxes


def read_boxes(path: str | Path, photo_dir: str | Path) -> dict[str, tuple[float, float, float, float]]:
    """Crop boxes of a `bboxes.csv` (image, x1, y1, x2, y2) by absolute photo path.

    Raises:
        SpotterError: On a bad line, naming it.
    """
    frame = read_csv(path, required=["image", "x1", "y1", "x2", "y2"], dtype=str)
    boxes = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        try:
            box = tuple(float(v) for v in (row.x1, row.y1, row.x2, row.y2))
        except (TypeError, ValueError):
            raise SpotterError(f"line {i + 2}: box coordinates must be numbers", path) from None
        if not (np.isfinite(box).all() and box[2] > box[0] and box[3] > box[1]):
            raise SpotterError(f"line {i + 2}: empty box (need x2 > x1 and y2 > y1)", path)
        boxes[str((Path(photo_dir) / str(row.image)).resolve())] = box
    return boxes


@dataclass
class IndexUpdate:
    """What an `index` run did."""

    index: CatalogueIndex
    reused: int
    embedded: int
    dropped: int
    seconds: float


def update_index(
    matcher,
    folder: str | Path,
    listed: pd.DataFrame,
    boxes: dict,
    reporter: Reporter = NullReporter(),
) -> IndexUpdate:
    """Builds or refreshes an index: reuses embeddings of photos seen before (same content, box and run), embeds
    the new ones, drops photos no longer listed, and saves.

    Args:
        matcher: A `spotter.whale.matcher.Matcher` (the run's models; `matcher.fingerprint` keys the cache).
        folder: The index folder (created if missing).
        listed: image, individual_id, path of every catalogue photo.
        boxes: Crop boxes by path.
        reporter: Progress of the embedding.
    """
    started = time.perf_counter()
    folder = Path(folder)
    listed = listed.reset_index(drop=True).copy()
    listed["sha1"] = [content_hash(p) for p in listed["path"]]
    listed["box"] = [box_text(boxes.get(p)) for p in listed["path"]]
    old = None
    if (folder / DESCRIPTION).is_file():
        old = load_index(folder)
        if old.description.get("fingerprint") != matcher.fingerprint:
            old = None  # another run (or retrained weights): every photo is embedded afresh
    known = {}
    if old is not None:
        for i, (sha, box) in enumerate(zip(old.photos["sha1"], old.photos["box"].fillna(""))):
            known.setdefault((sha, box), i)
    keys = list(zip(listed["sha1"], listed["box"]))
    reuse = np.array([known.get(k, -1) for k in keys])
    new_rows = listed[reuse < 0]
    dim = matcher.dim
    plain = np.zeros((len(listed), dim), np.float32)
    flipped = np.zeros((len(listed), dim), np.float32) if matcher.flips else None
    if old is not None and (reuse >= 0).any():
        plain[reuse >= 0] = old.plain[reuse[reuse >= 0]]
        if flipped is not None and old.flipped is not None:
            flipped[reuse >= 0] = old.flipped[reuse[reuse >= 0]]
    if len(new_rows):
        fresh = matcher.embed(new_rows, boxes, reporter=reporter, what="catalogue photos")
        plain[reuse < 0] = fresh.plain
        if flipped is not None:
            flipped[reuse < 0] = fresh.flipped
    listed_keys = set(keys)
    dropped = 0 if old is None else sum(k not in listed_keys for k in zip(old.photos["sha1"], old.photos["box"]))
    description = {
        "run": matcher.run_path,
        "fingerprint": matcher.fingerprint,
        "catalogue": str(Path(listed["path"].iloc[0]).parent) if len(listed) else "",
        "created": (old.description.get("created") if old is not None else None)
        or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    index = CatalogueIndex(folder, listed[COLUMNS], plain, flipped, description)
    index.save()
    return IndexUpdate(index, int((reuse >= 0).sum()), int(len(new_rows)), dropped, time.perf_counter() - started)


def add_photos(matcher, index: CatalogueIndex, photos: pd.DataFrame, boxes: dict | None = None,
               reporter: Reporter = NullReporter()) -> CatalogueIndex:
    """Embeds photos (path, individual_id; image defaults to the path) and adds them to the index, saved at once:
    a confirmed match or a new individual joins the catalogue and is a candidate for the next query.

    Raises:
        SpotterError: If the index belongs to another run, or a photo is missing or unreadable.
    """
    if index.description.get("fingerprint") != matcher.fingerprint:
        raise SpotterError("the index was built with another run or other weights", index.folder)
    photos = photos.reset_index(drop=True).copy()
    photos["path"] = [str(Path(p).resolve()) for p in photos["path"]]
    if "image" not in photos:
        photos["image"] = photos["path"]
    boxes = {str(Path(k).resolve()): v for k, v in (boxes or {}).items()}
    photos["sha1"] = [content_hash(p) for p in photos["path"]]
    photos["box"] = [box_text(boxes.get(p)) for p in photos["path"]]
    views = matcher.embed(photos, boxes, reporter=reporter, what="added photos")
    index.append(photos, views.plain, views.flipped if matcher.flips else None)
    index.save()
    return index


def remove_photos(index: CatalogueIndex, paths: Sequence[str | Path]) -> int:
    """Takes photos (by path) out of the index, saved at once (an undone review decision leaves the catalogue).

    Returns:
        How many photos were removed (0 leaves the files untouched).
    """
    removed = index.remove(paths)
    if removed:
        index.save()
    return removed
