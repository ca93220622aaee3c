"""Blending whale runs: per-individual score matrices averaged before the top-5 step, threshold re-tuned.

Each run ranks, for every out-of-fold photo (against its fold's train side) and every test photo, its
`TOP_K` best individuals by the score `spotter whale predict` ranks with (kNN cosine mixed with the head).
A run's matrix is kept sparse (top-K per photo) and cached in the run folder; an individual outside a
photo's top-K gets that photo's K-th score, an upper bound of its true score. Blending averages the
runs' dense rows batch by batch, takes the top 5, and tunes the `new_individual` threshold on the blended
out-of-fold ranking, as `spotter whale predict` does for one run.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotter.engine.rundir import RunDir, cache_key, distinct_runs
from spotter.errors import SpotterError
from spotter.io import atomic_path, check_output_file, read_csv, write_csv, write_json
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.layout import TEST_CSV, TRAIN_CSV
from spotter.whale.retrieval import Candidates, best_of, individual_scores

TOP_K = 50  # candidates kept per photo and run; the blend's top 5 come from their union
SCORES = "ensemble_scores"  # cache kind of a run's top-K candidates


@dataclass
class RunScores:
    """A run's ranked candidates (positions in `vocab`) for its out-of-fold and DATA's test photos.

    Attributes:
        run: The run folder.
        vocab: The sorted ids of the training data.
        oof_images / oof_truths: Out-of-fold photos, and their ids (`new_individual` when absent from the
            fold's train side).
        oof_labels / oof_scores: (Q, K) candidates and scores, best first (−1 / −inf padding).
        test_images / test_labels / test_scores: The same for the test photos.
    """

    run: Path
    vocab: list[str]
    oof_images: list[str]
    oof_truths: list[str]
    oof_labels: np.ndarray
    oof_scores: np.ndarray
    test_images: list[str]
    test_labels: np.ndarray
    test_scores: np.ndarray


def run_scores(
    run_dir: str | Path, data_dir: str | Path, tta: bool = True, top_k: int = TOP_K, reporter: Reporter = NullReporter()
) -> tuple[RunScores, Path, bool]:
    """A run's top-K candidates for its out-of-fold and DATA's test photos, cached in the run folder.

    The cache key covers DATA's train.csv and sample_submission.csv, the TTA setting, K and the run's
    weight files.

    Returns:
        The candidates, the cache file and whether it was already there.

    Raises:
        SpotterError: If `run_dir` is not a whale run trained on DATA, or DATA has no test photos.
    """
    from spotter.whale.config import WhaleConfig

    run, data_dir = RunDir(run_dir), Path(data_dir)
    if not run.holds_run():
        raise SpotterError("not a run folder", run.path)
    run.trained_weights(run.read_config(WhaleConfig))  # readable weights, even where the cache would be used
    for name in (TRAIN_CSV, TEST_CSV):
        if not (data_dir / name).is_file():
            raise SpotterError("file not found", data_dir / name)
    key = cache_key(
        (data_dir / TRAIN_CSV).read_bytes(), (data_dir / TEST_CSV).read_bytes(), f"tta={bool(tta)}", f"k={top_k}",
        run.weights_fingerprint(),
    )
    cache = run.cache_path(SCORES, key, ".npz")
    test_images = list(read_csv(data_dir / TEST_CSV, required=["image"], dtype=str)["image"])
    if cache.exists():
        try:
            return _load(run.path, cache, test_images), cache, True
        except SpotterError:  # a damaged or foreign cache is never blended: predict afresh
            if cache.is_dir():
                raise SpotterError("is a folder where the run's cached candidates belong", cache) from None
            cache.unlink()
    scores = _compute(run, data_dir, tta, top_k, reporter)
    _save(scores, cache)
    return scores, cache, False


def _compute(run: RunDir, data_dir: Path, tta: bool, top_k: int, reporter: Reporter) -> RunScores:
    from spotter.engine.runtime import Runtime
    from spotter.whale.config import WhaleConfig
    from spotter.whale.predict import boxes_of, load_test_data
    from spotter.whale.ranking import rank, rank_out_of_fold
    from spotter.whale.views import combine, embed_models, restore_fold_models, run_rows, train_views
    from spotter.whale.task import WhaleTask

    cfg = run.read_config(WhaleConfig)
    if not tta:
        cfg.retrieval.flip_tta = False
    data = load_test_data(data_dir)
    rows = run_rows(run, data)
    models = restore_fold_models(WhaleTask(), run, cfg, rows)
    vocab = sorted(set(rows["individual_id"]))
    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    runtime, boxes = Runtime(cfg.mixed_precision), boxes_of(data, cfg)
    gallery = train_views(run, models, rows, cfg, boxes, runtime, reporter)
    test_views = embed_models(models, data.test, cfg, boxes, runtime, reporter, "test photos")
    oof = rank_out_of_fold(list(zip(models, gallery)), rows, vocab, cfg, top=top_k)
    if oof is None:
        raise SpotterError("the run has no out-of-fold photos (a full fit) to tune the blend's threshold on", run.path)
    test = rank(combine(test_views, len(vocab)), combine(gallery, len(vocab)), labels, len(vocab), cfg, top=top_k)
    return RunScores(run.path, vocab, oof.images, oof.truths, oof.candidates.labels, oof.candidates.scores,
                     list(data.test["image"]), test.labels, test.scores)


CACHE_ARRAYS = ("vocab", "oof_images", "oof_truths", "oof_labels", "oof_scores", "test_images", "test_labels",
                "test_scores")


def _save(scores: RunScores, path: Path) -> None:
    arrays = {
        "vocab": np.asarray(scores.vocab, dtype=str),
        "oof_images": np.asarray(scores.oof_images, dtype=str),
        "oof_truths": np.asarray(scores.oof_truths, dtype=str),
        "oof_labels": scores.oof_labels,
        "oof_scores": scores.oof_scores,
        "test_images": np.asarray(scores.test_images, dtype=str),
        "test_labels": scores.test_labels,
        "test_scores": scores.test_scores,
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def _load(run_dir: Path, path: Path, test_images: list[str]) -> RunScores:
    """A run's cached candidates, checked against DATA's test photos and for consistent shapes and values.

    Raises:
        SpotterError: If the cache is unreadable, lacks arrays, covers other test photos, or holds candidates
            outside the vocabulary or scores that are NaN (or infinite where a candidate is named).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in CACHE_ARRAYS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise SpotterError(f"unreadable candidate cache ({type(err).__name__})", path) from None
    scores = RunScores(
        run_dir, arrays["vocab"].tolist(), arrays["oof_images"].tolist(), arrays["oof_truths"].tolist(),
        arrays["oof_labels"], arrays["oof_scores"], arrays["test_images"].tolist(), arrays["test_labels"],
        arrays["test_scores"],
    )
    if scores.test_images != test_images:
        raise SpotterError("the cached candidates are for other test photos", path)
    if scores.vocab != sorted(set(scores.vocab)) or len(scores.oof_truths) != len(scores.oof_images):
        raise SpotterError("the cached vocabulary or out-of-fold photos are inconsistent", path)
    for what, labels, values, photos in (
        ("out-of-fold", scores.oof_labels, scores.oof_scores, scores.oof_images),
        ("test", scores.test_labels, scores.test_scores, scores.test_images),
    ):
        if labels.ndim != 2 or labels.shape != values.shape or len(labels) != len(photos):
            raise SpotterError(f"the cached {what} candidates have inconsistent shapes", path)
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < -1 or labels.max(initial=0) >= len(
            scores.vocab
        ):
            raise SpotterError(f"the cached {what} candidates name ids outside the vocabulary", path)
        named = labels >= 0
        if np.isnan(values).any() or not np.isfinite(values[named]).all():
            raise SpotterError(f"the cached {what} scores hold NaN or infinite values", path)
    return scores


def check_compatible(runs: Sequence[RunScores]) -> None:
    """Checks the runs were trained on the same ids and folds and predicted the same test photos.

    Raises:
        SpotterError: Naming the run that differs from the first and an example.
    """
    first = runs[0]
    for other in runs[1:]:
        if other.vocab != first.vocab:
            only = sorted(set(other.vocab) ^ set(first.vocab))
            example = f", e.g. {only[0]!r}" if only else ""
            raise SpotterError(f"trained on other individuals than {first.run}{example}", other.run)
        if other.oof_images != first.oof_images or other.oof_truths != first.oof_truths:
            differ = next((a for a, b in zip(first.oof_images, other.oof_images) if a != b), None)
            example = f", e.g. photo {differ!r}" if differ else f" ({len(other.oof_images)} vs {len(first.oof_images)})"
            raise SpotterError(
                f"out-of-fold photos differ from {first.run}'s{example}; blend runs trained with the same folds "
                "(same seed or fold_seed, n_folds and train_folds)",
                other.run,
            )
        if other.test_images != first.test_images:
            raise SpotterError(f"test photos differ from {first.run}'s", other.run)


def compatible_run_scores(
    runs: Sequence[str | Path], data_dir: str | Path, tta: bool = True, reporter: Reporter = NullReporter()
) -> tuple[list[RunScores], list[Path]]:
    """Each run's candidates (`run_scores`) and cache file, checked to be blendable (`check_compatible`)."""
    results = [run_scores(run, data_dir, tta=tta, reporter=reporter) for run in runs]
    scores = [r[0] for r in results]
    check_compatible(scores)
    return scores, [r[1] for r in results]


def blend_candidates(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    weights: Sequence[float] | None = None,
    top: int = 5,
    batch_size: int = 1024,
) -> Candidates:
    """The `top` individuals per photo by the (weighted) mean of several runs' per-individual scores.

    Args:
        parts: Per run, (labels, scores) of shape (Q, K): each photo's best candidates, best first, −1 padding.
        num_classes: Size of the id vocabulary.
        weights: Per-run weights (equal if None); normalized to sum to 1.
        top: Candidates returned per photo.
        batch_size: Photos per dense (batch, num_classes) block, bounding memory.

    Returns:
        The blended candidates, best first.
    """
    n = len(parts[0][0])
    if any(len(labels) != n or scores.shape != labels.shape for labels, scores in parts):
        raise ValueError("every run needs (labels, scores) of the same shape for the same photos")
    weights = np.full(len(parts), 1.0) if weights is None else np.asarray(weights, np.float64)
    weights = weights / weights.sum()
    top = min(top, num_classes)
    out_labels = np.empty((n, top), np.int64)
    out_scores = np.empty((n, top), np.float32)
    for start in range(0, n, batch_size):
        part = slice(start, start + batch_size)
        dense = np.zeros((len(range(n)[part]), num_classes), np.float64)
        for w, (labels, scores) in zip(weights, parts):
            dense += w * densify(labels[part], scores[part], num_classes)
        out_labels[part], out_scores[part] = best_of(dense, top)
    return Candidates(out_labels, out_scores)


def densify(labels: np.ndarray, scores: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-K candidates (Q, K) → dense (Q, num_classes) scores; ids outside a row's top-K get its lowest score.

    The kNN rule of `individual_scores`, with each candidate as its own one-photo "gallery row".
    """
    return individual_scores(scores, labels, np.arange(num_classes), num_classes)


def oof_map(candidates: Candidates, vocab: list[str], truths: list[str]) -> tuple[float, float]:
    """MAP@5 of an out-of-fold ranking at its best `new_individual` threshold; returns (MAP@5, threshold)."""
    from spotter.whale.threshold import best_threshold

    top5 = Candidates(candidates.labels[:, :5], candidates.scores[:, :5])
    threshold, score = best_threshold(top5.names(vocab), top5.scores, truths)
    return score, threshold


@dataclass
class Blend:
    """Several runs' blended rankings on one calibrated scale.

    Attributes:
        runs: The runs' candidates (`compatible_run_scores`).
        caches: Their cache files.
        oof / test: The blended out-of-fold and test candidates (raw blended scores), best first.
        calibration: The blend's `RunCalibration`, fitted on its out-of-fold ranking as a run's is.
    """

    runs: list[RunScores]
    caches: list[Path]
    oof: Candidates
    test: Candidates
    calibration: object

    @property
    def vocab(self) -> list[str]:
        return self.runs[0].vocab


def blend_runs(
    runs: Sequence[str | Path], data_dir: str | Path, tta: bool = True, top: int = 5, reporter: Reporter = NullReporter()
) -> Blend:
    """The runs' per-individual scores averaged, and calibrated on the blended out-of-fold ranking.

    Raises:
        SpotterError: On a run given twice, runs trained on other ids or folds, or predicting other test photos.
    """
    from spotter.whale.calibration import fit_run_calibration
    from spotter.whale.config import WhaleConfig
    from spotter.whale.ranking import OutOfFold

    distinct_runs(runs)
    scores, caches = compatible_run_scores(runs, data_dir, tta, reporter)
    vocab = scores[0].vocab
    oof = blend_candidates([(s.oof_labels, s.oof_scores) for s in scores], len(vocab), top=max(top, 5))
    test = blend_candidates([(s.test_labels, s.test_scores) for s in scores], len(vocab), top=max(top, 5))
    retrieval = RunDir(scores[0].run).read_config(WhaleConfig).retrieval
    species = {}  # per-species thresholds fall back to the overall one without the training table
    calibration = fit_run_calibration(OutOfFold(scores[0].oof_images, [""] * len(scores[0].oof_images),
                                                scores[0].oof_truths, oof), None, vocab, species, retrieval)
    return Blend(scores, caches, oof, test, calibration)


def ensemble_whale(
    runs: Sequence[str | Path],
    data_dir: str | Path,
    out: str | Path,
    tta: bool = True,
    reporter: Reporter = NullReporter(),
) -> tuple[Path, dict]:
    """Writes the submission of the runs' blended scores, decided on the blend's calibrated scale.

    Returns:
        The submission path and the record (runs, caches, per-run and blended out-of-fold MAP@5, the blend's
        calibration).

    Raises:
        SpotterError: On runs trained on other ids or folds, or predicting other test photos.
    """
    from spotter.whale.predict import submission_frame

    blend = blend_runs(runs, data_dir, tta, reporter=reporter)
    vocab, truths = blend.vocab, blend.runs[0].oof_truths
    inputs = {}
    for s in blend.runs:
        value, threshold = oof_map(Candidates(s.oof_labels, s.oof_scores), vocab, truths)
        inputs[str(s.run)] = {"oof_map_at_5": value, "threshold": threshold}
    names = blend.test.names(vocab)
    _, predictions, _ = blend.calibration.decide(names, blend.test.scores, [""] * len(names))
    out = Path(out)
    write_csv(out, submission_frame(blend.runs[0].test_images, predictions))
    record = {
        "task": "whale",
        "method": "mean",
        "runs": [str(s.run) for s in blend.runs],
        "data": str(data_dir),
        "tta": tta,
        "candidates_per_run": int(blend.runs[0].oof_labels.shape[1]),
        "scores": [str(c) for c in blend.caches],
        "samples": {"oof": len(truths), "test": len(blend.runs[0].test_images)},
        "metrics": {"inputs_oof": inputs, "ensemble_oof": blend.calibration.record["oof_map_at_5"]},
        "threshold": blend.calibration.threshold,
        "calibration": {k: v for k, v in blend.calibration.record.items() if k != "reliability"},
        "test_new_first_ratio": float(np.mean([p[0] == NEW_INDIVIDUAL for p in predictions])),
    }
    return out, record


class WhaleBlender:
    """`spotter ensemble` for whale runs: the mean of their per-individual scores (`--method mean`)."""

    methods = ("mean",)

    def ensemble(
        self, task, runs, data_dir, out, method: str = "mean", features=None, tta: bool = True, workers: int = 1,
        reporter: Reporter = NullReporter(), fallback: bool = True, stacker: str | None = None,
    ) -> tuple[Path, dict]:
        """Writes the blended submission `out` and its record (`out` with `.json`); returns both.

        `fallback` is accepted for the common interface: the mean fits nothing, so there is nothing to fall back from.

        Raises:
            SpotterError: On another method, extra features, a stacker, or runs that cannot be blended.
        """
        if method not in self.methods or features or stacker:
            raise SpotterError("whale runs blend by --method mean (of their per-individual scores), without --features")
        out = check_output_file(out)
        check_output_file(out.with_suffix(".json"))
        out, record = ensemble_whale(runs, data_dir, out, tta=tta, reporter=reporter)
        write_json(out.with_suffix(".json"), record)
        return out, record

    def summary(self, record: dict) -> list[str]:
        """What the CLI prints about a blend."""
        lines = [f"oof MAP@5 {run}: {v['oof_map_at_5']:.5f} (threshold {v['threshold']:.4f})"
                 for run, v in record["metrics"]["inputs_oof"].items()]
        lines.append(f"oof MAP@5 ensemble (mean of scores): {record['metrics']['ensemble_oof']:.5f} "
                     f"(new_individual below probability {record['threshold']:.3f})")
        lines.append(f"new_individual first for {record['test_new_first_ratio']:.1%} of test photos")
        return lines
