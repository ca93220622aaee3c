"""`spotter ensemble` on SETI runs (cached test predictions, records, stacking) and `spotter seti pseudo`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotter import cli
from spotter.config import load_config
from spotter.engine.cv import make_folds, train
from spotter.errors import SpotterError
from spotter.seti.config import SetiConfig
from spotter.seti.data import list_split
from spotter.seti.pseudo import make_pseudo_dataset
from spotter.seti.task import SetiTask
from tests.seti.test_task import FAST, needle_data  # noqa: F401  (module-scoped fixture)


@pytest.fixture(scope="module")
def runs(needle_data: Path, tmp_path_factory) -> tuple[Path, Path]:  # noqa: F811
    """Two runs on the same folds (same seed) that differ in learning rate and epochs."""
    a, b = tmp_path_factory.mktemp("runA"), tmp_path_factory.mktemp("runB")
    train(SetiTask(), needle_data, load_config(SetiConfig, None, FAST), a)
    train(SetiTask(), needle_data, load_config(SetiConfig, None, FAST + ["epochs=2", "lr=1e-3"]), b)
    return a, b


@pytest.fixture
def spotter_main(monkeypatch):
    """`spotter` in-process."""
    return cli.main


@pytest.mark.parametrize("method", ["mean", "rank", "weights"])
def test_ensemble_writes_submission_record_and_reuses_cache(
    method, runs, needle_data, spotter_main, tmp_path, capsys  # noqa: F811
) -> None:
    a, b = runs
    out = tmp_path / "sub.csv"
    args = ["--quiet", "ensemble", str(a), str(b), "--data", str(needle_data), "--out", str(out), "--method", method]
    assert spotter_main(args) == 0
    sub = pd.read_csv(out, dtype={"id": str})
    truth = pd.read_csv(needle_data / "sample_submission.csv", dtype={"id": str})
    assert list(sub.columns) == ["id", "target"] and list(sub["id"]) == list(truth["id"])
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["method"] == method and record["runs"] == [str(a), str(b)]
    assert set(record["metrics"]["inputs_oof"]) == {str(a), str(b)} and 0 <= record["metrics"]["ensemble_oof"] <= 1
    caches = [Path(c["file"]) for c in record["test_predictions"]]
    assert [p.parent for p in caches] == [a, b] and all(p.is_file() for p in caches)
    capsys.readouterr()
    assert spotter_main([a for a in args if a != "--quiet"]) == 0
    assert capsys.readouterr().out.count("from cache") == 2
    if method == "weights":
        assert sum(record["weights"].values()) == pytest.approx(1)
    if method == "mean":  # the mean of the cached predictions, by hand
        preds = [pd.read_csv(p, dtype={"id": str})["target"].to_numpy() for p in caches]
        np.testing.assert_allclose(sub["target"], np.mean(preds, axis=0), rtol=1e-6)


def test_stack_uses_dedoppler_features_by_default(runs, needle_data, spotter_main, tmp_path, capsys) -> None:  # noqa: F811
    a, b = runs
    out = tmp_path / "stack.csv"
    args = ["ensemble", str(a), str(b), "--data", str(needle_data), "--out", str(out), "--method", "stack", "--quiet"]
    assert spotter_main(args) == 0
    printed = capsys.readouterr().out
    assert "stack CV" in printed and "oof AUC feature dedoppler_score" in printed
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["features"][:2] == ["run0", "run1"] and "dedoppler_score" in record["features"]
    assert record["stack"]["name"] == "logistic"
    assert pd.read_csv(out)["target"].between(0, 1).all()
    # the written blend is the better of stack and mean by their CV figures, and the printout says so when it is the mean
    selection = record["selection"]
    below = selection["cv_oof"]["stack"] < selection["cv_oof"]["mean"]
    assert selection["written"] == ("mean" if below else "stack")
    assert ("is below the mean's" in printed) == below
    # --features alone: runs only; --no-fallback: the stack's blend whatever its CV
    assert spotter_main(args + ["--features", "--no-fallback", "--stacker", "xgboost"]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["features"] == ["run0", "run1"] and record["selection"]["written"] == "stack"
    assert record["stack"]["name"] == "xgboost"


def test_mismatched_runs_exit_2_naming_them(runs, needle_data, spotter_main, tmp_path, capsys) -> None:  # noqa: F811
    a, _ = runs
    c = tmp_path / "runC"
    shutil.copytree(a, c)
    folds = pd.read_csv(c / "folds.csv", dtype={"id": str})
    folds.loc[0, "fold"] = 1 - folds.loc[0, "fold"]
    folds.to_csv(c / "folds.csv", index=False)
    code = spotter_main(["ensemble", str(a), str(c), "--data", str(needle_data), "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and str(c) in err and str(a) in err and repr(folds.loc[0, "id"]) in err
    assert not (tmp_path / "x.csv").exists()


def test_pseudo_dataset_adds_test_samples_and_trains(runs, needle_data, tmp_path) -> None:  # noqa: F811
    a, b = runs
    out = tmp_path / "data2"
    summary = make_pseudo_dataset(a, needle_data, out, mode="soft", top=2, bottom=3)
    preds = pd.read_csv(summary["predictions"], dtype={"id": str}).sort_values("target")
    labels = pd.read_csv(out / "train_labels.csv", dtype={"id": str})
    pseudo = labels[labels["pseudo"] == 1]
    assert summary["pseudo_samples"] == 5 and summary["train_samples"] == 32 and len(labels) == 37
    assert set(pseudo["id"]) == set(preds["id"].iloc[:3]) | set(preds["id"].iloc[-2:])
    np.testing.assert_allclose(
        pseudo.set_index("id")["target"].sort_index(), preds.set_index("id").loc[pseudo["id"], "target"].sort_index()
    )
    assert sorted(pseudo["stratum"]) == ["pseudo_0"] * 3 + ["pseudo_1"] * 2
    link = out / "train" / pseudo["id"].iloc[0][0] / f"{pseudo['id'].iloc[0]}.npy"
    assert link.is_symlink() and link.resolve().parent.parent.name == "test"
    assert (out / "test").is_symlink()
    assert list(list_split(out, "test")["id"]) == list(list_split(needle_data, "test")["id"])
    assert json.loads((out / "pseudo.json").read_text())["mode"] == "soft"

    # soft targets: the engine's folds stratify by `stratum`, and a round trains on DATA2
    rows = SetiTask().load_samples(out, load_config(SetiConfig, None, FAST))
    folds = make_folds(rows, 2, 0, stratify="stratum")
    assert all((rows["stratum"][folds == k].value_counts() >= 1).all() for k in (0, 1))
    cfg = load_config(SetiConfig, None, FAST + ["epochs=1", "stratify_by=stratum"])
    result = train(SetiTask(), out, cfg, tmp_path / "round2")
    assert len(pd.read_csv(result.oof_path)) == 37

    # a second round replaces the first round's pseudo rows instead of adding to them
    out3 = tmp_path / "data3"
    second = make_pseudo_dataset(b, out, out3, mode="hard", threshold=0.51)
    labels3 = pd.read_csv(out3 / "train_labels.csv", dtype={"id": str})
    assert second["replaced_earlier_pseudo"] == 5 and second["train_samples"] == 32
    assert labels3["id"].is_unique and set(labels3.loc[labels3["pseudo"] == 1, "target"]) <= {0.0, 1.0}
    assert len(labels3) == 32 + second["pseudo_samples"]


def test_pseudo_refuses_non_empty_output_and_cli_prints(runs, needle_data, tmp_path, capsys) -> None:  # noqa: F811
    from spotter.seti.pseudo_cli import add_pseudo_command

    a, _ = runs
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(SpotterError, match="not empty"):
        make_pseudo_dataset(a, needle_data, tmp_path / "full", top=1, bottom=1)
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    add_pseudo_command(parser.add_subparsers(), common)
    args = parser.parse_args(["pseudo", str(a), str(needle_data), "--out", str(tmp_path / "d"), "--mode", "hard",
                              "--top", "1", "--bottom", "2"])
    args.quiet = True
    assert args.func(args) == 0
    assert "1 positive, 2 negative" in capsys.readouterr().out
