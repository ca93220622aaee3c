"""Happywhale data: read and validate the Kaggle layout, fix species names, crop, and serve tensors."""

from __future__ import annotations

import contextlib
import enum
import functools
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError

from spotter.errors import SpotterError
from spotter.io import read_csv
from spotter.whale.config import WhaleConfig
from spotter.whale.layout import (
    BBOX_COLUMNS,
    BBOX_CSV,
    TEST_COLUMNS,
    TEST_CSV,
    TEST_DIR,
    TRAIN_COLUMNS,
    TRAIN_CSV,
    TRAIN_DIR,
)

# Misspelt and merged labels in the competition's train.csv (30 raw names → 26).
SPECIES_FIXES = {
    "bottlenose_dolpin": "bottlenose_dolphin",
    "kiler_whale": "killer_whale",
    "globis": "short_finned_pilot_whale",
    "pilot_whale": "short_finned_pilot_whale",
}

# PIL's own decompression-bomb limit (~89 megapixels, 0.25 GiB as RGB): far above any camera photo, and an
# image whose header claims more is refused by name instead of being decoded
MAX_IMAGE_PIXELS = 89_478_485

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class WhaleData:
    """A whale data folder, read and checked.

    Attributes:
        root: The folder.
        train: One row per train image: image, species (fixed), individual_id, path.
        test: One row per test image: image, path.
        bboxes: Boxes by image name (x1, y1, x2, y2 in pixels), or None without `bboxes.csv`.
    """

    root: Path
    train: pd.DataFrame
    test: pd.DataFrame
    bboxes: dict[str, tuple[float, float, float, float]] | None = None

    def box(self, image: str) -> tuple[float, float, float, float] | None:
        """The bounding box of `image`, or None when there is none."""
        return None if self.bboxes is None else self.bboxes.get(image)


def fix_species(species: pd.Series) -> pd.Series:
    """Applies `SPECIES_FIXES` (misspellings and the pilot-whale merge)."""
    return species.replace(SPECIES_FIXES)


def find_problems(root: str | Path, verify_images: bool = True) -> list[str]:
    """Every problem in a whale data folder, each as one line naming the file (and line).

    Args:
        root: The data folder.
        verify_images: Decode every image fully (slower; finds truncated files) instead of only checking that
            it exists.

    Returns:
        The problems found; empty when the folder is fine.
    """
    _, problems = _scan(Path(root), ImageCheck.DECODE if verify_images else ImageCheck.EXISTS)
    return problems


def read_whale_data(root: str | Path, verify_images: bool = False, require_test: bool = True) -> WhaleData:
    """Reads a whale data folder in the Kaggle layout.

    Every image's header and end are read (`check_image` without decoding: format, pixel limit, boxes, a
    JPEG or PNG cut short); damage inside a file's data is found when it is loaded, or up front with
    `verify_images` (as `spotter whale check` does).

    Args:
        root: The data folder.
        verify_images: Also decode every image fully.
        require_test: Whether `sample_submission.csv` and `test_images/` must be present.

    Raises:
        SpotterError: On the first problem, naming the file or row (with the count of the others).
    """
    data, problems = _scan(Path(root), ImageCheck.DECODE if verify_images else ImageCheck.HEADER, require_test)
    if problems:
        more = f" (and {len(problems) - 1} more; run `spotter whale check {root}`)" if len(problems) > 1 else ""
        raise SpotterError(problems[0] + more)
    assert data is not None
    return data


class ImageCheck(enum.IntEnum):
    """How much of each image a scan reads, each level including the ones before."""

    EXISTS = 0  # that the file is there
    HEADER = 1  # its header and end: format, size, pixel limit, a JPEG/PNG cut short (`check_image`)
    DECODE = 2  # every pixel


