"""The report of a whale run: training facts, out-of-fold MAP@5 against the new_individual threshold, MAP@5 by
species and for known vs new animals, and a gallery of validation photos with their top-5 candidates."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.engine.rundir import RunDir
from spotter.errors import SpotterError
from spotter.progress import NullReporter, Reporter
from spotter.io import atomic_path, read_csv
from spotter.metrics import NEW_INDIVIDUAL, average_precision_at_5
from spotter.report import (
    BASELINE_COLOR,
    GOOD_COLOR,
    MODEL_COLOR,
    Callout,
    Card,
    ReportAssets,
    figure_style,
    format_value,
    grouped_bars_figure,
    pyplot,
    render_page,
    table,
)
from spotter.whale.calibration import CALIBRATION, OOF_RETRIEVAL
from spotter.whale.threshold import candidate_thresholds, insert_new_individual, map_by_threshold

TEMPLATE = "whale_report.html.j2"
THUMB = 160  # px, the longest side of a gallery thumbnail
SOURCES = {"knn": "kNN + id head, calibrated probabilities", "head": "id head alone (an uncalibrated run)"}


def load_oof_retrieval(run_dir: str | Path) -> tuple[pd.DataFrame, float, str]:
    """Out-of-fold candidates with the scores the run decides on, its threshold, and where they come from.

    A calibrated run's out-of-fold ranking (kNN + head) with its candidates' probabilities and the run's
    new_individual threshold on them; else the head's ranking in the out-of-fold arrays.

    Raises:
        SpotterError: If the run has neither (not trained).
    """
    run = RunDir(run_dir)
    calibration = read_calibration(run)
    if run.file(OOF_RETRIEVAL).is_file() and calibration:
        frame = read_csv(run.file(OOF_RETRIEVAL), required=["image", "truth", "candidates", "probabilities"],
                         dtype=str)
        return frame.assign(scores=frame["probabilities"]), float(calibration["threshold"]), SOURCES["knn"]
    path = run.oof_arrays
    if not path.is_file():
        raise SpotterError(f"no out-of-fold results ({path.name}) in the run folder", run.path)
    oof = np.load(path, allow_pickle=False)
    vocab = list(oof["vocab"])
    names = [" ".join(vocab[c] for c in row[:5] if c >= 0) for row in oof["head_top_class"]]
    scores = [" ".join(f"{v:.6f}" for v, c in zip(r[:5], cls[:5]) if c >= 0)
              for r, cls in zip(oof["head_top_cosine"], oof["head_top_class"])]
    frame = pd.DataFrame({"image": oof["images"], "species": oof["species"], "truth": oof["truths"],
                          "candidates": names, "scores": scores})
    return frame, float(oof["head_threshold"]), SOURCES["head"]


def read_calibration(run: RunDir) -> dict:
    """The run's calibration record ({} when it has none or it is unreadable: the page then says so)."""
    import json

    try:
        return json.loads(run.file(CALIBRATION).read_text()) if run.file(CALIBRATION).is_file() else {}
    except (OSError, ValueError):
        return {}


def _parse(frame: pd.DataFrame) -> tuple[list[list[str]], np.ndarray]:
    names = [str(c).split() if isinstance(c, str) else [] for c in frame["candidates"]]
    scores = np.full((len(frame), 5), -np.inf)
    for i, text in enumerate(frame["scores"]):
        values = [float(v) for v in str(text).split()][:5] if isinstance(text, str) else []
        scores[i, : len(values)] = values
    return names, scores


