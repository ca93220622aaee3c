"""Blending runs: mean/rank on hand-made predictions, weight fits, stacking, run alignment checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotter.binary.blend import (
    BLEND_METHODS,
    BlendInputs,
    blend_folds,
    create_blend,
    cross_validated_weights,
    fit_weights,
    fold_rank_normalize,
    rank_normalize,
)
from spotter.binary.ensemble import align_runs, cached_test_predictions, ensemble_runs
from spotter.binary.stack import XGBoostStacker, create_stacker, stack_oof
from spotter.engine.rundir import RunDir
from spotter.errors import SpotterError
from spotter.metrics import roc_auc


def blend_inputs(oof: np.ndarray, test: np.ndarray, targets: np.ndarray, folds: np.ndarray) -> BlendInputs:
    return BlendInputs(
        oof=oof, test=test, targets=targets, folds=folds, cv_folds=blend_folds(folds, targets), metric=roc_auc,
        run_names=[f"r{i}" for i in range(oof.shape[1])], extra_oof=np.zeros((len(oof), 0)),
        extra_test=np.zeros((len(test), 0)),
    )


def test_mean_and_rank_blends_by_hand() -> None:
    preds = np.array([[0.1, 0.9], [0.4, 0.2], [0.8, 0.5], [0.3, 0.6]])
    inputs = blend_inputs(preds, preds, np.array([0.0, 1.0, 1.0, 0.0]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(create_blend("mean")(inputs).predictions, [0.5, 0.3, 0.65, 0.45])
    # ranks (1..4)/4: column 0 -> .25 .75 1 .5; column 1 -> 1 .25 .5 .75
    np.testing.assert_allclose(rank_normalize(preds), [[0.25, 1], [0.75, 0.25], [1, 0.5], [0.5, 0.75]])
    np.testing.assert_allclose(create_blend("rank")(inputs).predictions, [0.625, 0.5, 0.75, 0.625])
    with pytest.raises(SpotterError, match="unknown --method 'median'"):
        create_blend("median")


@pytest.mark.parametrize("name", sorted(BLEND_METHODS))
def test_every_blend_method_gives_one_prediction_per_test_row_and_an_honest_oof_score(name: str) -> None:
    rng = np.random.default_rng(5)
    targets = (rng.uniform(size=400) < 0.3).astype(float)
    good = np.clip(0.3 + 0.5 * (targets - 0.3) + rng.normal(0, 0.2, len(targets)), 0.01, 0.99)
    oof = np.stack([good, rng.uniform(0.01, 0.99, len(targets))], axis=1)
    test = rng.uniform(0.01, 0.99, size=(50, 2))
    outcome = create_blend(name)(blend_inputs(oof, test, targets, np.arange(len(targets)) % 4))
    assert outcome.predictions.shape == (50,) and np.isfinite(outcome.predictions).all()
    # the blend of a strong and a useless run scores near the strong one out of fold, well above the useless one
    assert outcome.metrics["ensemble_oof"] > roc_auc(targets, oof[:, 1]) + 0.2


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
    stacked = stack_oof(x, targets, np.arange(len(x)) % 3, XGBoostStacker())
    assert roc_auc(targets, stacked) > 0.95
    assert roc_auc(targets, x.mean(axis=1)) < 0.6


def fold_swapped_inputs(n: int = 1200, seed: int = 7) -> BlendInputs:
    """Two runs that take turns: run 0 is informative in folds 0 and 1 and noise in folds 2 and 3, run 1 the reverse.

    Whatever is fitted on three folds leans on the run that was informative in two of them, which is noise in
    the held fold; the mean keeps both everywhere and so is the better blend out of fold.
    """
    rng = np.random.default_rng(seed)
    targets = (rng.uniform(size=n) < 0.3).astype(float)
    folds = np.arange(n) % 4

    def informative_in(mask: np.ndarray) -> np.ndarray:
        return np.where(mask, 0.3 + 0.3 * (targets - 0.3) + rng.normal(0, 0.2, n), rng.uniform(0, 1, n))

    oof = np.clip(np.stack([informative_in(folds < 2), informative_in(folds >= 2)], axis=1), 0.01, 0.99)
    return blend_inputs(oof, rng.uniform(0.01, 0.99, size=(30, 2)), targets, folds)


@pytest.mark.parametrize("method", ["weights", "stack"])
def test_a_fitted_blend_below_the_mean_falls_back_unless_told_otherwise(method: str) -> None:
    inputs = fold_swapped_inputs()
    written = create_blend(method)(inputs)
    mean = create_blend("mean")(inputs)
    selection = written.record["selection"]
    assert selection["requested"] == method and selection["written"] == "mean"
    assert selection["cv_oof"][method] < selection["cv_oof"]["mean"] == pytest.approx(mean.metrics["ensemble_oof"])
    np.testing.assert_allclose(written.predictions, mean.predictions)
    assert written.metrics["ensemble_oof"] == selection["cv_oof"]["mean"]  # the figure of what was written

    kept = create_blend(method, fallback=False)(inputs)
    assert kept.record["selection"]["written"] == method and not kept.record["selection"]["fallback"]
    assert kept.metrics["ensemble_oof"] == pytest.approx(selection["cv_oof"][method])
    assert not np.allclose(kept.predictions, mean.predictions)


@pytest.mark.parametrize("method", ["weights", "stack"])
def test_a_fitted_blend_that_beats_the_mean_is_written(method: str) -> None:
    rng = np.random.default_rng(8)
    targets = (rng.uniform(size=1200) < 0.3).astype(float)
    good = np.clip(0.3 + 0.4 * (targets - 0.3) + rng.normal(0, 0.1, len(targets)), 0.01, 0.99)
    oof = np.stack([good, rng.uniform(0.01, 0.99, len(targets))], axis=1)  # the mean dilutes the good run
    outcome = create_blend(method)(blend_inputs(oof, oof[:20], targets, np.arange(len(targets)) % 4))
    assert outcome.record["selection"]["written"] == method
    assert outcome.record["selection"]["cv_oof"][method] > outcome.record["selection"]["cv_oof"]["mean"]


def test_the_default_stacker_is_a_strongly_regularized_logistic_regression() -> None:
    inputs = fold_swapped_inputs()
    outcome = create_blend("stack", fallback=False)(inputs)
    assert outcome.record["stack"]["name"] == "logistic" and outcome.record["stack"]["c"] <= 0.1
    assert create_blend("stack", stacker="xgboost")(inputs).record["stack"]["name"] == "xgboost"
    assert create_stacker("xgboost").min_child_weight >= 10  # leaves of many rows, for a few thousand rows
    with pytest.raises(SpotterError, match="unknown --stacker 'forest'"):
        create_blend("stack", stacker="forest")
    with pytest.raises(SpotterError, match="--stacker only applies"):
        create_blend("mean", stacker="logistic")


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
    mean = ensemble_runs(aligned, tests, create_blend("mean"), roc_auc)
    np.testing.assert_allclose(mean.predictions, [0.4, 0.6])
    assert set(mean.record["metrics"]["inputs_oof"]) == {str(a), str(b)}
    weights = ensemble_runs(aligned, tests, create_blend("weights"), roc_auc)
    assert sum(weights.record["weights"].values()) == pytest.approx(1)
    assert weights.record["weights"][str(a)] > weights.record["weights"][str(b)]  # b is noise
    np.testing.assert_allclose(weights.predictions, np.array([[0.2, 0.6], [0.8, 0.4]]) @ list(weights.record["weights"].values()))
    extra = pd.DataFrame({"id": aligned.rows["id"], "f": aligned.rows["target"] * 0.1})
    stacked = ensemble_runs(aligned, tests, create_blend("stack"), roc_auc, extra,
                            pd.DataFrame({"id": ["x", "y"], "f": [0, 1]}))
    assert stacked.record["features"] == ["run0", "run1", "f"] and stacked.record["metrics"]["ensemble_oof"] > 0.99
    with pytest.raises(SpotterError, match="other ids"):
        ensemble_runs(aligned, [tests[0], tests[1].iloc[::-1]], create_blend("mean"), roc_auc)
    with pytest.raises(SpotterError, match="lack 1 test id"):
        ensemble_runs(aligned, tests, create_blend("stack"), roc_auc, extra, pd.DataFrame({"id": ["x"], "f": [0]}))


def test_test_predictions_are_computed_once_per_run_and_test_set(toy_data, toy_cfg, tmp_path: Path) -> None:
    from spotter.engine.cv import train
    from spotter.toy.task import ToyTask

    toy_cfg.epochs = 1
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    first, path, hit = cached_test_predictions(ToyTask(), run, toy_data)
    first.assign(target=0.5).to_csv(path, index=False)  # marks the cache: a recomputation would not give 0.5
    again, path2, hit2 = cached_test_predictions(ToyTask(), run, toy_data)
    assert (hit, hit2) == (False, True) and path == path2 and path.parent == run.path
    assert list(again["id"]) == list(first["id"]) and len(first) == 16 and (again["target"] == 0.5).all()
    _, path3, hit3 = cached_test_predictions(ToyTask(), run, toy_data, tta=False)
    assert not hit3 and path3 != path  # another setting, another cache entry
