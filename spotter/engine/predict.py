"""Inference from a run folder: each trained fold's model rebuilt by its task, sharded loaders, TTA, gathers.

`predict_submission` is the one way a run predicts a test set: it checks the run, then asks the task for its
`Submission` (a mean over fold models for id,target tasks, retrieval for photo-ID), which the task builds from
`fold_models` and `predict_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model
from torch import nn
from torch.utils.data import Dataset

from spotter.config import TrainConfig
from spotter.engine.rundir import RunDir, fold_name
from spotter.engine.runtime import Runtime, in_layout
from spotter.engine.task import Submission, Task
from spotter.engine.tta import Transform, predict_with_tta
from spotter.errors import SpotterError
from spotter.io import check_output_file, write_csv
from spotter.progress import NullReporter, Reporter

Infer = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Loads safetensors weights (no code execution) into `model`, strictly.

    Raises:
        SpotterError: If the file is unreadable or corrupt, or its tensors do not fit the model.
    """
    try:
        load_model(model, str(path), strict=True)
    except FileNotFoundError:
        raise SpotterError("weights file not found", path) from None
    except Exception as err:  # safetensors raises its own error type for corrupt or truncated files
        raise SpotterError(f"cannot load weights ({str(err).splitlines()[0][:200]})", path) from None
    return model


def fold_models(
    task: Task, run: RunDir, cfg: TrainConfig, finished: bool = True
) -> Iterator[tuple[int, nn.Module]]:
    """(fold, model in eval mode) for every trained fold of the run, rebuilt one at a time by the task.

    Args:
        finished: Require a finished run (False for `Task.finish_training`, which runs before it is).

    Raises:
        SpotterError: If the run has not finished or a trained fold's weights are missing or do not fit.
    """
    for fold, path in run.trained_weights(cfg, finished):
        yield fold, in_layout(task.restore_model(cfg, path).eval(), cfg.channels_last)  # the layout it trained in


def task_inference(task: Task) -> Infer:
    """The per-sample predictions a task stores out-of-fold, for a batch of inputs."""
    return lambda model, x: task.predict(task.forward(model, {"input": x}))


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: Dataset,
    runtime: Runtime,
    infer: Infer,
    batch_size: int,
    num_workers: int = 0,
    transforms: Sequence[Transform] = (),
    reporter: Reporter = NullReporter(),
    description: str = "predict",
) -> np.ndarray:
    """`infer(model, inputs)` for every sample, in dataset order, averaged over TTA transforms.

    Each process predicts its shard; the results are gathered with repeats removed, so every process gets
    every sample's prediction exactly once.
    """
    model = model.to(runtime.device).eval()
    loader = runtime.loader(dataset, batch_size, False, 0, num_workers)
    indices, values = [], []
    for batch in reporter.track(loader, len(loader), description):
        batch = runtime.to_device(batch)
        with runtime.autocast():
            values.append(predict_with_tta(lambda x: infer(model, x), batch["input"], transforms))
        indices.append(batch["index"])
    index, gathered = runtime.gather_unique(torch.cat(indices), torch.cat(values))
    if len(index) != len(dataset):
        raise RuntimeError(f"gathered {len(index)} predictions for {len(dataset)} samples")
    return gathered


def mean_over_folds(
    task: Task,
    run: RunDir,
    cfg: TrainConfig,
    dataset: Dataset,
    runtime: Runtime,
    transforms: Sequence[Transform] = (),
    reporter: Reporter = NullReporter(),
) -> np.ndarray:
    """The mean of every fold model's predictions (the task's stored kind) for `dataset`, with TTA."""
    predictions = [
        predict_dataset(
            model, dataset, runtime, task_inference(task), cfg.batch_size, cfg.num_workers, transforms, reporter,
            description=f"predict {fold_name(fold)}",
        )
        for fold, model in fold_models(task, run, cfg)
    ]
    return np.mean(predictions, axis=0)


def predict_submission(
    task: Task,
    run_dir: str | Path,
    data_dir: str | Path,
    out: str | Path,
    tta: bool = True,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
) -> Submission | None:
    """Writes the submission of a run for DATA's test set (on the main process) and returns it.

    Args:
        task: The run's task.
        run_dir: A finished run.
        data_dir: A data folder in the task's layout.
        out: The submission file; checked to be writable before any work.
        tta: Use the run's test-time augmentation.
        runtime: The (possibly distributed) runtime; one is made from the run's config if None.
        reporter: Progress reporting.

    Raises:
        SpotterError: On an unfinished run, missing weights, bad data or an unwritable `out`.
    """
    check_output_file(out)
    run = RunDir(run_dir)
    cfg = run.read_config(task.config_class)
    run.trained_weights(cfg)  # every trained fold has weights: fail before loading data
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SpotterError("data folder not found", data_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    runtime = runtime or Runtime(cfg.mixed_precision)
    reporter = reporter if reporter is not None and runtime.is_main else NullReporter()
    submission = task.predict_test(run, cfg, data_dir, tta, runtime, reporter)
    if runtime.is_main:
        write_csv(out, submission.frame)
    runtime.wait()
    return submission if runtime.is_main else None
