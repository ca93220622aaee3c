"""Whale prediction from a run folder: embed train (gallery) and test photos, kNN + head, new_individual.

For each fold model the train photos (and their mirror images) are embedded once. Out-of-fold queries
(each fold's validation photos against that fold's train side) tune the `new_individual` threshold,
exactly as the fold metric counts ids unseen on the train side as new; test photos (with a flip TTA) are
then ranked against every train photo. Several fold models are combined by concatenating their
normalized embeddings (a cosine of such vectors is the mean of the models' cosines) and averaging their
head cosines. The calibration is saved as `retrieval.json` in the run folder (also used by `whale index`).
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

from spotter.errors import SpotterError
from spotter.io import read_csv, write_csv, write_json
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.config import WhaleConfig
from spotter.whale.data import WhaleData, read_whale_data
from spotter.whale.evaluate import submission_frame
from spotter.whale.model import Embedder, WhaleNet
from spotter.whale.retrieval import Candidates, top_individuals
from spotter.whale.task import build_model, fold_classes, photo_dataset
from spotter.whale.threshold import (
    best_threshold,
    best_thresholds_by_group,
    insert_new_individual,
    map_by_threshold,
    relabel_unseen,
    threshold_for_new_ratio,
    thresholds_for,
)

CALIBRATION = "retrieval.json"
OOF_RETRIEVAL = "oof_retrieval.csv"


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


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_run(run_dir: str | Path) -> WhaleConfig:
    """The run's resolved config."""
    from spotter.config import load_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise SpotterError("not a run folder (no config.yaml)", run_dir)
    return load_config(WhaleConfig, path)


def run_rows(run_dir: str | Path, data: WhaleData) -> pd.DataFrame:
    """The run's train rows (train.csv of `data` in `folds.csv` order) with their fold.

    Raises:
        SpotterError: If the run was trained on photos that `data` lacks.
    """
    folds = read_csv(Path(run_dir) / "folds.csv", required=["image", "fold"], dtype={"image": str})
    rows = folds.merge(data.train, on="image", how="left")
    missing = rows["individual_id"].isna().to_numpy()
    if missing.any():
        raise SpotterError(
            f"{int(missing.sum())} photo(s) the run trained on are not in {data.root}/train.csv, "
            f"e.g. {rows['image'][missing].iloc[0]!r}: predict with the training data folder",
            Path(run_dir) / "folds.csv",
        )
    return rows


def load_fold_models(run_dir: str | Path, cfg: WhaleConfig, rows: pd.DataFrame) -> list[FoldModel]:
    """Every fold model of the run with its best weights."""
    from spotter.engine.predict import fold_weights, load_weights

    vocab = sorted(set(rows["individual_id"]))
    models = []
    for path in fold_weights(run_dir):
        name = path.parent.name
        fold = -1 if name == "full" else int(name.removeprefix("fold"))
        mask = np.ones(len(rows), bool) if fold == -1 else (rows["fold"] != fold).to_numpy()
        model = build_model(cfg, rows[mask], vocab, pretrained=False)
        expected = model.class_index.clone()
        load_weights(model, path)
        # the weights carry each class's vocabulary position: they must match the classes rebuilt from DATA
        if not torch.equal(model.class_index, expected):
            raise SpotterError(f"{name}: the ids in train.csv differ from those the run was trained on", path)
        models.append(FoldModel(name, fold, model.eval(), mask))
    return models


@torch.no_grad()
def embed_rows(
    model: WhaleNet,
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    flip: bool,
    reporter: Reporter = NullReporter(),
    description: str = "embedding",
) -> Views:
    """Embeds the photos of `rows` (and, with `flip`, their mirror images) with one model."""
    dev = device()
    model = model.to(dev).eval()
    index = model.class_index.cpu().numpy()
    passes = [False, True] if flip else [False]
    plain, flipped, heads = None, None, []
    for mirrored in passes:
        dataset = photo_dataset(rows, cfg, False, boxes, flip=mirrored)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.retrieval.batch_size, num_workers=cfg.num_workers)
        embs, cos = [], []
        label = description + (" (mirrored)" if mirrored else "")
        for batch in reporter.track(loader, len(loader), label):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                raw = model.embed(batch["input"].to(dev))
            raw = raw.float()
            embs.append(F.normalize(raw, dim=1).cpu().numpy())
            cos.append(model.head.cosine(raw).cpu().numpy())
        emb = np.concatenate(embs) if embs else np.zeros((0, model.head.in_features), np.float32)
        heads.append(np.concatenate(cos) if cos else np.zeros((0, len(index)), np.float32))
        if mirrored:
            flipped = emb
        else:
            plain = emb
    return Views(plain, flipped, np.mean(heads, axis=0).astype(np.float32), index)


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
    """Out-of-fold retrieval results of a run: what the thresholds are tuned on."""

    images: list[str]
    species: list[str]  # the queries' own species
    names: list[list[str]]
    scores: np.ndarray
    truths: list[str]
    groups: list[str]  # species of each query's best candidate
    knn_names: list[list[str]]  # plain kNN (no flips, no head), as the catalogue matcher ranks
    knn_scores: np.ndarray


