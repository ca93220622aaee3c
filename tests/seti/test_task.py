"""The SETI model task: training lowers the loss, predict writes a submission, TTA, stem stride."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from spotter.config import load_config
from spotter.engine.cv import train
from spotter.engine.tta import TRANSFORMS, create_tta, predict_with_tta
from spotter.seti.config import SetiConfig, SetiModelConfig
from spotter.seti.synth import inject_needle
from spotter.errors import SpotterError
from spotter.seti.task import CadenceDataset, SetiNet, SetiTask, input_preprocess, predict_submission

FAST = [
    "epochs=3", "batch_size=8", "n_folds=2", "lr=3e-3", "threads=1", "model.backbone=test_resnet",
    "preprocess.panels=all", "preprocess.stack=channels", "preprocess.height=34", "preprocess.width=64",
    "preprocess.resize_mode=area",
]


@pytest.fixture(scope="module")
def needle_data(tmp_path_factory) -> Path:
    """32 train and 8 test cadences of unit noise; half carry a bright straight needle in the ON panels."""
    root = tmp_path_factory.mktemp("seti")
    rng = np.random.default_rng(0)
    for split, count in (("train", 32), ("test", 8)):
        ids, targets = [], []
        for i in range(count):
            sample_id = f"{'ab'[i % 2]}{split[:2]}{i:03d}"
            cadence = rng.standard_normal((6, 273, 256)).astype(np.float32)
            target = i % 2
            if target:
                cadence, _ = inject_needle(cadence, "straight", rng, snr=80.0, width=4.0, panels=(0, 2, 4))
            path = root / split / sample_id[0] / f"{sample_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, cadence.astype(np.float16))
            ids.append(sample_id)
            targets.append(target)
        labels = pd.DataFrame({"id": ids, "target": targets})
        if split == "train":
            labels.to_csv(root / "train_labels.csv", index=False)
            labels.assign(kind=np.where(labels.target == 1, "straight", "none")).to_csv(
                root / "train_meta.csv", index=False
            )
        else:
            labels.assign(target=0.5).to_csv(root / "sample_submission.csv", index=False)
            labels.to_csv(root / "test_labels.csv", index=False)
    return root


@pytest.fixture(scope="module")
def trained(needle_data: Path, tmp_path_factory):
    cfg = load_config(SetiConfig, None, FAST + ["augment.inject=0.3", "ema=true", "mixing.name=or_mixup"])
    run = tmp_path_factory.mktemp("run")
    return run, train(SetiTask(), needle_data, cfg, run)


def test_training_lowers_loss_and_predict_writes_submission(needle_data: Path, trained, tmp_path: Path) -> None:
    run, result = trained
    for fold in result.folds:
        assert fold.log[-1]["train_loss"] < fold.log[0]["train_loss"]
    out = predict_submission(run, needle_data, tmp_path / "sub.csv")
    sub = pd.read_csv(out, dtype={"id": str})
    truth = pd.read_csv(needle_data / "sample_submission.csv", dtype={"id": str})
    assert list(sub.columns) == ["id", "target"] and list(sub.id) == list(truth.id)
    assert sub.target.between(0, 1).all() and sub.target.nunique() > 1
    oof = pd.read_csv(run / "oof.csv")
    assert list(oof.columns) == ["id", "target", "pred"] and len(oof) == 32


def test_tta_is_mean_over_flipped_inputs() -> None:
    torch.manual_seed(0)
    model = SetiNet(SetiModelConfig(backbone="test_resnet"), 1).eval()
    x = torch.randn(2, 1, 32, 48)
    names = ["identity", "hflip", "vflip", "hvflip"]
    with torch.no_grad():
        got = predict_with_tta(lambda v: torch.sigmoid(model(v)), x, create_tta(names))
        expected = sum(torch.sigmoid(model(TRANSFORMS[n](x))) for n in names) / 4
        manual = (
            torch.sigmoid(model(x)) + torch.sigmoid(model(x.flip(3))) + torch.sigmoid(model(x.flip(2)))
            + torch.sigmoid(model(x.flip(2).flip(3)))
        ) / 4
    assert torch.allclose(got, expected, atol=1e-6) and torch.allclose(got, manual, atol=1e-6)
    assert not torch.allclose(got, torch.sigmoid(model(x)), atol=1e-6)  # flips do change the output


def test_score_head_reads_the_score_maps_peak() -> None:
    torch.manual_seed(0)
    model = SetiNet(SetiModelConfig(backbone="test_resnet", score_head=True), 3, score_channel=2).eval()
    x = torch.randn(4, 3, 16, 32).half()  # float16, as the dataset yields
    brighter = x.clone()
    brighter[:, 2, 5, 7] = 40.0  # only the score map's peak changes
    with torch.no_grad():
        model.score_norm.running_var.fill_(100.0)  # as if trained on peaks of ~0-40 noise stds
        model.head.weight[0, -1] = 1.0  # the head weighs the peak
        assert (model(brighter) > model(x) + 1.0).all()
    with pytest.raises(SpotterError, match="score_head"):
        SetiNet(SetiModelConfig(backbone="test_resnet", score_head=True), 3)


@pytest.mark.parametrize("backbone", ["resnet10t", "test_efficientnet"])
def test_stem_stride_keeps_frequency_size(backbone: str) -> None:
    # frequency on H (e.g. preprocess.transpose=true): stride (1, 2) keeps it whole in the first feature map
    x = torch.randn(1, 1, 64, 96)
    default = SetiNet(SetiModelConfig(backbone=backbone), 1)
    strided = SetiNet(SetiModelConfig(backbone=backbone, stem_stride=[1, 2]), 1)
    first_default = _first_conv_output(default, x)
    first_strided = _first_conv_output(strided, x)
    assert first_default.shape[-2:] == (32, 48)
    assert first_strided.shape[-2:] == (64, 48)


def _first_conv_output(model: SetiNet, x: torch.Tensor) -> torch.Tensor:
    conv = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    captured = {}
    handle = conv.register_forward_hook(lambda module, inputs, output: captured.setdefault("out", output))
    with torch.no_grad():
        model(x)
    handle.remove()
    return captured["out"]


def test_injection_turns_negatives_positive(needle_data: Path) -> None:
    cfg = load_config(SetiConfig, None, FAST + ["augment.inject=1.0"])
    rows = pd.read_csv(needle_data / "train_labels.csv", dtype={"id": str})
    paths = [str(needle_data / "train" / i[0] / f"{i}.npy") for i in rows.id]
    dataset = CadenceDataset(paths, np.zeros(len(paths)), cfg.preprocess, cfg.augment)
    assert all(dataset[i]["target"].item() == 1.0 for i in range(4))
    plain = CadenceDataset(paths, np.zeros(len(paths)), cfg.preprocess, None)
    assert all(plain[i]["target"].item() == 0.0 for i in range(4))


def test_interference_injection_keeps_labels_and_touches_off_panels(needle_data: Path) -> None:
    from spotter.seti import OFF_PANELS
    from spotter.seti.task import add_interference

    cfg = load_config(SetiConfig, None, FAST + ["augment.inject_rfi=1.0"])
    rows = pd.read_csv(needle_data / "train_labels.csv", dtype={"id": str})
    paths = [str(needle_data / "train" / i[0] / f"{i}.npy") for i in rows.id[:4]]
    targets = np.array([0.0, 1.0, 0.0, 1.0])
    dataset = CadenceDataset(paths, targets, cfg.preprocess, cfg.augment)
    assert [dataset[i]["target"].item() for i in range(4)] == targets.tolist()
    cadence = np.load(paths[0])
    rng = np.random.default_rng(0)
    for _ in range(10):  # every injected signal shows in the OFF panels: all six, or OFF only
        before = cadence.astype(np.float32)
        added = add_interference(before.copy(), cfg.augment, rng, np.ones(6, np.float32)) - before
        assert np.abs(added[list(OFF_PANELS)]).sum() > 0


def test_dedoppler_input_rejects_row_flips() -> None:
    cfg = load_config(SetiConfig, None, FAST + ["preprocess.stack=channels", "preprocess.dedoppler=true"])
    assert input_preprocess(cfg).dedoppler
    cfg.augment.vflip = 0.5
    with pytest.raises(SpotterError, match="vflip"):
        input_preprocess(cfg)


def test_search_with_a_run_scores_events(trained, tmp_path: Path) -> None:
    from dataclasses import replace

    from spotter.seti.search.config import SearchConfig
    from spotter.seti.search.runner import search_cadence
    from tests.seti.cadence_files import MIDRES, Signal, write_cadence

    run, _ = trained
    needle = Signal(500, 1.5, 30, (0, 2, 4), width_channels=1.0)
    paths = write_cadence(tmp_path / "data", replace(MIDRES, signals=[needle]))
    result = search_cadence(paths, tmp_path / "out", SearchConfig(top=0, rank_by="model_score"), run=run)
    assert len(result.events) >= 1 and result.events["model_score"].between(0, 1).all()
    assert result.events["model_score"].is_monotonic_decreasing


def test_report_shows_roc_folds_kinds_and_mistakes(needle_data: Path, trained) -> None:
    from spotter.seti.report import make_report

    run, _ = trained
    page = make_report(run, needle_data, mistakes=2).read_text()
    for heading in ("Out-of-fold ROC", "AUC per fold", "AUC per needle kind", "Most confident mistakes"):
        assert heading in page
    assert "straight" in page
    for png in ("roc.png", "scores.png", "false_positives.png", "false_negatives.png"):
        assert (run / png).stat().st_size > 1000
