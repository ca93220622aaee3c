"""k-fold cross-validation: folds (stratified or grouped), the folds to train, out-of-fold predictions.

The run folder's layout belongs to `spotter.engine.rundir`; this module asks a `RunDir` for every path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from spotter.config import TrainConfig
from spotter.engine.loop import FoldResult, fit_fold
from spotter.engine.rundir import FULL_FIT, RunDir, Start, fold_name, folds_to_train
from spotter.engine.runtime import Runtime
from spotter.engine.task import Task
from spotter.errors import SpotterError
from spotter.progress import NullReporter, Reporter


def make_folds(
    rows: pd.DataFrame, n_folds: int, seed: int, stratify: str | None = None, group: str | None = None
) -> np.ndarray:
    """Assigns each row a fold in 0..n_folds-1.

    Args:
        rows: The samples.
        n_folds: Number of folds.
        seed: Shuffle seed (ignored for grouped folds, which sklearn balances by size).
        stratify: Column whose class balance each fold keeps.
        group: Column whose values never straddle two folds (takes precedence over `stratify`).

    Raises:
        SpotterError: If there are fewer samples (or groups) than folds, or the column is missing.
    """
    for column in (stratify, group):
        if column is not None and column not in rows.columns:
            raise SpotterError(f"fold column {column!r} not found; columns are {', '.join(rows.columns)}")
    if group is not None:
        if rows[group].nunique() < n_folds:
            raise SpotterError(f"{rows[group].nunique()} groups in {group!r} cannot fill {n_folds} folds")
        splitter, labels, groups = GroupKFold(n_splits=n_folds), None, rows[group].to_numpy()
    elif stratify is not None and _strata(rows[stratify]).value_counts().min() >= n_folds:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        labels, groups = _strata(rows[stratify]).to_numpy(), None
    else:
        # too few of some class to stratify (e.g. individuals seen once): plain shuffled folds
        splitter, labels, groups = KFold(n_splits=n_folds, shuffle=True, random_state=seed), None, None
    if len(rows) < n_folds:
        raise SpotterError(f"{len(rows)} samples cannot fill {n_folds} folds")
    folds = np.full(len(rows), -1, dtype=np.int64)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(rows)), labels, groups)):
        folds[valid] = k
    return folds


def _strata(column: pd.Series) -> pd.Series:
    """Classes to stratify on: soft (non-0/1 float) targets, such as pseudo-labels, count by target ≥ 0.5."""
    if pd.api.types.is_float_dtype(column) and not column.isin([0.0, 1.0]).all():
        return column >= 0.5
    return column


@dataclass
class RunResult:
    """What a training run produced.

    Attributes:
        run_dir: The run folder.
        folds: Each trained fold's result (empty when `resume=true` found the run finished).
        oof_metric: The out-of-fold metric (None for a full fit only).
        oof_path: The out-of-fold file, written by the main process.
        already_finished: True when the run was finished before and nothing was trained or written.
    """

    run_dir: Path
    folds: list[FoldResult]
    oof_metric: float | None
    oof_path: Path | None
    already_finished: bool = False
    metric_name: str = "metric"


def train(
    task: Task,
    data_dir: str | Path,
    cfg: TrainConfig,
    run_dir: str | Path,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
    on_epoch_end: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Trains the configured folds of `task` on `data_dir` into `run_dir`.

    A folder that already holds a run is refused unless `cfg.resume` (continue it; a finished run is left
    untouched) or `overwrite` (remove it first); a non-empty folder that holds no run is always refused.

    Args:
        task: The problem.
        data_dir: The task's data folder.
        cfg: The resolved config (written to the run folder).
        run_dir: The run folder.
        runtime: The Accelerate adapter; one is made from the config if None.
        reporter: Progress and messages (silent if None).
        on_epoch_end: Called with (fold, epoch) after each epoch's state is saved.
        overwrite: Replace a run already in `run_dir`.

    Raises:
        SpotterError: On a missing data folder, a run folder that may not be trained into, or bad data.
    """
    reporter = reporter or NullReporter()
    data_dir, run = Path(data_dir), RunDir(run_dir)
    if not data_dir.is_dir():
        raise SpotterError("data folder not found", data_dir)
    runtime = runtime or Runtime(cfg.mixed_precision)
    start = run.plan_start(cfg, overwrite)  # every process decides before the main one changes anything
    runtime.wait()
    if start is Start.FINISHED:
        metrics = run.read_metrics()
        oof = next((p for p in (run.oof_table, run.oof_arrays) if p.is_file()), None)
        return RunResult(run.path, [], metrics.get("oof_metric"), oof, already_finished=True,
                         metric_name=metrics.get("metric_name", "metric"))
    started = time.perf_counter()
    # the data, the folds and a resume state are checked before the folder is created, replaced or changed
    rows = task.load_samples(data_dir, cfg).reset_index(drop=True)
    if start is Start.RESUME and run.folds_path.is_file():
        saved = run.read_folds(task.id_column)
        if list(saved[task.id_column]) != list(rows[task.id_column].astype(str)):
            raise SpotterError("samples differ from the run being resumed", run.folds_path)
        rows["fold"] = saved["fold"].to_numpy()
    else:
        rows["fold"] = make_folds(
            rows, cfg.n_folds, cfg.seed if cfg.fold_seed is None else cfg.fold_seed,
            stratify=cfg.stratify_by or task.target_column, group=cfg.group_by,
        )
    splits = {fold: _fold_rows(task, rows, fold) for fold in folds_to_train(cfg)}
    if start is Start.RESUME:
        run.check_resume_states()
    if runtime.is_main:
        run.begin(start)
    runtime.wait()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if not runtime.is_main:
        reporter = NullReporter()

    if runtime.is_main:
        run.write_config(cfg)
        run.write_folds(rows[[task.id_column, "fold"]])
    runtime.wait()

    results: list[FoldResult] = []
    oof_parts: list[tuple[pd.DataFrame, np.ndarray]] = []
    for fold in folds_to_train(cfg):
        train_rows, valid_rows = splits[fold]
        train_set, valid_set = task.create_datasets(data_dir, train_rows, valid_rows, cfg)
        run.fold_dir(fold).mkdir(parents=True, exist_ok=True)
        result = fit_fold(
            task, cfg, runtime, train_set, valid_set, valid_rows, train_rows, run, fold, reporter,
            on_epoch_end=(lambda epoch, fold=fold: on_epoch_end(fold, epoch)) if on_epoch_end else None,
        )
        results.append(result)
        if valid_rows is not None:
            oof_parts.append((valid_rows.iloc[result.index], result.predictions))

    oof_metric, oof_path = None, None
    if oof_parts:
        oof_rows = pd.concat([part[0] for part in oof_parts], ignore_index=True)
        oof_predictions = np.concatenate([part[1] for part in oof_parts])
        # a sample sits in exactly one validation fold; dedup guards against any repeat all the same
        keep = ~oof_rows[task.id_column].duplicated().to_numpy()
        oof_rows, oof_predictions = oof_rows[keep].reset_index(drop=True), oof_predictions[keep]
        oof_metric = task.metric(oof_rows, oof_predictions)
        if runtime.is_main:
            oof_path = task.write_oof(run, oof_rows, oof_predictions)
    runtime.wait()
    task.finish_training(run, cfg, data_dir, runtime, reporter)
    if runtime.is_main:
        run.write_metrics(_metrics(task, cfg, results, oof_metric, runtime, time.perf_counter() - started))
    runtime.wait()
    return RunResult(run.path, results, oof_metric, oof_path, metric_name=_metric_name(task))