def _scan(root: Path, level: ImageCheck, require_test: bool = True) -> tuple[WhaleData | None, list[str]]:
    problems: list[str] = []
    if not root.is_dir():
        return None, [f"{root}: data folder not found"]
    train = _read_table(root / TRAIN_CSV, TRAIN_COLUMNS, problems)
    test = _read_table(root / TEST_CSV, TEST_COLUMNS, problems) if require_test or (root / TEST_CSV).exists() else None
    sizes: dict[str, tuple[int, int]] = {}
    if train is not None:
        train = train[TRAIN_COLUMNS].copy()
        train["species"] = fix_species(train["species"])
        _check_rows(train, root / TRAIN_CSV, TRAIN_COLUMNS, problems)
        train["path"] = [root / TRAIN_DIR / str(name) for name in train["image"]]
        sizes.update(_check_images(train, root / TRAIN_CSV, level, problems))
    if test is not None:
        test = test[["image"]].copy()
        _check_rows(test, root / TEST_CSV, ["image"], problems)
        test["path"] = [root / TEST_DIR / str(name) for name in test["image"]]
        sizes.update(_check_images(test, root / TEST_CSV, level, problems))
    else:
        test = pd.DataFrame({"image": pd.Series(dtype=str), "path": pd.Series(dtype=object)})
    bboxes = None
    if (root / BBOX_CSV).exists():
        bboxes = _read_boxes(root / BBOX_CSV, sizes, problems)
    if problems or train is None:
        return None, problems
    return WhaleData(root, train.reset_index(drop=True), test.reset_index(drop=True), bboxes), problems


def _read_table(path: Path, columns: list[str], problems: list[str]) -> pd.DataFrame | None:
    try:
        return read_csv(path, required=columns, dtype=str)
    except SpotterError as err:
        problems.append(str(err))
        return None


def _check_rows(frame: pd.DataFrame, path: Path, columns: list[str], problems: list[str]) -> None:
    # Row numbers are given as in a spreadsheet: the header is line 1, so data row i is line i + 2.
    for column in columns:
        for i in np.flatnonzero(frame[column].isna().to_numpy()):
            problems.append(f"{path}: line {i + 2}: empty {column}")
    duplicated = frame["image"].duplicated(keep="first").to_numpy()
    for i in np.flatnonzero(duplicated):
        problems.append(f"{path}: line {i + 2}: duplicate image {frame['image'].iloc[i]!r}")


def _check_images(
    frame: pd.DataFrame, csv: Path, level: ImageCheck, problems: list[str]
) -> dict[str, tuple[int, int]]:
    """Checks each listed image as deep as `level`; returns the (width, height) of those whose header was read."""
    sizes = {}
    for i, path in enumerate(frame["path"]):
        if pd.isna(frame["image"].iloc[i]):
            continue
        if not path.is_file():
            what = "is not a file" if path.exists() else "not found"
            problems.append(f"{path}: image listed in {csv.name} (line {i + 2}) {what}")
        elif level >= ImageCheck.HEADER:
            try:
                sizes[str(frame["image"].iloc[i])] = check_image(path, decode=level >= ImageCheck.DECODE)
            except SpotterError as err:
                problems.append(str(err))
    return sizes


def _read_boxes(
    path: Path, sizes: dict[str, tuple[int, int]], problems: list[str]
) -> dict[str, tuple[float, float, float, float]] | None:
    frame = _read_table(path, BBOX_COLUMNS, problems)
    if frame is None:
        return None
    _check_rows(frame, path, BBOX_COLUMNS, problems)
    boxes = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        if any(pd.isna(v) for v in row):
            continue  # reported by _check_rows
        try:
            x1, y1, x2, y2 = (float(row.x1), float(row.y1), float(row.x2), float(row.y2))
        except (TypeError, ValueError):
            problems.append(f"{path}: line {i + 2}: box coordinates must be numbers")
            continue
        if not np.isfinite([x1, y1, x2, y2]).all():
            problems.append(f"{path}: line {i + 2}: box coordinates must be finite numbers")
            continue
        if not (x2 > x1 and y2 > y1):
            problems.append(f"{path}: line {i + 2}: empty box (need x2 > x1 and y2 > y1)")
            continue
        size = sizes.get(str(row.image))
        if size is not None and not (x1 < size[0] and y1 < size[1] and x2 > 0 and y2 > 0):
            problems.append(
                f"{path}: line {i + 2}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside its image "
                f"{row.image!r} ({size[0]}x{size[1]} pixels)"
            )
            continue
        boxes[str(row.image)] = (x1, y1, x2, y2)
    return boxes


