"""`spotter ensemble RUN... --data DATA --out SUB.csv [--method mean|rank|weights|stack]`.

The runs' task (from each run's `metrics.json`) picks the module that predicts its test set and supplies
extra stacking features; blending itself is the engine's (`spotter.engine.ensemble`). Whale runs blend
their per-individual score matrices instead (`spotter.whale.ensemble`, `--method mean`).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from spotter.errors import SpotterError

ADAPTERS = {"seti": "spotter.seti.ensemble"}  # task name -> module with test_predictions, extra_features, metric


def register(commands, common: argparse.ArgumentParser) -> None:
    """Adds the `ensemble` command to the `spotter` parser."""
    ens = commands.add_parser(
        "ensemble", parents=[common], help="blend trained runs (mean, rank, fitted weights or an XGBoost stack)"
    )
    ens.add_argument("runs", nargs="+", metavar="RUN", help="run folders trained on the same data and folds")
    ens.add_argument("--data", required=True, help="data folder whose test set is predicted")
    ens.add_argument("--out", required=True, help="submission CSV; its inputs and metrics go to the .json beside it")
    ens.add_argument("--method", default="mean", choices=["mean", "rank", "weights", "stack"], help="default mean")
    ens.add_argument("--no-tta", action="store_true", help="predict without the runs' test-time flips")
    ens.add_argument(
        "--features", nargs="*", default=[], help="extra stacking features, e.g. dedoppler (with --method stack)"
    )
    ens.add_argument("--workers", type=int, default=1, help="processes for feature extraction (default 1)")
    ens.set_defaults(func=_ensemble)


def run_task(run: str | Path) -> str:
    """The task a run was trained for, from its `metrics.json`.

    Raises:
        SpotterError: If the run folder has no (readable) metrics.json.
    """
    path = Path(run) / "metrics.json"
    if not path.is_file():
        raise SpotterError("not a finished run folder (no metrics.json)", run)
    try:
        return str(json.loads(path.read_text())["task"])
    except (ValueError, KeyError) as err:
        raise SpotterError(f"unreadable metrics.json ({type(err).__name__})", path) from None


def _ensemble(args: argparse.Namespace) -> int:
    from spotter.engine.ensemble import align_runs, ensemble_runs, write_predictions
    from spotter.io import write_json
    from spotter.progress import create_reporter

    tasks = {run: run_task(run) for run in args.runs}
    if len(set(tasks.values())) > 1:
        raise SpotterError(f"runs of different tasks cannot be blended: {tasks}")
    task = next(iter(tasks.values()))
    if task == "whale":
        return _ensemble_whale(args)
    if task not in ADAPTERS:
        raise SpotterError(
            f"ensembles of {task!r} runs are not supported; supported: {', '.join([*ADAPTERS, 'whale'])}"
        )
    if args.features and args.method != "stack":
        raise SpotterError("--features only applies to --method stack")
    adapter = importlib.import_module(ADAPTERS[task])
    reporter = create_reporter(args.quiet)
    aligned = align_runs(args.runs)  # before any prediction: a mismatch fails fast
    tests, caches = [], []
    for run in args.runs:
        frame, cache, hit = adapter.test_predictions(run, args.data, tta=not args.no_tta, reporter=reporter)
        tests.append(frame)
        caches.append(str(cache))
        if not args.quiet:
            print(f"{run}: test predictions {'from cache' if hit else 'written to'} {cache}")
    extra_oof = adapter.extra_features(args.data, args.features, "train", args.workers, reporter)
    extra_test = adapter.extra_features(args.data, args.features, "test", args.workers, reporter)
    result = ensemble_runs(aligned, tests, args.method, adapter.metric, extra_oof, extra_test)
    out = write_predictions(args.out, result.ids, result.predictions)
    record = {**result.record, "data": str(args.data), "tta": not args.no_tta, "test_predictions": caches}
    record_path = out.with_suffix(".json")
    write_json(record_path, record)

    metrics = result.record["metrics"]
    for run, value in metrics["inputs_oof"].items():
        ranked = metrics["inputs_oof_fold_ranked"][run]
        print(f"oof {run}: {value:.5f} (ranked within folds: {ranked:.5f})")
    for name, value in metrics.get("features_oof", {}).items():
        print(f"oof feature {name}: {value:.5f}")
    if "weights" in result.record:
        print("weights: " + ", ".join(f"{run} {w:.3f}" for run, w in result.record["weights"].items()))
        print(f"oof {args.method} (weights fitted on all folds, in-sample): {metrics['ensemble_oof_in_sample']:.5f}")
    label = {
        "weights": "weights fitted on the other folds",
        "stack": "stack CV, runs ranked within folds",
        "rank": "rank, ranked within folds",
    }.get(args.method, args.method)
    cv = f"; cross-validated over {metrics['cv_folds']}" if "cv_folds" in metrics else ""
    print(f"oof ensemble ({label}{cv}): {metrics['ensemble_oof']:.5f}")
    print(f"submission: {out} (record: {record_path})")
    return 0


def _ensemble_whale(args: argparse.Namespace) -> int:
    from spotter.io import write_json
    from spotter.progress import create_reporter
    from spotter.whale.ensemble import ensemble_whale

    if args.method != "mean" or args.features:
        raise SpotterError("whale runs blend by --method mean (of their per-individual scores), without --features")
    out, record = ensemble_whale(args.runs, args.data, args.out, tta=not args.no_tta,
                                 reporter=create_reporter(args.quiet))
    record_path = out.with_suffix(".json")
    write_json(record_path, record)
    for run, values in record["metrics"]["inputs_oof"].items():
        print(f"oof {run}: MAP@5 {values['oof_map_at_5']:.5f} (threshold {values['threshold']:.4f})")
    print(f"oof ensemble (mean of scores): MAP@5 {record['metrics']['ensemble_oof']:.5f} "
          f"(threshold {record['threshold']:.4f})")
    print(f"new_individual first for {record['test_new_first_ratio']:.1%} of test photos")
    print(f"submission: {out} (record: {record_path})")
    return 0
