"""Whale acceptance: test MAP@5 of a trained run against untrained ImageNet kNN and new_individual-first, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/whale_map.py DATA [--out bench_runs/whale] [key=value ...]

DATA is a whale data folder with test_labels.csv (`spotter whale synth DATA --individuals 2000` makes
~6,000 train photos). Trains `configs/whale/cpu.yaml` (plus overrides), predicts the test set, then
scores (a) the same backbone with its ImageNet weights and no whale training (kNN on GeM features, the
threshold tuned on fold 0 the same way) and (b) answering new_individual first. Prints each MAP@5 with
its wall time, and last the ratios of the trained run to the two baselines.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    from spotter.config import default_config_path, load_config
    from spotter.engine.cv import train
    from spotter.metrics import score_files
    from spotter.whale.baseline import imagenet_baseline, new_first_baseline
    from spotter.whale.config import WhaleConfig
    from spotter.engine.predict import predict_submission
    from spotter.whale.task import WhaleTask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--out", default="bench_runs/whale")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args()
    data, out = Path(args.data), Path(args.out)
    truth = data / "test_labels.csv"
    cfg = load_config(WhaleConfig, default_config_path("whale"), args.overrides)

    started = time.perf_counter()
    result = train(WhaleTask(), data, cfg, out / "run", overwrite=True)
    trained = time.perf_counter()
    submission = out / "submission.csv"
    calibration = predict_submission(WhaleTask(), out / "run", data, submission).record
    predicted = time.perf_counter()
    _, score = score_files(submission, truth)
    print(f"trained      test MAP@5 {score:.4f}  (oof head {result.oof_metric:.4f}, oof kNN+head "
          f"{calibration['oof_map_at_5']:.4f})  train {trained - started:.0f}s  predict {predicted - trained:.0f}s")

    started = time.perf_counter()
    base_path, _ = imagenet_baseline(data, load_config(WhaleConfig, default_config_path("whale"), args.overrides),
                                     out / "imagenet.csv")
    _, imagenet = score_files(base_path, truth)
    print(f"imagenet kNN test MAP@5 {imagenet:.4f}  {time.perf_counter() - started:.0f}s")

    started = time.perf_counter()
    _, new_first = score_files(new_first_baseline(data, out / "new_first.csv"), truth)
    print(f"new first    test MAP@5 {new_first:.4f}  {time.perf_counter() - started:.1f}s")
    print(f"ratio trained/imagenet {score / imagenet:.3f}  trained/new_first {score / new_first:.3f}")


if __name__ == "__main__":
    main()
