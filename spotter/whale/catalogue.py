"""A photo-ID catalogue: embed a folder of known animals once, then match new photos against it.

The embedding function is passed in (`photos -> (N, D) array`), so the catalogue works with any model:
a trained run's embedder, or a fake one in tests. A saved catalogue is a folder of three files:
`embeddings.npy` (N, D float32, L2-normalized), `ids.csv` (image, individual_id) and `catalogue.json`
(sizes, source, the "looks new" threshold and whatever the caller adds to describe the embedder).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from spotter.errors import SpotterError
from spotter.io import atomic_path, ensure_writable_dir, read_csv, write_csv, write_json
from spotter.progress import NullReporter, Reporter
from spotter.whale.data import check_image, load_image
from spotter.whale.retrieval import CosineIndex, l2_normalize

EmbedFn = Callable[[list[Image.Image]], np.ndarray]

EMBEDDINGS = "embeddings.npy"
IDS = "ids.csv"
META = "catalogue.json"
FORMAT_VERSION = 1
# cosine below which the best candidate is too weak to trust (Happywhale 2nd place used 0.5)
DEFAULT_NEW_THRESHOLD = 0.5


@dataclass
class Catalogue:
    """Known animals: one embedding per photo.

    Attributes:
        embeddings: (N, D) float32, L2-normalized.
        entries: One row per photo: image, individual_id.
        meta: Sizes, source folder, creation time, `new_threshold`, caller's extras.
        root: Folder of the catalogue's photos (for contact sheets), if known.
    """

    embeddings: np.ndarray
    entries: pd.DataFrame
    meta: dict = field(default_factory=dict)
    root: Path | None = None


@dataclass
class Candidate:
    """One known animal proposed for a photo: its id, cosine similarity and its most similar photo."""

    individual_id: str
    score: float
    image: str


@dataclass
class Match:
    """A photo's ranked candidates and whether it looks like an animal not in the catalogue."""

    photo: Path
    candidates: list[Candidate]
    looks_new: bool


