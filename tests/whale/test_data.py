import shutil

import pandas as pd
import pytest
import torch

from spotter.cli import main
from spotter.config import load_config
from spotter.errors import SpotterError
from spotter.whale.config import WhaleConfig
from spotter.whale.data import (
    encode_labels,
    find_problems,
    fix_species,
    load_image,
    read_whale_data,
)


@pytest.fixture()
def copy(whale_data, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(whale_data, target)
    return target


def test_reads_layout(whale_data):
    data = read_whale_data(whale_data, verify_images=True)
    assert list(data.train.columns[:3]) == ["image", "species", "individual_id"]
    assert len(data.test) > 0 and all(p.is_file() for p in data.test["path"])
    assert data.bboxes is not None and data.box(data.train["image"][0]) is not None


def test_species_fixes():
    raw = pd.Series(["bottlenose_dolpin", "kiler_whale", "globis", "pilot_whale", "beluga"])
    assert list(fix_species(raw)) == [
        "bottlenose_dolphin", "killer_whale", "short_finned_pilot_whale", "short_finned_pilot_whale", "beluga"
    ]


def test_species_fixed_on_read(copy):
    train = pd.read_csv(copy / "train.csv")
    train.loc[0, "species"] = "kiler_whale"
    train.to_csv(copy / "train.csv", index=False)
    assert read_whale_data(copy).train["species"][0] == "killer_whale"


def test_missing_image_names_file(copy):
    name = pd.read_csv(copy / "train.csv")["image"][1]
    (copy / "train_images" / name).unlink()
    with pytest.raises(SpotterError, match=name):
        read_whale_data(copy)


def test_missing_column(copy):
    pd.read_csv(copy / "train.csv").drop(columns="individual_id").to_csv(copy / "train.csv", index=False)
    with pytest.raises(SpotterError, match="individual_id"):
        read_whale_data(copy)


def test_every_problem_at_once(copy):
    train = pd.read_csv(copy / "train.csv")
    train = pd.concat([train, train.iloc[[0]]])  # a duplicate row (line len+2)
    train.to_csv(copy / "train.csv", index=False)
    test_name = pd.read_csv(copy / "sample_submission.csv")["image"][0]
    (copy / "test_images" / test_name).unlink()
    bad = pd.read_csv(copy / "train.csv")["image"][2]
    (copy / "train_images" / bad).write_bytes(b"not a jpeg")
    problems = find_problems(copy)
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert f"line {len(train) + 1}: duplicate image" in text
    assert test_name in text and "unreadable image" in text
    assert len(find_problems(copy, verify_images=False)) == 2  # exists-only misses the corrupt image


def test_check_cli(copy, whale_data, capsys):
    assert main(["whale", "check", str(whale_data)]) == 0
    (copy / "train.csv").unlink()
    capsys.readouterr()
    assert main(["whale", "check", str(copy)]) == 2
    out, err = capsys.readouterr()
    # the seti check's style: each problem on stderr, then the count; nothing on stdout
    assert out == "" and "train.csv" in err and err.strip().splitlines()[-1].endswith(f"1 problem(s) in {copy}")


def test_load_image_errors(tmp_path):
    with pytest.raises(SpotterError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"xx")
    with pytest.raises(SpotterError, match="unreadable"):
        load_image(tmp_path / "bad.jpg")


def test_crop_with_margin(whale_data):
    data = read_whale_data(whale_data)
    path = data.train["path"][0]
    image = load_image(path, (10, 20, 30, 40), margin=0.5)
    assert image.size == (40, 40)  # 20 px box widened by 10 px on each side


def test_dataset_items(whale_data):
    from spotter.whale.data import photo_dataset

    data = read_whale_data(whale_data)
    cfg = load_config(WhaleConfig, None, ["image_size=48"])
    classes, species = sorted(set(data.train["individual_id"])), sorted(set(data.train["species"]))
    labels, _ = encode_labels(list(data.train["individual_id"]), classes)
    dataset = photo_dataset(data.train, cfg, True, data.bboxes, classes, species)
    item = dataset[3]
    assert set(item) == {"index", "input", "target"}
    assert item["index"] == 3 and item["target"].tolist() == [labels[3], species.index(data.train["species"][3])]
    assert item["input"].shape == (3, 48, 48) and item["input"].dtype == torch.float32
    test = photo_dataset(data.test, cfg, False)
    assert test[0]["target"].tolist() == [-1, -1] and test[0]["input"].shape == (3, 48, 48)
    # eval transform is deterministic; flip mirrors the input
    plain, flipped = test[0]["input"], photo_dataset(data.test, cfg, False, flip=True)[0]["input"]
    assert torch.allclose(plain.flip(-1), flipped, atol=1e-5)


def test_encode_labels_unknown():
    labels, classes = encode_labels(["b", "a", "b"])
    assert classes == ["a", "b"] and labels.tolist() == [1, 0, 1]
    assert encode_labels(["c"], classes)[0].tolist() == [-1]
