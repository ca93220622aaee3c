"""The `new_individual` label: where to insert it in a ranked list, and how to choose its score threshold."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from spotter.metrics import NEW_INDIVIDUAL, map_at_5

TOP = 5


def insert_new_individual(
    candidates: Sequence[Sequence[str]], scores: np.ndarray, threshold: float | np.ndarray, top: int = TOP
) -> list[list[str]]:
    """Puts `new_individual` at the rank where a query's scores first fall below the threshold.

    Args:
        candidates: Ranked ids per query, best first.
        scores: (Q, n) their scores, best first (−inf for padding).
        threshold: One threshold, or one per query (e.g. per species).
        top: Length of the returned lists.

    Returns:
        Ranked ids with `new_individual` inserted (absent when the first `top` scores all clear the threshold).
    """
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(candidates),))
    out = []
    for names, row, thr in zip(candidates, scores, thresholds):
        names = [n for n in list(names)[:top] if n != NEW_INDIVIDUAL]
        pos = int(np.sum(row[: len(names)] >= thr))  # scores are sorted: the leading run clears it
        out.append((names[:pos] + [NEW_INDIVIDUAL] + names[pos:])[:top])
    return out


def relabel_unseen(truths: Sequence[str], known: Sequence[str] | set[str]) -> list[str]:
    """Validation truths with ids absent from the train side replaced by `new_individual`."""
    known = set(known)
    return [t if t in known else NEW_INDIVIDUAL for t in truths]


def map_by_threshold(
    candidates: Sequence[Sequence[str]], scores: np.ndarray, truths: Sequence[str], thresholds: np.ndarray, top: int = TOP
) -> np.ndarray:
    """Exact MAP@5 after `insert_new_individual` for each of many thresholds, without re-ranking lists.

    A query's score depends only on how many of its scores clear the threshold (the insertion rank),
    so it is computed in closed form per threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)[:, :top]
    thresholds = np.asarray(thresholds, dtype=np.float64)
    is_new = np.array([t == NEW_INDIVIDUAL for t in truths])
    # 1-based rank of the truth among the candidates (new_individual excluded), 0 when absent
    rank = np.zeros(len(truths), dtype=np.int64)
    for i, (names, truth) in enumerate(zip(candidates, truths)):
        names = [n for n in list(names)[:top] if n != NEW_INDIVIDUAL]
        if truth in names:
            rank[i] = names.index(truth) + 1
    counts = np.array([len([n for n in list(c)[:top] if n != NEW_INDIVIDUAL]) for c in candidates])
    column = np.arange(scores.shape[1])[None, :]
    scores = np.where(column < counts[:, None], scores, -np.inf)
    result = np.empty(len(thresholds))
    for start in range(0, len(thresholds), 256):
        thr = thresholds[start : start + 256]
        # (T, Q) insertion rank, 0-based; padding never counts, even against a −inf threshold
        pos = np.minimum((scores[None, :, :] >= thr[:, None, None]).sum(axis=2), counts[None, :])
        new_ap = np.where(pos < top, 1.0 / (pos + 1), 0.0)
        shifted = np.where(rank[None, :] + 1 <= top, 1.0 / (rank[None, :] + 1), 0.0)
        known_ap = np.where(rank[None, :] <= pos, 1.0 / np.maximum(rank[None, :], 1), shifted)
        known_ap = np.where(rank[None, :] == 0, 0.0, known_ap)
        result[start : start + 256] = np.where(is_new[None, :], new_ap, known_ap).mean(axis=1)
    return result


def candidate_thresholds(scores: np.ndarray, max_count: int = 2000) -> np.ndarray:
    """Midpoints between consecutive distinct scores, plus one above all and one below all.

    Every threshold in one interval gives the same ranks, so the midpoint is the robust choice.
    """
    values = np.unique(np.asarray(scores, dtype=np.float64)[np.isfinite(scores)])
    if len(values) > max_count:
        values = np.unique(np.quantile(values, np.linspace(0, 1, max_count)))
    if not len(values):
        return np.array([0.0])
    mids = (values[1:] + values[:-1]) / 2
    return np.concatenate([[values[0] - 1.0], mids, [values[-1] + 1.0]])


