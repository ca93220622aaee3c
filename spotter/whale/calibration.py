"""Calibrated match probabilities: the one scale every whale decision and number is on.

A candidate's raw score (kNN cosine mixed with the id head) is mapped to the probability that the photo shows
that individual, fitted on the run's out-of-fold queries (scikit-learn: logistic by default, strictly monotone,
so a query's ranking never changes; isotonic on request). `new_individual` is one threshold on that probability,
chosen once when the run is calibrated and used by predict, index, match, review and the report alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL

METHODS = ("logistic", "isotonic")
TOP = 5  # candidates per query the probabilities are fitted on (the ones a user sees)


@dataclass
class ScoreCalibration:
    """score → P(candidate is the photo's individual).

    Attributes:
        method: `logistic` (a·score + b through a sigmoid) or `isotonic` (a step function through `knots`).
        coef: (a, b) for logistic.
        knots: (scores, probabilities) of the isotonic fit.
    """

    method: str
    coef: tuple[float, float] = (1.0, 0.0)
    knots: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities for raw scores of any shape; −inf (padding) maps to 0."""
        scores = np.asarray(scores, dtype=np.float64)
        finite = np.isfinite(scores)
        safe = np.where(finite, scores, 0.0)
        if self.method == "logistic":
            a, b = self.coef
            prob = 1.0 / (1.0 + np.exp(-(a * safe + b)))
        else:
            xs, ys = self.knots
            prob = np.interp(safe, xs, ys)
        return np.where(finite, prob, 0.0)

    def to_dict(self) -> dict:
        return {"method": self.method, "coef": list(self.coef), "knots": [list(self.knots[0]), list(self.knots[1])]}

    @classmethod
    def from_dict(cls, record: dict) -> ScoreCalibration:
        """Reads a stored calibration.

        Raises:
            SpotterError: If the record is not a calibration.
        """
        try:
            knots = record.get("knots") or [[], []]
            return cls(str(record["method"]), tuple(float(v) for v in record["coef"]),
                       ([float(v) for v in knots[0]], [float(v) for v in knots[1]]))
        except (KeyError, TypeError, ValueError) as err:
            raise SpotterError(f"not a score calibration ({type(err).__name__}: {err})") from None


def candidate_pairs(
    candidates: Sequence[Sequence[str]], scores: np.ndarray, truths: Sequence[str], top: int = TOP
) -> tuple[np.ndarray, np.ndarray]:
    """(score, is the right individual) of each query's first `top` candidates (padding skipped)."""
    scores = np.asarray(scores, dtype=np.float64)[:, :top]
    xs, ys = [], []
    for names, row, truth in zip(candidates, scores, truths):
        for name, score in zip(list(names)[:top], row):
            if np.isfinite(score):
                xs.append(score)
                ys.append(name == truth and truth != NEW_INDIVIDUAL)
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=bool)


def fit_calibration(
    candidates: Sequence[Sequence[str]], scores: np.ndarray, truths: Sequence[str], method: str = "logistic"
) -> ScoreCalibration:
    """Fits score → probability on out-of-fold queries' candidates (truths: `new_individual` where unseen).

    Never decreasing in the score, so no query's ranking changes: a logistic fit whose slope comes out negative
    (scores that say nothing) gives way to the isotonic one.

    Raises:
        SpotterError: On an unknown method, or when the queries hold no right (or no wrong) candidate to learn from.
    """
    if method not in METHODS:
        raise SpotterError(f"unknown calibration {method!r}; expected {' | '.join(METHODS)}")
    x, y = candidate_pairs(candidates, scores, truths)
    if y.all() or not y.any():
        raise SpotterError(
            f"cannot calibrate scores on {len(y)} out-of-fold candidates: they need both right and wrong ones"
        )
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        # scores live in about [-1, 1]: a weak penalty keeps the fit from saturating on small runs
        model = LogisticRegression(C=100.0).fit(x[:, None], y)
        slope = float(model.coef_[0, 0])
        if slope > 0:
            return ScoreCalibration("logistic", (slope, float(model.intercept_[0])))
        # a higher score is no likelier right (an untrained or barely trained model): a sigmoid would have to
        # turn the ranking upside down, the best monotone fit does not
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True).fit(x, y)
    return ScoreCalibration("isotonic", knots=(model.X_thresholds_.tolist(), model.y_thresholds_.tolist()))