def check_image(path: str | Path, decode: bool = True) -> tuple[int, int]:
    """Checks an image file: a known format, at most `MAX_IMAGE_PIXELS`, and every pixel readable.

    Without `decode` only the header and the file's end are read: a JPEG or PNG whose end marker is missing is
    decoded to confirm it is cut short. With `decode` every image is decoded (what `whale check` does).

    Returns:
        The image's (width, height).

    Raises:
        SpotterError: Naming the file and what is wrong with it.
    """
    with _open_image(path) as image:
        # a JPEG or PNG that lacks its end marker was most likely cut short: decode it to be sure
        if decode or not _ends_like(path, image.format):
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as err:
                raise SpotterError(f"unreadable image ({type(err).__name__}: {_first_line(err)})", path) from None
        return image.size


# the end markers of the formats photos come in, and how far from the end of the file they may sit (decoders
# ignore trailing bytes, and some cameras leave a few); a JPEG's entropy-coded data never holds FF D9
END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}
END_WINDOW = 4096


def _ends_like(path: str | Path, image_format: str | None) -> bool:
    """Whether the file ends as a complete file of its format does (True for formats without a known marker)."""
    marker = END_MARKERS.get(image_format or "")
    if marker is None:
        return True
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - END_WINDOW))
        return marker in handle.read()


