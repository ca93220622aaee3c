"""Ranking individuals for whale queries: kNN over a gallery's views mixed with the id head, and the out-of-fold
ranking every calibration, prediction and ensemble of a run starts from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spotter.whale.config import WhaleConfig
from spotter.whale.data import fold_classes
from spotter.whale.retrieval import Candidates, top_individuals
from spotter.whale.threshold import relabel_unseen
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