def reliability(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> list[dict]:
    """The reliability diagram's points: per probability bin, the mean prediction and the observed frequency."""
    probabilities, outcomes = np.asarray(probabilities, np.float64), np.asarray(outcomes, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    points = []
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            points.append({"bin": [float(edges[b]), float(edges[b + 1])], "count": int(chosen.sum()),
                           "predicted": float(probabilities[chosen].mean()), "observed": float(outcomes[chosen].mean())})
    return points


def expected_calibration_error(points: list[dict]) -> float:
    """Mean |observed − predicted| over the reliability bins, weighted by their counts."""
    total = sum(p["count"] for p in points)
    return float(sum(p["count"] * abs(p["observed"] - p["predicted"]) for p in points) / max(total, 1))


# ----------------------------------------------------------------------------------------------- a run's calibration

CALIBRATION = "calibration.json"  # a whale run's calibration, fitted when training ends
OOF_RETRIEVAL = "oof_retrieval.csv"  # the out-of-fold ranking it was fitted on


@dataclass
class RunCalibration:
    """A run's one decision scale: scores → probabilities, and its new_individual threshold policy on them.

    Attributes:
        scores: The fitted score → probability map.
        policy: The fitted new_individual threshold policy (thresholds are probabilities).
        record: What the calibration found (JSON-ready): the threshold, out-of-fold MAP@5, the share of photos the
            threshold puts new_individual first for, the reliability diagram's points, ...
    """

    scores: ScoreCalibration
    policy: object
    record: dict

    @property
    def threshold(self) -> float:
        """The new_individual threshold (a probability) of the policy, or of the best single one for others."""
        return float(self.record["threshold"])

    def decide(self, names: list[list[str]], raw_scores: np.ndarray, groups: list[str]):
        """Ranked candidates → (their probabilities, the lists with new_individual inserted, the thresholds)."""
        from spotter.whale.threshold import RankedQueries, insert_new_individual

        probabilities = self.scores(raw_scores)
        thresholds = self.policy.thresholds(RankedQueries(names, probabilities, groups))
        return probabilities, insert_new_individual(names, probabilities, thresholds), thresholds

    def save(self, path) -> None:
        from spotter.io import write_json

        write_json(path, {**self.record, "score_calibration": self.scores.to_dict()})

    @classmethod
    def load(cls, path, retrieval) -> RunCalibration | None:
        """The calibration stored at `path` (None when there is none).

        Raises:
            SpotterError: If the file is unreadable or not a calibration.
        """
        import json
        from pathlib import Path

        from spotter.whale.threshold import create_threshold_policy

        path = Path(path)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            scores = ScoreCalibration.from_dict(record.pop("score_calibration"))
            policy = create_threshold_policy(record["mode"], retrieval).restore(record)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise SpotterError(f"unreadable calibration ({type(err).__name__}: {err}); train the run again", path) from None
        return cls(scores, policy, record)


def fit_run_calibration(oof, plain, vocab: list[str], species_of: dict[str, str], retrieval) -> RunCalibration:
    """Fits a run's calibration on its out-of-fold ranking (`spotter.whale.ranking.rank_out_of_fold`).

    Args:
        oof: The out-of-fold ranking as predict ranks (kNN + head, flips).
        plain: The same with plain kNN (no head, no flips), for the record; None to leave it out.
        vocab: The run's id vocabulary.
        species_of: Species by id, for per-species thresholds.
        retrieval: The run's retrieval config (calibration method, threshold policy and its settings).
    """
    from spotter.whale.ranking import best_candidate_species
    from spotter.whale.threshold import (
        RankedQueries,
        best_threshold,
        create_threshold_policy,
        insert_new_individual,
        map_by_threshold,
    )

    top = oof.candidates.labels[:, :TOP], oof.candidates.scores[:, :TOP]
    names, raw = [[vocab[c] for c in row if c >= 0] for row in top[0]], top[1]
    scores = fit_calibration(names, raw, oof.truths, retrieval.calibration)
    probabilities = scores(raw)
    ranked = RankedQueries(names, probabilities, best_candidate_species(names, species_of), oof.truths)
    threshold, best_map = best_threshold(names, probabilities, oof.truths)
    x, y = candidate_pairs(names, probabilities, oof.truths)
    points = reliability(x, y)
    record = {
        "mode": retrieval.threshold_mode,
        "calibration": scores.method,
        "threshold": threshold,
        "oof_map_at_5": best_map,
        "oof_map_at_5_no_new": float(map_by_threshold(names, probabilities, oof.truths, np.array([-1.0]))[0]),
        "oof_map_at_5_plain_knn": None if plain is None else best_threshold(
            plain.candidates.names(vocab), plain.candidates.scores, oof.truths)[1],
        "oof_queries": len(oof.truths),
        "oof_new_ratio": float(np.mean([t == NEW_INDIVIDUAL for t in oof.truths])),
        "reliability": points,
        "expected_calibration_error": expected_calibration_error(points),
    }
    policy = create_threshold_policy(retrieval.threshold_mode, retrieval)
    record.update(policy.fit(ranked))
    lists = insert_new_individual(names, probabilities, policy.thresholds(ranked))
    record["oof_new_first_ratio"] = float(np.mean([row[0] == NEW_INDIVIDUAL for row in lists]))
    return RunCalibration(scores, policy, record)
