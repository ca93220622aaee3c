"""Photo-ID workflow: a catalogue index costs its first build once (refreshing it after adding 10% more photos is
measured against the first build), and matching the test photos against the run's own train photos gives the
submission `whale predict` gives (MAP@5 and new/known calls compared).

    python bench/whale_workflow.py [--individuals 200] [--keep DIR] [key=value ...]

Trains a short run on `spotter whale synth` data first (overrides go to `whale train`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=200)
    parser.add_argument("--keep", help="folder to keep the data, run and outputs in (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args()

    from spotter.cli import main as spotter
    from spotter.metrics import NEW_INDIVIDUAL, map_at_5

    from _whale_setup import small_whale_run

    root = Path(args.keep or tempfile.mkdtemp(prefix="whale-workflow-"))
    run, data = small_whale_run(root, args.individuals, args.overrides)
    submission = root / "predict.csv"
    assert spotter(["--quiet", "whale", "predict", str(run), str(data), "--out", str(submission)]) == 0

    # a catalogue of 90% of the train photos, then all of them
    train = pd.read_csv(data / "train.csv", dtype=str)
    catalogue = root / "catalogue"
    shutil.rmtree(catalogue, ignore_errors=True)
    (catalogue / "photos").mkdir(parents=True)
    for name in train["image"]:
        (catalogue / "photos" / name).symlink_to((data / "train_images" / name).resolve())
    rng = np.random.default_rng(0)
    first = train.iloc[np.sort(rng.permutation(len(train))[: int(0.9 * len(train))])]
    index = root / "index"
    shutil.rmtree(index, ignore_errors=True)
    timings = {}
    for label, rows in (("first build (90% of the photos)", first), ("refresh after adding 10% more", train)):
        rows.assign(image="photos/" + rows["image"])[["image", "individual_id"]].to_csv(
            catalogue / "catalogue.csv", index=False)
        started = time.perf_counter()
        assert spotter(["--quiet", "whale", "index", str(run), str(catalogue), "--out", str(index)]) == 0
        timings[label] = time.perf_counter() - started
    for label, seconds in timings.items():
        print(f"index {label}: {seconds:.1f} s")
    ratio = timings["refresh after adding 10% more"] / timings["first build (90% of the photos)"]
    print(f"ratio refresh / first build: {ratio:.2f} (target < 0.5)")

    matches = root / "matches.csv"
    started = time.perf_counter()
    assert spotter(["--quiet", "whale", "match", str(run), str(data / "test_images"), "--index", str(index),
                    "--out", str(matches)] + (["--bboxes", str(data / "bboxes.csv")] if (data / "bboxes.csv").is_file()
                                              else [])) == 0
    matched_seconds = time.perf_counter() - started
    answers = pd.read_csv(matches, dtype=str)
    answers["image"] = [Path(p).name for p in answers["photo"]]
    matched = answers.groupby("image")["individual_id"].apply(list)
    predicted = pd.read_csv(submission, dtype=str).set_index("image")["predictions"].str.split()
    truth = pd.read_csv(data / "test_labels.csv", dtype=str).set_index("image")["individual_id"]
    images = list(truth.index)
    map_match = map_at_5([truth[i] for i in images], [matched[i] for i in images])
    map_predict = map_at_5([truth[i] for i in images], [predicted[i] for i in images])
    new_match = np.array([matched[i][0] == NEW_INDIVIDUAL for i in images])
    new_predict = np.array([predicted[i][0] == NEW_INDIVIDUAL for i in images])
    print(f"test MAP@5: whale match {map_match:.4f}, whale predict {map_predict:.4f} "
          f"(difference {abs(map_match - map_predict):.4f}; target <= 0.02)")
    print(f"new_individual first: match {new_match.mean():.1%}, predict {new_predict.mean():.1%}; "
          f"the two agree on {np.mean(new_match == new_predict):.1%} of photos")
    print(f"match of {len(images)} photos: {matched_seconds:.1f} s; data, run and outputs in {root}")


if __name__ == "__main__":
    main()
