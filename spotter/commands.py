"""CLI pieces shared by the task packages: the `train` command and run-folder defaults."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spotter.config import default_config_path, load_config


def add_train_command(commands, common: argparse.ArgumentParser, task_name: str, handler) -> None:
    """Adds `<task> train DATA [--config YAML] [--out RUN] [key=value ...]` to a task's sub-commands."""
    train = commands.add_parser("train", parents=[common], help=f"k-fold training of the {task_name} task")
    train.add_argument("data", help="data folder in the competition layout")
    train.add_argument("--config", help=f"experiment YAML (default: configs/{task_name}/cpu.yaml)")
    train.add_argument("--out", help=f"run folder (default: runs/{task_name}-<timestamp>)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=3")
    train.set_defaults(func=handler)


def run_train(args: argparse.Namespace, task_name: str, config_class: type, make_task, write_report=None):
    """Checks the config, then trains and prints where the run went, its OOF metric and its report.

    Args:
        args: Parsed `train` arguments.
        task_name: Picks `configs/<task_name>/cpu.yaml` when no `--config` is given.
        config_class: The task's config schema.
        make_task: Builds the task (imports torch), called only once the config is valid.
        write_report: `(run_dir, data_dir) -> report path`, called when the run has out-of-fold predictions.

    Returns:
        The `RunResult` on the main process, None on the others (under `accelerate launch`).
    """
    cfg = load_config(config_class, args.config or default_config_path(task_name), args.overrides)
    from spotter.engine.cv import train  # after the config check: bad input fails fast, before torch loads
    from spotter.engine.runtime import Runtime
    from spotter.progress import create_reporter

    runtime = Runtime(cfg.mixed_precision)
    out = Path(args.out or f"runs/{task_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    reporter = create_reporter(args.quiet or not runtime.is_main)
    result = train(make_task(), args.data, cfg, out, runtime=runtime, reporter=reporter)
    if not runtime.is_main:
        return None
    metric = "n/a (full fit)" if result.oof_metric is None else f"{result.oof_metric:.5f}"
    print(f"run: {out}")
    print(f"oof metric: {metric}")
    if write_report is not None and result.oof_path is not None:
        print(f"report: {write_report(result.run_dir, args.data)}")
    return result
