"""Ranking individuals for whale queries: kNN over a gallery's views mixed with the id head, and the out-of-fold
ranking every calibration, prediction and ensemble of a run starts from."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.config import WhaleConfig
from spotter.whale.data import fold_classes
from spotter.whale.local_features import (
    DEFAULT_SETTINGS,
    FeatureSettings,
    shortlist_inliers,
)
from spotter.whale.retrieval import Candidates, top_individuals
from spotter.whale.threshold import (
    RankedQueries,
    create_threshold_policy,
    insert_new_individual,
    map_by_threshold,
    relabel_unseen,
)
from spotter.whale.views import FoldModel, Views, subset


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
    """The species of each query's best candidate ("" when it has none or its species is unknown): the group of
    per-species thresholds."""
    return [species_of.get(n[0], "") if n else "" for n in names]




# ----------------------------------------------------------------------------------------------- re-ranking

INLIER_FUSION = "inlier_fusion.json"  # a run's fitted re-ranking of shortlists by local-feature inliers
SHORTLIST = 10  # candidates per query verified by local features (bench/whale_local_features.py)


@dataclass
class Reranked:
    """Shortlists after re-ranking, best first by the fused probability.

    Attributes:
        names: Candidate ids per query, re-ordered (without `new_individual`).
        scores: (Q, k) their global scores, in the new order.
        inliers: (Q, k) their inlier counts, in the new order.
        probabilities: (Q, k) their fused probabilities, best first (0 for padding).
        lists: The names with `new_individual` inserted by the refitted threshold.
        thresholds: The new_individual threshold of each query (a fused probability).
    """

    names: list[list[str]]
    scores: np.ndarray
    inliers: np.ndarray
    probabilities: np.ndarray
    lists: list[list[str]]
    thresholds: np.ndarray


@dataclass
class InlierFusion:
    """A shortlist re-ranked by local-feature inliers, on a calibrated probability scale.

    The probability that a candidate is the photo's individual is a logistic model over its global score and
    log(1 + inliers) (the first inliers say the most) with weights that are never negative (`monotone_logistic`),
    fitted on the run's out-of-fold shortlists, where the truth is known; the new_individual threshold policy is refitted on these fused probabilities, so
    "new" keeps its meaning on the new scale. Inliers are counted between the query and each candidate's catalogue
    photo most like it, with the `settings` the fusion was fitted with.

    Attributes:
        coef: (a, c, b): P = sigmoid(a·score + c·log(1 + inliers) + b).
        policy: The new_individual threshold policy, fitted on fused probabilities.
        shortlist: Candidates per query that are verified and re-ranked (the answers come from these).
        settings: The `spotter.whale.local_features.FeatureSettings` the inliers are counted with.
        record: What the fit found (JSON-ready).
    """

    coef: tuple[float, float, float]
    policy: object
    shortlist: int
    settings: object
    record: dict

    def probabilities(self, scores: np.ndarray, inliers: np.ndarray) -> np.ndarray:
        """Fused probabilities of candidates (any shape); −inf scores (padding) map to 0."""
        scores = np.asarray(scores, np.float64)
        finite = np.isfinite(scores)
        a, c, b = self.coef
        logit = a * np.where(finite, scores, 0.0) + c * np.log1p(np.asarray(inliers, np.float64)) + b
        return np.where(finite, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    def rerank(self, names: list[list[str]], scores: np.ndarray, inliers: np.ndarray,
               groups: Sequence[str] | None = None) -> Reranked:
        """Re-orders each query's shortlist by fused probability and inserts new_individual by the refitted threshold.

        Args:
            names: Candidate ids per query, by global score (the shortlist: best `shortlist` or more).
            scores: (Q, n) their global scores.
            inliers: (Q, n) their inlier counts.
            groups: A group per query for per-species thresholds (default: one group); the species of the
                re-ranked best candidate is the caller's to give.
        """
        return _rerank(self, names, scores, inliers, groups)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {**self.record, "coef": list(self.coef), "shortlist": self.shortlist, "settings": asdict(self.settings)}

    def save(self, path) -> None:
        from spotter.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path, retrieval) -> InlierFusion | None:
        """The fusion stored at `path` (None when there is none).

        Raises:
            SpotterError: If the file is unreadable or not a fusion.
        """
        import json
        from pathlib import Path

        path = Path(path)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            coef = tuple(float(v) for v in record.pop("coef"))
            shortlist = int(record.pop("shortlist"))
            settings = FeatureSettings(**record.pop("settings"))
            policy = create_threshold_policy(record["mode"], retrieval).restore(record)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SpotterError) as err:
            raise SpotterError(f"unreadable re-ranking ({type(err).__name__}: {err})", path) from None
        if len(coef) != 3:
            raise SpotterError("unreadable re-ranking: coef needs 3 numbers", path)
        return cls(coef, policy, shortlist, settings, record)


def _rerank(fusion: InlierFusion, names, scores, inliers, groups) -> Reranked:
    scores = np.asarray(scores, np.float64)
    inliers = np.asarray(inliers, np.float64)[:, : scores.shape[1]]
    names, scores, inliers, probabilities = _by_fused(fusion, names, scores, inliers)
    groups = list(groups) if groups is not None else [""] * len(names)
    thresholds = fusion.policy.thresholds(RankedQueries(names, probabilities, groups))
    thresholds = np.broadcast_to(np.asarray(thresholds, np.float64), (len(names),)).copy()
    return Reranked(names, scores, inliers.astype(np.int64), probabilities,
                    insert_new_individual(names, probabilities, thresholds), thresholds)


def _by_fused(fusion: InlierFusion, names, scores: np.ndarray, inliers: np.ndarray):
    """Shortlists sorted by fused probability (stable: equal probabilities keep the global order)."""
    probabilities = fusion.probabilities(scores, inliers)
    order = np.argsort(-probabilities, axis=1, kind="stable")
    width = scores.shape[1]
    names = [[row[j] for j in o if j < len(row)] for row, o in zip([list(n)[:width] for n in names], order)]
    take = functools.partial(np.take_along_axis, indices=order, axis=1)
    return names, take(scores), take(inliers), take(probabilities)


def fit_inlier_fusion(
    names: list[list[str]],
    scores: np.ndarray,
    inliers: np.ndarray,
    truths: Sequence[str],
    retrieval,
    settings,
    species_of: dict[str, str] | None = None,
) -> InlierFusion:
    """Fits the fused probability and its new_individual threshold on out-of-fold shortlists.

    Args:
        names: Each query's shortlist (k candidates by global score).
        scores: (Q, k) their global scores.
        inliers: (Q, k) their inlier counts.
        truths: True ids, `new_individual` where unseen on the train side.
        retrieval: The run's retrieval config (threshold policy and its settings).
        settings: The `FeatureSettings` the inliers were counted with.
        species_of: Species by id, for per-species thresholds (none: one group).

    Raises:
        SpotterError: When the shortlists hold no right (or no wrong) candidate, or neither signal tells them apart.
    """
    scores = np.asarray(scores, np.float64)
    inliers = np.asarray(inliers, np.float64)[:, : scores.shape[1]]
    rows, cols = np.nonzero(np.isfinite(scores))
    x = np.stack([scores[rows, cols], np.log1p(inliers[rows, cols])], axis=1)
    y = np.array([j < len(names[i]) and names[i][j] == truths[i] for i, j in zip(rows, cols)], dtype=bool)
    if y.all() or not y.any():
        raise SpotterError(f"cannot fit the re-ranking on {len(y)} out-of-fold candidates: they need both right "
                           "and wrong ones")
    a, c, b = monotone_logistic(x, y)
    if a == 0 and c == 0:
        raise SpotterError("cannot fit the re-ranking: neither a higher global score nor more inliers is likelier "
                           "right (an untrained run)")
    fusion = InlierFusion((a, c, b), None, scores.shape[1], settings, {})
    ranked, _, _, probabilities = _by_fused(fusion, names, scores, inliers)
    species_of = species_of or {}
    groups = [species_of.get(n[0], "") if n else "" for n in ranked]
    policy = create_threshold_policy(retrieval.threshold_mode, retrieval)
    record = {"mode": retrieval.threshold_mode, "candidates": len(y), "queries": len(truths)}
    queries = RankedQueries(ranked, probabilities, groups, list(truths))
    record.update(policy.fit(queries))
    record["oof_map_at_5_no_new"] = float(map_by_threshold(ranked, probabilities, truths, np.array([-1.0]))[0])
    lists = insert_new_individual(ranked, probabilities, policy.thresholds(queries))
    record["oof_new_first_ratio"] = float(np.mean([row[0] == NEW_INDIVIDUAL for row in lists]))
    fusion.policy, fusion.record = policy, record
    return fusion


def out_of_fold_inliers(
    fold_views: Sequence[tuple[FoldModel, Views]],
    rows: pd.DataFrame,
    oof: OutOfFold,
    vocab: list[str],
    boxes: dict | None,
    settings: FeatureSettings = DEFAULT_SETTINGS,
    reporter: Reporter = NullReporter(),
) -> np.ndarray:
    """(Q, k) inliers between each out-of-fold query (`rank_out_of_fold`, same order) and each of its candidates'
    train-side photo most like it (by the fold model's embeddings), each cropped by its box (`boxes` by image)."""
    labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
    queries, shortlists = [], []  # in rank_out_of_fold's order
    for fm, views in fold_views:
        if fm.fold < 0 or fm.train_mask.all():
            continue
        valid = np.flatnonzero(~fm.train_mask)
        part = oof.candidates.labels[len(queries) : len(queries) + len(valid)]
        queries += photo_places(rows.iloc[valid], boxes)
        shortlists += shortlist_photos(views.plain[valid], part, views.plain[fm.train_mask], labels[fm.train_mask],
                                       photo_places(rows[fm.train_mask], boxes))
    inliers = shortlist_inliers(queries, shortlists, settings, reporter)
    width = oof.candidates.labels.shape[1]
    return np.pad(inliers, ((0, 0), (0, width - inliers.shape[1])))


def photo_places(rows: pd.DataFrame, boxes: dict | None) -> list[tuple[str, tuple | None]]:
    """(path, crop box) of each row's photo (`boxes` by image, as a whale data folder gives them)."""
    boxes = boxes or {}
    return [(str(p), boxes.get(str(i))) for p, i in zip(rows["path"], rows["image"])]


def shortlist_photos(
    queries: np.ndarray,
    candidates: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    gallery_photos: Sequence[tuple],
) -> list[list[tuple]]:
    """For each query and each of its candidates, the candidate's gallery photo most like the query.

    Args:
        queries: (Q, D) plain embeddings of the queries.
        candidates: (Q, k) their candidates' labels (−1: padding, which gets (None, None)).
        gallery: (N, D) plain embeddings of the gallery.
        gallery_labels: (N,) label of each gallery photo.
        gallery_photos: (path, box) of each gallery photo.
    """
    similarity = queries @ gallery.T
    out = []
    for i, row in enumerate(candidates):
        chosen = []
        for label in row:
            photos = np.flatnonzero(gallery_labels == label) if label >= 0 else []
            chosen.append(gallery_photos[photos[np.argmax(similarity[i, photos])]] if len(photos) else (None, None))
        out.append(chosen)
    return out


def monotone_logistic(x: np.ndarray, y: np.ndarray, penalty: float = 0.01) -> tuple[float, ...]:
    """Logistic regression whose weights are never negative: (weights..., intercept) minimizing the log-loss plus
    `penalty`/2·|weights|² (scipy's bounded L-BFGS).

    A higher global score or more inliers never makes a candidate less likely, so the fused order agrees with
    each signal alone; where the data would pull a weight below 0 (the other signal already explains it), it
    stays at 0. The weak penalty (sklearn's C = 100, as the global calibration) keeps separable data finite.
    """
    from scipy.optimize import minimize

    x, target = np.asarray(x, np.float64), np.asarray(y, np.float64)
    features = x.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:features], theta[features]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.sum(np.logaddexp(0.0, z) - target * z) + 0.5 * penalty * w @ w
        return value, np.append(x.T @ (p - target) + penalty * w, np.sum(p - target))

    start = np.zeros(features + 1)
    bounds = [(0.0, None)] * features + [(None, None)]
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
    return tuple(float(v) for v in found.x)


