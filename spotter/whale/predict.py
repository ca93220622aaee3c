"""Whale prediction from a run folder: embed train (gallery) and test photos, kNN + head, new_individual.

Each fold model (rebuilt by `WhaleTask.restore_model` through the engine) embeds the train photos and their
mirror images once, through the engine's sharded, gathered predict path, so it runs under DDP like any task.
Out-of-fold queries (each fold's validation photos against that fold's train side) fit the run's
`new_individual` threshold policy, exactly as the fold metric counts ids unseen on the train side as new; test
photos (with a flip TTA) are then ranked against every train photo. Several fold models are combined by
concatenating their normalized embeddings (a cosine of such vectors is the mean of the models' cosines) and
averaging their head cosines. The calibration is saved in the run folder (also used by `whale index`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from spotter.engine.predict import fold_models, predict_dataset
from spotter.engine.rundir import FULL_FIT, RunDir, fold_name
from spotter.engine.runtime import Runtime
from spotter.engine.task import Submission
from spotter.errors import SpotterError
from spotter.io import write_csv, write_json
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.config import WhaleConfig
from spotter.whale.data import WhaleData, fold_classes, photo_dataset, read_whale_data
from spotter.whale.layout import TEST_CSV, TRAIN_CSV
from spotter.whale.model import WhaleNet
from spotter.whale.retrieval import Candidates, top_individuals
from spotter.whale.threshold import (
    RankedQueries,
    TargetNewRatio,
    best_threshold,
    create_threshold_policy,
    insert_new_individual,
    map_by_threshold,
    relabel_unseen,
)

CALIBRATION = "retrieval.json"  # the run's retrieval calibration, written by its last prediction
OOF_RETRIEVAL = "oof_retrieval.csv"  # the out-of-fold ranking the calibration was fitted on


@dataclass
class FoldModel:
    """One trained model of a run and the rows it was trained on."""

    name: str  # fold<k> or full
    fold: int  # −1 for the full fit
    model: WhaleNet
    train_mask: np.ndarray  # over the run's train rows: True where the row was on this model's train side


@dataclass
class Views:
    """Embeddings of a set of photos by one model: as they are and mirrored, plus head cosines."""

    plain: np.ndarray  # (N, D) L2-normalized
    flipped: np.ndarray | None
    head: np.ndarray  # (N, C) head cosines of the model's classes (mean over the flip TTA)
    class_index: np.ndarray  # (C,) vocabulary position of each head class

    def dense_head(self, vocab_size: int) -> np.ndarray:
        """Head cosines spread over the vocabulary (N, V); ids the head lacks get each photo's lowest cosine."""
        return dense_head(self.head, self.class_index, vocab_size)


def run_rows(run: RunDir, data: WhaleData) -> pd.DataFrame:
    """The run's train rows (train.csv of `data` in the run's folds order) with their fold.

    Raises:
        SpotterError: If the run was trained on photos that `data` lacks.
    """
    rows = run.read_folds("image").merge(data.train, on="image", how="left")
    missing = rows["individual_id"].isna().to_numpy()
    if missing.any():
        raise SpotterError(
            f"{int(missing.sum())} photo(s) the run trained on are not in {data.root / TRAIN_CSV}, "
            f"e.g. {rows['image'][missing].iloc[0]!r}: predict with the training data folder",
            run.folds_path,
        )
    return rows


def restore_fold_models(task, run: RunDir, cfg: WhaleConfig, rows: pd.DataFrame) -> list[FoldModel]:
    """Every trained fold's model, checked against the ids of the data it will rank.

    Raises:
        SpotterError: If the ids in the data differ from those a model was trained on.
    """
    vocab = sorted(set(rows["individual_id"]))
    lookup = {name: i for i, name in enumerate(vocab)}
    models = []
    for fold, model in fold_models(task, run, cfg):
        mask = np.ones(len(rows), bool) if fold == FULL_FIT else (rows["fold"] != fold).to_numpy()
        expected = [lookup[c] for c in fold_classes(rows[mask])]
        # the weights carry each class's vocabulary position: they must match the classes rebuilt from DATA
        if model.class_index.tolist() != expected:
            raise SpotterError(
                f"{fold_name(fold)}: the ids in train.csv differ from those the run was trained on", run.weights_path(fold)
            )
        models.append(FoldModel(fold_name(fold), fold, model, mask))
    return models


