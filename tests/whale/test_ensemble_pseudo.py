"""Whale ensembles (mean of per-individual scores, threshold re-tuned) and pseudo-labelled data folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.data import read_whale_data
from spotter.whale.ensemble import blend_candidates, densify
from spotter.whale.pseudo import select_confident

from .test_task import TINY


def test_densify_fills_absent_ids_with_the_rows_lowest_kept_score():
    labels = np.array([[2, 0, -1], [1, 3, 0]])
    scores = np.array([[0.9, 0.5, -np.inf], [0.8, 0.7, 0.1]])
    dense = densify(labels, scores, 4)
    assert np.allclose(dense, [[0.5, 0.5, 0.9, 0.5], [0.1, 0.8, 0.1, 0.7]])


def test_blend_averages_scores_before_taking_the_top():
    # run A prefers id 0 then 1; run B prefers id 2 then 1: id 1 wins the mean (0.7 + 0.7) / 2
    a = (np.array([[0, 1, 2]]), np.array([[0.9, 0.7, 0.1]]))
    b = (np.array([[2, 1, 0]]), np.array([[0.9, 0.7, 0.2]]))
    blended = blend_candidates([a, b], num_classes=3, top=3)
    assert blended.labels.tolist() == [[1, 0, 2]]
    assert np.allclose(blended.scores, [[0.7, 0.55, 0.5]])
    # a weight of 1 on one run reproduces that run's ranking
    alone = blend_candidates([a, b], num_classes=3, weights=[1.0, 0.0], top=3)
    assert alone.labels.tolist() == [[0, 1, 2]] and np.allclose(alone.scores, [[0.9, 0.7, 0.1]])


def test_blend_in_batches_equals_one_batch():
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(2):
        scores = -np.sort(-rng.random((37, 6)), axis=1)
        labels = np.stack([rng.permutation(20)[:6] for _ in range(37)])
        parts.append((labels, scores))
    one = blend_candidates(parts, 20, batch_size=1000)
    many = blend_candidates(parts, 20, batch_size=5)
    assert np.array_equal(one.labels, many.labels) and np.allclose(one.scores, many.scores)


def test_select_confident_keeps_scores_at_or_above_the_threshold():
    chosen = select_confident(["a", "b", "c", "d"], ["x", "y", "x", "z"], np.array([0.2, 0.9, 0.5, 0.5]), 0.5)
    assert chosen["image"].tolist() == ["b", "c", "d"]
    assert chosen["individual_id"].tolist() == ["y", "x", "z"]
    assert select_confident(["a"], ["x"], np.array([0.4]), 0.5).empty
    # a lead over the runner-up can be required too
    lead = select_confident(["a", "b", "c"], ["x", "y", "z"], np.array([0.9, 0.8, 0.7]), 0.5,
                            margins=np.array([0.01, 0.2, 0.1]), min_margin=0.1)
    assert lead["image"].tolist() == ["b", "c"]


@pytest.fixture(scope="module")
def two_runs(whale_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("whale_runs")
    runs = []
    # a seed ensemble: other initialization and batches, the same folds (fold_seed)
    for name, seed in (("a", 42), ("b", 7)):
        run = root / name
        args = ["--quiet", "whale", "train", str(whale_data), "--out", str(run), *TINY, "train_folds=[]",
                f"seed={seed}", "fold_seed=42"]
        assert main(args) == 0
        runs.append(run)
    return runs


def test_ensemble_cli_blends_whale_runs_and_records_its_inputs(two_runs, whale_data, tmp_path, capsys):
    sub = tmp_path / "blend.csv"
    args = ["ensemble", *map(str, two_runs), "--data", str(whale_data), "--out", str(sub)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "oof MAP@5 ensemble (mean of scores)" in out
    frame = pd.read_csv(sub, dtype=str)
    test = pd.read_csv(whale_data / "sample_submission.csv", dtype=str)
    assert list(frame["image"]) == list(test["image"])
    known = set(pd.read_csv(whale_data / "train.csv", dtype=str)["individual_id"]) | {NEW_INDIVIDUAL}
    assert all(len(p.split()) == 5 and set(p.split()) <= known for p in frame["predictions"])
    record = json.loads(sub.with_suffix(".json").read_text())
    assert record["runs"] == [str(r) for r in two_runs] and record["method"] == "mean"
    assert set(record["metrics"]["inputs_oof"]) == {str(r) for r in two_runs}
    assert 0 <= record["metrics"]["ensemble_oof"] <= 1
    # the scores are cached per run: a second blend reuses them and gives the same submission
    assert all(any(r.glob("ensemble_scores-*.npz")) for r in two_runs)
    again = tmp_path / "again.csv"
    assert main(["--quiet", "ensemble", *map(str, two_runs), "--data", str(whale_data), "--out", str(again)]) == 0
    assert again.read_text() == sub.read_text()


def test_ensemble_rejects_runs_with_other_folds_or_methods(two_runs, whale_data, tmp_path, capsys):
    other = tmp_path / "other_folds"
    args = ["--quiet", "whale", "train", str(whale_data), "--out", str(other), *TINY, "train_folds=[]", "seed=7",
            "epochs=1"]
    assert main(args) == 0
    sub = tmp_path / "sub.csv"
    capsys.readouterr()
    assert main(["--quiet", "ensemble", str(two_runs[0]), str(other), "--data", str(whale_data), "--out", str(sub)]) == 2
    assert "out-of-fold photos differ" in capsys.readouterr().err
    assert main(["--quiet", "ensemble", *map(str, two_runs), "--data", str(whale_data), "--out", str(sub),
                 "--method", "stack"]) == 2
    assert "--method mean" in capsys.readouterr().err
    assert main(["--quiet", "ensemble", str(two_runs[0]), str(two_runs[0]), "--data", str(whale_data),
                 "--out", str(sub)]) == 2
    assert "run given twice" in capsys.readouterr().err
    assert not sub.exists()


def test_pseudo_adds_confident_test_photos_under_their_top1_id(two_runs, whale_data, tmp_path):
    everything = tmp_path / "all"
    assert main(["--quiet", "whale", "pseudo", *map(str, two_runs), str(whale_data), "--out", str(everything),
                 "--threshold", "-10"]) == 0
    summary = json.loads((everything / "pseudo.json").read_text())
    train = pd.read_csv(whale_data / "train.csv", dtype=str)
    test = pd.read_csv(whale_data / "sample_submission.csv", dtype=str)
    assert summary["pseudo_photos"] == len(test) and summary["train_photos"] == len(train)
    rows = pd.read_csv(everything / "train.csv", dtype=str)
    pseudo = rows[rows["pseudo"] == "1"]
    assert len(rows) == len(train) + len(test) and set(pseudo["image"]) == set(test["image"])
    # each pseudo row carries its id's species, and the id is the blend's first candidate
    species_of = dict(zip(train["individual_id"], train["species"]))
    assert all(species_of[i] == s for i, s in zip(pseudo["individual_id"], pseudo["species"]))
    blend = tmp_path / "blend.csv"
    assert main(["--quiet", "ensemble", *map(str, two_runs), "--data", str(whale_data), "--out", str(blend)]) == 0
    first = {img: [p for p in line.split() if p != NEW_INDIVIDUAL][0]
             for img, line in pd.read_csv(blend, dtype=str).itertuples(index=False)}
    assert all(first[img] == i for img, i in zip(pseudo["image"], pseudo["individual_id"]))
    truth = pd.read_csv(whale_data / "test_labels.csv", dtype=str).set_index("image")["individual_id"]
    assert summary["pseudo_correct"] == int((truth.loc[pseudo["image"]].to_numpy() == pseudo["individual_id"]).sum())
    # the new folder is a data folder in its own right, its photos linked, not copied
    data = read_whale_data(everything)
    assert len(data.train) == len(rows) and (everything / "train_images" / pseudo["image"].iloc[0]).is_symlink()

    # a threshold between two top-1 probabilities takes exactly the photos at or above it
    from spotter.whale.ensemble import blend_runs

    blend = blend_runs(two_runs, whale_data)
    top1 = blend.calibration.scores(blend.test.scores[:, 0])
    threshold = float(np.median(top1))
    half = tmp_path / "half"
    assert main(["--quiet", "whale", "pseudo", *map(str, two_runs), str(whale_data), "--out", str(half),
                 "--threshold", str(threshold)]) == 0
    assert json.loads((half / "pseudo.json").read_text())["pseudo_photos"] == int((top1 >= threshold).sum())
    # a margin above every lead takes none either
    led = tmp_path / "led"
    assert main(["--quiet", "whale", "pseudo", *map(str, two_runs), str(whale_data), "--out", str(led),
                 "--threshold", "-10", "--margin", "10"]) == 0
    assert json.loads((led / "pseudo.json").read_text())["pseudo_photos"] == 0
    none = tmp_path / "none"
    assert main(["--quiet", "whale", "pseudo", str(two_runs[0]), str(whale_data), "--out", str(none),
                 "--threshold", "10"]) == 0
    assert json.loads((none / "pseudo.json").read_text())["pseudo_photos"] == 0
    # a second round from the pseudo folder replaces the earlier pseudo rows instead of stacking them
    again = tmp_path / "round2"
    assert main(["--quiet", "whale", "pseudo", str(two_runs[0]), str(everything), "--out", str(again),
                 "--threshold", "-10"]) == 0
    second = json.loads((again / "pseudo.json").read_text())
    assert second["replaced_earlier_pseudo"] == len(test) and second["pseudo_photos"] == len(test)
    assert len(pd.read_csv(again / "train.csv", dtype=str)) == len(train) + len(test)


def test_pseudo_refuses_a_non_empty_output_folder(two_runs, whale_data, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--quiet", "whale", "pseudo", str(two_runs[0]), str(whale_data), "--out", str(out),
                 "--threshold", "0"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