def write_report(
    run_dir: str | Path, data_dir: str | Path | None = None, gallery_rows: int = 8, reporter: Reporter = NullReporter()
) -> Path:
    """Writes `report.html` into the run folder, its figures and thumbnails into the report's image folder.

    Args:
        run_dir: A trained whale run (ideally after `whale predict`, for the kNN results).
        data_dir: The training data folder, for the photo gallery (skipped when None).
        gallery_rows: Validation photos shown in the gallery.

    Raises:
        SpotterError: If the run has no out-of-fold results, or the data folder's train.csv is unreadable.
    """
    run = RunDir(run_dir)
    frame, threshold, source = load_oof_retrieval(run.path)
    names, scores = _parse(frame)
    truths = list(frame["truth"])
    thresholds = candidate_thresholds(scores)
    maps = map_by_threshold(names, scores, truths, thresholds)
    lists = insert_new_individual(names, scores, threshold)
    ap = np.array([average_precision_at_5(t, p) for t, p in zip(truths, lists)])
    is_new = np.array([t == NEW_INDIVIDUAL for t in truths])
    metrics = run.read_metrics() if run.is_finished() else {}
    calibration = read_calibration(run) if source == SOURCES["knn"] else {}
    assets = ReportAssets(run)

    score = float(np.mean(ap)) if len(ap) else float("nan")
    summary = {
        "cards": [
            Card("MAP@5 (out-of-fold)", format_value(score, 3), f"threshold {threshold:.3f}; {source}"),
            Card("without new_individual", format_value(float(maps[0]), 3), "the same lists, never predicting new"),
            Card("validation photos", f"{len(truths):,}", f"{int(is_new.sum()):,} of animals unseen on their "
                                                          f"fold's train side ({np.mean(is_new):.0%})"),
        ],
        "note": _summary_note(source, calibration),
    }
    threshold_figure = assets.figure(
        _threshold_figure(thresholds, maps, threshold, source), "map_vs_threshold.png",
        "Where should new_individual go in each list? Out-of-fold MAP@5 for every threshold: a photo whose "
        "best candidates fall below it gets new_individual first; the red line is the run's threshold.",
    )
    reliability_figure = None
    if calibration.get("reliability"):
        reliability_figure = assets.figure(
            _reliability_figure(calibration["reliability"]), "reliability.png",
            "Can the probabilities be taken at their word? Each point is a bin of out-of-fold candidates: the "
            "probability the run gave them against how often they were the right animal; on the diagonal, "
            f"a probability of 0.8 is right 8 times in 10 (mean gap {calibration['expected_calibration_error']:.3f}).",
        )
    groups = _group_frame(frame, ap, is_new)
    group_figure = assets.figure(
        grouped_bars_figure(groups, "group", {"MAP@5": "MAP@5"}, "out-of-fold MAP@5", xlim=(0, 1.1),
                            row_colors=[MODEL_COLOR] * (len(groups) - 2) + [GOOD_COLOR, BASELINE_COLOR]),
        "map_by_group.png",
        "Which species, and which kind of photo (an animal seen in training, or a new one), does the run get right?",
    )
    render_page(
        TEMPLATE,
        run.report_path,
        title=f"Whale run {run.path.name}",
        run_path=str(run.path),
        data_path=str(data_dir) if data_dir is not None else "",
        assets=assets.folder.name,
        sections=[("training", "Training"), ("threshold", "new_individual decision"), ("groups", "By species"),
                  ("gallery", "Gallery")],
        summary=summary,
        facts=_facts(run, metrics, calibration, source, threshold, len(truths)),
        threshold_figure=threshold_figure,
        reliability_figure=reliability_figure,
        group_figure=group_figure,
        groups=table(groups.rename(columns={"group": "species or group", "count": "photos"}), digits={"MAP@5": 3}),
        gallery=_gallery(run, assets, Path(data_dir), frame, lists, scores, names, ap, threshold, gallery_rows,
                         "probability" if source == SOURCES["knn"] else "score")
        if data_dir is not None else None,
        threshold=threshold,
    )
    return run.report_path


def _summary_note(source: str, calibration: dict) -> Callout | None:
    if source == SOURCES["head"]:
        return Callout("note", "This run has no calibration (it was trained before calibrations were stored), so "
                               "these figures rank by the id head alone; train it again for the kNN + head ranking "
                               "and the probabilities every whale command uses.")
    mode = calibration.get("mode")
    if mode and mode != "best":
        return Callout("note", f"The run's threshold policy is {mode!r}; this page uses the single best out-of-fold "
                               "threshold throughout.")
    return None


