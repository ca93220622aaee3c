from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from spotter.engine.cv import make_folds, train
from spotter.errors import SpotterError
from spotter.toy.task import ToyTask


def test_stratified_folds_keep_class_balance() -> None:
    rows = pd.DataFrame({"id": range(100), "target": [1] * 20 + [0] * 80})
    folds = make_folds(rows, 5, seed=0, stratify="target")
    assert sorted(np.bincount(folds)) == [20] * 5
    assert all(rows.target[folds == k].sum() == 4 for k in range(5))
    assert np.array_equal(folds, make_folds(rows, 5, seed=0, stratify="target"))
    assert not np.array_equal(folds, make_folds(rows, 5, seed=1, stratify="target"))


def test_soft_targets_stratify_by_their_rounded_class() -> None:
    # every value distinct, as pseudo-labels are: 20 soft positives, 80 soft negatives
    rows = pd.DataFrame({"id": range(100), "target": np.r_[np.linspace(0.55, 0.99, 20), np.linspace(0.01, 0.45, 80)]})
    folds = make_folds(rows, 5, seed=0, stratify="target")
    assert all((rows.target[folds == k] >= 0.5).sum() == 4 for k in range(5))


def test_grouped_folds_never_split_a_group() -> None:
    rows = pd.DataFrame({"id": range(60), "target": 0, "animal": np.repeat(np.arange(12), 5)})
    folds = make_folds(rows, 4, seed=0, group="animal")
    assert rows.assign(fold=folds).groupby("animal").fold.nunique().max() == 1
    assert set(folds) == {0, 1, 2, 3}


def test_too_few_samples_for_folds() -> None:
    with pytest.raises(SpotterError, match="3 samples cannot fill 5 folds"):
        make_folds(pd.DataFrame({"id": [1, 2, 3], "target": [0, 1, 0]}), 5, 0, stratify="target")


def test_run_writes_layout_and_each_sample_once(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    result = train(ToyTask(), toy_data, toy_cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "folds.csv", "oof.csv", "metrics.json"):
        assert (run / name).is_file(), name
    for k in range(2):
        assert {p.name for p in (run / f"fold{k}").iterdir()} == {"best.safetensors", "state.pt", "log.csv"}
        assert len(pd.read_csv(run / f"fold{k}" / "log.csv")) == toy_cfg.epochs
    oof = pd.read_csv(run / "oof.csv", dtype={"id": str})
    labels = pd.read_csv(toy_data / "train_labels.csv", dtype={"id": str})
    assert sorted(oof.id) == sorted(labels.id) and not oof.id.duplicated().any()
    assert 0.0 <= result.oof_metric <= 1.0
    assert not list(run.rglob("*.tmp"))


def test_same_seed_gives_identical_oof(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "a")
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "b")
    a, b = (pd.read_csv(tmp_path / r / "oof.csv") for r in "ab")
    pd.testing.assert_frame_equal(a, b)
    toy_cfg.seed += 1
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "c")
    assert not np.allclose(a.pred, pd.read_csv(tmp_path / "c" / "oof.csv").pred)


class Interrupted(Exception):
    pass


def test_interrupt_and_resume_matches_uninterrupted(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    toy_cfg.epochs, toy_cfg.ema, toy_cfg.mixing.name = 3, True, "or_mixup"
    full = train(ToyTask(), toy_data, toy_cfg, tmp_path / "full")

    def stop_in_fold1(fold: int, epoch: int) -> None:
        if (fold, epoch) == (1, 0):
            raise Interrupted

    with pytest.raises(Interrupted):
        train(ToyTask(), toy_data, toy_cfg, tmp_path / "cut", on_epoch_end=stop_in_fold1)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    toy_cfg.resume = True
    resumed = train(ToyTask(), toy_data, toy_cfg, tmp_path / "cut")
    assert resumed.oof_metric == full.oof_metric
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "full" / "oof.csv"), pd.read_csv(tmp_path / "cut" / "oof.csv")
    )
    a = load_file(tmp_path / "full" / "fold1" / "best.safetensors")
    b = load_file(tmp_path / "cut" / "fold1" / "best.safetensors")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_full_fit_and_fold_subset(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    toy_cfg.train_folds = [-1]
    result = train(ToyTask(), toy_data, toy_cfg, tmp_path / "full")
    assert (tmp_path / "full" / "full" / "best.safetensors").is_file()
    assert result.oof_metric is None and not (tmp_path / "full" / "oof.csv").exists()
    toy_cfg.train_folds = [1]
    result = train(ToyTask(), toy_data, toy_cfg, tmp_path / "one")
    oof = pd.read_csv(tmp_path / "one" / "oof.csv", dtype={"id": str})
    folds = pd.read_csv(tmp_path / "one" / "folds.csv", dtype={"id": str})
    assert sorted(oof.id) == sorted(folds.id[folds.fold == 1])
    assert not (tmp_path / "one" / "fold0").exists()


def test_the_full_fit_trains_its_own_epochs(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    toy_cfg.train_folds, toy_cfg.epochs, toy_cfg.full_fit_epochs = [0, -1], 1, 3
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "run")
    assert len(pd.read_csv(tmp_path / "run" / "fold0" / "log.csv")) == 1
    assert len(pd.read_csv(tmp_path / "run" / "full" / "log.csv")) == 3


def test_training_lowers_the_loss(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    toy_cfg.epochs, toy_cfg.train_folds = 4, [0]
    result = train(ToyTask(), toy_data, toy_cfg, tmp_path / "run")
    losses = [row["train_loss"] for row in result.folds[0].log]
    assert losses[-1] < losses[0]


def test_missing_data_folder(toy_cfg, tmp_path: Path) -> None:
    with pytest.raises(SpotterError, match="data folder not found"):
        train(ToyTask(), tmp_path / "nope", toy_cfg, tmp_path / "run")


def test_a_channels_last_run_predicts_in_that_layout_alike(toy_data: Path, toy_cfg, tmp_path: Path) -> None:
    from spotter.engine.predict import fold_models
    from spotter.engine.rundir import RunDir

    toy_cfg.channels_last = True
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "run")
    models = dict(fold_models(ToyTask(), RunDir(tmp_path / "run"), toy_cfg))
    convs = [p for p in models[0].parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    toy_cfg.channels_last = False
    plain = dict(fold_models(ToyTask(), RunDir(tmp_path / "run"), toy_cfg))[0]
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in plain.parameters() if p.ndim == 4)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(models[0](x), plain(x), rtol=1e-4, atol=1e-5)
