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
from spotter.errors import SpotterError
from spotter.engine.predict import predict_submission
from spotter.seti.config import SetiConfig, SetiModelConfig
from spotter.seti.task import CadenceDataset, SetiNet, SetiTask
from tests.seti.test_needles import with_needle

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
                cadence, _ = with_needle(cadence, rng, snr=80.0, width=4.0, panels=(0, 2, 4))
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
    out = tmp_path / "sub.csv"
    predict_submission(SetiTask(), run, needle_data, out)
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


def test_injection_can_follow_a_generator_preset() -> None:
    from spotter.seti.needles import NEEDLE_PRESETS, NeedleRanges
    from spotter.seti.task import injection_recipe

    cfg = load_config(SetiConfig, None, FAST + ["augment.inject_snr=[4,60]"])
    assert injection_recipe(cfg.augment) == (NeedleRanges(), [4.0, 60.0])
    cfg = load_config(SetiConfig, None, FAST + ["augment.inject_preset=wide"])
    ranges, snr = injection_recipe(cfg.augment)
    assert ranges == NEEDLE_PRESETS["wide"].ranges and snr is None  # the preset's own SNR range
    assert ranges.snr[0] < 4 and ranges.p_partial > NeedleRanges().p_partial


def test_interference_injection_keeps_labels_and_changes_the_input(needle_data: Path) -> None:
    cfg = load_config(SetiConfig, None, FAST + ["augment.inject_rfi=1.0", "augment.hflip=0.0"])
    rows = pd.read_csv(needle_data / "train_labels.csv", dtype={"id": str})
    paths = [str(needle_data / "train" / i[0] / f"{i}.npy") for i in rows.id[:4]]
    targets = np.array([0.0, 1.0, 0.0, 1.0])
    injected = CadenceDataset(paths, targets, cfg.preprocess, cfg.augment)
    plain = CadenceDataset(paths, targets, cfg.preprocess)
    torch.manual_seed(0)
    items = [injected[i] for i in range(4)]
    assert [item["target"].item() for item in items] == targets.tolist()
    assert not any(torch.equal(item["input"], plain[i]["input"]) for i, item in enumerate(items))


@pytest.mark.parametrize("pooling, p, learnable", [("gem", 4.0, False), ("gem", 3.0, True), ("avg", 4.0, False)])
def test_pooling_is_built_from_the_registry_with_the_configs_settings(pooling, p, learnable) -> None:
    from spotter.models.pooling import POOLING

    cfg = SetiModelConfig(backbone="test_resnet", pooling=pooling, gem_p=p, gem_learnable=learnable)
    pool = SetiNet(cfg, 1).pool
    assert type(pool) is POOLING[pooling]
    if pooling == "gem":
        assert pool.p.item() == p and pool.p.requires_grad is learnable


def test_same_seed_same_initial_weights() -> None:
    cfg = SetiModelConfig(backbone="test_resnet", score_head=True)
    torch.manual_seed(3)
    first = SetiNet(cfg, 3, score_channel=2).state_dict()
    torch.manual_seed(3)
    second = SetiNet(cfg, 3, score_channel=2).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["head.weight"], SetiNet(cfg, 3, score_channel=2).state_dict()["head.weight"])


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
    for heading in ("Model against the de-Doppler baseline", "Learning curves", "AUC per fold",
                    "AUC per needle kind", "Most confident mistakes"):
        assert heading in page
    assert "needle: straight" in page and "de-Doppler baseline AUC" in page
    assets = run / "report_assets"
    for png in ("roc.png", "scores.png", "learning_curves.png", "auc_by_kind.png", "false_positives_1.png",
                "false_negatives_2.png"):
        assert (assets / png).stat().st_size > 1000