def _fold_rows(task: Task, rows: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A fold's training rows and its validation rows as the metric scores them (None for a full fit).

    Raises:
        SpotterError: If the task refuses the fold's validation rows (e.g. a binary fold with one class).
    """
    if fold == FULL_FIT:
        return rows, None
    train_rows = rows[rows["fold"] != fold].reset_index(drop=True)
    try:
        valid_rows = task.prepare_validation(train_rows, rows[rows["fold"] == fold].reset_index(drop=True))
    except SpotterError as err:
        raise SpotterError(f"{fold_name(fold)}: {err}") from None
    return train_rows, valid_rows


def _metric_name(task: Task) -> str:
    return getattr(task, "metric_name", "metric")


def _metrics(task: Task, cfg: TrainConfig, results: list[FoldResult], oof_metric, runtime, seconds) -> dict:
    fold_metrics = {fold_name(r.fold): r.best_metric for r in results}
    scored = [m for m in fold_metrics.values() if m is not None]
    return {
        "task": task.name,
        "folds": folds_to_train(cfg),
        "metric_name": _metric_name(task),
        "oof_metric": oof_metric,
        "fold_metric": fold_metrics,
        "fold_metric_mean": float(np.mean(scored)) if scored else None,
        "fold_metric_std": float(np.std(scored)) if scored else None,
        "best_epoch": {fold_name(r.fold): r.best_epoch for r in results},
        "processes": runtime.num_processes,
        "mixed_precision": runtime.mixed_precision,
        "seconds": round(seconds, 2),
    }
