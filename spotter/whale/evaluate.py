"""Score retrieval as Kaggle does: validation MAP@5 with a tuned new_individual threshold, and submissions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.data import encode_labels
from spotter.whale.retrieval import top_individuals
from spotter.whale.threshold import best_threshold, insert_new_individual, map_by_threshold, relabel_unseen


def evaluate_retrieval(
    gallery: np.ndarray,
    gallery_ids: Sequence[str],
    queries: np.ndarray,
    query_ids: Sequence[str],
    k: int = 100,
    **retrieval_kwargs,
) -> dict:
    """MAP@5 of validation queries against a train-side gallery, as one CV fold is scored.

    Query ids absent from the gallery count as `new_individual`; the threshold is the one that
    maximizes this fold's MAP@5 (so it is optimistic for the fold, and the value to carry to test).

    Args:
        gallery: Train-side embeddings (N, D).
        gallery_ids: Their individual ids.
        queries: Validation embeddings (Q, D).
        query_ids: Their true individual ids.
        k: Neighbours per query.
        **retrieval_kwargs: Passed to `top_individuals` (flips, head scores, ...).

    Returns:
        `map_at_5` (with the best threshold), `threshold`, `map_at_5_no_new` (never predicting new),
        `top1_known` (top-1 accuracy on queries whose id is in the gallery) and `new_ratio`.
    """
    labels, classes = encode_labels(list(gallery_ids))
    candidates = top_individuals(queries, gallery, labels, num_classes=len(classes), k=k, **retrieval_kwargs)
    names = candidates.names(classes)
    truths = relabel_unseen(list(query_ids), classes)
    threshold, best = best_threshold(names, candidates.scores, truths)
    below_all = float(np.min(candidates.scores[np.isfinite(candidates.scores)], initial=0.0)) - 1.0
    no_new = float(map_by_threshold(names, candidates.scores, truths, np.array([below_all]))[0])
    known = [t != NEW_INDIVIDUAL for t in truths]
    top1 = float(np.mean([n[0] == t for n, t, kn in zip(names, truths, known) if kn])) if any(known) else float("nan")
    return {
        "map_at_5": best,
        "threshold": threshold,
        "map_at_5_no_new": no_new,
        "top1_known": top1,
        "new_ratio": float(1 - np.mean(known)),
    }


def submission_frame(images: Sequence[str], predictions: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Kaggle's `image,predictions` table: five space-separated ids per image."""
    return pd.DataFrame({"image": list(images), "predictions": [" ".join(list(p)[:5]) for p in predictions]})


def predict_lists(
    gallery: np.ndarray,
    gallery_ids: Sequence[str],
    queries: np.ndarray,
    threshold: float | np.ndarray,
    k: int = 100,
    **retrieval_kwargs,
) -> list[list[str]]:
    """Five ids per query with `new_individual` inserted where scores fall below `threshold`."""
    labels, classes = encode_labels(list(gallery_ids))
    candidates = top_individuals(queries, gallery, labels, num_classes=len(classes), k=k, **retrieval_kwargs)
    return insert_new_individual(candidates.names(classes), candidates.scores, threshold)
