"""Whale runs' calibration (when training ends) and test predictions.

When training ends, each fold model embeds the run's train photos (`spotter.whale.views`), each fold's validation
photos are ranked against that fold's train side (`spotter.whale.ranking`), and the run's calibration is fitted on
that ranking (`spotter.whale.calibration`): scores become probabilities and `new_individual` one threshold on
them, as the fold metric counts ids unseen on the train side as new. Prediction ranks DATA's test photos (with a
flip TTA) against every train photo and applies the stored calibration, so the decision is the one the run was
calibrated for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.engine.rundir import FULL_FIT, RunDir
from spotter.engine.runtime import Runtime
from spotter.engine.task import Submission
from spotter.errors import SpotterError
from spotter.io import write_csv
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.calibration import CALIBRATION, OOF_RETRIEVAL, RunCalibration, fit_run_calibration
from spotter.whale.config import WhaleConfig
from spotter.whale.data import WhaleData, read_whale_data
from spotter.whale.local_features import shortlist_inliers
from spotter.whale.layout import TEST_CSV
from spotter.whale.ranking import (
    INLIER_FUSION,
    InlierFusion,
    best_candidate_species,
    calibrate_inlier_fusion,
    oof_frame,
    photo_places,
    rank,
    rank_out_of_fold,
    shortlist_photos,
)
from spotter.whale.views import (
    FoldModel,
    answering_models,
    combine,
    embed_models,
    restore_fold_models,
    run_rows,
    train_views,
)


def submission_frame(images: Sequence[str], predictions: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Kaggle's `image,predictions` table: five space-separated ids per image."""
    return pd.DataFrame({"image": list(images), "predictions": [" ".join(list(p)[:5]) for p in predictions]})


def load_test_data(data_dir: str | Path) -> WhaleData:
    """DATA, read and checked, with at least one test photo.

    Raises:
        SpotterError: On bad data or no test photos.
    """
    data = read_whale_data(data_dir)
    if data.test.empty:
        raise SpotterError("no test photos listed", Path(data_dir) / TEST_CSV)
    return data


def boxes_of(data: WhaleData, cfg: WhaleConfig) -> dict | None:
    """The crop boxes every embedding of a run uses: the data's `bboxes.csv` when the config crops."""
    return data.bboxes if cfg.use_bboxes else None


def calibrate_run(
    task, run: RunDir, cfg: WhaleConfig, data_dir: Path, runtime: Runtime, reporter: Reporter = NullReporter()
) -> RunCalibration | None:
    """Fits and stores the run's calibration from its trained fold models (`WhaleTask.finish_training`).

    Returns:
        The calibration on the main process, None on the others.

    Raises:
        SpotterError: If the run has no out-of-fold photos (a full fit only).
    """
    data = read_whale_data(data_dir, require_test=False)
    rows = run_rows(run, data)
    models = restore_fold_models(task, run, cfg, rows, finished=False)
    if cfg.retrieval.predict_with == "full":  # the full fit ranks no out-of-fold photo: not embedded here
        models = [fm for fm in models if fm.fold != FULL_FIT] or models
    return calibrate_models(run, models, rows, cfg, boxes_of(data, cfg), runtime, reporter)


def calibrate_models(
    run: RunDir | None,
    models: list[FoldModel],
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
    gallery=None,
) -> RunCalibration | None:
    """The calibration of given fold models (a run's, or untrained ones for a baseline); stored when `run` is given."""
    gallery = gallery if gallery is not None else _gallery(run, models, rows, cfg, boxes, runtime, reporter)
    if not runtime.is_main:
        return None
    vocab = sorted(set(rows["individual_id"]))
    fold_views = list(zip(models, gallery))
    oof = rank_out_of_fold(fold_views, rows, vocab, cfg)
    if oof is None:
        raise SpotterError("the run has no out-of-fold photos to calibrate its scores on (a full fit only)")
    plain = rank_out_of_fold(fold_views, rows, vocab, cfg, head_weight=0.0, flips=False)
    calibration = fit_run_calibration(oof, plain, vocab, dict(zip(rows["individual_id"], rows["species"])),
                                      cfg.retrieval)
    if run is not None:
        fusion = fit_fusion(run, fold_views, rows, cfg, boxes, reporter)
        calibration.record["local_features"] = (
            {"shortlist": fusion.shortlist, "oof_map_at_5": fusion.record.get("oof_map_at_5")}
            if isinstance(fusion, InlierFusion) else {"off": fusion}
        )
        frame = oof_frame(oof, vocab)
        probabilities = calibration.scores(oof.candidates.scores)
        frame["probabilities"] = [" ".join(f"{v:.6f}" for v in row[np.isfinite(raw)])
                                  for row, raw in zip(probabilities, oof.candidates.scores)]
        write_csv(run.file(OOF_RETRIEVAL), frame)
        calibration.save(run.file(CALIBRATION))
    return calibration


