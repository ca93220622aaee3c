"""A trained run as a photo-ID service: index a catalogue of known animals, match new photos against it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from spotter.engine.rundir import RunDir
from spotter.errors import SpotterError
from spotter.io import check_output_file, check_output_folder, write_csv
from spotter.progress import NullReporter, Reporter
from spotter.whale.data import check_image
from spotter.whale.index import BOXES_CSV, IndexUpdate, catalogue_table, load_index, read_boxes, update_index
from spotter.whale.matcher import Matcher, PhotoMatch, list_photos, matches_frame
from spotter.whale.sheet import write_match_sheet

INDEX = "index"  # the default catalogue index, inside the run folder
SHEET_PHOTOS = 50  # photos drawn on a match sheet (the CSV has them all): a sheet stays a picture one can open


def default_index(run_dir: str | Path) -> Path:
    return RunDir(run_dir).file(INDEX)


def index_catalogue(
    run_dir: str | Path,
    catalogue: str | Path,
    csv: str | Path | None = None,
    out: str | Path | None = None,
    reporter: Reporter = NullReporter(),
) -> IndexUpdate:
    """Builds or refreshes the index of a catalogue with a run (default: `RUN/index`): photos seen before keep their
    embeddings, new ones are embedded, unlisted ones dropped.

    Raises:
        SpotterError: On a bad catalogue table, a missing or unreadable photo, or an unusable run.
    """
    out = check_output_folder(Path(out) if out is not None else default_index(run_dir))
    listed, boxes = catalogue_table(catalogue, csv)
    for path in listed["path"]:  # headers (format, pixel limit, a cut-short end) before the slow embedding
        check_image(path, decode=False)
    matcher = Matcher.load(run_dir)
    return update_index(matcher, out, listed, boxes, reporter)


def query_boxes(photos: Sequence[Path], bboxes: str | Path | None) -> dict:
    """Crop boxes of the photos to match, by path: from `--bboxes FILE` (images named relative to its folder, or
    by file name), else from a `bboxes.csv` in each photo's folder."""
    sources = [Path(bboxes)] if bboxes is not None else sorted({p.parent / BOXES_CSV for p in photos})
    boxes: dict = {}
    for source in sources:
        if source.is_file():
            found = read_boxes(source, source.parent)
            boxes.update(found)
            by_name = {Path(k).name: v for k, v in found.items()}
            boxes.update({str(p): by_name[p.name] for p in photos if str(p) not in boxes and p.name in by_name})
        elif bboxes is not None:
            raise SpotterError("file not found", source)
    return {str(p): boxes[str(p)] for p in photos if str(p) in boxes}


def match_with_run(
    run_dir: str | Path,
    photos: Sequence[str | Path],
    index: str | Path | None = None,
    top: int = 5,
    out: str | Path = "matches.csv",
    bboxes: str | Path | None = None,
    reporter: Reporter = NullReporter(),
) -> tuple[list[PhotoMatch], Path, Path]:
    """Ranks the indexed individuals for each photo (files or folders); writes the answers CSV and a PNG sheet
    beside it.

    Returns:
        The matches, the CSV and the sheet.

    Raises:
        SpotterError: If the index is missing or was built by another run, a photo is missing or unreadable, or
            `top` < 1.
    """
    if top < 1:
        raise SpotterError(f"--top must be at least 1, got {top}")
    out = check_output_file(out)
    sheet = check_output_file(out.with_suffix(".png"))
    catalogue = load_index(Path(index) if index is not None else default_index(run_dir))
    files = list_photos(photos)
    for photo in files:  # headers (format, pixel limit, a cut-short end) before the models load
        check_image(photo, decode=False)
    boxes = query_boxes(files, bboxes)
    matcher = Matcher.load(run_dir)
    matches = matcher.match(catalogue, pd.DataFrame({"path": [str(p) for p in files]}), boxes, top, reporter)
    write_csv(out, matches_frame(matches))
    write_match_sheet(matches[:SHEET_PHOTOS], sheet)
    return matches, out, sheet
