"""The sub-commands every task has, built from its registry entry: `train` and `predict`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spotter.config import load_config, resolve_config
from spotter.tasks import TaskSpec


def add_task_commands(commands, common: argparse.ArgumentParser, spec: TaskSpec) -> None:
    """Adds `spotter <task>` with `train`, `predict` and the task's own sub-commands."""
    parser = commands.add_parser(spec.name, parents=[common], help=spec.help)
    sub = parser.add_subparsers(dest=f"{spec.name}_command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", parents=[common], help=f"k-fold training of the {spec.name} task")
    train.add_argument("data", help="data folder in the competition layout")
    train.add_argument(
        "--config", metavar="NAME|FILE",
        help=f"a shipped config by name (`spotter config {spec.name}` lists them) or a YAML file (default: cpu)",
    )
    train.add_argument("--out", help=f"run folder (default: runs/{spec.name}-<timestamp>)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in the --out folder")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=3")
    train.set_defaults(func=lambda args: run_train(args, spec) and 0)

    predict = sub.add_parser("predict", parents=[common], help="predict DATA's test set with a trained run")
    predict.add_argument("run", help=f"run folder written by `spotter {spec.name} train`")
    predict.add_argument("data", help="data folder in the competition layout")
    predict.add_argument("--out", required=True, help="submission CSV")
    predict.add_argument("--no-tta", action="store_true", help="no test-time augmentation")
    predict.set_defaults(func=lambda args: run_predict(args, spec))

    spec.register_cli(sub, common)


def run_train(args: argparse.Namespace, spec: TaskSpec):
    """Checks the config, then trains and prints where the run went, its OOF metric and its report.

    Returns:
        The `RunResult` on the main process, None on the others (under `accelerate launch`).
    """
    cfg = load_config(spec.config_class, resolve_config(spec.name, args.config), args.overrides)
    from spotter.engine.cv import train  # after the config check: bad input fails fast, before torch loads
    from spotter.engine.runtime import Runtime
    from spotter.progress import create_reporter

    runtime = Runtime(cfg.mixed_precision)
    out = Path(args.out or f"runs/{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    reporter = create_reporter(args.quiet or not runtime.is_main)
    result = train(spec.create_task(), args.data, cfg, out, runtime=runtime, reporter=reporter,
                   overwrite=args.overwrite)
    if not runtime.is_main:
        return None
    if result.already_finished:
        print(f"run: {out} is finished already; nothing to do (--overwrite trains it again)")
    else:
        print(f"run: {out}")
    metric = "n/a (full fit)" if result.oof_metric is None else f"{result.oof_metric:.5f}"
    print(f"out-of-fold {result.metric_name}: {metric}")
    writer = spec.report_writer()
    if writer is not None and result.oof_path is not None and not result.already_finished:
        print(f"report: {writer(result.run_dir, args.data, reporter=reporter)}")
    return result


def run_predict(args: argparse.Namespace, spec: TaskSpec) -> int:
    """Writes the run's submission for DATA's test set and prints what the prediction found."""
    from spotter.engine.predict import predict_submission
    from spotter.progress import create_reporter

    submission = predict_submission(
        spec.create_task(), args.run, args.data, args.out, tta=not args.no_tta, reporter=create_reporter(args.quiet)
    )
    if submission is not None:
        for line in submission.summary:
            print(line)
        print(f"submission: {args.out}")
    return 0