def embed_and_cosine(model: WhaleNet, x: torch.Tensor) -> torch.Tensor:
    """Per photo: its L2-normalized embedding, then its head's cosines (N, D + C), computed in float32."""
    raw = model.embed(x).float()
    with torch.autocast(x.device.type, enabled=False):
        return torch.cat([F.normalize(raw, dim=1), model.head.cosine(raw)], dim=1)


def embed_rows(
    model: WhaleNet,
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    flip: bool,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
    description: str = "embedding",
) -> Views:
    """Embeds the photos of `rows` (and, with `flip`, their mirror images) with one model."""
    index = model.class_index.cpu().numpy()
    dim = model.head.in_features
    parts = {}
    for mirrored in [False, True] if flip else [False]:
        dataset = photo_dataset(rows, cfg, False, boxes, flip=mirrored)
        if len(dataset):
            values = predict_dataset(
                model, dataset, runtime, embed_and_cosine, cfg.retrieval.batch_size, cfg.num_workers,
                reporter=reporter, description=description + (" (mirrored)" if mirrored else ""),
            )
        else:
            values = np.zeros((0, dim + len(index)), np.float32)
        parts[mirrored] = (values[:, :dim], values[:, dim:])
    head = np.mean([cos for _, cos in parts.values()], axis=0).astype(np.float32)
    return Views(parts[False][0], parts[True][0] if flip else None, head, index)


def dense_head(cos: np.ndarray, class_index: np.ndarray, vocab_size: int) -> np.ndarray:
    """Head cosines (N, C) of a fold's classes spread over the vocabulary (N, V).

    Ids the head lacks get each photo's lowest cosine, so mixing never favours them.
    """
    fill = cos.min(axis=1, keepdims=True) if cos.size else np.zeros((len(cos), 1), np.float32)
    dense = np.repeat(fill.astype(np.float32), vocab_size, axis=1)
    dense[:, class_index] = cos
    return dense


def rank(
    queries: Views,
    gallery: Views,
    gallery_labels: np.ndarray,
    vocab_size: int,
    cfg: WhaleConfig,
    head_weight: float | None = None,
    flips: bool | None = None,
    top: int = 5,
) -> Candidates:
    """The `top` best individuals per query: kNN over the gallery (and its flips), mixed with the head."""
    r = cfg.retrieval
    flips = r.flip_tta if flips is None else flips
    weight = r.head_weight if head_weight is None else head_weight
    return top_individuals(
        queries.plain,
        gallery.plain,
        gallery_labels,
        num_classes=vocab_size,
        k=r.k,
        top=top,
        queries_flipped=queries.flipped if flips else None,
        gallery_flipped=gallery.flipped if flips else None,
        head_scores=queries.dense_head(vocab_size) if weight > 0 else None,
        head_weight=weight,
    )


def subset(views: Views, mask: np.ndarray) -> Views:
    flipped = None if views.flipped is None else views.flipped[mask]
    return Views(views.plain[mask], flipped, views.head[mask], views.class_index)


def combine(parts: Sequence[Views], vocab_size: int) -> Views:
    """Views of several models as one: concatenated embeddings (mean cosine), mean head cosines."""
    if len(parts) == 1:
        return parts[0]
    scale = len(parts) ** -0.5
    plain = (np.concatenate([p.plain for p in parts], axis=1) * scale).astype(np.float32)
    flipped = None
    if parts[0].flipped is not None:
        flipped = (np.concatenate([p.flipped for p in parts], axis=1) * scale).astype(np.float32)
    head = np.mean([p.dense_head(vocab_size) for p in parts], axis=0)
    return Views(plain, flipped, head, np.arange(vocab_size))


