"""The match sheet: one row per matched photo, its answers beside it with their catalogue photo, id and probability,
and why the best of them matches: the local-feature correspondences between the photo and that catalogue photo."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from spotter.errors import SpotterError
from spotter.io import atomic_path
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.data import load_image
from spotter.whale.local_features import draw_match, match_features, photo_image

BACKGROUND, GREY, RED, GREEN = (255, 255, 255), (225, 225, 225), (190, 30, 30), (20, 130, 60)


def correspondence_tile(match, width: int, height: int) -> tuple[Image.Image, str, str] | None:
    """The photo beside its best known answer's catalogue photo with their local-feature inliers drawn, fitted in
    width × height, and its two label lines; None when the photo has no known answer."""
    best = next((c for c in match.candidates if c.individual_id != NEW_INDIVIDUAL and c.catalogue_photo), None)
    if best is None:
        return None
    tile = Image.new("RGB", (width, height), GREY)
    try:
        found = match_features(match.photo, match.box, best.catalogue_photo, best.catalogue_box)
        drawing = draw_match(photo_image(match.photo, match.box), photo_image(best.catalogue_photo, best.catalogue_box),
                             found, width, caption="")
    except SpotterError:
        return tile, f"vs #{best.rank}", "photo unreadable"  # a moved catalogue photo should not sink the sheet
    drawing.thumbnail((width, height))
    tile.paste(drawing, ((width - drawing.width) // 2, (height - drawing.height) // 2))
    return tile, f"why #{best.rank} {best.individual_id}"[:40], f"{found.inliers} local-feature inliers"


def write_match_sheet(matches: Sequence, out: str | Path, thumb: int = 160,
                      explain: Callable | None = correspondence_tile) -> Path:
    """A PNG of `spotter.whale.matcher.PhotoMatch`es: the photo (cropped as matched), then its answers best first;
    `new_individual` is a tile of its own at its rank, with the threshold the answers after it fall below. Last,
    `explain(match, width, height)` draws why the best known answer matches (default: local-feature
    correspondences; None: no such column)."""
    columns = 1 + max((len(m.candidates) for m in matches), default=0)
    label = 34
    wide = 2 * thumb if explain is not None else 0
    sheet = Image.new("RGB", (columns * thumb + wide, max(1, len(matches)) * (thumb + label)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for row, match in enumerate(matches):
        y = row * (thumb + label)
        tiles = [(_thumbnail(match.photo, thumb, match.box), Path(match.photo).name[:22],
                  "looks new" if match.looks_new else "photo", RED if match.looks_new else (0, 0, 0))]
        for c in match.candidates:
            if c.individual_id == NEW_INDIVIDUAL:
                tile = Image.new("RGB", (thumb, thumb), GREY)
                ImageDraw.Draw(tile).text((10, thumb // 2 - 6), "new individual", fill=RED)
                tiles.append((tile, f"#{c.rank} new_individual", f"below p {match.new_threshold:.2f}", RED))
            else:
                tiles.append((_thumbnail(c.catalogue_photo, thumb, c.catalogue_box), f"#{c.rank} {c.individual_id}"[:22],
                              f"p {c.probability:.2f}", GREEN if c.rank == 1 else (0, 0, 0)))
        for col, (tile, top_line, bottom_line, colour) in enumerate(tiles):
            sheet.paste(tile, (col * thumb, y))
            draw.text((col * thumb + 3, y + thumb + 2), top_line, fill=colour)
            draw.text((col * thumb + 3, y + thumb + 17), bottom_line, fill=colour)
        why = explain(match, wide, thumb) if explain is not None else None
        if why is not None:
            tile, top_line, bottom_line = why
            sheet.paste(tile, (columns * thumb, y))
            draw.text((columns * thumb + 3, y + thumb + 2), top_line, fill=(0, 0, 0))
            draw.text((columns * thumb + 3, y + thumb + 17), bottom_line, fill=(0, 0, 0))
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def _thumbnail(path: str | Path, size: int, box=None) -> Image.Image:
    try:
        image = load_image(path, box) if path else None
    except SpotterError:
        image = None  # a moved catalogue photo should not sink the sheet
    canvas = Image.new("RGB", (size, size), BACKGROUND if image is not None else GREY)
    if image is not None:
        image.thumbnail((size, size))
        canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas
