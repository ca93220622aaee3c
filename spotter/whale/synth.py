"""Synthetic photo-ID data in the Happywhale layout: drawn animals whose individual marks a model can learn.

Each individual is drawn once, in a canonical pose, as an RGBA template: a species-specific silhouette
(dorsal fin and back, or a humpback's fluke) carrying that individual's stable marks: notches cut into
the trailing edge, light scars and rake marks, pigment patches, a killer whale's saddle patch, a
humpback's white underside pattern. The species shape is shared, so generic (ImageNet) features mostly
separate species; telling individuals apart needs the marks. Each photo ("sighting") then warps the
template with a random rotation, scale, crop and perspective, lights it differently, sets it in a
water-like background, hides its lower part behind a wave (sometimes a splash too), blurs it and adds
noise. Sightings per individual are long-tailed (most animals are seen once), and about `test_new_ratio`
of the test photos show animals that train never saw.

Everything derives from `seed` through per-individual and per-photo generators, so the output is the
same for any number of worker processes.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from spotter.errors import SpotterError
from spotter.io import atomic_path, ensure_writable_dir, write_csv
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.layout import BBOX_CSV, TEST_CSV, TEST_DIR, TEST_LABELS_CSV, TRAIN_CSV, TRAIN_DIR

TEMPLATE = 224  # side of an individual's canonical drawing
SUPERSAMPLE = 2  # drawn this much larger, then reduced: cheap anti-aliasing for PIL polygons

# species → share of individuals; names as in the fixed Happywhale labels
SPECIES = {
    "bottlenose_dolphin": 0.30,
    "humpback_whale": 0.22,
    "beluga": 0.16,
    "killer_whale": 0.16,
    "short_finned_pilot_whale": 0.16,
}


@dataclass(frozen=True)
class Nuisance:
    """How hard each photo is to recognize: the ranges its capture conditions are drawn from.

    The defaults are the generator's original photos; `NUISANCE_PRESETS["hard"]` is a rougher sea and camera
    (wider pose and zoom, deeper waves, more splashes and occluders, heavy blur, noise and JPEG), under which
    generic ImageNet features fail and only trained marks carry over.

    Attributes:
        scale: Animal size as a multiple of the photo side (low, high).
        rotation: Largest roll, in degrees either way.
        haze: Cast towards the water colour (low, high).
        exposure: Brightness factor (low, high).
        wave: Share of the animal's height under the wave line (low, high).
        splash: Chance of a splash over the photo.
        occluder: Chance of an object (a floating patch of water or a boat's edge) hiding part of the animal.
        noise: Sensor noise sigma in grey levels (low, high).
        blur: Chance of a blur, and its radius range (chance, low, high).
        jpeg_quality: JPEG quality range (low, high exclusive).
    """

    scale: tuple[float, float] = (0.75, 1.25)
    rotation: float = 15.0
    haze: tuple[float, float] = (0.0, 0.3)
    exposure: tuple[float, float] = (0.7, 1.25)
    wave: tuple[float, float] = (0.08, 0.2)
    splash: float = 0.3
    occluder: float = 0.0
    noise: tuple[float, float] = (0.5, 5.0)
    blur: tuple[float, float, float] = (0.6, 0.3, 1.2)
    jpeg_quality: tuple[int, int] = (80, 96)


NUISANCE_PRESETS = {
    "default": Nuisance(),
    "hard": Nuisance(
        scale=(0.55, 1.3), rotation=30.0, haze=(0.0, 0.5), exposure=(0.5, 1.4), wave=(0.1, 0.35), splash=0.5,
        occluder=0.35, noise=(1.0, 8.0), blur=(0.7, 0.3, 1.5), jpeg_quality=(50, 85),
    ),
}


@dataclass(frozen=True)
class SynthConfig:
    """What `make_synthetic` generates.

    Attributes:
        individuals: Individuals with train photos.
        seed: Seed of everything.
        test_new_ratio: Share of test photos showing individuals absent from train.
        test_ratio: Test photos per train photo (Happywhale: 27,956 / 51,033 ≈ 0.55).
        max_sightings: Cap on train photos per individual (the tail of the Zipf draw).
        zipf_a: Zipf exponent of sightings per individual; 2.0 gives ~60% singletons as in Happywhale.
        image_size: Side of the square JPEG photos.
        bboxes: Also write `bboxes.csv` with each animal's box.
        nuisance: Capture conditions of the photos (`NUISANCE_PRESETS`).
    """

    individuals: int = 200
    seed: int = 0
    test_new_ratio: float = 0.2
    test_ratio: float = 0.5
    max_sightings: int = 30
    zipf_a: float = 2.0
    image_size: int = 192
    bboxes: bool = False
    nuisance: Nuisance = Nuisance()


def make_synthetic(
    out: str | Path,
    config: SynthConfig = SynthConfig(),
    workers: int = 1,
    reporter: Reporter = NullReporter(),
) -> dict:
    """Writes a synthetic whale data folder.

    Writes `train_images/`, `test_images/`, `train.csv` (image, species, individual_id),
    `sample_submission.csv` (image, predictions), `test_labels.csv` (image, individual_id or
    new_individual, species, animal = the true synthetic id) and, if asked, `bboxes.csv`.

    Args:
        out: Output folder (created).
        config: What to generate.
        workers: Processes drawing photos.
        reporter: Progress reporting.

    Returns:
        Counts: train and test images, individuals, singletons, new test photos.

    Raises:
        SpotterError: On invalid settings or an unwritable folder.
    """
    _validate(config, workers)
    out = ensure_writable_dir(out)
    for folder in (TRAIN_DIR, TEST_DIR):
        ensure_writable_dir(out / folder)
    plan = plan_sightings(config)
    # drawn grouped by animal, so each animal's template is drawn once per process
    order = np.argsort(plan["individual"].to_numpy(), kind="stable")
    jobs = [
        (str(out / row.folder / row.image), row.individual, row.species, row.photo)
        for row in plan.iloc[order].itertuples()
    ]
    boxes = np.zeros((len(plan), 4), dtype=np.int64)
    items = _render_all(jobs, config, workers)
    for position, box in zip(order, reporter.track(items, total=len(jobs), description="drawing whales")):
        boxes[position] = box
    plan[["x1", "y1", "x2", "y2"]] = boxes

    train = plan[plan.folder == TRAIN_DIR]
    test = plan[plan.folder == TEST_DIR]
    write_csv(out / TRAIN_CSV, train[["image", "species", "individual_id"]])
    write_csv(out / TEST_CSV, pd.DataFrame({"image": test["image"], "predictions": NEW_INDIVIDUAL}))
    labels = np.where(test["new"], NEW_INDIVIDUAL, test["individual_id"])
    write_csv(
        out / TEST_LABELS_CSV,
        pd.DataFrame({"image": test["image"], "individual_id": labels, "species": test["species"],
                      "animal": test["individual_id"]}),
    )
    if config.bboxes:
        write_csv(out / BBOX_CSV, plan[["image", "x1", "y1", "x2", "y2"]])
    counts = train.individual_id.value_counts()
    return {
        "train_images": len(train),
        "test_images": len(test),
        "individuals": len(counts),
        "singletons": int((counts == 1).sum()),
        "test_new": int(test["new"].sum()),
    }


def _validate(config: SynthConfig, workers: int) -> None:
    checks = [
        (config.individuals >= 1, f"--individuals must be at least 1, got {config.individuals}"),
        (0 <= config.test_new_ratio < 1, f"--test-new-ratio must be in [0, 1), got {config.test_new_ratio}"),
        (config.test_ratio >= 0, f"test_ratio must be 0 or more, got {config.test_ratio}"),
        (config.max_sightings >= 1, f"max_sightings must be at least 1, got {config.max_sightings}"),
        (config.zipf_a > 1, f"zipf_a must be above 1, got {config.zipf_a}"),
        (32 <= config.image_size <= 1024, f"image_size must be in 32..1024, got {config.image_size}"),
        (workers >= 1, f"--workers must be at least 1, got {workers}"),
    ]
    for ok, message in checks:
        if not ok:
            raise SpotterError(message)


def plan_sightings(config: SynthConfig) -> pd.DataFrame:
    """Which photo shows whom: one row per image (folder, image, individual, individual_id, species, new, photo).

    `individual` is the index that seeds the animal's drawing and `photo` the index that seeds the
    photo; train individuals come first, then the test-only (new) ones.
    """
    rng = np.random.default_rng([config.seed, 0])
    n = config.individuals
    names = list(SPECIES)
    share = np.array(list(SPECIES.values()))
    counts = np.minimum(rng.zipf(config.zipf_a, n), config.max_sightings)
    n_test = int(round(config.test_ratio * counts.sum()))
    n_new = int(round(config.test_new_ratio * n_test))
    # new animals are mostly seen once or twice in test
    new_counts, drawn = [], 0
    while drawn < n_new:
        new_counts.append(min(int(rng.zipf(2.5)), n_new - drawn))
        drawn += new_counts[-1]
    total = n + len(new_counts)
    species = rng.choice(len(names), size=total, p=share / share.sum())
    # known animals reappear in test in proportion to how often they were seen
    seen = rng.choice(n, size=n_test - n_new, p=counts / counts.sum())

    rows = []
    for i, c in enumerate(counts):
        rows += [(TRAIN_DIR, i, False)] * int(c)
    rows += [(TEST_DIR, int(i), False) for i in seen]
    for j, c in enumerate(new_counts):
        rows += [(TEST_DIR, n + j, True)] * c
    frame = pd.DataFrame(rows, columns=["folder", "individual", "new"])
    frame["species"] = [names[species[i]] for i in frame["individual"]]
    frame["individual_id"] = [_hex(config.seed, "individual", i, 12) for i in frame["individual"]]
    frame["photo"] = np.arange(len(frame))
    frame["image"] = [_hex(config.seed, "photo", i, 14) + ".jpg" for i in frame["photo"]]
    # test rows in a shuffled order, so new animals are not all at the end
    test = frame[frame.folder == TEST_DIR].sample(frac=1.0, random_state=config.seed)
    return pd.concat([frame[frame.folder == TRAIN_DIR], test], ignore_index=True)


def _hex(seed: int, kind: str, index: int, length: int) -> str:
    return hashlib.sha1(f"{seed}/{kind}/{index}".encode()).hexdigest()[:length]


# --------------------------------------------------------------------------------------------------
# rendering: one process draws a stream of jobs; templates are cached because jobs come grouped by animal


def _render_all(jobs: list, config: SynthConfig, workers: int):
    if workers == 1:
        renderer = _Renderer(config)
        return (renderer(job) for job in jobs)
    # spawn, not fork: the parent may hold torch's or BLAS's threads, which a forked child inherits badly
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(config,))

    def results():
        try:
            yield from pool.imap(_work, jobs, chunksize=8)
        finally:
            pool.terminate()

    return results()


_WORKER: "_Renderer | None" = None


def _init_worker(config: SynthConfig) -> None:
    global _WORKER
    _WORKER = _Renderer(config)


def _work(job):
    return _WORKER(job)


class _Renderer:
    """Draws photos to files; keeps the last few animals' templates."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.cache: dict[int, Image.Image] = {}

    def __call__(self, job) -> tuple[int, int, int, int]:
        path, individual, species, photo = job
        template = self.cache.get(individual)
        if template is None:
            if len(self.cache) > 64:
                self.cache.clear()
            rng = np.random.default_rng([self.config.seed, 1, individual])
            template = self.cache[individual] = draw_individual(species, rng)
        rng = np.random.default_rng([self.config.seed, 2, photo])
        nuisance = self.config.nuisance
        image, box = draw_sighting(template, rng, self.config.image_size, nuisance)
        with atomic_path(path) as tmp:
            image.save(tmp, format="JPEG", quality=int(rng.integers(*nuisance.jpeg_quality)))
        return box


# --------------------------------------------------------------------------------------------------
# one individual: silhouette + marks in a canonical pose


def draw_individual(species: str, rng: np.random.Generator) -> Image.Image:
    """An individual's canonical RGBA drawing (TEMPLATE×TEMPLATE); alpha is the animal."""
    size = TEMPLATE * SUPERSAMPLE
    if species == "humpback_whale":
        outline, trailing, colour = _fluke(rng)
    else:
        outline, trailing, colour = _dorsal(species, rng)
    px = lambda pts: [(float(x) * size, float(y) * size) for x, y in pts]  # noqa: E731
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(px(outline), fill=255)
    rgb = Image.new("RGB", (size, size), tuple(int(c) for c in colour))
    draw = ImageDraw.Draw(rgb)
    inside = np.argwhere(np.asarray(mask)[::8, ::8] > 0) * 8  # (row, col) points on the animal
    if species == "humpback_whale":
        _underside_pattern(draw, rng, size, inside)
    if species == "killer_whale":
        _saddle(draw, rng, size)
    # finless, plain species get more marks: they are all a photo-ID can go by
    extra = 1 if species in ("beluga", "short_finned_pilot_whale") else 0
    _patches(draw, rng, size, colour, inside, count=int(rng.integers(1, 4)) + extra)
    _scars(draw, rng, size, colour, inside, count=int(rng.integers(1, 4)) + extra, light=species != "beluga")
    mask_draw = ImageDraw.Draw(mask)
    for notch in _notches(trailing, rng, outline):
        mask_draw.polygon(px(notch), fill=0)
    rgb = rgb.reduce(SUPERSAMPLE)
    template = Image.fromarray(_shade(np.asarray(rgb, dtype=np.float32), rng), "RGB")
    template.putalpha(mask.reduce(SUPERSAMPLE))
    return template


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


# per species: fin base front/rear x, tip (x, y), falcate pull of the trailing edge, leading-edge bulge,
# back height, body grey level
_FINS = {
    "bottlenose_dolphin": dict(front=0.36, rear=0.60, tip=(0.64, 0.20), falcate=0.09, bulge=0.05, back=0.14, grey=120),
    "killer_whale": dict(front=0.42, rear=0.58, tip=(0.52, 0.04), falcate=0.015, bulge=0.01, back=0.12, grey=22),
    "short_finned_pilot_whale": dict(front=0.28, rear=0.66, tip=(0.64, 0.38), falcate=0.05, bulge=0.10, back=0.12, grey=42),
    "beluga": dict(front=None, back=0.24, grey=228),
}


def _dorsal(species: str, rng: np.random.Generator):
    spec = _FINS[species]
    jitter = lambda v, s=0.015: v + rng.normal(0, s)  # noqa: E731  (small shape differences between animals)
    waterline, back = 0.82, jitter(spec["back"])
    xs = np.linspace(0.0, 1.0, 40)
    # a back that rises towards the head (left) and falls slowly towards the tail
    profile = np.sin(np.pi * xs ** 0.8)
    back_y = waterline - back * profile
    body = list(zip(xs, back_y)) + [(1.0, 1.0), (0.0, 1.0)]
    grey = spec["grey"] + rng.normal(0, 8)
    tint = np.array([0.95, 1.0, 1.06]) if species != "beluga" else np.array([1.02, 1.0, 0.94])
    colour = np.clip(grey * tint, 0, 255)
    if spec["front"] is None:
        return body, None, colour
    front, rear = jitter(spec["front"]), jitter(spec["rear"])
    tip = (jitter(spec["tip"][0], 0.02), jitter(spec["tip"][1], 0.025))
    base_y = lambda x: float(np.interp(x, xs, back_y)) + 0.02  # noqa: E731
    p_front, p_rear = (front, base_y(front)), (rear, base_y(rear))
    lead_ctrl = (front + 0.25 * (tip[0] - front) - spec["bulge"], (p_front[1] + tip[1]) / 2 - spec["bulge"])
    trail_ctrl = ((tip[0] + rear) / 2 - spec["falcate"], (tip[1] + p_rear[1]) / 2 + spec["falcate"] * 0.5)
    leading = _bezier(p_front, lead_ctrl, tip)
    trailing = _bezier(tip, trail_ctrl, p_rear)
    # body up to the fin, the fin, then the rest of the body
    before = [(x, y) for x, y in zip(xs, back_y) if x < front]
    after = [(x, y) for x, y in zip(xs, back_y) if x > rear]
    outline = before + [tuple(p) for p in leading] + [tuple(p) for p in trailing[1:]] + after + [(1.0, 1.0), (0.0, 1.0)]
    return outline, trailing, colour


def _fluke(rng: np.random.Generator):
    j = lambda s=0.02: rng.normal(0, s)  # noqa: E731
    left, right = (0.03 + j(), 0.30 + j(0.03)), (0.97 + j(), 0.30 + j(0.03))
    notch = (0.5 + j(0.01), 0.42 + j(0.015))
    trailing_left = _bezier(left, (0.27 + j(), 0.22 + j()), notch)
    trailing_right = _bezier(notch, (0.73 + j(), 0.22 + j()), right)
    lead_right = _bezier(right, (0.80, 0.62 + j()), (0.56, 0.72))
    lead_left = _bezier((0.44, 0.72), (0.20, 0.62 + j()), left)
    outline = (
        [tuple(p) for p in trailing_left] + [tuple(p) for p in trailing_right[1:]] + [tuple(p) for p in lead_right[1:]]
        + [(0.57, 1.0), (0.43, 1.0)] + [tuple(p) for p in lead_left]
    )
    trailing = np.concatenate([trailing_left, trailing_right[1:]])
    return outline, trailing, np.array([24.0, 24.0, 28.0]) + rng.normal(0, 4)


def _notches(trailing: np.ndarray | None, rng: np.random.Generator, outline) -> list[list[tuple]]:
    """Small triangles cut into the trailing edge, pointing into the animal."""
    if trailing is None:
        return []
    centre = np.mean(np.asarray(outline[: len(outline) // 2]), axis=0)
    cuts = []
    for _ in range(int(rng.integers(1, 5))):
        i = int(rng.integers(3, len(trailing) - 3))
        point = trailing[i]
        tangent = trailing[i + 1] - trailing[i - 1]
        tangent /= np.linalg.norm(tangent) + 1e-9
        normal = np.array([-tangent[1], tangent[0]])
        if np.dot(normal, centre - point) < 0:
            normal = -normal  # point the notch inwards
        depth, width = rng.uniform(0.025, 0.055), rng.uniform(0.02, 0.05)
        outside = point - normal * 0.02
        cuts.append([tuple(outside - tangent * width), tuple(point + normal * depth), tuple(outside + tangent * width)])
    return cuts


def _pick(inside: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    row, col = inside[int(rng.integers(len(inside)))]
    return float(col), float(row)


def _patches(draw, rng, size, colour, inside, count: int) -> None:
    """Rotated ellipses lighter or darker than the body."""
    for _ in range(count):
        cx, cy = _pick(inside, rng)
        a, b = rng.uniform(0.03, 0.08) * size, rng.uniform(0.015, 0.04) * size
        angle = rng.uniform(0, np.pi)
        t = np.linspace(0, 2 * np.pi, 24)
        x = cx + a * np.cos(t) * np.cos(angle) - b * np.sin(t) * np.sin(angle)
        y = cy + a * np.cos(t) * np.sin(angle) + b * np.sin(t) * np.cos(angle)
        delta = rng.uniform(45, 80) * (1 if colour.mean() < 128 else -1) * rng.choice([1, 1, -0.6])
        fill = tuple(int(v) for v in np.clip(colour + delta, 0, 255))
        draw.polygon(list(zip(x.tolist(), y.tolist())), fill=fill)


def _scars(draw, rng, size, colour, inside, count: int, light: bool) -> None:
    """Random-walk scars and parallel rake marks."""
    shade = 95 if light else -85
    fill = tuple(int(v) for v in np.clip(colour + shade, 0, 255))
    width = int(round(size * rng.uniform(0.012, 0.02)))
    for _ in range(count):
        start = np.array(_pick(inside, rng))
        heading = rng.uniform(0, 2 * np.pi)
        steps = [start]
        for _ in range(int(rng.integers(2, 5))):
            heading += rng.normal(0, 0.5)
            steps.append(steps[-1] + size * rng.uniform(0.03, 0.07) * np.array([np.cos(heading), np.sin(heading)]))
        lines = [steps]
        if rng.random() < 0.3:  # rake: the same stroke repeated side by side (tooth marks)
            offset = size * 0.025 * np.array([-np.sin(heading), np.cos(heading)])
            lines += [[p + k * offset for p in steps] for k in (1, 2)]
        for line in lines:
            draw.line([tuple(p) for p in line], fill=fill, width=width, joint="curve")


def _saddle(draw, rng, size) -> None:
    """A killer whale's grey saddle patch behind the fin, its outline unique to the animal."""
    xs = np.linspace(0.56, 0.86, 12)
    top = 0.70 + 0.03 * np.sin(np.pi * (xs - 0.56) / 0.3)
    bottom = top + 0.05 + np.abs(rng.normal(0, 0.025, len(xs)))
    grey = rng.uniform(150, 200)
    points = list(zip(xs * size, (top - 0.01) * size)) + list(zip(xs[::-1] * size, bottom[::-1] * size))
    draw.polygon([(float(x), float(y)) for x, y in points], fill=(int(grey), int(grey), int(grey + 5)))
    if rng.random() < 0.5:  # "open saddle": a dark intrusion into the patch
        x = rng.uniform(0.6, 0.8) * size
        draw.polygon([(x, 0.69 * size), (x + 0.03 * size, 0.69 * size), (x + 0.01 * size, 0.76 * size)], fill=(22, 22, 26))


def _underside_pattern(draw, rng, size, inside) -> None:
    """A humpback fluke's white pattern: a few large white blobs with black spots inside."""
    whiteness = rng.uniform(0.2, 1.0)
    for _ in range(int(3 + 8 * whiteness)):
        cx, cy = _pick(inside, rng)
        r = size * rng.uniform(0.04, 0.11) * whiteness**0.5
        draw.ellipse([cx - r, cy - r * 0.6, cx + r, cy + r * 0.6], fill=(232, 232, 236))
    for _ in range(int(rng.integers(2, 7))):
        cx, cy = _pick(inside, rng)
        r = size * rng.uniform(0.01, 0.03)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(22, 22, 26))


def _shade(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighter on top (sunlit back), darker below."""
    rows = np.linspace(1.15, 0.8, rgb.shape[0], dtype=np.float32)[:, None, None]
    return np.clip(rgb * rows * rng.uniform(0.95, 1.05), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# one photo of an individual


def draw_sighting(
    template: Image.Image, rng: np.random.Generator, size: int, nuisance: Nuisance = Nuisance()
) -> tuple[Image.Image, tuple]:
    """A photo of `template`: pose, scale, crop, light, water, wave, splash, occluder, blur, noise.

    Drawn with PIL operations on 8-bit images (compositing through masks, lookup tables), which are
    several times faster than the same steps in floating point.

    Returns:
        The RGB photo and the animal's visible box (x1, y1, x2, y2) in pixels.
    """
    water_array = _water(rng, size)
    water = Image.fromarray(water_array, "RGB")
    warped, corners = _warp(template, rng, size, nuisance)
    animal, alpha = warped.convert("RGB"), warped.getchannel("A")
    # light: exposure and a cast towards the water colour (haze), as one lookup table per channel
    haze, exposure = rng.uniform(*nuisance.haze), rng.uniform(*nuisance.exposure)
    levels = np.arange(256, dtype=np.float32)
    cast = water_array.reshape(-1, 3)[:: 97].mean(axis=0)
    lut = np.concatenate([np.clip(levels * exposure * (1 - haze) + c * haze, 0, 255) for c in cast])
    animal = animal.point(lut.astype(np.uint8).tolist())
    photo = water.copy()
    photo.paste(animal, (0, 0), alpha)
    underwater = _wave(photo, water, corners, rng, size, nuisance.wave)
    visible = (np.asarray(alpha) > 127) & ~underwater
    if rng.random() < nuisance.splash:
        _splash(photo, rng, size)
    # drawn only when the preset has occluders, so the default photos stay those of earlier versions
    if nuisance.occluder > 0 and rng.random() < nuisance.occluder:
        _occluder(photo, water, corners, rng)
    # sensor noise from our generator (PIL's effect_noise has its own, unseeded one)
    sigma = rng.uniform(*nuisance.noise)
    grain = np.clip(rng.standard_normal((size, size), dtype=np.float32) * sigma + 128, 0, 255).astype(np.uint8)
    noise = Image.fromarray(grain, "L").convert("RGB")
    photo = ImageChops.add(photo, noise, scale=1.0, offset=-128)
    if rng.random() < nuisance.blur[0]:
        photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(*nuisance.blur[1:])))
    rows, cols = np.nonzero(visible)
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1) if len(rows) else (0, 0, size, size)
    return photo, box


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return y, x


def _water(rng: np.random.Generator, size: int) -> np.ndarray:
    """Water as uint8 HxWx3: a base colour, slow light variation, ripples with glints."""
    base = np.array([rng.uniform(20, 80), rng.uniform(55, 115), rng.uniform(80, 150)], dtype=np.float32)
    # low-frequency light variation, mostly in brightness with a little colour
    coarse = rng.normal(0, 16, (5, 5, 1)) + rng.normal(0, 5, (5, 5, 3)) + base
    low = np.asarray(Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float32)
    y, x = _grid(size)
    freq, wobble = rng.uniform(8, 25), rng.uniform(0.01, 0.04)
    ripples = np.sin(2 * np.pi * (freq * y + wobble * np.sin(2 * np.pi * rng.uniform(1, 4) * x) + rng.random()))
    light = ripples * rng.uniform(3, 10) + (np.clip(ripples, 0.6, 1.0) - 0.6) * rng.uniform(20, 70)
    return np.clip(low + light[..., None], 0, 255).astype(np.uint8)


def _warp(
    template: Image.Image, rng: np.random.Generator, size: int, nuisance: Nuisance
) -> tuple[Image.Image, np.ndarray]:
    t = template.size[0]
    src = np.array([[0, 0], [t, 0], [t, t], [0, t]], dtype=np.float64)
    scale = size * rng.uniform(*nuisance.scale)
    angle = np.deg2rad(rng.uniform(-nuisance.rotation, nuisance.rotation))
    centre = size * (0.5 + rng.uniform(-0.12, 0.12, 2))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    unit = (src / t - 0.5) * [rng.uniform(0.85, 1.15), 1.0]  # aspect change: the animal seen more side-on
    dst = unit @ rot.T * scale + centre + rng.normal(0, 0.04 * size, (4, 2))  # corner jitter: perspective
    coeffs = _perspective_coeffs(dst, src)
    warped = template.transform((size, size), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    return warped, dst


def _perspective_coeffs(out_pts: np.ndarray, in_pts: np.ndarray) -> list[float]:
    """PIL's 8 coefficients mapping output pixels to input pixels through 4 point pairs."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(out_pts, in_pts):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows), np.array(rhs)).tolist()


def _wave(
    photo: Image.Image, water: Image.Image, corners: np.ndarray, rng: np.random.Generator, size: int,
    depth: tuple[float, float],
) -> np.ndarray:
    """Water over the animal's lower part, below a wavy line near the template's bottom edge (in place).

    Returns:
        The mask of what is under water.
    """
    bottom_left, bottom_right = corners[3], corners[2]
    x = np.arange(size, dtype=np.float32)
    frac = np.clip((x - bottom_left[0]) / (bottom_right[0] - bottom_left[0] + 1e-6), 0, 1)
    line = bottom_left[1] + frac * (bottom_right[1] - bottom_left[1])  # the template's bottom edge
    height = np.linalg.norm(corners[3] - corners[0])
    swell = size * 0.02 * np.sin(2 * np.pi * (x / size * rng.uniform(1, 4) + rng.random()))
    line = line - height * rng.uniform(*depth) + swell
    below = np.arange(size, dtype=np.float32)[:, None] > line[None, :]
    photo.paste(water, (0, 0), Image.fromarray(below.astype(np.uint8) * 255, "L"))
    foam = int(rng.uniform(170, 230))
    ImageDraw.Draw(photo).line(list(zip(x.tolist(), line.tolist())), fill=(foam, foam, foam), width=int(rng.integers(1, 4)))
    return below


def _splash(photo: Image.Image, rng: np.random.Generator, size: int) -> None:
    """A translucent white blob partly hiding the animal (in place)."""
    y, x = _grid(size)
    cx, cy = rng.uniform(0.2, 0.8, 2)
    rx, ry = rng.uniform(0.06, 0.16, 2)
    blob = np.clip(1.3 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 0, 1) * (255 * rng.uniform(0.5, 0.9))
    photo.paste((235, 235, 235), (0, 0, size, size), Image.fromarray(blob.astype(np.uint8), "L"))


def _occluder(photo: Image.Image, water: Image.Image, corners: np.ndarray, rng: np.random.Generator) -> None:
    """Water (a swell in front) or a dark block (a boat's edge) over a random part of the animal (in place)."""
    (x1, y1), (x2, y2) = corners.min(axis=0), corners.max(axis=0)
    w, h = (x2 - x1) * rng.uniform(0.15, 0.35), (y2 - y1) * rng.uniform(0.15, 0.4)
    cx, cy = rng.uniform(x1 + w / 2, max(x2 - w / 2, x1 + w / 2 + 1)), rng.uniform(y1 + h / 2, max(y2 - h / 2, y1 + h / 2 + 1))
    box = [int(cx - w / 2), int(cy - h / 2), int(cx + w / 2), int(cy + h / 2)]
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    if rng.random() < 0.5:
        photo.paste(water, (0, 0), mask)
    else:
        shade = int(rng.uniform(10, 60))
        photo.paste((shade, shade, shade), (0, 0, *photo.size), mask)