@dataclass
class OutOfFold:
    """Each CV fold's validation photos ranked against that fold's train side.

    Attributes:
        images / species: The query photos and their own species.
        truths: Their ids, `new_individual` where absent from the fold's train side.
        candidates: (Q, top) ranked candidates (positions in the run's id vocabulary).
    """

    images: list[str]
    species: list[str]
    truths: list[str]
    candidates: Candidates


def rank_out_of_fold(
    fold_views: Sequence[tuple[FoldModel, Views]],
    rows: pd.DataFrame,
    vocab: list[str],
    cfg: WhaleConfig,
    top: int = 5,
    head_weight: float | None = None,
    flips: bool | None = None,
) -> OutOfFold | None:
    """The out-of-fold ranking of a run (predict and ensembles both use it); None for a full fit only."""
    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    images, species, truths, parts = [], [], [], []
    for fm, views in fold_views:
        if fm.fold < 0 or fm.train_mask.all():
            continue
        valid = ~fm.train_mask
        parts.append(rank(subset(views, valid), subset(views, fm.train_mask), labels[fm.train_mask], len(vocab), cfg,
                          head_weight=head_weight, flips=flips, top=top))
        images += list(rows["image"][valid])
        species += list(rows["species"][valid])
        truths += relabel_unseen(list(rows["individual_id"][valid]), fold_classes(rows[fm.train_mask]))
    if not parts:
        return None
    candidates = Candidates(stack_padded([p.labels for p in parts], -1), stack_padded([p.scores for p in parts]))
    return OutOfFold(images, species, truths, candidates)


def oof_frame(oof: OutOfFold, vocab: list[str]) -> pd.DataFrame:
    """Out-of-fold retrieval as a table: image, species, truth (new_individual if unseen), candidates, scores."""
    return pd.DataFrame(
        {
            "image": oof.images,
            "species": oof.species,
            "truth": oof.truths,
            "candidates": [" ".join(n) for n in oof.candidates.names(vocab)],
            "scores": [" ".join(f"{v:.6f}" for v in row[np.isfinite(row)]) for row in oof.candidates.scores],
        }
    )


def stack_padded(parts: list[np.ndarray], fill: float = -np.inf) -> np.ndarray:
    """Rows of (n_i, k_i) arrays stacked into (sum n_i, max k_i), shorter rows padded with `fill`."""
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=fill) for p in parts])


def best_candidate_species(names: list[list[str]], species_of: dict[str, str]) -> list[str]:
    """The species of each query's best candidate ("" when it has none): the group of per-species thresholds."""
    return [species_of[n[0]] if n else "" for n in names]


def calibrate(
    oof: OutOfFold | None, plain: OutOfFold | None, vocab: list[str], species_of: dict[str, str], cfg: WhaleConfig
):
    """The run's threshold policy fitted on its out-of-fold ranking, and the record of what it found.

    Whatever the policy, the record also holds the best out-of-fold threshold and MAP@5 (and never predicting
    new), and the plain-kNN threshold a catalogue uses.

    Returns:
        The fitted policy and the calibration record. A full fit (no out-of-fold photos) falls back to the
        target-ratio policy.
    """
    if oof is None:
        policy = TargetNewRatio(cfg.retrieval.new_ratio)
        return policy, {"mode": policy.name, "reason": "no out-of-fold predictions (full fit)", **policy.fit(None)}
    names, scores = oof.candidates.names(vocab), oof.candidates.scores
    ranked = RankedQueries(names, scores, best_candidate_species(names, species_of), oof.truths)
    threshold, score = best_threshold(names, scores, oof.truths)
    below = float(np.min(scores[np.isfinite(scores)], initial=0.0)) - 1.0
    knn_threshold, knn_score = best_threshold(plain.candidates.names(vocab), plain.candidates.scores, oof.truths)
    record = {
        "mode": cfg.retrieval.threshold_mode,
        "threshold": threshold,
        "oof_map_at_5": score,
        "oof_map_at_5_no_new": float(map_by_threshold(names, scores, oof.truths, np.array([below]))[0]),
        "oof_queries": len(oof.truths),
        "oof_new_ratio": float(np.mean([t == NEW_INDIVIDUAL for t in oof.truths])),
        "catalogue_threshold": knn_threshold,
        "oof_map_at_5_plain_knn": knn_score,
    }
    policy = create_threshold_policy(cfg.retrieval.threshold_mode, cfg.retrieval)
    record.update(policy.fit(ranked))
    return policy, record