def _facts(
    run: RunDir, metrics: dict, calibration: dict, source: str, threshold: float, photos: int
) -> list[tuple[str, str]]:
    """Training and calibration facts as (what, value) rows."""
    rows = []
    folds = metrics.get("folds")
    if folds is not None:
        n_folds = run.read_folds("image")["fold"].nunique() if run.folds_path.is_file() else None
        trained = ", ".join(str(f) for f in folds) or "all"
        rows.append(("folds trained", trained + (f" (of {n_folds})" if n_folds else "")))
    best = metrics.get("best_epoch") or {}
    if best:
        rows.append(("best epoch", ", ".join(f"{k}: {v}" for k, v in best.items())))
    fold_metric = metrics.get("fold_metric") or {}
    if fold_metric:
        rows.append(("MAP@5 per fold (id head, at training)",
                     ", ".join(f"{k}: {format_value(v, 3)}" for k, v in fold_metric.items())))
    if metrics.get("oof_metric") is not None:
        rows.append(("out-of-fold MAP@5 (id head, at training)", format_value(metrics["oof_metric"], 4)))
    if metrics.get("seconds") is not None:
        rows.append(("training time", f"{metrics['seconds']:.0f} s" if metrics["seconds"] >= 10
                     else f"{metrics['seconds']:.1f} s"))
    rows.append(("ranking on this page", source))
    rows.append(("new_individual threshold", f"{threshold:.4f}" + (" (probability)" if calibration else "")))
    if calibration.get("calibration"):
        rows.append(("score calibration", f"{calibration['calibration']}, fitted on "
                                          f"{calibration.get('oof_queries', photos):,} out-of-fold photos"))
    if calibration.get("oof_new_first_ratio") is not None:
        rows.append(("out-of-fold photos with new_individual first", f"{calibration['oof_new_first_ratio']:.1%} "
                     f"({calibration['oof_new_ratio']:.1%} of them are new)"))
    if calibration.get("oof_map_at_5") is not None:
        rows.append(("out-of-fold MAP@5 at that threshold", format_value(calibration["oof_map_at_5"], 4)))
    if calibration.get("oof_map_at_5_plain_knn") is not None:
        rows.append(("out-of-fold MAP@5, kNN alone", format_value(calibration["oof_map_at_5_plain_knn"], 4)))
    if calibration.get("test_new_first_ratio") is not None:
        rows.append(("test photos with new_individual first", f"{calibration['test_new_first_ratio']:.1%}"))
    rows.append(("validation photos", f"{photos:,}"))
    return rows


def _reliability_figure(points: list[dict]):
    with figure_style():
        fig, ax = pyplot().subplots(figsize=(4.2, 4.0))
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfect calibration")
        predicted = [p["predicted"] for p in points]
        observed = [p["observed"] for p in points]
        sizes = np.sqrt([p["count"] for p in points])
        ax.plot(predicted, observed, color=MODEL_COLOR, linewidth=1.5)
        ax.scatter(predicted, observed, s=12 + 40 * sizes / max(sizes.max(), 1), color=MODEL_COLOR,
                   label="out-of-fold candidates (dot size: how many)", zorder=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="probability the run gave", ylabel="share that was the right animal")
        ax.legend(loc="upper left", frameon=False, fontsize=8)
    return fig


def _threshold_figure(thresholds: np.ndarray, maps: np.ndarray, threshold: float, source: str = ""):
    with figure_style():
        fig, ax = pyplot().subplots(figsize=(6.8, 3.4))
        # the first and last thresholds lie below and above every score: drawn as levels, not as points
        inner = slice(1, -1) if len(thresholds) > 2 else slice(None)
        ax.plot(thresholds[inner], maps[inner], color=MODEL_COLOR, linewidth=1.8, label="MAP@5 at this threshold")
        ax.axhline(maps[0], color="#999999", linestyle=":", linewidth=1,
                   label=f"never new_individual: {maps[0]:.3f}")
        ax.axhline(maps[-1], color=BASELINE_COLOR, linestyle=":", linewidth=1,
                   label=f"always new_individual first: {maps[-1]:.3f}")
        at = float(np.interp(threshold, thresholds[inner], maps[inner])) if len(thresholds) > 2 else float(maps[0])
        ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1.2, label=f"the run's threshold {threshold:.3f}")
        ax.plot([threshold], [at], marker="o", color="#c0392b")
        unit = "probability" if source == SOURCES["knn"] else "score"
        ax.set(xlabel=f"new_individual threshold ({unit} a candidate must reach)", ylabel="out-of-fold MAP@5")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return fig


def _group_frame(frame: pd.DataFrame, ap: np.ndarray, is_new: np.ndarray) -> pd.DataFrame:
    rows = []
    if "species" in frame:
        by_species = frame.assign(ap=ap).groupby("species")["ap"].agg(["mean", "count"])
        for species, row in by_species.sort_values("count", ascending=False).iterrows():
            rows.append({"group": str(species), "count": int(row["count"]), "MAP@5": float(row["mean"])})
    for label, mask in (("known animals", ~is_new), ("new animals", is_new)):
        rows.append({"group": label, "count": int(mask.sum()), "MAP@5": float(np.mean(ap[mask])) if mask.any() else np.nan})
    return pd.DataFrame(rows, columns=["group", "count", "MAP@5"])


# ------------------------------------------------------------------------------------------- gallery


