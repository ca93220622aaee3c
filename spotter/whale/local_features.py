"""Local-feature correspondences between two photos: why two photos of an animal match, and how strongly.

OpenCV finds keypoints with descriptors in each photo (SIFT by default, ORB on request), pairs them with Lowe's
ratio test, and RANSAC keeps the pairs one geometric transform explains (the inliers): the same fin or fluke seen
twice gives many, two different animals few. Photos are cropped by their boxes as `spotter.whale.data.load_image`
crops them (10% margin, the embeddings' default) and reduced so their longer side is at most
`FeatureSettings.max_side` pixels, so a pair costs tens of milliseconds. Nothing downloads weights.

The transform is a 4-parameter similarity (rotation, scale, shift: `cv2.estimateAffinePartial2D`) by default:
an animal's flank or fluke seen from a boat changes mostly by those, and with the few dozen tentative pairs a
small photo gives, a model with fewer parameters leaves chance pairs fewer ways to agree. A full affine map or
a homography are available by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spotter.errors import SpotterError
from spotter.progress import NullReporter, Reporter
from spotter.whale.data import load_image

Box = tuple[float, float, float, float]
PhotoSource = str | Path | Image.Image


# ----------------------------------------------------------------------------------------------- named parts


def _sift(count: int):
    import cv2

    return cv2.SIFT_create(nfeatures=count), cv2.NORM_L2


def _orb(count: int):
    import cv2

    return cv2.ORB_create(nfeatures=count), cv2.NORM_HAMMING


# name → factory(max keypoints) → (OpenCV detector-extractor, the norm its descriptors are compared with)
DETECTORS: dict[str, Callable] = {"sift": _sift, "orb": _orb}


def _similarity(a: np.ndarray, b: np.ndarray, threshold: float):
    import cv2

    return cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000,
                                       confidence=0.995)


def _affine(a: np.ndarray, b: np.ndarray, threshold: float):
    import cv2

    return cv2.estimateAffine2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000,
                                confidence=0.995)


def _homography(a: np.ndarray, b: np.ndarray, threshold: float):
    import cv2

    return cv2.findHomography(a, b, cv2.RANSAC, threshold, maxIters=2000, confidence=0.995)


@dataclass(frozen=True)
class Geometry:
    """A transform RANSAC fits to the tentative pairs.

    Attributes:
        estimate: (points_a, points_b, threshold in pixels) → (transform or None, inlier mask or None).
        sample: Pairs that fix the transform exactly: a fit with no more inliers than this verifies nothing.
    """

    estimate: Callable
    sample: int


GEOMETRIES: dict[str, Geometry] = {
    "similarity": Geometry(_similarity, 2),
    "affine": Geometry(_affine, 3),
    "homography": Geometry(_homography, 4),
}


@dataclass(frozen=True)
class FeatureSettings:
    """How two photos are matched.

    Attributes:
        detector: A name in `DETECTORS`.
        geometry: A name in `GEOMETRIES`.
        max_side: Photos (after cropping) are reduced so their longer side is at most this many pixels.
        max_keypoints: Keypoints kept per photo (the strongest).
        ratio: Lowe's ratio test: a pair is kept when its distance is below `ratio` times the second best's.
        reprojection: RANSAC's inlier distance, as a share of the longer side of the second photo (as reduced).
    """

    detector: str = "sift"
    geometry: str = "similarity"
    max_side: int = 512
    max_keypoints: int = 1000
    ratio: float = 0.8
    reprojection: float = 0.02

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise SpotterError(f"unknown local-feature detector {self.detector!r}; expected {' | '.join(DETECTORS)}")
        if self.geometry not in GEOMETRIES:
            raise SpotterError(f"unknown geometry {self.geometry!r}; expected {' | '.join(GEOMETRIES)}")
        if self.max_side < 32 or self.max_keypoints < 8 or not 0 < self.ratio <= 1 or self.reprojection <= 0:
            raise SpotterError(f"bad local-feature settings {self}: max_side >= 32, max_keypoints >= 8, "
                               "0 < ratio <= 1 and reprojection > 0 expected")


DEFAULT_SETTINGS = FeatureSettings()


# ----------------------------------------------------------------------------------------------- features


@dataclass(frozen=True)
class PhotoFeatures:
    """One photo's keypoints, ready to match.

    Attributes:
        points: (n, 2) keypoint positions in the photo as matched (cropped by its box), at full resolution.
        descriptors: (n, d) their descriptors (float32 for SIFT, uint8 for ORB); None when none were found.
        size: (width, height) of the photo as matched (cropped), at full resolution.
        scale: Reduction applied before detection (≤ 1): full-resolution pixels × scale = detection pixels.
    """

    points: np.ndarray
    descriptors: np.ndarray | None
    size: tuple[int, int]
    scale: float

    def __len__(self) -> int:
        return len(self.points)


def photo_image(photo: PhotoSource, box: Box | None = None) -> Image.Image:
    """A photo file as RGB, cropped by `box` (x1, y1, x2, y2 in its pixels; None: the whole photo) as
    `load_image` crops; an image given as such is taken as it is (crop it first).

    Raises:
        SpotterError: If the photo is missing or unreadable, or a box comes with an image.
    """
    if isinstance(photo, Image.Image):
        if box is not None:
            raise SpotterError("a crop box goes with a photo file; crop an image before passing it")
        return photo.convert("RGB")
    return load_image(photo, box)


def extract_features(image: Image.Image, settings: FeatureSettings = DEFAULT_SETTINGS) -> PhotoFeatures:
    """Keypoints and descriptors of an (already cropped) RGB photo, detected at most `settings.max_side` pixels."""
    import cv2

    width, height = image.size
    scale = min(1.0, settings.max_side / max(width, height, 1))
    gray = np.asarray(image.convert("L"))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    detector, _ = DETECTORS[settings.detector](settings.max_keypoints)
    keypoints, descriptors = detector.detectAndCompute(gray, None)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2) / scale
    return PhotoFeatures(points, descriptors, (width, height), scale)


@functools.lru_cache(maxsize=128)
def _file_features(path: str, box: Box | None, stamp: tuple[int, int], settings: FeatureSettings) -> PhotoFeatures:
    """Features of a photo file, cached by path, box, (modification time, size) and settings: a review page or a
    shortlist asks for the same catalogue photo again and again."""
    return extract_features(load_image(path, box), settings)


def clear_feature_cache() -> None:
    """Forgets the cached features of photo files (they are recomputed on next use)."""
    _file_features.cache_clear()


def photo_features(photo: PhotoSource, box: Box | None = None,
                   settings: FeatureSettings = DEFAULT_SETTINGS) -> PhotoFeatures:
    """The features of a photo file (cached while the file is unchanged) or image, cropped by `box`.

    Raises:
        SpotterError: If the photo is missing or unreadable.
    """
    if isinstance(photo, Image.Image):
        return extract_features(photo_image(photo, box), settings)  # refuses a box
    path = Path(photo)
    try:
        stat = path.stat()
    except OSError:
        raise SpotterError("photo not found", path) from None
    box = None if box is None else tuple(float(v) for v in box)
    return _file_features(str(path.resolve()), box, (stat.st_mtime_ns, stat.st_size), settings)


# ----------------------------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class FeatureMatch:
    """The correspondences between two photos.

    Attributes:
        inliers: Pairs the fitted transform explains (0 when too few pairs to verify anything).
        points_a / points_b: (n, 2) the tentative pairs (those passing the ratio test), inliers first, in each
            photo's pixels as matched (cropped by its box, full resolution).
        keypoints_a / keypoints_b: Keypoints found in each photo.
        transform: The fitted transform from a to b (in detection pixels), or None.
    """

    inliers: int
    points_a: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    points_b: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    keypoints_a: int = 0
    keypoints_b: int = 0
    transform: np.ndarray | None = None

    @property
    def tentative(self) -> int:
        """Pairs that passed the ratio test (inliers among them)."""
        return len(self.points_a)

    @property
    def inlier_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The inlier points of each photo, (inliers, 2) each."""
        return self.points_a[: self.inliers], self.points_b[: self.inliers]


