from pathlib import Path

import pandas as pd
import pytest

from spotter.errors import SpotterError
from spotter.metrics import map_at_5, roc_auc, score_by_group, score_files


def test_auc_hand_computed() -> None:
    # positive scores 0.8, 0.4; negative 0.5, 0.1: pairs won 3 of 4 -> 0.75
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    # a tie counts half: (1 + 0.5) / 2
    assert roc_auc([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.75)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(SpotterError, match="both classes"):
        roc_auc([1, 1], [0.1, 0.2])


def test_map_at_5_hand_computed() -> None:
    truths = ["a", "new_individual", "c", "d"]
    predictions = [
        ["a", "x", "y", "z", "w"],  # rank 1 -> 1
        ["x", "new_individual", "y", "z", "w"],  # rank 2 -> 1/2
        ["x", "y", "z", "w", "c"],  # rank 5 -> 1/5
        ["x", "y", "z", "w", "v", "d"],  # rank 6 is past the cut -> 0
    ]
    assert map_at_5(truths, predictions) == pytest.approx((1 + 0.5 + 0.2 + 0) / 4)
    assert map_at_5(["a"], [["a", "a", "b"]]) == 1.0  # only the first correct rank counts


def test_score_files_auc_and_map(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["p", "q", "r"], "target": [0.9, 0.2, 0.4]}).to_csv(tmp_path / "sub.csv", index=False)
    pd.DataFrame({"id": ["r", "q", "p"], "target": [1, 0, 1]}).to_csv(tmp_path / "truth.csv", index=False)
    assert score_files(tmp_path / "sub.csv", tmp_path / "truth.csv") == ("roc_auc", pytest.approx(1.0))
    pd.DataFrame({"image": ["1.jpg", "2.jpg"], "predictions": ["a b", "new_individual a"]}).to_csv(
        tmp_path / "wsub.csv", index=False
    )
    pd.DataFrame({"image": ["1.jpg", "2.jpg"], "individual_id": ["b", "new_individual"]}).to_csv(
        tmp_path / "wtruth.csv", index=False
    )
    assert score_files(tmp_path / "wsub.csv", tmp_path / "wtruth.csv") == ("map_at_5", pytest.approx(0.75))


def test_score_by_group_scores_each_kind_against_all_negatives(tmp_path: Path) -> None:
    sub = pd.DataFrame({"id": list("abcdef"), "target": [0.9, 0.3, 0.5, 0.4, 0.2, 0.6]})
    truth = pd.DataFrame({"id": list("abcdef"), "target": [1, 1, 0, 0, 0, 0],
                          "kind": ["sine", "straight", "none", "none", "none", "none"]})
    sub.to_csv(tmp_path / "sub.csv", index=False)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    table = score_by_group(tmp_path / "sub.csv", tmp_path / "truth.csv", "kind")
    assert table["group"].tolist() == ["sine", "straight"] and table["count"].tolist() == [1, 1]
    # sine (0.9) beats all four negatives; straight (0.3) beats one of four (0.2)
    assert table["roc_auc"].tolist() == pytest.approx([1.0, 0.25])
    with pytest.raises(SpotterError, match="no column 'snr'"):
        score_by_group(tmp_path / "sub.csv", tmp_path / "truth.csv", "snr")
    wsub = pd.DataFrame({"image": ["1", "2", "3"], "predictions": ["a b", "x b", "c"]})
    wtruth = pd.DataFrame({"image": ["1", "2", "3"], "individual_id": ["a", "b", "d"], "species": ["s", "s", "t"]})
    wsub.to_csv(tmp_path / "wsub.csv", index=False)
    wtruth.to_csv(tmp_path / "wtruth.csv", index=False)
    table = score_by_group(tmp_path / "wsub.csv", tmp_path / "wtruth.csv", "species")
    assert table["group"].tolist() == ["s", "t"] and table["map_at_5"].tolist() == pytest.approx([0.75, 0.0])


def test_mismatched_ids_name_count_and_example(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["p", "q", "z"], "target": [0.9, 0.2, 0.4]}).to_csv(tmp_path / "sub.csv", index=False)
    pd.DataFrame({"id": ["p", "q", "r", "s"], "target": [1, 0, 1, 0]}).to_csv(tmp_path / "truth.csv", index=False)
    with pytest.raises(SpotterError, match=r"1 id\(s\) not in the truth file, e\.g\. 'z'; 2 id\(s\) missing .* e\.g\. 'r'"):
        score_files(tmp_path / "sub.csv", tmp_path / "truth.csv")


def test_unknown_layout(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "sub.csv", index=False)
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "truth.csv", index=False)
    with pytest.raises(SpotterError, match="unknown submission layout"):
        score_files(tmp_path / "sub.csv", tmp_path / "truth.csv")
