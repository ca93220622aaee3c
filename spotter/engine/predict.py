"""Inference from a run folder: each fold's best weights, TTA, predictions averaged over folds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model
from torch import nn
from torch.utils.data import Dataset

from spotter.engine.loop import BEST_WEIGHTS
from spotter.engine.runtime import Runtime
from spotter.engine.task import Task
from spotter.engine.tta import Transform, predict_with_tta
from spotter.errors import SpotterError
from spotter.progress import NullReporter, Reporter


def fold_weights(run_dir: str | Path) -> list[Path]:
    """Every `best.safetensors` of a run (`fold<k>/` and `full/`), in a stable order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SpotterError("run folder not found", run_dir)
    paths = sorted(run_dir.glob(f"fold*/{BEST_WEIGHTS}")) + sorted(run_dir.glob(f"full/{BEST_WEIGHTS}"))
    if not paths:
        raise SpotterError(f"no trained weights (*/{BEST_WEIGHTS}) in the run folder", run_dir)
    return paths


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Loads safetensors weights (no code execution) into `model`, strictly."""
    try:
        load_model(model, str(path), strict=True)
    except (RuntimeError, OSError) as err:
        raise SpotterError(f"weights do not fit the model ({str(err).splitlines()[0]})", path) from None
    return model


@torch.no_grad()
def predict_dataset(
    task: Task,
    model: nn.Module,
    dataset: Dataset,
    runtime: Runtime,
    batch_size: int,
    num_workers: int = 0,
    transforms: Sequence[Transform] = (),
    reporter: Reporter = NullReporter(),
    description: str = "predict",
) -> np.ndarray:
    """Predictions (in dataset order) of one model, averaged over TTA transforms, gathered across processes."""
    model = model.to(runtime.device).eval()
    loader = runtime.loader(dataset, batch_size, False, 0, num_workers)
    predict: Callable[[torch.Tensor], torch.Tensor] = lambda x: task.predict(task.forward(model, {"input": x}))
    indices, values = [], []
    for batch in reporter.track(loader, len(loader), description):
        batch = runtime.to_device(batch)
        with runtime.autocast():
            values.append(predict_with_tta(predict, batch["input"], transforms))
        indices.append(batch["index"])
    index, gathered = runtime.gather_unique(torch.cat(indices), torch.cat(values))
    if len(index) != len(dataset):
        raise RuntimeError(f"gathered {len(index)} predictions for {len(dataset)} samples")
    return gathered


def load_run_config(task: Task, run_dir: str | Path):
    """The resolved config saved in a run folder, as the task's config object."""
    from spotter.config import load_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise SpotterError("not a run folder (no config.yaml)", run_dir)
    return load_config(task.config_class, path)


def predict_run(
    task: Task,
    run_dir: str | Path,
    dataset: Dataset,
    runtime: Runtime,
    transforms: Sequence[Transform] = (),
    reporter: Reporter = NullReporter(),
) -> np.ndarray:
    """Mean prediction of every fold model of a run (for tasks whose model needs no training rows)."""
    cfg = load_run_config(task, run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    predictions = []
    for path in fold_weights(run_dir):
        model = load_weights(task.create_model(cfg, None), path)
        predictions.append(
            predict_dataset(
                task, model, dataset, runtime, cfg.batch_size, cfg.num_workers, transforms, reporter,
                description=f"predict {path.parent.name}",
            )
        )
    return np.mean(predictions, axis=0)