def match_photo_features(a: PhotoFeatures, b: PhotoFeatures, settings: FeatureSettings = DEFAULT_SETTINGS) -> FeatureMatch:
    """Ratio-test pairs between two photos' features, verified by RANSAC."""
    import cv2

    counts = {"keypoints_a": len(a), "keypoints_b": len(b)}
    if a.descriptors is None or b.descriptors is None or len(a) < 2 or len(b) < 2:
        return FeatureMatch(0, **counts)
    _, norm = DETECTORS[settings.detector](settings.max_keypoints)
    knn = cv2.BFMatcher(norm).knnMatch(a.descriptors, b.descriptors, k=2)
    candidates = sorted((found[0].distance, found[0].queryIdx, found[0].trainIdx) for found in knn
                        if len(found) == 2 and found[0].distance < settings.ratio * found[1].distance)
    # one pair per place in each photo, the closest first: a detector gives one place several orientations, and
    # a repeated texture could otherwise vote many times
    used_a, used_b, idx_a, idx_b = set(), set(), [], []
    for _, qa, tb in candidates:
        place_a, place_b = tuple(np.round(a.points[qa]).tolist()), tuple(np.round(b.points[tb]).tolist())
        if place_a not in used_a and place_b not in used_b:
            used_a.add(place_a)
            used_b.add(place_b)
            idx_a.append(qa)
            idx_b.append(tb)
    if not idx_a:
        return FeatureMatch(0, **counts)
    points_a, points_b = a.points[idx_a], b.points[idx_b]
    geometry = GEOMETRIES[settings.geometry]
    transform, inliers = None, 0
    if len(idx_a) > geometry.sample:
        threshold = settings.reprojection * max(b.size) * b.scale
        transform, mask = geometry.estimate(points_a * a.scale, points_b * b.scale, threshold)
        if transform is not None and mask is not None:
            mask = mask.ravel().astype(bool)
            inliers = int(mask.sum())
            first = np.argsort(~mask, kind="stable")  # inliers first, each group by descriptor distance
            points_a, points_b = points_a[first], points_b[first]
    if inliers <= geometry.sample:  # the minimal sample always fits itself
        inliers = 0
    return FeatureMatch(inliers, points_a, points_b, transform=transform, **counts)