@contextlib.contextmanager
def _open_image(path: str | Path) -> Iterator[Image.Image]:
    """The image, opened lazily (header only) and checked against the pixel limit; SpotterError if it cannot be."""
    try:
        with warnings.catch_warnings():  # between the limit and twice it PIL only warns; we refuse below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError:
        raise SpotterError("image not found", path) from None
    except Image.DecompressionBombError as err:
        claimed = re.search(r"\((\d+) pixels\)", str(err))
        size = f"its header claims {int(claimed.group(1)):,} pixels" if claimed else _first_line(err)
        raise SpotterError(f"image too large: {size}, over the limit of {MAX_IMAGE_PIXELS:,}; not decoded", path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise SpotterError(f"unreadable image ({type(err).__name__}: {_first_line(err)})", path) from None
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise SpotterError(
                f"image too large: {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS:,}; not decoded", path
            )
        yield image


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def load_image(
    path: str | Path,
    box: tuple[float, float, float, float] | None = None,
    margin: float = 0.1,
) -> Image.Image:
    """Opens an image as RGB, cropped to `box` widened by `margin` of its size on each side.

    Raises:
        SpotterError: If the image is missing, unreadable, cut short or over `MAX_IMAGE_PIXELS`.
    """
    with _open_image(path) as raw:
        try:
            image = raw.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:
            raise SpotterError(f"unreadable image ({type(err).__name__}: {_first_line(err)})", path) from None
    if box is not None:
        image = image.crop(_widen(box, margin, image.size))
    return image


def _widen(box, margin: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    width, height = size
    return (
        int(max(0, np.floor(x1 - dx))),
        int(max(0, np.floor(y1 - dy))),
        int(min(width, np.ceil(x2 + dx))),
        int(min(height, np.ceil(y2 + dy))),
    )


def encode_labels(ids: Sequence[str], classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer labels for `ids`: positions in `classes` (sorted unique ids when not given), −1 if absent."""
    classes = sorted(set(ids)) if classes is None else list(classes)
    lookup = {name: i for i, name in enumerate(classes)}
    return np.array([lookup.get(name, -1) for name in ids], dtype=np.int64), classes


def build_transform(
    image_size: int,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip: float = 0.5,
    jitter: float = 0.2,
    crop_scale: tuple[float, float] = (0.7, 1.0),
):
    """PIL image → normalized float tensor CxHxW: resize (eval) or light augmentation (train).

    Args:
        image_size: Output side.
        train: Whether to augment.
        mean: Per-channel mean; use the backbone's pretrained mean (ImageNet by default).
        std: Per-channel std.
        flip: Chance of a horizontal flip when training. A flip shows the animal's other side, so the
            1st Happywhale solution also added flipped embeddings to the gallery instead; 0 disables it.
        jitter: Brightness/contrast/saturation jitter strength when training.
        crop_scale: Area range of the random resized crop when training.
    """
    from torchvision.transforms import v2

    size = (image_size, image_size)
    if train:
        steps = [
            v2.RandomResizedCrop(size, scale=crop_scale, ratio=(0.75, 1.333), antialias=True),
            v2.RandomHorizontalFlip(flip),
            v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
        ]
    else:
        steps = [v2.Resize(size, antialias=True)]
    return v2.Compose(
        [v2.ToImage(), *steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    )


class WhaleDataset(torch.utils.data.Dataset):
    """Images as dicts {"index", "input", "target"} for the engine.

    Args:
        paths: Image files.
        targets: Integer id labels (−1 for unlabelled test images), or None for all −1.
        transform: PIL image → tensor, e.g. `build_transform(...)`.
        boxes: Optional box per image (None entries mean no crop).
        margin: Crop margin as a fraction of the box size.
        flip: Whether every image is mirrored (to embed flipped copies for retrieval).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        targets: Sequence[int] | np.ndarray | None,
        transform,
        boxes: Sequence[tuple[float, float, float, float] | None] | None = None,
        margin: float = 0.1,
        flip: bool = False,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.targets = np.full(len(self.paths), -1, np.int64) if targets is None else np.asarray(targets, np.int64)
        if len(self.targets) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.targets)} targets")
        self.boxes = list(boxes) if boxes is not None else [None] * len(self.paths)
        self.transform = transform
        self.margin = margin
        self.flip = flip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        image = load_image(self.paths[index], self.boxes[index], self.margin)
        if self.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return {"index": index, "input": self.transform(image), "target": int(self.targets[index])}


@functools.lru_cache(maxsize=8)
def normalization(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the backbone's pretrained weights expect (0.5/0.5 for the TF Lite EfficientNets)."""
    from spotter.models.backbones import preprocessing

    try:
        pre = preprocessing(backbone)
    except RuntimeError as err:
        raise SpotterError(f"cannot build backbone {backbone!r}: {err}") from None
    return tuple(pre["mean"]), tuple(pre["std"])


def fold_classes(train_rows: pd.DataFrame) -> list[str]:
    """The id classes of a fold's model: the sorted ids of its train rows."""
    return sorted(set(train_rows["individual_id"]))


def species_classes(train_rows: pd.DataFrame) -> list[str]:
    """The species classes of a fold's model: the sorted species of its train rows."""
    return sorted(set(train_rows["species"]))


class PairTargets(torch.utils.data.Dataset):
    """A `WhaleDataset` whose target is the pair (id class, species class), −1 where unknown."""

    def __init__(self, images: WhaleDataset, species: np.ndarray) -> None:
        self.images, self.species = images, np.asarray(species, np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        item = self.images[index]
        item["target"] = torch.tensor([item["target"], self.species[index]], dtype=torch.int64)
        return item


def photo_dataset(
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    train: bool,
    boxes: dict | None = None,
    classes: list[str] | None = None,
    species: list[str] | None = None,
    flip: bool = False,
) -> torch.utils.data.Dataset:
    """Photos of `rows` as engine samples: training augmentation or a plain resize, targets (id, species)."""
    mean, std = normalization(cfg.model.backbone)
    aug = cfg.augment
    transform = build_transform(
        cfg.image_size, train, mean=mean, std=std, flip=aug.flip, jitter=aug.jitter, crop_scale=tuple(aug.crop_scale)
    )
    ids = encode_labels(list(rows["individual_id"]), classes)[0] if classes is not None else None
    kinds = encode_labels(list(rows["species"]), species)[0] if species is not None else np.full(len(rows), -1)
    row_boxes = [boxes.get(name) for name in rows["image"]] if boxes else None
    images = WhaleDataset(list(rows["path"]), ids, transform, row_boxes, margin=aug.box_margin, flip=flip)
    return PairTargets(images, kinds)