def best_threshold(
    candidates: Sequence[Sequence[str]], scores: np.ndarray, truths: Sequence[str], top: int = TOP
) -> tuple[float, float]:
    """The threshold maximizing MAP@5 on validation queries.

    Args:
        candidates: Ranked ids per validation query (without `new_individual`).
        scores: (Q, n) their scores, best first.
        truths: True ids, with ids unseen on the train side already `new_individual` (`relabel_unseen`).
        top: Ranks scored.

    Returns:
        The threshold and its MAP@5 (ties go to the lowest threshold: fewer `new_individual` guesses).
    """
    thresholds = candidate_thresholds(np.asarray(scores)[:, :top])
    maps = map_by_threshold(candidates, scores, truths, thresholds, top)
    best = int(np.argmax(maps))
    return float(thresholds[best]), float(maps[best])


def best_thresholds_by_group(
    candidates: Sequence[Sequence[str]],
    scores: np.ndarray,
    truths: Sequence[str],
    groups: Sequence[Hashable],
    min_queries: int = 20,
    top: int = TOP,
) -> tuple[dict[Hashable, float], float]:
    """A threshold per group (e.g. species), each maximizing its own queries' MAP@5.

    MAP@5 is a mean over queries, so tuning each group on its own queries maximizes the total.
    Groups with fewer than `min_queries` validation queries use the global threshold.

    Returns:
        Threshold by group, and the global threshold (for groups not in the table).
    """
    scores = np.asarray(scores)
    groups = np.asarray(groups, dtype=object)
    overall, _ = best_threshold(candidates, scores, truths, top)
    table = {}
    for group in dict.fromkeys(groups.tolist()):
        rows = np.flatnonzero(groups == group)
        if len(rows) < min_queries:
            table[group] = overall
            continue
        table[group], _ = best_threshold([candidates[i] for i in rows], scores[rows], [truths[i] for i in rows], top)
    return table, overall


def thresholds_for(groups: Sequence[Hashable], table: dict[Hashable, float], default: float) -> np.ndarray:
    """Per-query thresholds from a group table (`best_thresholds_by_group`)."""
    return np.array([table.get(g, default) for g in groups], dtype=np.float64)


