"""Calibrated match probabilities: monotone maps fitted on out-of-fold candidates, and their reliability."""

import numpy as np
import pytest

from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL as NEW
from spotter.whale.calibration import (
    ScoreCalibration,
    candidate_pairs,
    expected_calibration_error,
    fit_calibration,
    reliability,
)


def synthetic_queries(n: int = 400, seed: int = 0):
    """Queries whose right candidate scores higher the more often, so P(right | score) rises with the score."""
    rng = np.random.default_rng(seed)
    names, scores, truths = [], [], []
    for q in range(n):
        right = rng.random() < 0.7
        top = rng.uniform(0.5, 0.9) if right else rng.uniform(0.2, 0.6)
        row = np.sort(np.r_[top, rng.uniform(0.0, top, 4)])[::-1]
        ids = [f"q{q}_{k}" for k in range(5)]
        names.append(ids)
        scores.append(row)
        truths.append(ids[0] if right else NEW)
    return names, np.array(scores), truths


@pytest.mark.parametrize("method", ["logistic", "isotonic"])
def test_calibration_is_monotone_and_matches_observed_frequencies(method):
    names, scores, truths = synthetic_queries()
    calibration = fit_calibration(names, scores, truths, method)
    grid = np.linspace(-1, 1, 201)
    prob = calibration(grid)
    assert np.all(np.diff(prob) >= -1e-12) and prob.min() >= 0 and prob.max() <= 1
    x, y = candidate_pairs(names, calibration(scores), truths)
    assert expected_calibration_error(reliability(x, y)) < 0.08  # in-sample: close to the diagonal
    assert calibration(np.array([-np.inf]))[0] == 0.0  # padding never looks like a match
    again = ScoreCalibration.from_dict(calibration.to_dict())
    np.testing.assert_allclose(again(grid), prob)


def test_logistic_keeps_every_ranking():
    names, scores, truths = synthetic_queries(seed=1)
    calibration = fit_calibration(names, scores, truths, "logistic")
    probs = calibration(scores)
    assert np.all(np.diff(probs, axis=1) < 0)  # strictly decreasing where the scores are


def test_calibration_needs_right_and_wrong_candidates():
    with pytest.raises(SpotterError, match="both right and wrong"):
        fit_calibration([["a", "b"]], np.array([[0.9, 0.1]]), [NEW])
    with pytest.raises(SpotterError, match="unknown calibration"):
        fit_calibration([["a"]], np.array([[0.9]]), ["a"], "platt")


def test_reliability_bins_hand_made():
    points = reliability(np.array([0.05, 0.05, 0.95, 0.95]), np.array([0, 0, 1, 0]), bins=2)
    assert [p["count"] for p in points] == [2, 2]
    assert points[0]["observed"] == 0.0 and points[1]["observed"] == 0.5
    assert expected_calibration_error(points) == pytest.approx((2 * 0.05 + 2 * 0.45) / 4)


def test_scores_that_say_nothing_never_turn_a_ranking_upside_down():
    names, scores, truths = synthetic_queries(seed=2)
    upside_down = -scores[:, ::-1]  # higher scores now less often right: a sigmoid would need a negative slope
    calibration = fit_calibration([n[::-1] for n in names], upside_down, truths, "logistic")
    assert calibration.method == "isotonic"
    assert np.all(np.diff(calibration(np.linspace(-1, 1, 101))) >= 0)