def calibrate_inlier_fusion(
    run,
    fold_views: Sequence[tuple[FoldModel, Views]],
    rows: pd.DataFrame,
    cfg: WhaleConfig,
    boxes: dict | None,
    settings: FeatureSettings = DEFAULT_SETTINGS,
    shortlist: int = SHORTLIST,
    reporter: Reporter = NullReporter(),
) -> InlierFusion:
    """Fits a run's re-ranking on its out-of-fold shortlists (what its calibration was fitted on) and stores it as
    `INLIER_FUSION` in the run (when `run`, a `RunDir`, is given), where `Matcher.load` finds it.

    Raises:
        SpotterError: If the run has no out-of-fold photos, or nothing to fit (`fit_inlier_fusion`).
    """
    vocab = sorted(set(rows["individual_id"]))
    oof = rank_out_of_fold(fold_views, rows, vocab, cfg, top=shortlist)
    if oof is None:
        raise SpotterError("the run has no out-of-fold photos to fit its re-ranking on (a full fit only)")
    inliers = out_of_fold_inliers(fold_views, rows, oof, vocab, boxes, settings, reporter)
    fusion = fit_inlier_fusion(oof.candidates.names(vocab), oof.candidates.scores, inliers, oof.truths,
                               cfg.retrieval, settings, dict(zip(rows["individual_id"], rows["species"])))
    if run is not None:
        fusion.save(run.file(INLIER_FUSION))
    return fusion