def threshold_for_new_ratio(scores: np.ndarray, ratio: float, iterations: int = 60) -> float:
    """Binary search for the threshold that puts `new_individual` first for `ratio` of the queries.

    A query gets `new_individual` first when its best score is below the threshold (1st Happywhale
    solution: 16.5% of test images).

    Raises:
        ValueError: If ratio is outside [0, 1].
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    best = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)[:, 0]
    low, high = float(best.min()) - 1.0, float(best.max()) + 1.0  # ratios 0 and 1
    for _ in range(iterations):
        mid = (low + high) / 2
        if np.mean(best < mid) < ratio:
            low = mid
        else:
            high = mid
    return high


# ----------------------------------------------------------------------------------------------- policies


@dataclass
class RankedQueries:
    """Ranked candidates of some query photos: what a threshold policy is fitted on and applied to.

    Attributes:
        names: Candidate ids per query, best first (without `new_individual`).
        scores: (Q, n) their scores, best first (−inf padding).
        groups: A group per query (the species of its best candidate), for per-group thresholds.
        truths: True ids (`new_individual` where unseen on the train side), for fitting; None for test photos.
    """

    names: list[list[str]]
    scores: np.ndarray
    groups: list[str]
    truths: list[str] | None = None


class BestMap:
    """One threshold: the one with the best out-of-fold MAP@5."""

    name = "best"
    per_batch = False

    def __init__(self) -> None:
        self.threshold: float | None = None

    def fit(self, oof: RankedQueries) -> dict:
        self.threshold, score = best_threshold(oof.names, oof.scores, oof.truths)
        return {"threshold": self.threshold, "oof_map_at_5": score}

    def restore(self, record: dict) -> BestMap:
        """The policy as `fit` left it, from the record it returned."""
        self.threshold = float(record["threshold"])
        return self

    def thresholds(self, queries: RankedQueries) -> float:
        return self.threshold


class PerSpecies:
    """A threshold per species (of the best candidate), each tuned on its own out-of-fold queries; species with
    fewer than `min_queries` of them use the overall best threshold (Happywhale 4th, 6th, 10th places)."""

    name = "per_species"
    per_batch = False

    def __init__(self, min_queries: int = 20) -> None:
        self.min_queries = min_queries
        self.table: dict = {}
        self.overall: float | None = None

    def fit(self, oof: RankedQueries) -> dict:
        self.table, self.overall = best_thresholds_by_group(
            oof.names, oof.scores, oof.truths, oof.groups, self.min_queries
        )
        inserted = insert_new_individual(oof.names, oof.scores, self.thresholds(oof))
        return {
            "threshold": float(self.overall),
            "species_thresholds": {str(k): float(v) for k, v in self.table.items()},
            "oof_map_at_5_per_species": map_at_5(oof.truths, inserted),
        }

    def restore(self, record: dict) -> PerSpecies:
        self.table = {str(k): float(v) for k, v in record["species_thresholds"].items()}
        self.overall = float(record["threshold"])
        return self

    def thresholds(self, queries: RankedQueries) -> np.ndarray:
        return thresholds_for(queries.groups, self.table, self.overall)


class TargetNewRatio:
    """The threshold that puts `new_individual` first for a target share of the photos it is applied to
    (Happywhale 1st: 16.5% of test photos); fitting learns nothing."""

    name = "ratio"
    per_batch = True  # the threshold depends on the photos it is applied to

    def __init__(self, ratio: float = 0.165) -> None:
        self.ratio = ratio

    def fit(self, oof: RankedQueries | None) -> dict:
        return {"new_ratio": self.ratio}

    def restore(self, record: dict) -> TargetNewRatio:
        return self

    def thresholds(self, queries: RankedQueries) -> float:
        return threshold_for_new_ratio(queries.scores, self.ratio)


class OutOfFoldRatio:
    """The best out-of-fold threshold's share carried over: `new_individual` first for the share of the photos it is
    applied to that the best-MAP@5 threshold put it first for among the out-of-fold photos.

    A threshold on scores does not transfer from out-of-fold photos to test photos when their score distributions
    differ (another model or gallery, other capture conditions); the share of new animals moves far less. The
    Happywhale winners fixed the share (16.5%) by hand; this takes it from the run's own out-of-fold photos.

    A share says nothing about a handful of photos (one photo would always be new), so batches of fewer than
    `min_queries` photos (`whale match` of a few) get the best out-of-fold threshold itself.
    """

    name = "oof_ratio"
    per_batch = True

    def __init__(self, min_queries: int = 50) -> None:
        self.min_queries = min_queries
        self.ratio: float | None = None
        self.threshold: float | None = None

    def fit(self, oof: RankedQueries) -> dict:
        self.threshold, score = best_threshold(oof.names, oof.scores, oof.truths)
        inserted = insert_new_individual(oof.names, oof.scores, self.threshold)
        self.ratio = float(np.mean([row[0] == NEW_INDIVIDUAL for row in inserted]))
        return {"threshold": self.threshold, "oof_map_at_5": score, "new_ratio": self.ratio}

    def restore(self, record: dict) -> OutOfFoldRatio:
        self.ratio, self.threshold = float(record["new_ratio"]), float(record["threshold"])
        return self

    def thresholds(self, queries: RankedQueries) -> float:
        if len(queries.scores) < self.min_queries:
            return self.threshold
        return threshold_for_new_ratio(queries.scores, self.ratio)


THRESHOLD_POLICIES = {
    "best": lambda retrieval: BestMap(),
    "oof_ratio": lambda retrieval: OutOfFoldRatio(),
    "per_species": lambda retrieval: PerSpecies(retrieval.min_species_queries),
    "ratio": lambda retrieval: TargetNewRatio(retrieval.new_ratio),
}


def create_threshold_policy(name: str, retrieval) -> BestMap | PerSpecies | TargetNewRatio | OutOfFoldRatio:
    """The new_individual threshold policy called `name`, with its settings from the retrieval config.

    Raises:
        ValueError: On an unknown name (configs are checked against `THRESHOLD_POLICIES` when they load).
    """
    if name not in THRESHOLD_POLICIES:
        raise ValueError(f"unknown threshold policy {name!r}; expected one of {', '.join(THRESHOLD_POLICIES)}")
    return THRESHOLD_POLICIES[name](retrieval)