def match_features(
    photo_a: PhotoSource,
    box_a: Box | None,
    photo_b: PhotoSource,
    box_b: Box | None,
    settings: FeatureSettings = DEFAULT_SETTINGS,
) -> FeatureMatch:
    """The local-feature correspondences between two photos, each cropped by its box (None: the whole photo).

    Args:
        photo_a / photo_b: Photo files (their features are cached while the file is unchanged) or PIL images.
        box_a / box_b: (x1, y1, x2, y2) in each photo's pixels, or None.
        settings: Detector, geometry and sizes.

    Returns:
        The match: `.inliers`, and the tentative pairs (`.points_a`, `.points_b`), inliers first.

    Raises:
        SpotterError: If a photo is missing or unreadable.
    """
    return match_photo_features(photo_features(photo_a, box_a, settings), photo_features(photo_b, box_b, settings),
                                settings)


def shortlist_inliers(
    queries: Sequence[tuple[PhotoSource, Box | None]],
    shortlists: Sequence[Sequence[tuple[PhotoSource, Box | None]]],
    settings: FeatureSettings = DEFAULT_SETTINGS,
    reporter: Reporter = NullReporter(),
) -> np.ndarray:
    """(Q, k) inliers between each query photo and each photo of its shortlist (k: the longest; 0 where a
    shortlist is shorter or names no photo), each (photo, box).

    Raises:
        SpotterError: If a photo is missing or unreadable.
    """
    inliers = np.zeros((len(queries), max((len(s) for s in shortlists), default=0)), np.int64)
    for i, ((photo, box), shortlist) in enumerate(reporter.track(list(zip(queries, shortlists)), len(queries),
                                                                "local features of shortlists")):
        query = photo_features(photo, box, settings)
        for j, (candidate, candidate_box) in enumerate(shortlist):
            if candidate is not None and str(candidate):
                inliers[i, j] = match_photo_features(query, photo_features(candidate, candidate_box, settings),
                                                     settings).inliers
    return inliers