def embed_run(
    models: list[FoldModel],
    cfg: WhaleConfig,
    data: WhaleData,
    rows: pd.DataFrame,
    runtime: Runtime,
    reporter: Reporter = NullReporter(),
) -> tuple[list[Views], list[Views]]:
    """Each fold model's views of the run's train photos and of DATA's test photos."""
    boxes = data.bboxes if cfg.use_bboxes else None
    flips = cfg.retrieval.flip_tta
    train_views, test_views = [], []
    for fm in models:
        train_views.append(embed_rows(fm.model, rows, cfg, boxes, flips, runtime, reporter, f"{fm.name}: train photos"))
        test_views.append(embed_rows(fm.model, data.test, cfg, boxes, flips, runtime, reporter, f"{fm.name}: test photos"))
    return train_views, test_views


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


def predict_test(task, run: RunDir, cfg: WhaleConfig, data_dir: Path, tta: bool, runtime: Runtime, reporter: Reporter):
    """`WhaleTask.predict_test`: the run's fold models rank DATA's test photos (see the module's docstring)."""
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
        On the main process, the submission with its calibration as the record (also written to the run
        folder when `run` is given); None on the others.
    """
    vocab = sorted(set(rows["individual_id"]))
    train_views, test_views = embed_run(models, cfg, data, rows, runtime, reporter)
    if not runtime.is_main:
        return None
    species_of = dict(zip(rows["individual_id"], rows["species"]))
    fold_views = list(zip(models, train_views))
    oof = rank_out_of_fold(fold_views, rows, vocab, cfg)
    plain = rank_out_of_fold(fold_views, rows, vocab, cfg, head_weight=0.0, flips=False) if oof else None
    policy, calibration = calibrate(oof, plain, vocab, species_of, cfg)
    if run is not None and oof is not None:
        write_csv(run.file(OOF_RETRIEVAL), oof_frame(oof, vocab))

    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    cands = rank(combine(test_views, len(vocab)), combine(train_views, len(vocab)), labels, len(vocab), cfg)
    names = cands.names(vocab)
    thresholds = policy.thresholds(RankedQueries(names, cands.scores, best_candidate_species(names, species_of)))
    if policy.name == TargetNewRatio.name:
        calibration["test_threshold"] = float(thresholds)
    predictions = insert_new_individual(names, cands.scores, thresholds)
    calibration["test_new_first_ratio"] = float(np.mean([p[0] == NEW_INDIVIDUAL for p in predictions]))
    calibration["models"] = [fm.name for fm in models]
    if run is not None:
        write_json(run.file(CALIBRATION), calibration)
    summary = []
    if "oof_map_at_5" in calibration:
        summary.append(f"out-of-fold MAP@5 {calibration['oof_map_at_5']:.4f} at threshold {calibration['threshold']:.4f}")
    summary.append(f"new_individual first for {calibration['test_new_first_ratio']:.1%} of test photos")
    return Submission(submission_frame(list(data.test["image"]), predictions), calibration, summary)


def read_calibration(run: RunDir) -> dict | None:
    """The run's calibration, written by its last prediction, or None."""
    path = run.file(CALIBRATION)
    return json.loads(path.read_text()) if path.is_file() else None
