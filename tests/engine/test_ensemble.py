"""Blending runs: mean/rank on hand-made predictions, weight fits, stacking, run alignment checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotter.engine.ensemble import (
    align_runs,
    blend,
    blend_folds,
    cached_test_predictions,
    cross_validated_weights,
    ensemble_runs,
    fit_weights,
    fold_rank_normalize,
    rank_normalize,
)
from spotter.engine.stack import stack_oof
from spotter.errors import SpotterError
from spotter.metrics import roc_auc


def test_mean_and_rank_blends_by_hand() -> None:
    preds = np.array([[0.1, 0.9], [0.4, 0.2], [0.8, 0.5], [0.3, 0.6]])
    np.testing.assert_allclose(blend(preds, "mean"), [0.5, 0.3, 0.65, 0.45])
    # ranks (1..4)/4: column 0 -> .25 .75 1 .5; column 1 -> 1 .25 .5 .75
    np.testing.assert_allclose(rank_normalize(preds), [[0.25, 1], [0.75, 0.25], [1, 0.5], [0.5, 0.75]])
    np.testing.assert_allclose(blend(preds, "rank"), [0.625, 0.5, 0.75, 0.625])
    np.testing.assert_allclose(blend(preds, "weights", [0.25, 0.75]), [0.7, 0.25, 0.575, 0.525])
    with pytest.raises(SpotterError, match="summing to 1"):
        blend(preds, "weights", [0.5, 0.6])
    with pytest.raises(SpotterError, match="unknown blend"):
        blend(preds, "median")


def test_fold_ranks_remove_per_fold_offsets() -> None:
    preds = np.array([[0.1], [0.3], [0.2], [0.9], [0.7], [0.8]])
    folds = np.array([0, 0, 0, 1, 1, 1])  # fold 1's model predicts 0.6 higher across the board
    np.testing.assert_allclose(fold_rank_normalize(preds, folds)[:, 0], [1 / 3, 1, 2 / 3, 1, 1 / 3, 2 / 3])


def test_weight_fit_recovers_known_weights() -> None:
    rng = np.random.default_rng(0)
    preds = rng.uniform(0.02, 0.98, size=(40_000, 3))
    truth = np.array([0.6, 0.3, 0.1])
    targets = (rng.uniform(size=len(preds)) < preds @ truth).astype(float)
    weights = fit_weights(preds, targets)
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1)
    np.testing.assert_allclose(weights, truth, atol=0.03)


def test_weight_fit_drops_a_useless_run_and_cv_estimate_is_close() -> None:
    rng = np.random.default_rng(1)
    targets = (rng.uniform(size=4000) < 0.3).astype(float)
    good = np.clip(0.3 + 0.4 * (targets - 0.3) + rng.normal(0, 0.15, len(targets)), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, len(targets))
    preds = np.stack([good, noise], axis=1)
    weights = fit_weights(preds, targets)
    assert weights[0] > 0.9
    folds = np.arange(len(targets)) % 4
    blended, per_fold = cross_validated_weights(preds, targets, folds)
    assert len(per_fold) == 4
    assert roc_auc(targets, blended) == pytest.approx(roc_auc(targets, preds @ weights), abs=0.01)


def test_blend_folds_split_a_single_validation_fold() -> None:
    targets = np.r_[np.ones(30), np.zeros(70)]
    own = np.arange(100) % 3
    folds, note = blend_folds(own, targets)
    assert np.array_equal(folds, own) and note == "the runs' folds"
    # every row from fold 0 (a run with train_folds=[0]): a stratified 5-fold split instead
    folds, note = blend_folds(np.zeros(100, np.int64), targets)
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4] and "5-fold" in note
    assert all(targets[folds == k].sum() == 6 for k in range(5))


def test_stack_oof_learns_a_nonlinear_combination() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(1500, 2))
    targets = ((x[:, 0] > 0.5) ^ (x[:, 1] > 0.5)).astype(float)  # no single input, nor their mean, ranks this
    stacked = stack_oof(x, targets, np.arange(len(x)) % 3)
    assert roc_auc(targets, stacked) > 0.95
    assert roc_auc(targets, x.mean(axis=1)) < 0.6


def write_run(root: Path, ids, folds, targets, preds) -> Path:
    root.mkdir(parents=True)
    pd.DataFrame({"id": ids, "fold": folds}).to_csv(root / "folds.csv", index=False)
    pd.DataFrame({"id": ids, "target": targets, "pred": preds}).to_csv(root / "oof.csv", index=False)
    return root


@pytest.fixture
def two_runs(tmp_path: Path):
    rng = np.random.default_rng(3)
    n = 150
    ids = [f"{i:04x}" for i in range(n)]  # string ids that look numeric stay strings
    targets = (np.arange(n) % 3 == 0).astype(int)
    folds = (np.arange(n) // 3) % 3
    a = write_run(tmp_path / "a", ids, folds, targets, np.clip(targets * 0.3 + rng.uniform(0, 0.7, n), 0, 1))
    b = write_run(tmp_path / "b", ids[::-1], folds[::-1], targets[::-1], rng.uniform(0, 1, n))
    return a, b, ids, folds, targets


def test_align_runs_lines_up_rows_in_any_order(two_runs) -> None:
    a, b, ids, folds, targets = two_runs
    aligned = align_runs([a, b])
    assert list(aligned.rows["id"]) == ids and list(aligned.rows["fold"]) == list(folds)
    expected_b = pd.read_csv(b / "oof.csv", dtype={"id": str}).set_index("id").loc[ids, "pred"].to_numpy()
    np.testing.assert_allclose(aligned.predictions[:, 1], expected_b)


def test_runs_with_other_folds_are_rejected(two_runs, tmp_path: Path) -> None:
    a, _, ids, folds, targets = two_runs
    moved = folds.copy()
    moved[5] = (moved[5] + 1) % 3  # id '0005'
    c = write_run(tmp_path / "c", ids, moved, targets, np.full(150, 0.5))
    with pytest.raises(SpotterError, match=r"folds.csv differs .*id '0005'") as err:
        align_runs([a, c])
    assert str(c) in str(err.value) and str(a) in str(err.value)


def test_runs_with_other_ids_are_rejected(two_runs, tmp_path: Path) -> None:
    a, _, ids, folds, targets = two_runs
    other = ids[:-1] + ["ffff"]
    d = write_run(tmp_path / "d", other, folds, targets, np.full(150, 0.5))
    with pytest.raises(SpotterError, match=r"id '0095'|id 'ffff'"):
        align_runs([a, d])
    # same folds.csv but an OOF missing a sample (e.g. trained on fewer folds)
    e = write_run(tmp_path / "e", ids, folds, targets, np.full(150, 0.5))
    pd.read_csv(e / "oof.csv", dtype={"id": str}).iloc[1:].to_csv(e / "oof.csv", index=False)
    with pytest.raises(SpotterError, match=r"out-of-fold ids differ .*'0000'"):
        align_runs([a, e])
    with pytest.raises(SpotterError, match="run given twice"):
        align_runs([a, a])


def test_ensemble_runs_records_inputs_and_metrics(two_runs) -> None:
    a, b, *_ = two_runs
    aligned = align_runs([a, b])
    tests = [
        pd.DataFrame({"id": ["x", "y"], "target": [0.2, 0.8]}),
        pd.DataFrame({"id": ["x", "y"], "target": [0.6, 0.4]}),
    ]
    mean = ensemble_runs(aligned, tests, "mean", roc_auc)
    np.testing.assert_allclose(mean.predictions, [0.4, 0.6])
    assert set(mean.record["metrics"]["inputs_oof"]) == {str(a), str(b)}
    weights = ensemble_runs(aligned, tests, "weights", roc_auc)
    assert sum(weights.record["weights"].values()) == pytest.approx(1)
    assert weights.record["weights"][str(a)] > weights.record["weights"][str(b)]  # b is noise
    extra = pd.DataFrame({"id": aligned.rows["id"], "f": aligned.rows["target"] * 0.1})
    stacked = ensemble_runs(aligned, tests, "stack", roc_auc, extra, pd.DataFrame({"id": ["x", "y"], "f": [0, 1]}))
    assert stacked.record["features"] == ["run0", "run1", "f"] and stacked.record["metrics"]["ensemble_oof"] > 0.99
    with pytest.raises(SpotterError, match="other ids"):
        ensemble_runs(aligned, [tests[0], tests[1].iloc[::-1]], "mean", roc_auc)


def test_cached_test_predictions_predict_once(tmp_path: Path) -> None:
    calls = []

    def predict(path: Path) -> Path:
        calls.append(path)
        pd.DataFrame({"id": ["01", "02"], "target": [0.1, 0.9]}).to_csv(path, index=False)
        return path

    first, path, hit = cached_test_predictions(tmp_path, "abc", predict)
    again, path2, hit2 = cached_test_predictions(tmp_path, "abc", predict)
    assert (hit, hit2) == (False, True) and path == path2 == tmp_path / "test_pred-abc.csv" and len(calls) == 1
    assert list(again["id"]) == ["01", "02"]