@dataclass(frozen=True)
class Tile:
    """One photo (or the new_individual slot) in a gallery row."""

    name: str  # the individual id, or new_individual
    thumb: str  # the thumbnail's address ("" without one)
    score: str  # the candidate's score as text ("" for the query)
    rank: int  # 1..5, 0 for the query
    correct: bool
    is_new: bool = False
    note: str = ""


@dataclass(frozen=True)
class GalleryRow:
    image: str
    species: str
    truth: str
    query: Tile
    candidates: list[Tile]
    found_at: int  # rank of the truth in the list, 0 when missing
    ap: float


def _gallery(run: RunDir, assets: ReportAssets, data_dir: Path, frame: pd.DataFrame, lists: list[list[str]],
             scores: np.ndarray, names: list[list[str]], ap: np.ndarray, threshold: float, count: int,
             unit: str = "score") -> dict:
    """Evenly spaced validation photos, each with its top 5 as tiles (new_individual where the threshold puts it)."""
    from spotter.whale.layout import TRAIN_CSV, TRAIN_DIR

    train = read_csv(data_dir / TRAIN_CSV, required=["image", "individual_id"], dtype=str)
    folds = run.read_folds("image").set_index("image")["fold"] if run.folds_path.is_file() else pd.Series(dtype=int)
    photos = _photos_by_individual(train, folds)
    picks = np.linspace(0, len(frame) - 1, num=min(count, len(frame))).round().astype(int) if len(frame) else []
    thumbs = Thumbnails(assets, data_dir / TRAIN_DIR)
    rows = []
    for i in picks:
        image, truth = str(frame["image"].iloc[i]), str(frame["truth"].iloc[i])
        query_fold = folds.get(image)
        score_of = dict(zip(names[i], scores[i]))
        tiles = []
        for rank, name in enumerate(lists[i], start=1):
            if name == NEW_INDIVIDUAL:
                tiles.append(Tile(name, "", f"threshold {threshold:.3f}", rank, truth == NEW_INDIVIDUAL, is_new=True,
                                  note=f"the candidates after it have a {unit} under {threshold:.3f}"))
                continue
            example = _example_photo(photos.get(name, []), query_fold)
            tiles.append(Tile(name, thumbs.src(example) if example else "", f"{unit} {score_of.get(name, np.nan):.3f}",
                              rank, name == truth, note="" if example else "no photo in train.csv"))
        species = str(frame["species"].iloc[i]) if "species" in frame else ""
        query = Tile(truth, thumbs.src(image), "", 0, False)
        found = lists[i].index(truth) + 1 if truth in lists[i] else 0
        rows.append(GalleryRow(image, species, truth, query, tiles, found, float(ap[i])))
    return {"rows": rows, "shown": len(rows), "total": len(frame), "failed": thumbs.failed}


def _photos_by_individual(train: pd.DataFrame, folds: pd.Series) -> dict[str, list[tuple[str, int | None]]]:
    out: dict[str, list[tuple[str, int | None]]] = {}
    for image, individual in zip(train["image"], train["individual_id"]):
        fold = folds.get(image)
        out.setdefault(individual, []).append((image, None if pd.isna(fold) else int(fold)))
    return out


def _example_photo(photos: list[tuple[str, int | None]], query_fold) -> str | None:
    """A photo of the candidate from the query's train side (what the query was matched against), else any."""
    for image, fold in photos:
        if query_fold is None or fold != query_fold:
            return image
    return photos[0][0] if photos else None


class Thumbnails:
    """JPEG thumbnails of photos in the report's image folder, made once per photo.

    Args:
        assets: The report's image folder.
        folder: Where the photos are.
    """

    def __init__(self, assets: ReportAssets, folder: Path) -> None:
        self.assets, self.folder = assets, folder
        self.made: dict[str, str] = {}
        self.failed: list[str] = []

    def src(self, image: str) -> str:
        """The thumbnail's address, "" when the photo cannot be read (noted in `failed`)."""
        if image not in self.made:
            self.made[image] = self._make(image)
        return self.made[image]

    def _make(self, image: str) -> str:
        from spotter.whale.data import load_image

        # named by a digest: photo names may hold characters that are awkward in paths and addresses
        name = f"thumbs/{hashlib.sha1(image.encode()).hexdigest()[:16]}.jpg"
        try:
            photo = load_image(self.folder / image)
        except SpotterError as err:
            self.failed.append(str(err))
            return ""
        photo.thumbnail((THUMB, THUMB))
        with atomic_path(self.assets.path(name)) as tmp:
            photo.save(tmp, format="JPEG", quality=88)
        return self.assets.src(name)

