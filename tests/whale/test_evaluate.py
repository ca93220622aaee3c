import numpy as np
import pytest

from spotter.metrics import NEW_INDIVIDUAL as NEW
from spotter.whale.evaluate import evaluate_retrieval, predict_lists, submission_frame


def _unit(*angles_deg):
    a = np.deg2rad(np.array(angles_deg, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a)], 1)


def test_fold_score_with_unseen_ids():
    gallery, gallery_ids = _unit(0, 60, 120), ["a", "b", "c"]
    queries = _unit(2, 58, 180)  # a, b, and an animal the gallery lacks
    result = evaluate_retrieval(gallery, gallery_ids, queries, ["a", "b", "zz"], k=3)
    assert result["map_at_5"] == pytest.approx(1.0)
    assert result["top1_known"] == 1.0 and result["new_ratio"] == pytest.approx(1 / 3)
    assert result["map_at_5_no_new"] == pytest.approx((1 + 1 + 0.25) / 3)  # new appended after 3 ids
    lists = predict_lists(gallery, gallery_ids, queries, result["threshold"], k=3)
    assert lists[0][0] == "a" and lists[2][0] == NEW


def test_submission_frame():
    frame = submission_frame(["x.jpg"], [["a", NEW, "b", "c", "d", "e"]])
    assert frame["predictions"][0] == "a new_individual b c d"
