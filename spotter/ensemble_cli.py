"""`spotter ensemble RUN... --data DATA --out SUB.csv [--method M] [--features F ...]`.

The runs' task (recorded in each run folder) picks its blender from the task registry; the blender predicts
each run's test set (cached in the run folder), blends, and writes the submission and its record.
"""

from __future__ import annotations

import argparse

from spotter.errors import SpotterError


def register(commands, common: argparse.ArgumentParser) -> None:
    """Adds the `ensemble` command to the `spotter` parser."""
    ens = commands.add_parser(
        "ensemble", parents=[common], help="blend trained runs (mean, rank, fitted weights or a regularized stack)"
    )
    ens.add_argument("runs", nargs="+", metavar="RUN", help="run folders trained on the same data and folds")
    ens.add_argument("--data", required=True, help="data folder whose test set is predicted")
    ens.add_argument("--out", required=True, help="submission CSV; its inputs and metrics go to the .json beside it")
    ens.add_argument("--method", default="mean", help="mean | rank | weights | stack (id,target tasks; default mean)")
    ens.add_argument("--no-tta", action="store_true", help="predict without the runs' test-time augmentation")
    ens.add_argument(
        "--features", nargs="*", default=None,
        help="extra stacking features (with --method stack; default the task's, e.g. seti's dedoppler; "
        "--features alone for none)",
    )
    ens.add_argument(
        "--stacker", default=None, help="the stack's model: logistic (strong L2, default) | xgboost (shallow)"
    )
    ens.add_argument(
        "--no-fallback", action="store_true",
        help="write a weights/stack blend even when its cross-validated AUC is below the plain mean's",
    )
    ens.add_argument("--workers", type=int, default=1, help="processes for feature extraction (default 1)")
    ens.set_defaults(func=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    from spotter.engine.rundir import distinct_runs
    from spotter.progress import create_reporter
    from spotter.tasks import get_task

    if args.workers < 1:
        raise SpotterError(f"--workers must be at least 1, got {args.workers}")
    runs = distinct_runs(args.runs)
    tasks = {str(run): run.task_name() for run in runs}
    if len(set(tasks.values())) > 1:
        raise SpotterError(f"runs of different tasks cannot be blended: {tasks}")
    spec = get_task(next(iter(tasks.values())))
    blender = spec.create_blender()
    out, record = blender.ensemble(
        spec.create_task(), args.runs, args.data, args.out, method=args.method, features=args.features,
        tta=not args.no_tta, workers=args.workers, reporter=create_reporter(args.quiet),
        fallback=not args.no_fallback, stacker=args.stacker,
    )
    for line in blender.summary(record):
        print(line)
    print(f"submission: {out} (record: {out.with_suffix('.json')})")
    return 0