def out_of_fold(
    fold_views: list[tuple[FoldModel, Views]], rows: pd.DataFrame, vocab: list[str], cfg: WhaleConfig
) -> OutOfFold | None:
    """Each CV fold's validation photos ranked against its train side; None for a full fit only."""
    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    species_of = dict(zip(rows["individual_id"], rows["species"]))
    images, species, names, scores, truths, knn_names, knn_scores = [], [], [], [], [], [], []
    for fm, views in fold_views:
        if fm.fold < 0 or fm.train_mask.all():
            continue
        valid = ~fm.train_mask
        gallery, queries = subset(views, fm.train_mask), subset(views, valid)
        cands = rank(queries, gallery, labels[fm.train_mask], len(vocab), cfg)
        names += cands.names(vocab)
        scores.append(cands.scores)
        images += list(rows["image"][valid])
        species += list(rows["species"][valid])
        truths += relabel_unseen(list(rows["individual_id"][valid]), fold_classes(rows[fm.train_mask]))
        plain = rank(queries, gallery, labels[fm.train_mask], len(vocab), cfg, head_weight=0.0, flips=False)
        knn_names += plain.names(vocab)
        knn_scores.append(plain.scores)
    if not names:
        return None
    groups = [species_of[n[0]] if n else "" for n in names]
    return OutOfFold(images, species, names, stack_padded(scores), truths, groups, knn_names, stack_padded(knn_scores))


def oof_frame(oof: OutOfFold) -> pd.DataFrame:
    """Out-of-fold retrieval as a table: image, species, truth (new_individual if unseen), candidates, scores."""
    return pd.DataFrame(
        {
            "image": oof.images,
            "species": oof.species,
            "truth": oof.truths,
            "candidates": [" ".join(n) for n in oof.names],
            "scores": [" ".join(f"{v:.6f}" for v in row[np.isfinite(row)]) for row in oof.scores],
        }
    )


def stack_padded(parts: list[np.ndarray], fill: float = -np.inf) -> np.ndarray:
    """Rows of (n_i, k_i) arrays stacked into (sum n_i, max k_i), shorter rows padded with `fill`."""
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=fill) for p in parts])


def calibrate(oof: OutOfFold | None, cfg: WhaleConfig) -> dict:
    """Thresholds from out-of-fold results (`threshold_mode: best`), with the OOF MAP@5 they give."""
    if oof is None:
        return {"mode": "ratio", "reason": "no out-of-fold predictions (full fit)"}
    threshold, score = best_threshold(oof.names, oof.scores, oof.truths)
    below = float(np.min(oof.scores[np.isfinite(oof.scores)], initial=0.0)) - 1.0
    no_new = float(map_by_threshold(oof.names, oof.scores, oof.truths, np.array([below]))[0])
    knn_threshold, knn_score = best_threshold(oof.knn_names, oof.knn_scores, oof.truths)
    result = {
        "mode": cfg.retrieval.threshold_mode,
        "threshold": threshold,
        "oof_map_at_5": score,
        "oof_map_at_5_no_new": no_new,
        "oof_queries": len(oof.truths),
        "oof_new_ratio": float(np.mean([t == NEW_INDIVIDUAL for t in oof.truths])),
        "catalogue_threshold": knn_threshold,
        "oof_map_at_5_plain_knn": knn_score,
    }
    if cfg.retrieval.per_species:
        table, overall = best_thresholds_by_group(
            oof.names, oof.scores, oof.truths, oof.groups, cfg.retrieval.min_species_queries
        )
        per = thresholds_for(oof.groups, table, overall)
        inserted = insert_new_individual(oof.names, oof.scores, per)
        from spotter.metrics import map_at_5

        result["species_thresholds"] = {str(k): float(v) for k, v in table.items()}
        result["oof_map_at_5_per_species"] = map_at_5(oof.truths, inserted)
    return result


