import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.data import read_whale_data
from spotter.whale.synth import (
    NUISANCE_PRESETS,
    SPECIES,
    SynthConfig,
    draw_individual,
    draw_sighting,
    make_synthetic,
    plan_sightings,
)


def test_layout_and_labels(whale_data):
    data = read_whale_data(whale_data, verify_images=True)
    labels = pd.read_csv(whale_data / "test_labels.csv")
    assert list(labels.columns[:3]) == ["image", "individual_id", "species"]
    assert list(labels["image"]) == list(data.test["image"])
    known = set(data.train["individual_id"])
    new = labels["individual_id"] == NEW_INDIVIDUAL
    assert new.any() and (~new).any()
    assert set(labels.loc[~new, "individual_id"]) <= known
    assert not set(labels.loc[new, "animal"]) & known  # new animals really are absent from train
    assert set(data.train["species"]) <= set(SPECIES)
    boxes = pd.read_csv(whale_data / "bboxes.csv")
    assert ((boxes.x2 > boxes.x1) & (boxes.y2 > boxes.y1)).all()


def test_plan_is_long_tailed_with_new_ratio():
    plan = plan_sightings(SynthConfig(individuals=2000, seed=1))
    counts = plan[plan.folder == "train_images"].individual_id.value_counts()
    assert 0.5 < (counts == 1).mean() < 0.7  # most animals seen once, as in Happywhale (59%)
    assert counts.max() >= 10
    test = plan[plan.folder == "test_images"]
    assert abs(test["new"].mean() - 0.2) < 0.01
    assert plan["image"].is_unique


def test_reproducible(tmp_path):
    config = SynthConfig(individuals=3, seed=9, image_size=48)
    make_synthetic(tmp_path / "a", config)
    make_synthetic(tmp_path / "b", config, workers=2)  # same output from any number of processes
    a = pd.read_csv(tmp_path / "a" / "train.csv")
    assert a.equals(pd.read_csv(tmp_path / "b" / "train.csv"))
    for name in a["image"]:
        assert (tmp_path / "a" / "train_images" / name).read_bytes() == (tmp_path / "b" / "train_images" / name).read_bytes()
    other = plan_sightings(SynthConfig(individuals=3, seed=10))
    assert set(other["image"]).isdisjoint(a["image"])


def test_marks_are_individual_and_stable():
    # two drawings of one animal are identical; two animals of a species differ in their marks
    first = np.asarray(draw_individual("killer_whale", np.random.default_rng([0, 1, 7])), np.float32)
    again = np.asarray(draw_individual("killer_whale", np.random.default_rng([0, 1, 7])), np.float32)
    other = np.asarray(draw_individual("killer_whale", np.random.default_rng([0, 1, 8])), np.float32)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 2.0


def test_sighting_varies_pose():
    template = draw_individual("humpback_whale", np.random.default_rng(0))
    a, box_a = draw_sighting(template, np.random.default_rng(1), 96)
    b, box_b = draw_sighting(template, np.random.default_rng(2), 96)
    assert a.size == (96, 96) and a.mode == "RGB"
    assert np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() > 5
    assert 0 <= box_a[0] < box_a[2] <= 96


@pytest.mark.parametrize("args", [["--individuals", "0"], ["--test-new-ratio", "1.5"]])
def test_bad_arguments(tmp_path, args, capsys):
    assert main(["whale", "synth", str(tmp_path / "x"), "--quiet", *args]) == 2
    assert "spotter: error" in capsys.readouterr().err


def test_cli_synth(tmp_path, capsys):
    assert main(["whale", "synth", str(tmp_path / "d"), "--individuals", "2", "--image-size", "40", "--quiet"]) == 0
    assert "train photos of 2 individuals" in capsys.readouterr().out
    assert (tmp_path / "d" / "sample_submission.csv").is_file()


def test_bad_config_raises(tmp_path):
    with pytest.raises(SpotterError):
        make_synthetic(tmp_path / "unused", SynthConfig(image_size=8))
    assert not (tmp_path / "unused").exists()


def test_hard_preset_changes_only_the_photos():
    template = draw_individual("killer_whale", np.random.default_rng(3))
    plain, _ = draw_sighting(template, np.random.default_rng(4), 96)
    hard, _ = draw_sighting(template, np.random.default_rng(4), 96, NUISANCE_PRESETS["hard"])
    again, _ = draw_sighting(template, np.random.default_rng(4), 96, NUISANCE_PRESETS["hard"])
    default, _ = draw_sighting(template, np.random.default_rng(4), 96, NUISANCE_PRESETS["default"])
    assert np.array_equal(np.asarray(hard), np.asarray(again))  # deterministic
    assert np.array_equal(np.asarray(plain), np.asarray(default))  # the default preset is the original photos
    assert np.abs(np.asarray(hard, np.float32) - np.asarray(plain, np.float32)).mean() > 5
    # who is seen when does not depend on the preset
    config = SynthConfig(individuals=30, seed=2)
    assert plan_sightings(config).equals(plan_sightings(SynthConfig(individuals=30, seed=2, nuisance=NUISANCE_PRESETS["hard"])))


def test_cli_synth_preset(tmp_path, capsys):
    args = ["whale", "synth", "--individuals", "2", "--image-size", "40", "--quiet"]
    assert main([*args, str(tmp_path / "d"), "--preset", "hard"]) == 0
    assert main([*args, str(tmp_path / "e"), "--preset", "stormy"]) == 2
    assert "unknown --preset 'stormy'" in capsys.readouterr().err
