"""The whale run report: styled page, no raw JSON, threshold and group figures, a gallery of real text."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from spotter.engine.rundir import RunDir
from spotter.io import write_csv, write_json
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.layout import TRAIN_CSV, TRAIN_DIR
from spotter.whale.calibration import CALIBRATION, OOF_RETRIEVAL

ODD_ID = "<script>alert(1)"  # an individual id a page must show as text, never run
LONG_ID = "a-very-long-individual-id-0123456789abcdef"


@pytest.fixture(scope="module")
def whale_run(tmp_path_factory) -> tuple[Path, Path]:
    """Six photos of three animals in two folds, a finished run and its out-of-fold kNN ranking."""
    root = tmp_path_factory.mktemp("whale-report")
    data, run = root / "data", RunDir(root / "run")
    (data / TRAIN_DIR).mkdir(parents=True)
    animals = [ODD_ID, ODD_ID, LONG_ID, LONG_ID, "c3", "c3"]
    images = [f"p{i}.jpg" for i in range(6)]
    for i, image in enumerate(images):
        Image.new("RGB", (320, 200), (40 * i, 90, 200 - 30 * i)).save(data / TRAIN_DIR / image)
    write_csv(data / TRAIN_CSV, pd.DataFrame({"image": images, "species": ["beluga"] * 4 + ["orca"] * 2,
                                              "individual_id": animals}))
    run.path.mkdir()
    run.write_folds(pd.DataFrame({"image": images, "fold": [0, 1, 0, 1, 0, 1]}))
    run.write_metrics({"task": "whale", "folds": [0, 1], "metric_name": "MAP@5", "oof_metric": 0.4,
                       "fold_metric": {"fold0": 0.3, "fold1": 0.5}, "best_epoch": {"fold0": 2, "fold1": 1},
                       "seconds": 3.2})
    truths = [ODD_ID, ODD_ID, LONG_ID, NEW_INDIVIDUAL, "c3", "c3"]
    candidates = [f"{ODD_ID} {LONG_ID} c3", f"{LONG_ID} {ODD_ID} c3", f"c3 {LONG_ID} {ODD_ID}",
                  f"{ODD_ID} c3 {LONG_ID}", f"c3 {ODD_ID} {LONG_ID}", f"{ODD_ID} {LONG_ID} c3"]
    scores = ["0.9 0.5 0.1", "0.8 0.7 0.2", "0.6 0.4 0.3", "0.3 0.2 0.1", "0.95 0.3 0.2", "0.5 0.45 0.4"]
    write_csv(run.file(OOF_RETRIEVAL), pd.DataFrame({
        "image": images, "species": ["beluga"] * 4 + ["orca"] * 2, "truth": truths, "candidates": candidates,
        "scores": scores, "probabilities": scores}))
    reliability = [{"bin": [0.0, 0.5], "count": 10, "predicted": 0.3, "observed": 0.2},
                   {"bin": [0.5, 1.0], "count": 8, "predicted": 0.8, "observed": 0.75}]
    write_json(run.file(CALIBRATION), {"mode": "best", "threshold": 0.35, "oof_map_at_5": 0.7,
                                       "oof_map_at_5_plain_knn": 0.6, "calibration": "logistic", "oof_queries": 6,
                                       "oof_new_ratio": 1 / 6, "oof_new_first_ratio": 1 / 6,
                                       "reliability": reliability, "expected_calibration_error": 0.07,
                                       "score_calibration": {"method": "logistic", "coef": [8.0, -4.0]}})
    return run.path, data


def test_report_shows_threshold_groups_and_gallery(whale_run) -> None:
    from spotter.whale.report import THUMB, write_report

    run, data = whale_run
    page = write_report(run, data, gallery_rows=6).read_text()
    for heading in ("Training and calibration", "The new_individual decision",
                    "MAP@5 by species, known and new animals", "Validation photos and their top 5"):
        assert heading in page
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (run / src).is_file(), src
    assets = run / "report_assets"
    assert (assets / "map_vs_threshold.png").stat().st_size > 1000 and (assets / "map_by_group.png").is_file()
    assert (assets / "reliability.png").is_file() and "Can the probabilities be taken at their word?" in page
    thumbs = list((assets / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 6 and all(max(Image.open(t).size) == THUMB for t in thumbs)
    text = html.unescape(page)
    # every candidate's full id and score, as text; the new_individual tile where the threshold puts it
    assert LONG_ID in text and "probability 0.950" in text
    assert text.count("threshold 0.350") >= 1 and 'class="tile correct new"' in page
    # the photo of truth c3 whose best score is 0.95: c3 first, outlined as correct
    assert re.search(r'class="tile correct">.*?#1 · correct.*?>c3<', page, re.S)
    assert "folds trained" in text and "0, 1 (of 2)" in text and "fold0: 2, fold1: 1" in text


def test_page_has_no_json_and_escapes_ids(whale_run) -> None:
    from spotter.whale.report import write_report

    run, data = whale_run
    page = write_report(run, data).read_text()
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    assert "{" not in body and "}" not in body  # no raw JSON (or template syntax) reaches the reader
    assert "&lt;script&gt;alert(1)" in page and "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched: the page renders offline


def test_report_without_data_asks_for_it(whale_run) -> None:
    from spotter.whale.report import write_report

    run, _ = whale_run
    page = html.unescape(write_report(run).read_text())
    assert "spotter whale report RUN --data DATA" in page and "<img" in page
