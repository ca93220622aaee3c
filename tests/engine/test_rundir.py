"""The run folder: what training into an existing folder does, and what predict checks before it loads data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spotter.cli import main
from spotter.engine.cv import train
from spotter.engine.loop import seed_everything
from spotter.engine.predict import predict_submission
from spotter.engine.rundir import RunDir, Start
from spotter.errors import SpotterError
from spotter.toy.task import ToyTask


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and modification time."""
    return {
        str(p.relative_to(folder)): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def finished(toy_data, toy_cfg, tmp_path) -> Path:
    run = tmp_path / "run"
    train(ToyTask(), toy_data, toy_cfg, run)
    return run


def test_training_into_a_finished_run_is_refused_in_one_line(finished, toy_data, capsys) -> None:
    before = snapshot(finished)
    code = main(["--quiet", "toy", "train", str(toy_data), "--out", str(finished), "epochs=2", "batch_size=8",
                 "n_folds=2", "lr=3e-3", "threads=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "already holds a run" in err and str(finished) in err
    assert "Traceback" not in err and snapshot(finished) == before


def test_resume_on_a_finished_run_changes_nothing(finished, toy_data, toy_cfg) -> None:
    before = snapshot(finished)
    toy_cfg.resume = True
    result = train(ToyTask(), toy_data, toy_cfg, finished)
    assert result.already_finished and result.oof_metric is not None
    assert snapshot(finished) == before


def test_resume_with_another_config_names_the_key(finished, toy_data, toy_cfg) -> None:
    toy_cfg.resume, toy_cfg.lr = True, 1e-2
    with pytest.raises(SpotterError, match=r"config key 'lr' is 0.01 but the run being resumed has 0.003"):
        train(ToyTask(), toy_data, toy_cfg, finished)


def test_overwrite_replaces_the_whole_run(finished, toy_data, toy_cfg) -> None:
    toy_cfg.train_folds = [0]  # without --overwrite this would have kept the old fold1 beside a new fold0
    train(ToyTask(), toy_data, toy_cfg, finished, overwrite=True)
    assert not (finished / "fold1").exists() and (finished / "fold0" / "best.safetensors").is_file()
    assert RunDir(finished).read_metrics()["folds"] == [0]


def test_a_folder_that_holds_something_else_is_never_trained_into(toy_data, toy_cfg, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(SpotterError, match="holds no run"):
            train(ToyTask(), toy_data, toy_cfg, tmp_path, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # the temporary files of a write cut short by a kill do not count
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".config.yaml.x1.tmp").write_text("")
    assert RunDir(empty).plan_start(toy_cfg) is Start.NEW


def test_predict_refuses_a_run_with_a_missing_fold_or_unfinished(finished, toy_data, tmp_path) -> None:
    (finished / "fold1" / "best.safetensors").unlink()
    with pytest.raises(SpotterError, match="fold1 was trained but its weights are missing"):
        predict_submission(ToyTask(), finished, toy_data, tmp_path / "sub.csv")
    (finished / "metrics.json").unlink()
    with pytest.raises(SpotterError, match="training did not finish"):
        predict_submission(ToyTask(), finished, toy_data, tmp_path / "sub.csv")
    assert not (tmp_path / "sub.csv").exists()


def test_predict_refuses_corrupt_weights_in_one_line(finished, toy_data, tmp_path) -> None:
    weights = finished / "fold0" / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SpotterError, match="cannot load weights") as err:
        predict_submission(ToyTask(), finished, toy_data, tmp_path / "sub.csv")
    assert str(weights) in str(err.value) and "\n" not in str(err.value)


def test_validation_and_best_weights_are_the_ema_weights(toy_data, toy_cfg, tmp_path) -> None:
    # the EMA copies the weights at the first update, then (decay ~1) barely moves: the saved best weights must
    # sit near the weights after one step, far from where the raw weights end up
    toy_cfg.ema, toy_cfg.ema_decay, toy_cfg.epochs, toy_cfg.train_folds = True, 0.999999, 3, [0]
    train(ToyTask(), toy_data, toy_cfg, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    seed_everything(toy_cfg.seed, 1)  # how fit_fold seeds fold 0 before it builds the model
    initial = ToyTask().create_model(toy_cfg, None).state_dict()
    saved = load_file(str(run.weights_path(0)))
    raw = torch.load(run.state_path(0), weights_only=True)["model"]
    keys = [k for k in saved if k.endswith("weight") and saved[k].dtype.is_floating_point]
    saved_moved = sum(float((saved[k] - initial[k]).norm()) for k in keys)
    raw_moved = sum(float((raw[k] - initial[k]).norm()) for k in keys)
    assert 0 < saved_moved < 0.5 * raw_moved
