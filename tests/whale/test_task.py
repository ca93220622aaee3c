"""The whale task on the engine: loss goes down, fold metric is MAP@5 with unseen ids, train → predict → match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from spotter.cli import main
from spotter.config import load_config
from spotter.metrics import NEW_INDIVIDUAL, map_at_5
from spotter.whale.config import WhaleConfig
from spotter.whale.model import HEAD_TOP
from spotter.whale.task import WhaleTask

TINY = [
    "model.backbone=test_efficientnet",
    "model.pretrained=false",
    "model.embedding_size=32",
    "image_size=64",
    "batch_size=8",
    "n_folds=2",
    "epochs=2",
    "threads=1",
    "lr=3e-3",
    "retrieval.k=20",
]


def tiny_config(*extra: str) -> WhaleConfig:
    return load_config(WhaleConfig, None, [*TINY, *extra])


def test_training_steps_lower_the_loss(whale_data):
    torch.manual_seed(0)
    cfg = tiny_config("augment.jitter=0.0", "model.two_stages=true")
    task = WhaleTask()
    rows = task.load_samples(whale_data, cfg)
    train_set, _ = task.create_datasets(whale_data, rows, None, cfg)
    model = task.create_model(cfg, rows)
    loss_fn = task.create_loss(cfg, rows)
    assert model.num_classes == rows["individual_id"].nunique()
    assert any(name.startswith("backbone.") for name, _ in model.named_parameters())
    batch = torch.utils.data.default_collate([train_set[i] for i in range(16)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss = loss_fn(task.forward(model, batch), batch["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] * 0.8


def _predictions(top_classes: list[list[int]], top_cosines: list[list[float]], dim: int = 4) -> np.ndarray:
    rows = []
    for classes, cosines in zip(top_classes, top_cosines):
        pad = HEAD_TOP - len(classes)
        rows.append(np.concatenate([np.ones(dim), cosines + [-2.0] * pad, classes + [-1] * pad]))
    return np.asarray(rows, dtype=np.float32)


def test_fold_metric_is_map_at_5_with_unseen_ids_as_new():
    task = WhaleTask()
    task.vocab = ["a", "b", "c", "d", "e", "f"]
    train_rows = pd.DataFrame({"individual_id": ["a", "b", "c", "d", "e"], "fold": [1] * 5})
    # "f" is absent from fold 0's train side
    rows = task.prepare_validation(train_rows, pd.DataFrame({"individual_id": ["a", "b", "f"], "fold": [0, 0, 0]}))
    predictions = _predictions(
        [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [2, 3, 4, 0, 1]],
        [[0.9, 0.5, 0.4, 0.3, 0.2], [0.8, 0.7, 0.3, 0.2, 0.1], [0.3, 0.2, 0.1, 0.05, 0.0]],
    )
    # threshold between 0.3 and 0.4 inserts new_individual: a at 1, b at 2, f (new) first
    expected = map_at_5(["a", "b", NEW_INDIVIDUAL], [["a", NEW_INDIVIDUAL], ["a", "b"], [NEW_INDIVIDUAL]])
    assert task.metric(rows, predictions) == pytest.approx(expected)
    assert list(rows["truth"]) == ["a", "b", NEW_INDIVIDUAL]
    # fewer head classes than HEAD_TOP: the padding is never a candidate
    short = _predictions([[1]], [[0.9]])
    assert task.metric(rows.iloc[[1]], short) == pytest.approx(1.0)


def test_train_predict_index_match_cli(whale_data, tmp_path, capsys):
    run = tmp_path / "run"
    # configs/whale/cpu.yaml trains fold 0 and a full fit; here both folds give out-of-fold rows for every photo
    assert main(["--quiet", "whale", "train", str(whale_data), "--out", str(run), *TINY, "train_folds=[]"]) == 0
    assert {"config.yaml", "folds.csv", "oof.npz", "metrics.json"} <= {p.name for p in run.iterdir()}
    oof = np.load(run / "oof.npz", allow_pickle=False)
    train = pd.read_csv(whale_data / "train.csv", dtype=str)
    assert len(oof["embeddings"]) == len(oof["labels"]) == len(oof["images"]) == len(train)
    assert set(oof["images"]) == set(train["image"])
    assert np.allclose(np.linalg.norm(oof["embeddings"], axis=1), 1.0, atol=1e-4)

    sub = tmp_path / "sub.csv"
    assert main(["--quiet", "whale", "predict", str(run), str(whale_data), "--out", str(sub)]) == 0
    frame = pd.read_csv(sub, dtype=str)
    test = pd.read_csv(whale_data / "sample_submission.csv", dtype=str)
    assert list(frame.columns) == ["image", "predictions"]
    assert list(frame["image"]) == list(test["image"])
    known = set(train["individual_id"]) | {NEW_INDIVIDUAL}
    for line in frame["predictions"]:
        ids = line.split()
        assert len(ids) == 5 and len(set(ids)) == 5 and set(ids) <= known
    assert (run / "calibration.json").is_file()  # fitted when training ended
    assert main(["score", str(sub), str(whale_data / "test_labels.csv")]) == 0
    assert "map_at_5" in capsys.readouterr().out

    assert main(["--quiet", "whale", "report", str(run), "--data", str(whale_data)]) == 0
    assert (run / "report.html").is_file()
    assert {"map_vs_threshold.png", "map_by_group.png", "thumbs"} <= {p.name for p in (run / "report_assets").iterdir()}

    assert main(["--quiet", "whale", "index", str(run), str(whale_data)]) == 0
    photo = whale_data / "train_images" / train["image"].iloc[0]
    out = tmp_path / "matches.csv"
    assert main(["--quiet", "whale", "match", str(run), str(photo), "--top", "3", "--out", str(out)]) == 0
    matches = pd.read_csv(out, dtype={"individual_id": str, "photo": str})
    assert len(matches) == 3 and list(matches["rank"]) == [1, 2, 3]
    assert out.with_suffix(".png").is_file()
    known = matches[matches["individual_id"] != NEW_INDIVIDUAL]
    assert known["probability"].between(0, 1).all() and known["probability"].is_monotonic_decreasing

    # with the run's own train photos as the catalogue, matching the test photos is predicting them
    everything = tmp_path / "all.csv"
    assert main(["--quiet", "whale", "match", str(run), str(whale_data / "test_images"), "--out", str(everything),
                 "--bboxes", str(whale_data / "bboxes.csv")]) == 0
    answers = pd.read_csv(everything, dtype=str).groupby("photo")["individual_id"].apply(list)
    predicted = pd.read_csv(sub, dtype=str).set_index("image")["predictions"].str.split()
    assert {Path(p).name: ids for p, ids in answers.items()} == predicted.to_dict()


def test_cli_bad_input_exits_2(whale_data, tmp_path, capsys):
    assert main(["--quiet", "whale", "train", str(whale_data), "--out", str(tmp_path / "r"), "head.name=cosface"]) == 2
    assert "head.name" in capsys.readouterr().err
    assert main(["--quiet", "whale", "train", str(whale_data), "--out", str(tmp_path / "r"), "nope=1"]) == 2
    assert main(["--quiet", "whale", "predict", str(tmp_path / "missing"), str(whale_data), "--out", "x.csv"]) == 2
    assert main(["--quiet", "whale", "match", str(tmp_path / "missing"), "p.jpg"]) == 2


def test_default_config_uses_bundled_lite0_weights():
    from spotter.config import default_config_path
    from spotter.models.backbones import lite0_imagenet_state
    from spotter.whale.model import WhaleNet

    cfg = load_config(WhaleConfig, default_config_path("whale"))
    assert cfg.model.backbone == "tf_efficientnet_lite0" and cfg.head.name == "subcenter"
    model = WhaleNet(cfg, [1, 2, 3], [4, 5])
    reference = lite0_imagenet_state()["conv_stem.weight"]
    assert torch.equal(model.backbone.state_dict()["conv_stem.weight"], reference)
    # rarer ids get larger margins: m(n) = 0.27126·n^-0.364399 + 0.05
    assert model.head.margins[0] == pytest.approx(0.27126 + 0.05)
    assert model.head.margins[0] > model.head.margins[2]


def test_gpu_config_is_the_published_recipe():
    from spotter.config import CONFIG_ROOT

    cfg = load_config(WhaleConfig, CONFIG_ROOT / "whale" / "gpu.yaml")
    assert (cfg.head.subcenters, cfg.head.scale, cfg.head.species_scale) == (2, 20.96, 33.14)
    assert (cfg.head.id_weight, cfg.head.species_weight) == (0.437, 0.563)
    assert (cfg.lr, cfg.head_lr_mult, cfg.epochs, cfg.mixed_precision) == (1.6e-3, 10.0, 30, "bf16")
    assert cfg.warmup_epochs == pytest.approx(0.2 * cfg.epochs)
    assert cfg.model.two_stages and cfg.image_size >= 768
    assert cfg.model.pretrained == "true"  # the winners started from ImageNet weights


def test_gpu_recipes_start_from_imagenet_weights_and_cpu_seti_from_scratch():
    from spotter.config import pretrained_value, shipped_configs
    from spotter.seti.config import SetiConfig

    for name, path in shipped_configs("seti").items():
        expected = name.startswith("gpu")  # the cpu config's half-width ResNet has no ImageNet weights
        assert pretrained_value(load_config(SetiConfig, path).model.pretrained) is expected, name


@pytest.mark.slow
def test_whale_demo(tmp_path):
    from spotter.whale.demo import whale_demo

    lines = list(whale_demo(tmp_path, individuals=20))
    assert len(lines) == 3 and "test MAP@5" in lines[1]
    assert (tmp_path / "submission.csv").is_file()


def test_full_fit_answers_while_the_fold_calibrates(whale_data, tmp_path):
    from spotter.engine.predict import predict_submission
    from spotter.whale.matcher import Matcher
    from spotter.whale.views import FoldModel, answering_models

    run = tmp_path / "run"
    args = [*TINY, "train_folds=[0,-1]", "retrieval.predict_with=full", "retrieval.threshold_mode=oof_ratio",
            "retrieval.local_features=false"]
    assert main(["--quiet", "whale", "train", str(whale_data), "--out", str(run), *args]) == 0
    submission = predict_submission(WhaleTask(), run, whale_data, tmp_path / "sub.csv")
    assert submission.record["models"] == ["full"]  # the fold only calibrated
    calibration = submission.record
    assert calibration["mode"] == "oof_ratio" and 0 <= calibration["new_ratio"] <= 1
    # (the share carried to the test photos is tested in test_threshold: this test set is too small for a share)
    assert [fm.name for fm in Matcher.load(run).models] == ["full"]  # match answers as predict does

    models = [FoldModel("fold0", 0, None, None), FoldModel("full", -1, None, None)]
    assert [fm.name for fm in answering_models(models, tiny_config())] == ["fold0", "full"]  # predict_with: all
    assert [fm.name for fm in answering_models(models[:1], tiny_config("retrieval.predict_with=full"))] == ["fold0"]
    with pytest.raises(Exception, match="retrieval.predict_with"):
        tiny_config("retrieval.predict_with=best")
