"""A trained run as a photo-ID service: index a catalogue of known animals, match new photos against it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spotter.engine.rundir import RunDir
from spotter.errors import SpotterError
from spotter.io import check_output_file, check_output_folder, write_csv
from spotter.progress import NullReporter, Reporter
from spotter.whale.catalogue import (
    DEFAULT_NEW_THRESHOLD,
    Catalogue,
    Match,
    build_catalogue,
    load_catalogue,
    match_photos,
    matches_frame,
    save_catalogue,
    write_contact_sheet,
)
from spotter.whale.data import check_image
from spotter.whale.layout import TRAIN_CSV, TRAIN_DIR

CATALOGUE_CSV = "catalogue.csv"
INDEX = "index"  # the default catalogue index, inside the run folder


def catalogue_source(catalogue: str | Path, csv: str | Path | None = None) -> tuple[Path, Path]:
    """The photo folder and table of a catalogue argument.

    A folder with `catalogue.csv` (image, individual_id) is used as is; a whale data folder gives
    `train_images/` and `train.csv`; `csv` overrides the table.

    Raises:
        SpotterError: If the folder or its table is missing.
    """
    folder = Path(catalogue)
    if not folder.is_dir():
        raise SpotterError("catalogue folder not found", folder)
    if csv is not None:
        return folder, Path(csv)
    if (folder / CATALOGUE_CSV).is_file():
        return folder, folder / CATALOGUE_CSV
    if (folder / TRAIN_CSV).is_file() and (folder / TRAIN_DIR).is_dir():
        return folder / TRAIN_DIR, folder / TRAIN_CSV
    raise SpotterError(f"no {CATALOGUE_CSV} (image,individual_id) or {TRAIN_CSV} in the catalogue folder; pass --csv", folder)


def default_threshold(run_dir: str | Path) -> tuple[float, str]:
    """The looks-new threshold for a run's catalogue: tuned out-of-fold by its last `whale predict`, else 0.5."""
    from spotter.whale.predict import read_calibration

    calibration = read_calibration(RunDir(run_dir))
    if calibration and "catalogue_threshold" in calibration:
        return float(calibration["catalogue_threshold"]), "out-of-fold"
    return DEFAULT_NEW_THRESHOLD, "default"


def index_catalogue(
    run_dir: str | Path,
    catalogue: str | Path,
    csv: str | Path | None = None,
    out: str | Path | None = None,
    threshold: float | None = None,
    reporter: Reporter = NullReporter(),
) -> tuple[Path, Catalogue]:
    """Embeds a catalogue with the run's models and saves it (default: `RUN/index`)."""
    out = Path(out) if out is not None else RunDir(run_dir).file(INDEX)
    check_output_folder(out)
    folder, table = catalogue_source(catalogue, csv)
    embed, meta = run_embedder(run_dir)
    source = "given"
    if threshold is None:
        threshold, source = default_threshold(run_dir)
    built = build_catalogue(
        folder, table, embed, new_threshold=threshold, meta={**meta, "threshold_source": source}, reporter=reporter
    )
    return save_catalogue(built, out), built


def match_with_run(
    run_dir: str | Path,
    photos: Sequence[str | Path],
    index: str | Path | None = None,
    top: int = 5,
    out: str | Path = "matches.csv",
    threshold: float | None = None,
    reporter: Reporter = NullReporter(),
) -> tuple[list[Match], Path]:
    """Ranks the indexed individuals for each photo; writes the candidates CSV and a PNG contact sheet beside it.

    Raises:
        SpotterError: If the index is missing, was built by another run's models, or `top` < 1.
    """
    if top < 1:
        raise SpotterError(f"--top must be at least 1, got {top}")
    out = check_output_file(out)
    check_output_file(out.with_suffix(".png"))
    index = Path(index) if index is not None else RunDir(run_dir).file(INDEX)
    if not index.is_dir():
        raise SpotterError("no index; build one with `spotter whale index RUN CATALOGUE`", index)
    catalogue = load_catalogue(index)
    missing = [p for p in photos if not Path(p).is_file()]
    if missing:
        raise SpotterError("photo not found", missing[0])
    for photo in photos:  # headers (format, pixel limit, a cut-short end) before the models load
        check_image(photo, decode=False)
    embed, meta = run_embedder(run_dir)
    if catalogue.meta.get("run") not in (None, meta["run"]):
        raise SpotterError(f"the index was built with another run ({catalogue.meta['run']})", index)
    matches = match_photos(catalogue, photos, embed, top=top, new_threshold=threshold, reporter=reporter)
    write_csv(out, matches_frame(matches))
    sheet = write_contact_sheet(matches, catalogue, out.with_suffix(".png"))
    return matches, sheet


def run_embedder(run_dir: str | Path, flip: bool = False):
    """An `EmbedFn` (photos → (N, D)) of the run's fold models together, and its metadata."""
    import torch

    from spotter.engine.predict import fold_models
    from spotter.whale.config import WhaleConfig
    from spotter.whale.data import normalization
    from spotter.whale.embed import create_embedder
    from spotter.whale.model import Embedder
    from spotter.whale.task import WhaleTask

    run = RunDir(run_dir)
    cfg = run.read_config(WhaleConfig)
    models = [model for _, model in fold_models(WhaleTask(), run, cfg)]
    mean, std = normalization(cfg.model.backbone)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    embed = create_embedder(Embedder(models), cfg.image_size, mean=mean, std=std, flip=flip, device=device)
    meta = {"run": str(run.path.resolve()), "backbone": cfg.model.backbone, "image_size": cfg.image_size,
            "models": len(models)}
    return embed, meta
