"""Pseudo-label selection: counts, thresholds, soft and hard targets, bad requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spotter.binary.pseudo import select_pseudo
from spotter.errors import SpotterError

PREDS = pd.DataFrame({"id": list("abcdefgh"), "pred": [0.05, 0.97, 0.5, 0.2, 0.91, 0.01, 0.6, 0.08]})


def test_top_and_bottom_counts_soft() -> None:
    chosen = select_pseudo(PREDS, "soft", top=2, bottom=3)
    assert list(chosen["id"]) == ["b", "e", "h", "a", "f"]
    np.testing.assert_allclose(chosen["target"], [0.97, 0.91, 0.08, 0.05, 0.01])


def test_top_and_bottom_counts_hard() -> None:
    chosen = select_pseudo(PREDS, "hard", top=1, bottom=2)
    assert list(chosen["id"]) == ["b", "a", "f"] and list(chosen["target"]) == [1.0, 0.0, 0.0]
    only_top = select_pseudo(PREDS, "hard", top=3)
    assert list(only_top["id"]) == ["b", "e", "g"] and (only_top["target"] == 1).all()


def test_threshold_both_sides() -> None:
    chosen = select_pseudo(PREDS, "hard", threshold=0.9)
    assert list(chosen["id"]) == ["b", "e", "h", "a", "f"]
    assert list(chosen["target"]) == [1, 1, 0, 0, 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "either"),
        ({"top": 1, "threshold": 0.9}, "either"),
        ({"top": 5, "bottom": 4}, "exceeds"),
        ({"top": -1, "bottom": 2}, ">= 0"),
        ({"threshold": 0.4}, r"\(0.5, 1\)"),
        ({"top": 1, "mode": "fuzzy"}, "soft or hard"),
    ],
)
def test_bad_requests(kwargs: dict, message: str) -> None:
    with pytest.raises(SpotterError, match=message):
        select_pseudo(PREDS, **kwargs)
