"""k-fold cross-validation: folds.csv (stratified or grouped), the folds to train, out-of-fold predictions.

A run folder holds `config.yaml`, `folds.csv`, `fold<k>/` (or `full/` for a fit on all data), `oof.*` and
`metrics.json`; it is self-contained, so prediction needs nothing else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from spotter.config import TrainConfig, to_yaml
from spotter.engine.loop import FoldResult, fit_fold
from spotter.engine.runtime import Runtime
from spotter.engine.task import Task
from spotter.errors import SpotterError
from spotter.io import ensure_writable_dir, read_csv, write_csv, write_json, write_text
from spotter.progress import NullReporter, Reporter

FOLDS = "folds.csv"
METRICS = "metrics.json"
CONFIG = "config.yaml"
FULL_FIT = -1


def fold_dir_name(fold: int) -> str:
    """`fold<k>` for a CV fold, `full` for the fit on all data."""
    return "full" if fold == FULL_FIT else f"fold{fold}"


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


def folds_to_train(cfg: TrainConfig) -> list[int]:
    """The folds a run trains: `train_folds`, or every fold when it is empty."""
    return list(cfg.train_folds) if cfg.train_folds else list(range(cfg.n_folds))


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    folds: list[FoldResult]
    oof_metric: float | None
    oof_path: Path | None


def train(
    task: Task,
    data_dir: str | Path,
    cfg: TrainConfig,
    run_dir: str | Path,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
    on_epoch_end: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Trains the configured folds of `task` on `data_dir` into `run_dir`.

    Args:
        task: The problem.
        data_dir: The task's data folder.
        cfg: The resolved config (written to `run_dir/config.yaml`).
        run_dir: The run folder; with `cfg.resume` an interrupted run continues there.
        runtime: The Accelerate adapter; one is made from the config if None.
        reporter: Progress and messages (silent if None).
        on_epoch_end: Called with (fold, epoch) after each epoch's state is saved.

    Raises:
        SpotterError: On a missing data folder, an unwritable run folder or bad data.
    """
    reporter = reporter or NullReporter()
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    if not data_dir.is_dir():
        raise SpotterError("data folder not found", data_dir)
    ensure_writable_dir(run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    runtime = runtime or Runtime(cfg.mixed_precision)
    if not runtime.is_main:
        reporter = NullReporter()
    started = time.perf_counter()

    if cfg.resume and runtime.is_main:
        # temporary files of writes cut short by a kill; the real files they were to replace are intact
        for stale in run_dir.rglob(".*.tmp"):
            stale.unlink()
    rows = task.load_samples(data_dir, cfg).reset_index(drop=True)
    folds_path = run_dir / FOLDS
    if cfg.resume and folds_path.is_file():
        saved = read_csv(folds_path, required=[task.id_column, "fold"], dtype={task.id_column: str})
        if list(saved[task.id_column]) != list(rows[task.id_column].astype(str)):
            raise SpotterError("samples differ from the run being resumed", folds_path)
        rows["fold"] = saved["fold"].to_numpy()
    else:
        rows["fold"] = make_folds(
            rows, cfg.n_folds, cfg.seed if cfg.fold_seed is None else cfg.fold_seed, stratify=cfg.stratify_by or task.target_column, group=cfg.group_by
        )
    if runtime.is_main:
        write_text(run_dir / CONFIG, to_yaml(cfg))
        write_csv(folds_path, rows[[task.id_column, "fold"]])
    runtime.wait()

    results: list[FoldResult] = []
    oof_parts: list[tuple[pd.DataFrame, np.ndarray]] = []
    for fold in folds_to_train(cfg):
        is_full = fold == FULL_FIT
        train_rows = rows if is_full else rows[rows["fold"] != fold].reset_index(drop=True)
        valid_rows = None if is_full else rows[rows["fold"] == fold].reset_index(drop=True)
        train_set, valid_set = task.create_datasets(data_dir, train_rows, valid_rows, cfg)
        fold_dir = run_dir / fold_dir_name(fold)
        fold_dir.mkdir(parents=True, exist_ok=True)
        result = fit_fold(
            task, cfg, runtime, train_set, valid_set, valid_rows, train_rows, fold_dir, fold, reporter,
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
            oof_path = task.write_oof(run_dir, oof_rows, oof_predictions)
    if runtime.is_main:
        write_json(run_dir / METRICS, _metrics(task, cfg, results, oof_metric, runtime, time.perf_counter() - started))
    runtime.wait()
    return RunResult(run_dir, results, oof_metric, oof_path)


def _metrics(task: Task, cfg: TrainConfig, results: list[FoldResult], oof_metric, runtime, seconds) -> dict:
    fold_metrics = {fold_dir_name(r.fold): r.best_metric for r in results}
    scored = [m for m in fold_metrics.values() if m is not None]
    return {
        "task": task.name,
        "oof_metric": oof_metric,
        "fold_metric": fold_metrics,
        "fold_metric_mean": float(np.mean(scored)) if scored else None,
        "fold_metric_std": float(np.std(scored)) if scored else None,
        "best_epoch": {fold_dir_name(r.fold): r.best_epoch for r in results},
        "processes": runtime.num_processes,
        "mixed_precision": runtime.mixed_precision,
        "seconds": round(seconds, 2),
    }


def read_metrics(run_dir: str | Path) -> dict:
    """The `metrics.json` of a finished run."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise SpotterError("not a finished run folder (no metrics.json)", run_dir)
    return json.loads(path.read_text())