# ----------------------------------------------------------------------------------------------- drawing

LINE_COLOURS = [(0, 200, 90), (255, 190, 0), (0, 170, 255), (255, 80, 160), (160, 110, 255), (255, 120, 40)]
CAPTION = 22  # pixels of the caption strip under the photos


def draw_match(image_a: Image.Image, image_b: Image.Image, match: FeatureMatch, width: int = 900,
               caption: str | None = None) -> Image.Image:
    """Two photos side by side at one height, `width` pixels wide in all, with a line between each inlier pair,
    and a caption strip under them (default: the inlier count; "": no strip)."""
    if width < 64:
        raise SpotterError(f"a correspondence drawing needs width >= 64, got {width}")
    gap = max(4, width // 100)
    # one height for both: height·(wa/ha) + height·(wb/hb) + gap = width
    aspect = image_a.width / max(image_a.height, 1) + image_b.width / max(image_b.height, 1)
    height = max(1, int((width - gap) / aspect))
    size_a = (max(1, round(height * image_a.width / max(image_a.height, 1))), height)
    size_b = (max(1, width - gap - size_a[0]), height)
    strip = CAPTION if caption != "" else 0
    canvas = Image.new("RGB", (width, height + strip), (255, 255, 255))
    canvas.paste(image_a.convert("RGB").resize(size_a, Image.LANCZOS), (0, 0))
    canvas.paste(image_b.convert("RGB").resize(size_b, Image.LANCZOS), (size_a[0] + gap, 0))
    draw = ImageDraw.Draw(canvas)
    scale_a = np.array([size_a[0] / image_a.width, height / image_a.height])
    scale_b = np.array([size_b[0] / image_b.width, height / image_b.height])
    line = max(1, width // 450)
    dot = line + 2
    points_a, points_b = match.inlier_pairs
    for i, (pa, pb) in enumerate(zip(points_a * scale_a, points_b * scale_b + [size_a[0] + gap, 0])):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        draw.line([tuple(pa), tuple(pb)], fill=colour, width=line)
        for x, y in (pa, pb):
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], outline=colour, width=line)
    if strip:
        text = caption if caption is not None else f"{match.inliers} inliers of {match.tentative} tentative pairs"
        draw.text((4, height + 3), text, fill=(0, 0, 0), font=ImageFont.load_default(size=CAPTION - 7))
    return canvas


def draw_correspondences(
    photo_a: PhotoSource,
    box_a: Box | None,
    photo_b: PhotoSource,
    box_b: Box | None,
    width: int = 900,
    settings: FeatureSettings = DEFAULT_SETTINGS,
    caption: str | None = None,
) -> Image.Image:
    """The two photos (cropped by their boxes; None: the whole photo) side by side, `width` pixels wide, with a line
    between each inlier pair and a caption under them (default: the inlier count; "": none).

    Raises:
        SpotterError: If a photo is missing or unreadable.
    """
    image_a, image_b = photo_image(photo_a, box_a), photo_image(photo_b, box_b)
    return draw_match(image_a, image_b, match_features(photo_a, box_a, photo_b, box_b, settings), width, caption)
