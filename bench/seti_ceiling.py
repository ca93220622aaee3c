"""The ceiling table: a trained model and the de-Doppler baseline as fractions of the clairvoyant ceiling.

    OMP_NUM_THREADS=1 python bench/seti_ceiling.py [--train 600] [--test 400] [--preset wide] [--epochs 2]
        [--data DIR] [--run DIR] [--keep DIR] [key=value ...]

Makes a `spotter seti synth` data set (or uses `--data`), trains the default cpu config on it at a small budget
(or uses the trained `--run`; `key=value` overrides go to the config), and scores the test split four ways:
the model, the de-Doppler baseline, the clairvoyant ceiling (`spotter seti ceiling`: a matched filter along
each needle's true path) and the search bound (`spotter.seti.ceiling.search_bound_scores`: each cadence's
clairvoyant score or the best straight path in pure noise, whichever is larger; a bound for detectors that have
to find the needle). Prints AUC per slice (overall, SNR fifths, needle shape, time mode, negative type), each
detector's ratio to the ceiling measured on the same cadences and the model's share of the bound
(`model/bound`). The defaults are small (minutes on a CPU);
the issue's acceptance size is `--train 6000 --test 2000` with the config's own epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=600, help="training cadences to generate (default 600)")
    parser.add_argument("--test", type=int, default=400, help="test cadences to generate (default 400)")
    parser.add_argument("--positive-rate", type=float, default=0.2, help="share of positives (default 0.2)")
    parser.add_argument("--preset", default=None, help="generator preset (default: the generator's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the small training run (default 2)")
    parser.add_argument("--config", default=None, help="config name or YAML (default: the shipped cpu config)")
    parser.add_argument("--data", help="use this generated data folder instead of making one")
    parser.add_argument("--run", help="use this trained run instead of training one")
    parser.add_argument("--workers", type=int, default=1, help="processes for generation and scoring")
    parser.add_argument("--keep", help="folder for the data, run and scores (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args()

    from spotter.config import load_config, resolve_config
    from spotter.engine.cv import train
    from spotter.engine.predict import predict_submission
    from spotter.io import read_csv
    from spotter.seti.ceiling import ceiling_table, search_bound_scores
    from spotter.seti.config import SetiConfig
    from spotter.seti.dedoppler import baseline_scores
    from spotter.seti.needles import DEFAULT_PRESET
    from spotter.seti.synth import write_synthetic
    from spotter.seti.task import SetiTask

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.keep or scratch)
        work.mkdir(parents=True, exist_ok=True)
        data = Path(args.data) if args.data else work / "data"
        if not args.data:
            started = time.perf_counter()
            preset = args.preset or DEFAULT_PRESET
            write_synthetic(data, args.train, args.test, args.positive_rate, args.seed, args.workers, preset=preset)
            print(f"data: {args.train} train / {args.test} test, preset {preset}, "
                  f"{time.perf_counter() - started:.0f} s")
        run = Path(args.run) if args.run else work / "run"
        if not args.run:
            cfg = load_config(SetiConfig, resolve_config("seti", args.config), [f"epochs={args.epochs}", *args.overrides])
            started = time.perf_counter()
            train(SetiTask(), data, cfg, run)
            print(f"model: {args.config or 'cpu'} config, {cfg.epochs} epochs, trained in "
                  f"{time.perf_counter() - started:.0f} s")
        predict_submission(SetiTask(), run, data, work / "model.csv")
        bound = search_bound_scores(data, "test", workers=args.workers)
        scores = {
            "model": read_csv(work / "model.csv", dtype={"id": str}),
            "baseline": baseline_scores(data, "test", workers=args.workers)[["id", "target"]],
            "bound": bound[["id", "target"]],
            "ceiling": bound[["id", "ceiling"]].rename(columns={"ceiling": "target"}),
        }
        truth = read_csv(data / "test_labels.csv", dtype={"id": str})
        table = ceiling_table(truth, scores)
        table["model/bound"] = table["model"] / table["bound"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