def embed_photos(
    paths: Sequence[str | Path],
    embed: EmbedFn,
    batch_size: int = 32,
    reporter: Reporter = NullReporter(),
    description: str = "embedding",
) -> np.ndarray:
    """Embeddings (N, D) float32 of image files, batch by batch.

    Raises:
        SpotterError: If a photo is missing or unreadable, or the embedder returns the wrong shape.
    """
    batches = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    parts = []
    for batch in reporter.track(batches, total=len(batches), description=description):
        vectors = np.asarray(embed([load_image(p) for p in batch]), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(batch):
            raise SpotterError(f"the embedding function returned shape {vectors.shape} for {len(batch)} photos")
        parts.append(vectors)
    if not parts:
        raise SpotterError("no photos to embed")
    return np.concatenate(parts)


def build_catalogue(
    folder: str | Path,
    csv: str | Path,
    embed: EmbedFn,
    batch_size: int = 32,
    new_threshold: float = DEFAULT_NEW_THRESHOLD,
    meta: dict | None = None,
    reporter: Reporter = NullReporter(),
) -> Catalogue:
    """Embeds every photo listed in `csv` (image, individual_id) from `folder`.

    Args:
        folder: Photo folder.
        csv: Table of known photos with columns image, individual_id.
        embed: Photos → (N, D) embeddings.
        batch_size: Photos per call of `embed`.
        new_threshold: Best cosine under which a match "looks new"; stored with the catalogue.
        meta: Extra metadata to store (e.g. the run and model the embeddings come from).
        reporter: Progress reporting.

    Raises:
        SpotterError: On a bad table (missing columns, empty ids, duplicates) or missing photos.
    """
    folder, csv = Path(folder), Path(csv)
    table = read_csv(csv, required=["image", "individual_id"], dtype=str)
    if table.empty:
        raise SpotterError("no photos listed", csv)
    for column in ("image", "individual_id"):
        empty = np.flatnonzero(table[column].isna().to_numpy())
        if len(empty):
            raise SpotterError(f"line {empty[0] + 2}: empty {column}", csv)
    duplicated = np.flatnonzero(table["image"].duplicated().to_numpy())
    if len(duplicated):
        raise SpotterError(f"line {duplicated[0] + 2}: duplicate image {table['image'].iloc[duplicated[0]]!r}", csv)
    paths = [folder / name for name in table["image"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SpotterError(f"{len(missing)} listed photo(s) not found, e.g. {missing[0]}", csv)
    for path in paths:  # headers (format, pixel limit, a cut-short end) before the slow embedding
        check_image(path, decode=False)
    embeddings = l2_normalize(embed_photos(paths, embed, batch_size, reporter, "indexing catalogue"))
    info = {
        "format_version": FORMAT_VERSION,
        "photos": len(table),
        "individuals": int(table["individual_id"].nunique()),
        "dim": int(embeddings.shape[1]),
        "source_folder": str(folder.resolve()),
        "source_csv": str(csv.resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "new_threshold": float(new_threshold),
        **(meta or {}),
    }
    return Catalogue(embeddings, table[["image", "individual_id"]].reset_index(drop=True), info, folder)


def save_catalogue(catalogue: Catalogue, out: str | Path) -> Path:
    """Writes the catalogue's three files into `out` (each atomically; metadata last)."""
    out = ensure_writable_dir(out)
    with atomic_path(out / EMBEDDINGS) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(catalogue.embeddings, dtype=np.float32), allow_pickle=False)
    write_csv(out / IDS, catalogue.entries[["image", "individual_id"]])
    write_json(out / META, catalogue.meta)
    return out


def load_catalogue(path: str | Path) -> Catalogue:
    """Reads a saved catalogue (no pickles: `allow_pickle=False`).

    Raises:
        SpotterError: If a file is missing or the three files disagree.
    """
    path = Path(path)
    for name in (EMBEDDINGS, IDS, META):
        if not (path / name).is_file():
            raise SpotterError(f"not a catalogue: {name} missing", path)
    try:
        meta = json.loads((path / META).read_text())
        embeddings = np.load(path / EMBEDDINGS, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise SpotterError(f"cannot read catalogue ({type(err).__name__}: {err})", path) from None
    entries = read_csv(path / IDS, required=["image", "individual_id"], dtype=str)
    if embeddings.ndim != 2 or len(embeddings) != len(entries):
        raise SpotterError(f"{EMBEDDINGS} has shape {embeddings.shape} but {IDS} lists {len(entries)} photos", path)
    root = Path(meta["source_folder"]) if "source_folder" in meta else None
    return Catalogue(embeddings.astype(np.float32), entries, meta, root)


def match_photos(
    catalogue: Catalogue,
    photos: Sequence[str | Path],
    embed: EmbedFn,
    top: int = 5,
    new_threshold: float | None = None,
    k: int = 200,
    batch_size: int = 32,
    reporter: Reporter = NullReporter(),
) -> list[Match]:
    """Ranks the catalogue's individuals for each photo by cosine similarity.

    An individual's score is its best photo's similarity; a match "looks new" when even the best
    candidate scores below the threshold.

    Args:
        catalogue: The known animals.
        photos: Image files to identify.
        embed: The same embedding function the catalogue was built with.
        top: Candidates per photo.
        new_threshold: Overrides the catalogue's stored threshold.
        k: Nearest catalogue photos searched per query.
        batch_size: Photos per call of `embed`.
        reporter: Progress reporting.

    Raises:
        SpotterError: On unreadable photos or embeddings of another size than the catalogue's.
    """
    photos = [Path(p) for p in photos]
    threshold = float(catalogue.meta.get("new_threshold", DEFAULT_NEW_THRESHOLD) if new_threshold is None else new_threshold)
    queries = embed_photos(photos, embed, batch_size, reporter, "matching")
    if queries.shape[1] != catalogue.embeddings.shape[1]:
        raise SpotterError(
            f"photos embed to {queries.shape[1]} dimensions but the catalogue has {catalogue.embeddings.shape[1]}: "
            "was it built with another model?"
        )
    sims, neighbours = CosineIndex(catalogue.embeddings).search(queries, k)
    ids = catalogue.entries["individual_id"].to_numpy()
    images = catalogue.entries["image"].to_numpy()
    matches = []
    for photo, row_sims, row_ids in zip(photos, sims, neighbours):
        seen: dict[str, Candidate] = {}
        for sim, j in zip(row_sims, row_ids):
            # neighbours come best first, so an id's first photo is its best
            if j >= 0 and ids[j] not in seen:
                seen[ids[j]] = Candidate(str(ids[j]), float(sim), str(images[j]))
                if len(seen) == top:
                    break
        candidates = list(seen.values())
        looks_new = not candidates or candidates[0].score < threshold
        matches.append(Match(photo, candidates, looks_new))
    return matches


def matches_frame(matches: Sequence[Match]) -> pd.DataFrame:
    """One row per (photo, candidate): photo, rank, individual_id, score, image, looks_new."""
    rows = [
        (str(m.photo), rank, c.individual_id, c.score, c.image, m.looks_new)
        for m in matches
        for rank, c in enumerate(m.candidates, start=1)
    ]
    return pd.DataFrame(rows, columns=["photo", "rank", "individual_id", "score", "image", "looks_new"])


def write_contact_sheet(matches: Sequence[Match], catalogue: Catalogue, out: str | Path, thumb: int = 128) -> Path:
    """A PNG with one row per photo: the photo, then its candidates' best catalogue photos with id and score.

    Raises:
        SpotterError: If the catalogue's photo folder is unknown.
    """
    if catalogue.root is None:
        raise SpotterError("the catalogue does not know its photo folder; cannot draw candidates")
    columns = 1 + max((len(m.candidates) for m in matches), default=0)
    label = 28
    sheet = Image.new("RGB", (columns * thumb, max(1, len(matches)) * (thumb + label)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, match in enumerate(matches):
        y = row * (thumb + label)
        cells = [(match.photo, match.photo.name[:18], "LOOKS NEW" if match.looks_new else "query")]
        cells += [(catalogue.root / c.image, c.individual_id[:18], f"{c.score:.3f}") for c in match.candidates]
        for col, (path, top_line, bottom_line) in enumerate(cells):
            sheet.paste(_thumbnail(path, thumb), (col * thumb, y))
            colour = (200, 0, 0) if col == 0 and match.looks_new else (0, 0, 0)
            draw.text((col * thumb + 3, y + thumb + 1), top_line, fill=colour)
            draw.text((col * thumb + 3, y + thumb + 14), bottom_line, fill=colour)
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def _thumbnail(path: Path, size: int) -> Image.Image:
    try:
        image = load_image(path)
    except SpotterError:
        return Image.new("RGB", (size, size), (220, 220, 220))  # a moved photo should not sink the sheet
    image.thumbnail((size, size))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas
