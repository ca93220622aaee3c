"""Cosine kNN retrieval of individuals with faiss: per-id score = max similarity, flips, head-logit mixing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

# faiss reports at INFO which CPU build it loaded; not worth a line on the user's terminal
logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as the contiguous float32 array faiss needs (a copy; zeros stay zero)."""
    import faiss

    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {x.shape}")
    faiss.normalize_L2(x)
    return x


class CosineIndex:
    """Exact inner-product index over L2-normalized embeddings: inner product = cosine similarity.

    Args:
        embeddings: Gallery embeddings (N, D); normalized here.
    """

    def __init__(self, embeddings: np.ndarray) -> None:
        import faiss

        gallery = l2_normalize(embeddings)
        self.size, self.dim = gallery.shape
        self.index = faiss.IndexFlatIP(self.dim)
        self.index.add(gallery)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar gallery rows per query, best first.

        faiss pads with id −1 (and similarity −3.4e38) when k exceeds the gallery; these results are
        cut off, so the arrays have min(k, gallery size) columns and only real neighbours.

        Returns:
            Similarities (Q, k') float32 and gallery positions (Q, k') int64.
        """
        queries = l2_normalize(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the gallery {self.dim}")
        k = max(1, min(int(k), self.size))
        sims, ids = self.index.search(queries, k)
        if (ids < 0).any():  # cannot happen with k <= size on a flat index; kept as a guard
            sims = np.where(ids < 0, -np.inf, sims)
            ids = np.where(ids < 0, -1, ids)
        return sims, ids


@dataclass
class Candidates:
    """Ranked candidate individuals per query.

    Attributes:
        labels: (Q, n) class positions, best first; −1 where a query has fewer than n candidates.
        scores: (Q, n) their scores; −inf where labels are −1.
    """

    labels: np.ndarray
    scores: np.ndarray

    def names(self, classes) -> list[list[str]]:
        """The candidates as id names, skipping −1 padding."""
        return [[classes[c] for c in row if c >= 0] for row in self.labels]


def individual_scores(
    sims: np.ndarray, neighbours: np.ndarray, gallery_labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """Dense (Q, num_classes) per-individual scores: the max similarity among each query's neighbours.

    Individuals absent from a query's neighbours get that query's lowest retrieved similarity: their
    true similarity is at most that, and −inf would let any mixing weight drown them.
    """
    q = len(sims)
    valid = neighbours >= 0
    fill = np.where(valid, sims, np.inf).min(axis=1)
    fill = np.where(np.isfinite(fill), fill, -1.0).astype(np.float32)
    scores = np.repeat(fill[:, None], num_classes, axis=1)
    rows = np.repeat(np.arange(q), sims.shape[1])[valid.ravel()]
    labels = gallery_labels[neighbours[valid]]
    np.maximum.at(scores, (rows, labels), sims[valid].astype(np.float32))
    return scores


def top_individuals(
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    num_classes: int | None = None,
    k: int = 100,
    top: int = 5,
    queries_flipped: np.ndarray | None = None,
    gallery_flipped: np.ndarray | None = None,
    head_scores: np.ndarray | None = None,
    head_weight: float = 0.5,
    batch_size: int = 1024,
) -> Candidates:
    """The `top` best individuals per query by cosine kNN, as in the 1st Happywhale solution.

    Args:
        queries: Query embeddings (Q, D).
        gallery: Train embeddings (N, D).
        gallery_labels: Class position (0..C−1) of each gallery row.
        num_classes: C (max label + 1 when not given).
        k: Neighbours retrieved per query (1st place: 500).
        top: Candidates returned per query.
        queries_flipped: Embeddings of the horizontally flipped queries; per-id scores of a query and
            its flip are averaged.
        gallery_flipped: Embeddings of the flipped train images, added to the gallery with the same labels.
        head_scores: (Q, C) cosine scores from the margin head (its `cosine`, or logits / s); mixed as
            (1 − head_weight)·knn + head_weight·head.
        head_weight: Weight of `head_scores` (1st place: 0.5).
        batch_size: Queries per dense (batch, C) score block, bounding memory.

    Returns:
        The candidates, best first.
    """
    gallery_labels = np.asarray(gallery_labels, dtype=np.int64)
    if len(gallery_labels) != len(gallery):
        raise ValueError(f"{len(gallery)} gallery rows but {len(gallery_labels)} labels")
    num_classes = int(gallery_labels.max()) + 1 if num_classes is None else num_classes
    if gallery_flipped is not None:
        gallery = np.concatenate([gallery, gallery_flipped])
        gallery_labels = np.concatenate([gallery_labels, gallery_labels])
    index = CosineIndex(gallery)
    top = min(top, num_classes)
    labels = np.empty((len(queries), top), np.int64)
    scores = np.empty((len(queries), top), np.float32)
    for start in range(0, len(queries), batch_size):
        part = slice(start, start + batch_size)
        dense = individual_scores(*index.search(queries[part], k), gallery_labels, num_classes)
        if queries_flipped is not None:
            dense = 0.5 * (dense + individual_scores(*index.search(queries_flipped[part], k), gallery_labels, num_classes))
        if head_scores is not None:
            dense = (1 - head_weight) * dense + head_weight * np.asarray(head_scores[part], np.float32)
        labels[part], scores[part] = best_of(dense, top)
    return Candidates(labels, scores)


def best_of(dense: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The `top` highest columns of each row of a dense (Q, C) score block: (positions, scores), best first."""
    best = np.argpartition(-dense, top - 1, axis=1)[:, :top]
    best_scores = np.take_along_axis(dense, best, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1), np.take_along_axis(best_scores, order, axis=1)
