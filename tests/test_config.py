from pathlib import Path

import pytest

from spotter.config import TrainConfig, load_config, to_yaml
from spotter.errors import SpotterError


def test_defaults_yaml_and_overrides_merge_in_order(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("epochs: 7\nlr: 0.01\nloss:\n  name: focal\n")
    cfg = load_config(TrainConfig, path, ["lr=0.5", "loss.gamma=0.5", "train_folds=[0,2]"])
    assert (cfg.epochs, cfg.lr, cfg.loss.name, cfg.loss.gamma, cfg.train_folds) == (7, 0.5, "focal", 0.5, [0, 2])
    assert cfg.batch_size == TrainConfig().batch_size


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(TrainConfig, None, ["epochs=3", "mixing.name=or_mixup"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(TrainConfig, path) == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["epoch=3"], "unknown config key 'epoch'"),
        (["loss.gama=1"], "unknown config key 'loss.gama'"),
        (["epochs=three"], "config key 'epochs'"),
        (["ema=maybe"], "config key 'ema'"),
        (["n_folds=1"], "'n_folds' must be at least 2"),
        (["full_fit_epochs=0"], "'full_fit_epochs' must be at least 1"),
        (["train_folds=[5]"], "'train_folds' must be folds in -1..4"),
        (["epochs"], "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message) -> None:
    with pytest.raises(SpotterError, match=message):
        load_config(TrainConfig, None, overrides)


def test_bad_yaml_key_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("batch_size: 8\nwarmup: 2\n")
    with pytest.raises(SpotterError, match=r"unknown config key 'warmup' \(.*bad.yaml\)"):
        load_config(TrainConfig, path)


def test_missing_config_file() -> None:
    with pytest.raises(SpotterError, match="config file not found"):
        load_config(TrainConfig, "/nonexistent/exp.yaml")
