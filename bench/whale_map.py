"""Whale acceptance: spotter's config against a plain ArcFace loop, test MAP@5 on hard generated data, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/whale_map.py                       # small default (make bench)
    OMP_NUM_THREADS=1 .venv/bin/python bench/whale_map.py --individuals 2000    # ~6,000 train photos
    OMP_NUM_THREADS=1 .venv/bin/python bench/whale_map.py DATA [key=value ...]  # any whale data folder with labels

Without DATA it makes (once, under bench/.cache/) `spotter whale synth --preset hard` data: long-tailed
sightings (most animals seen once), a fifth of the test photos of animals train never saw, rough capture
conditions. In the same process it trains (a) the plain ArcFace loop of `bench/_whale_plain.py` and (b)
`configs/whale/cpu.yaml` (plus overrides), then prints for each: test MAP@5, by known/new and by train photos
per id; training seconds; the share of test photos answered `new_individual` first against the share the
method's own held-out (or out-of-fold) photos led it to expect; last the ratios spotter/plain.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

CACHE = Path(__file__).resolve().parent / ".cache" / "whale_map"
SHOTS = [(1, 1, "1"), (2, 4, "2-4"), (5, 9, "5-9"), (10, None, "10+")]  # train photos per known id


def main() -> None:
    from spotter.config import default_config_path, load_config
    from spotter.engine.cv import train
    from spotter.engine.predict import predict_submission
    from spotter.io import write_csv
    from spotter.whale.config import WhaleConfig
    from spotter.whale.task import WhaleTask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=150, help="generated individuals (default 150)")
    parser.add_argument("--preset", default="hard", help="generated capture conditions (default hard)")
    parser.add_argument("--plain-epochs", type=int, default=4, help="epochs of the plain loop (default 4)")
    parser.add_argument("--plain-size", type=int, default=96, help="photo side of the plain loop (default 96)")
    parser.add_argument("--skip-plain", action="store_true", help="train spotter only (the plain loop's figures "
                                                                  "then come from its last run in the runs folder)")
    parser.add_argument("--out", type=Path, default=None, help="runs folder (default: beside the data)")
    parser.add_argument("inputs", nargs="*", metavar="[DATA] key=value",
                        help="a whale data folder with test_labels.csv (default: generated), spotter config overrides")
    args = parser.parse_args()
    given = [item for item in args.inputs if "=" not in item]
    overrides = [item for item in args.inputs if "=" in item]
    data = Path(given[0]) if given else make_data(args.individuals, args.preset)
    out = args.out or data.parent / f"{data.name}-runs"
    truth = pd.read_csv(data / "test_labels.csv", dtype=str)
    shots = pd.read_csv(data / "train.csv", dtype=str)["individual_id"].value_counts()
    print(f"data {data}: {int(shots.sum())} train photos of {len(shots)} ids ({int((shots == 1).sum())} seen once), "
          f"{len(truth)} test photos ({(truth['individual_id'] == 'new_individual').mean():.0%} new)")

    cfg = load_config(WhaleConfig, default_config_path("whale"), overrides)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)  # both loops on the same threads
    results = {}
    plain_csv = out / "plain.csv"
    if not args.skip_plain:
        from _whale_plain import plain_arcface

        plain = plain_arcface(data, epochs=args.plain_epochs, image_size=args.plain_size)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(plain_csv, plain.submission)
        (out / "plain.txt").write_text(f"{plain.train_seconds} {plain.expected_new_first}\n")
    seconds, expected = (float(v) for v in (out / "plain.txt").read_text().split())
    results["plain"] = (pd.read_csv(plain_csv, dtype=str), seconds, expected)

    started = time.perf_counter()
    train(WhaleTask(), data, cfg, out / "spotter", overwrite=True)
    seconds = time.perf_counter() - started
    submission = predict_submission(WhaleTask(), out / "spotter", data, out / "spotter.csv")
    results["spotter"] = (submission.frame, seconds, submission.record["oof_new_first_ratio"])

    table = {name: slices(frame, truth, shots) for name, (frame, _, _) in results.items()}
    print(f"{'MAP@5':<22}" + "".join(f"{name:>10}" for name in results) + f"{'ratio':>9}{'queries':>9}")
    for key in table["plain"]:
        row = [table[name][key][0] for name in results]
        print(f"{key:<22}" + "".join(f"{v:>10.4f}" for v in row) + f"{ratio(row[1], row[0]):>9}"
              f"{table['plain'][key][1]:>9}")
    for name, (frame, seconds, expected) in results.items():
        first = new_first(frame)
        print(f"{name}: train {seconds:.0f}s; new_individual first for {first:.1%} of test photos, expected "
              f"{expected:.1%} (off by {100 * (first - expected):+.1f} points)")
    print(f"ratio spotter/plain: MAP@5 {ratio(table['spotter']['all'][0], table['plain']['all'][0])}  "
          f"train seconds {ratio(results['spotter'][1], results['plain'][1])}")


def make_data(individuals: int, preset: str) -> Path:
    """Generated hard data under the bench cache, made once per size and preset."""
    from spotter.cli import main as spotter

    data = CACHE / f"{preset}-{individuals}"
    if not (data / "test_labels.csv").is_file():
        args = ["--quiet", "whale", "synth", str(data), "--individuals", str(individuals), "--preset", preset,
                "--workers", "2"]
        if spotter(args) != 0:
            raise SystemExit(f"could not generate {data}")
    return data


def slices(submission: pd.DataFrame, truth: pd.DataFrame, shots: pd.Series) -> dict[str, tuple[float, int]]:
    """MAP@5 (and query count) over all test photos, known and new ones, and known ones by train photos per id."""
    from spotter.metrics import NEW_INDIVIDUAL, average_precision_at_5

    answers = dict(zip(submission["image"], submission["predictions"].fillna("").str.split()))
    ids = truth["individual_id"].to_numpy()
    ap = np.array([average_precision_at_5(t, answers.get(image, [])) for image, t in zip(truth["image"], ids)])
    new = ids == NEW_INDIVIDUAL
    count = np.array([0 if n else int(shots.get(t, 0)) for t, n in zip(ids, new)])
    masks = {"all": np.ones(len(ids), bool), "known": ~new, "new": new}
    for low, high, label in SHOTS:
        masks[f"known, {label} train"] = ~new & (count >= low) & (count <= (high or count.max()))
    return {key: (float(ap[m].mean()) if m.any() else float("nan"), int(m.sum())) for key, m in masks.items()}


def new_first(submission: pd.DataFrame) -> float:
    return float(submission["predictions"].fillna("").str.startswith("new_individual").mean())


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


if __name__ == "__main__":
    main()