def predict_submission(
    run_dir: str | Path,
    data_dir: str | Path,
    out: str | Path,
    tta: bool = True,
    reporter: Reporter = NullReporter(),
) -> tuple[Path, dict]:
    """Writes `image,predictions` for DATA's test photos with every fold model of a run.

    Args:
        run_dir: A finished whale run.
        data_dir: The data folder it was trained on (its train photos are the gallery).
        out: Submission CSV.
        tta: Flip TTA (and flipped gallery copies), when the config enables it.
        reporter: Progress reporting.

    Returns:
        The submission path and the calibration (thresholds, out-of-fold MAP@5), also saved as
        `retrieval.json` in the run folder.
    """
    cfg = load_run(run_dir)
    if not tta:
        cfg.retrieval.flip_tta = False
    data = read_whale_data(data_dir)
    if data.test.empty:
        raise SpotterError("no test photos listed", Path(data_dir) / "sample_submission.csv")
    rows = run_rows(run_dir, data)
    models = load_fold_models(run_dir, cfg, rows)
    return predict_with_models(models, cfg, data, rows, out, reporter, run_dir)


def embed_run(
    models: list[FoldModel], cfg: WhaleConfig, data: WhaleData, rows: pd.DataFrame, reporter: Reporter = NullReporter()
) -> tuple[list[Views], list[Views]]:
    """Each fold model's views of the run's train photos and of DATA's test photos."""
    boxes = data.bboxes if cfg.use_bboxes else None
    flips = cfg.retrieval.flip_tta
    train_views, test_views = [], []
    for fm in models:
        train_views.append(embed_rows(fm.model, rows, cfg, boxes, flips, reporter, f"{fm.name}: train photos"))
        test_views.append(embed_rows(fm.model, data.test, cfg, boxes, flips, reporter, f"{fm.name}: test photos"))
    return train_views, test_views


def predict_with_models(
    models: list[FoldModel],
    cfg: WhaleConfig,
    data: WhaleData,
    rows: pd.DataFrame,
    out: str | Path,
    reporter: Reporter = NullReporter(),
    run_dir: str | Path | None = None,
) -> tuple[Path, dict]:
    """The prediction pipeline for given models (a run's, or untrained ones for a baseline)."""
    vocab = sorted(set(rows["individual_id"]))
    train_views, test_views = embed_run(models, cfg, data, rows, reporter)
    oof = out_of_fold(list(zip(models, train_views)), rows, vocab, cfg)
    calibration = calibrate(oof, cfg)
    if run_dir is not None and oof is not None:
        write_csv(Path(run_dir) / OOF_RETRIEVAL, oof_frame(oof))

    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    cands = rank(combine(test_views, len(vocab)), combine(train_views, len(vocab)), labels, len(vocab), cfg)
    names = cands.names(vocab)
    species_of = dict(zip(rows["individual_id"], rows["species"]))
    if calibration["mode"] == "ratio" or "threshold" not in calibration:
        threshold = threshold_for_new_ratio(cands.scores, cfg.retrieval.new_ratio)
        calibration["test_threshold"] = threshold
    elif "species_thresholds" in calibration:
        groups = [species_of[n[0]] if n else "" for n in names]
        threshold = thresholds_for(groups, calibration["species_thresholds"], calibration["threshold"])
    else:
        threshold = calibration["threshold"]
    predictions = insert_new_individual(names, cands.scores, threshold)
    calibration["test_new_first_ratio"] = float(np.mean([p[0] == NEW_INDIVIDUAL for p in predictions]))
    calibration["models"] = [fm.name for fm in models]
    out = Path(out)
    write_csv(out, submission_frame(list(data.test["image"]), predictions))
    if run_dir is not None:
        write_json(Path(run_dir) / CALIBRATION, calibration)
    return out, calibration


def read_calibration(run_dir: str | Path) -> dict | None:
    """The run's `retrieval.json`, written by its last prediction, or None."""
    path = Path(run_dir) / CALIBRATION
    return json.loads(path.read_text()) if path.is_file() else None


def run_embedder(run_dir: str | Path, flip: bool = False):
    """An `EmbedFn` (photos → (N, D)) of the run's fold models together, and its metadata.

    Builds each model from the saved weights alone: the head sizes are read from the weights file.
    """
    from safetensors import safe_open

    from spotter.engine.predict import fold_weights, load_weights
    from spotter.whale.embed import create_embedder
    from spotter.whale.task import normalization

    cfg = load_run(run_dir)
    models = []
    for path in fold_weights(run_dir):
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            classes = handle.get_slice("class_index").get_shape()[0]
            species = handle.get_slice("species_head.margins").get_shape()[0] if "species_head.margins" in keys else None
        model = WhaleNet(cfg, [1] * classes, None if species is None else [1] * species, pretrained=False)
        models.append(load_weights(model, path).eval())
    mean, std = normalization(cfg.model.backbone)
    embedder = Embedder(models)
    embed = create_embedder(embedder, cfg.image_size, mean=mean, std=std, flip=flip, device=device())
    meta = {"run": str(Path(run_dir).resolve()), "backbone": cfg.model.backbone, "image_size": cfg.image_size,
            "models": len(models)}
    return embed, meta