def fit_fusion(run: RunDir, fold_views, rows: pd.DataFrame, cfg: WhaleConfig, boxes, reporter) -> InlierFusion | str:
    """The run's re-ranking by local-feature inliers, fitted and stored when the config asks for it; otherwise (or
    when there is nothing to fit, e.g. an untrained run) the reason it is off, and no stale fusion file is left."""
    run.file(INLIER_FUSION).unlink(missing_ok=True)
    if not cfg.retrieval.local_features:
        return "retrieval.local_features is false"
    try:
        return calibrate_inlier_fusion(run, fold_views, rows, cfg, boxes, shortlist=cfg.retrieval.shortlist,
                                       reporter=reporter)
    except SpotterError as err:
        return str(err)


def _gallery(run, models, rows, cfg, boxes, runtime, reporter):
    if run is None:
        return embed_models(models, rows, cfg, boxes, runtime, reporter, "train photos")
    return train_views(run, models, rows, cfg, boxes, runtime, reporter)


def load_calibration(run: RunDir, cfg: WhaleConfig) -> RunCalibration | None:
    """The run's stored calibration, or None (a run trained before calibrations were stored)."""
    return RunCalibration.load(run.file(CALIBRATION), cfg.retrieval)


def predict_test(task, run: RunDir, cfg: WhaleConfig, data_dir: Path, tta: bool, runtime: Runtime, reporter: Reporter):
    """`WhaleTask.predict_test`: the run's fold models rank DATA's test photos, its calibration decides."""
    if not tta:
        cfg.retrieval.flip_tta = False
    data = load_test_data(data_dir)
    rows = run_rows(run, data)
    models = restore_fold_models(task, run, cfg, rows)
    return predict_with_models(models, cfg, data, rows, runtime, reporter, run)


def predict_with_models(
    models: list[FoldModel],
    cfg: WhaleConfig,
    data: WhaleData,
    rows: pd.DataFrame,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
    run: RunDir | None = None,
) -> Submission | None:
    """The prediction pipeline for given models (a run's, or untrained ones for a baseline).

    Returns:
        On the main process, the submission with the calibration's record and what the test set got; None on
        the others.
    """
    boxes = boxes_of(data, cfg)
    answering = answering_models(models, cfg)
    gallery = _gallery(run, answering, rows, cfg, boxes, runtime, reporter)
    calibration = load_calibration(run, cfg) if run is not None and cfg.retrieval.flip_tta else None
    fusion = None
    if calibration is None:  # untrained models, `--no-tta` (other scores than calibrated), or an older run
        calibration = calibrate_models(None, models, rows, cfg, boxes, runtime, reporter,
                                       gallery=gallery if answering == list(models) else None)
    elif cfg.retrieval.local_features:
        fusion = InlierFusion.load(run.file(INLIER_FUSION), cfg.retrieval)
    queries = embed_models(answering, data.test, cfg, boxes, runtime, reporter, "test photos")
    if not runtime.is_main:
        return None
    vocab = sorted(set(rows["individual_id"]))
    species_of = dict(zip(rows["individual_id"], rows["species"]))
    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    combined_gallery = combine(gallery, len(vocab))
    combined_queries = combine(queries, len(vocab))
    width = max(5, fusion.shortlist) if fusion is not None else 5
    cands = rank(combined_queries, combined_gallery, labels, len(vocab), cfg, top=width)
    names = cands.names(vocab)
    record = dict(calibration.record)
    if fusion is None:
        groups = best_candidate_species(names, species_of)
        _, predictions, thresholds = calibration.decide(names, cands.scores, groups)
    else:  # the shortlist verified by local features, decided on the fusion's calibrated scale
        shortlists = shortlist_photos(combined_queries.plain, cands.labels, combined_gallery.plain, labels,
                                      photo_places(rows, boxes))
        inliers = shortlist_inliers(photo_places(data.test, boxes), shortlists, fusion.settings, reporter)
        reranked = fusion.rerank(names, cands.scores, inliers)
        groups = best_candidate_species(reranked.names, species_of)
        reranked = fusion.rerank(names, cands.scores, inliers, groups)
        predictions, thresholds = reranked.lists, reranked.thresholds
        record["threshold"] = float(np.median(thresholds))
        record["oof_map_at_5"] = fusion.record.get("oof_map_at_5", record["oof_map_at_5"])
        record["oof_new_first_ratio"] = fusion.record.get("oof_new_first_ratio", record["oof_new_first_ratio"])
    if (fusion.policy if fusion is not None else calibration.policy).per_batch:
        record["test_threshold"] = float(np.median(thresholds))
    record["test_new_first_ratio"] = float(np.mean([p[0] == NEW_INDIVIDUAL for p in predictions]))
    record["models"] = [fm.name for fm in answering]
    how = "re-ranked by local features" if fusion is not None else "global score"
    summary = [
        f"out-of-fold MAP@5 {record['oof_map_at_5']:.4f} at new_individual probability {record['threshold']:.3f} "
        f"({how})",
        f"new_individual first for {record['test_new_first_ratio']:.1%} of test photos "
        f"({record['oof_new_first_ratio']:.1%} of out-of-fold photos at calibration)",
    ]
    return Submission(submission_frame(list(data.test["image"]), predictions), record, summary)
