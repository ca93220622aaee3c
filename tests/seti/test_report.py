"""The SETI run report: model against the de-Doppler baseline, learning curves, groups, labelled mistakes, escaping."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotter.engine.rundir import RunDir
from spotter.io import write_csv
from spotter.seti.data import TRAIN_META, sample_path

SCRIPT_ID = "<script>alert(1)"  # an id a page must show as text, never run


def _cadence(rng: np.random.Generator, needle: bool) -> np.ndarray:
    cadence = rng.standard_normal((6, 273, 256)).astype(np.float32)
    if needle:  # a bright straight drift through the ON panels only
        rows = np.arange(273)
        for panel in (0, 2, 4):
            channels = (60 + 0.05 * (rows + 273 * panel)).astype(int)
            cadence[panel, rows, channels] += 8.0
    return cadence.astype(np.float16)


@pytest.fixture(scope="module")
def seti_run(tmp_path_factory) -> tuple[Path, Path]:
    """A data folder of 20 cadences (half with a needle) and a finished two-fold run whose model is weak."""
    root = tmp_path_factory.mktemp("seti-report")
    data, run = root / "data", RunDir(root / "run")
    rng = np.random.default_rng(0)
    ids = [SCRIPT_ID] + [f"{'abcdef'[i % 6]}{i:04d}" for i in range(1, 20)]
    targets = np.array([0, 1] * 10, dtype=float)
    for sample_id, target in zip(ids, targets):
        path = sample_path(data, "train", sample_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, _cadence(rng, bool(target)))
    write_csv(data / "train_labels.csv", pd.DataFrame({"id": ids, "target": targets.astype(int)}))
    kinds = np.where(targets == 1, np.where(np.arange(20) % 4 == 1, "straight", "sine"), "none")
    snr = np.where(targets == 1, np.linspace(5, 50, 20), 0.0)
    panels = np.where(targets == 1, "0,2,4", "")
    write_csv(data / TRAIN_META, pd.DataFrame({"id": ids, "target": targets, "kind": kinds, "snr": snr,
                                               "panels": panels}))
    # the model: noise, except that the script id (a negative) gets the highest score
    preds = rng.uniform(0.2, 0.6, size=20)
    preds[0] = 0.99
    run.path.mkdir()
    write_csv(run.oof_table, pd.DataFrame({"id": ids, "target": targets, "pred": preds}))
    run.write_folds(pd.DataFrame({"id": ids, "fold": np.arange(20) % 2}))
    for fold in (0, 1):
        run.log_path(fold).parent.mkdir()
        write_csv(run.log_path(fold), pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5],
                                                    "valid_loss": [0.7, 0.69, 0.71], "metric": [0.5, 0.6, 0.55]}))
    run.write_metrics({"task": "seti", "folds": [0, 1], "metric_name": "AUC", "oof_metric": 0.5,
                       "best_epoch": {"fold0": 2, "fold1": 2}, "seconds": 1.0})
    return run.path, data


@pytest.fixture()
def roc_curves(monkeypatch) -> list[list[str]]:
    """The names of the curves each ROC figure of the report draws."""
    import spotter.seti.report as report

    drawn: list[list[str]] = []
    original = report.roc_figure

    def spy(targets, scores_by_name, *args, **kwargs):
        drawn.append(list(scores_by_name))
        return original(targets, scores_by_name, *args, **kwargs)

    monkeypatch.setattr(report, "roc_figure", spy)
    return drawn


def test_report_shows_model_against_baseline(seti_run, roc_curves) -> None:
    from spotter.seti.report import make_report

    run, data = seti_run
    page = make_report(run, data, mistakes=1).read_text()
    assert roc_curves == [["model", "de-Doppler baseline"]]
    for heading in ("Model against the de-Doppler baseline", "Learning curves", "AUC per fold",
                    "AUC per needle kind and SNR band", "Most confident mistakes"):
        assert heading in page
    # the bright needles are easy for the search and the model is noise: the page says the baseline wins
    assert "The classical de-Doppler search beats the model" in page
    assert "needle: straight" in page and "no needle: none" in page and page.count("<td>SNR ") == 4
    assert "ON 1, ON 2, ON 3" in page  # a missed needle's panels named as on the figure
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (run / src).stat().st_size > 1000, src
    assets = {p.name for p in (run / "report_assets").iterdir()}
    assert {"roc.png", "scores.png", "learning_curves.png", "auc_by_kind.png", "auc_by_snr.png",
            "false_positives_1.png", "false_negatives_1.png"} <= assets
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched: the page renders offline


def test_ids_are_shown_as_text(seti_run) -> None:
    from spotter.seti.report import make_report

    run, data = seti_run
    page = make_report(run, data, mistakes=1, baseline_sample=0).read_text()
    assert "&lt;script&gt;alert(1)" in page  # the top false positive
    assert "<script" not in page


def test_page_says_when_the_baseline_is_missing(seti_run, roc_curves, tmp_path) -> None:
    from spotter.seti.report import make_report

    run, data = seti_run
    page = make_report(run, data, mistakes=1, baseline_sample=0).read_text()
    assert "baseline was not computed" in page and "de-Doppler baseline AUC" not in page
    # a data folder that does not hold the run's cadences: no baseline, no panels, but a page that says why
    other = tmp_path / "other"
    write_csv(other / "train_labels.csv", pd.DataFrame({"id": ["zz01"], "target": [1]}))
    np.save(_mkdirs(sample_path(other, "train", "zz01")), _cadence(np.random.default_rng(1), True))
    page = html.unescape(make_report(run, other, mistakes=1).read_text())
    assert "baseline is not shown: none of the run's ids" in page
    assert "cadence not shown" in page
    assert roc_curves == [["model"], ["model"]]


def test_large_splits_compare_on_a_sample(seti_run, roc_curves) -> None:
    from spotter.seti.report import make_report

    run, data = seti_run
    page = make_report(run, data, mistakes=1, baseline_sample=8).read_text()
    assert roc_curves == [["model", "de-Doppler baseline"]]
    assert "8 out-of-fold rows drawn at random (of 20)" in page and "model AUC (sampled rows)" in page


def test_a_run_without_out_of_fold_rows_is_refused(tmp_path) -> None:
    from spotter.errors import SpotterError
    from spotter.seti.report import make_report

    with pytest.raises(SpotterError, match="out-of-fold"):
        make_report(tmp_path, tmp_path)


def _mkdirs(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
