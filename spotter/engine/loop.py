"""Fit one fold: epochs of training on Accelerate, EMA, validation, best checkpoint and resume state.

Reads top to bottom. Randomness is re-seeded from (seed, fold, epoch) at the start of every epoch and the
learning rate is a pure function of the step, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_model
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import Dataset

from spotter.config import TrainConfig
from spotter.engine.mixing import create_mixer
from spotter.engine.optim import create_optimizer, set_lr, warmup_cosine
from spotter.engine.rundir import FULL_FIT, RunDir
from spotter.engine.runtime import Runtime, in_layout
from spotter.engine.task import Task
from spotter.errors import SpotterError
from spotter.io import atomic_path, read_csv, write_csv
from spotter.progress import NullReporter, Reporter


@dataclass
class FoldResult:
    """What fitting one fold produced."""

    fold: int
    best_metric: float | None
    best_epoch: int  # counted from 1, as on the console
    index: np.ndarray  # validation sample positions (in the fold's validation rows)
    predictions: np.ndarray  # best epoch's validation predictions, aligned with `index`
    log: list[dict] = field(default_factory=list)


def seed_everything(*keys: int) -> int:
    """Seeds python, numpy and torch from a tuple of integers; returns the derived seed."""
    seed = int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def fit_fold(
    task: Task,
    cfg: TrainConfig,
    runtime: Runtime,
    train_set: Dataset,
    valid_set: Dataset | None,
    valid_rows: pd.DataFrame | None,
    train_rows: pd.DataFrame,
    run: RunDir,
    fold: int,
    reporter: Reporter = NullReporter(),
    on_epoch_end: Callable[[int], None] | None = None,
) -> FoldResult:
    """Trains one fold and returns its best validation predictions.

    Args:
        task: Supplies the model, loss, forward, predictions and metric.
        cfg: The resolved config.
        runtime: The Accelerate adapter of this process.
        train_set: Training samples.
        valid_set: Validation samples, or None for a full fit (the last epoch is kept).
        valid_rows: The rows behind `valid_set`, for the metric.
        train_rows: The rows behind `train_set` (class counts for margins, etc.).
        run: The run folder; the fold's best weights, resume state and log go where it says.
        fold: Fold number (-1 for a full fit); part of the seed.
        reporter: Progress bars and epoch summaries.
        on_epoch_end: Called with the epoch number after its state is saved (tests use it to interrupt).
    """
    fold_key = fold + 1  # seeds take non-negative keys; the full fit is fold -1
    seed_everything(cfg.seed, fold_key)
    model = in_layout(task.create_model(cfg, train_rows), cfg.channels_last)
    loss_fn = task.create_loss(cfg, train_rows).to(runtime.device)
    optimizer = create_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay, cfg.head_lr_mult)
    model, optimizer = runtime.prepare(model, optimizer)
    # EMA follows the unwrapped model, so its weights load into a plain model later
    ema = ModelEmaV3(runtime.unwrap(model), decay=cfg.ema_decay) if cfg.ema else None
    mixer = create_mixer(cfg.mixing.name, cfg.mixing.alpha)

    train_loader = runtime.loader(train_set, cfg.batch_size, True, cfg.seed + fold_key, cfg.num_workers, drop_last=True)
    valid_loader = (
        runtime.loader(valid_set, cfg.batch_size, False, 0, cfg.num_workers) if valid_set is not None else None
    )
    if len(train_loader) == 0:
        raise SpotterError(f"fold {fold} has no training samples")
    updates_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum)
    epochs = cfg.full_fit_epochs if fold == FULL_FIT and cfg.full_fit_epochs is not None else cfg.epochs
    total_steps = epochs * updates_per_epoch
    warmup_steps = round(cfg.warmup_epochs * updates_per_epoch)

    state_path, best_path, log_path = run.state_path(fold), run.weights_path(fold), run.log_path(fold)
    start_epoch, best_metric, best_epoch, log = 0, None, -1, []
    best_index, best_predictions = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if cfg.resume and state_path.is_file():
        state = run.read_state(fold)
        try:
            runtime.unwrap(model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
        except (KeyError, ValueError, RuntimeError) as err:  # what load_state_dict raises for tensors that do not fit
            raise SpotterError(f"resume state does not fit the run's model ({str(err).splitlines()[0][:200]})",
                               state_path) from None
        start_epoch, best_metric, best_epoch = state["epoch"] + 1, state["best_metric"], state["best_epoch"]
        best_index, best_predictions = state["best_index"].numpy(), state["best_predictions"].numpy()
        log = read_csv(log_path).to_dict("records")[: start_epoch]

    step = start_epoch * updates_per_epoch
    mixing_epochs = math.floor(cfg.mixing.until * epochs + 1e-9)
    for epoch in reporter.track(range(start_epoch, epochs), epochs - start_epoch, f"fold {fold}"):
        started = time.perf_counter()
        seed_everything(cfg.seed, fold_key, epoch)
        mix_rng = np.random.default_rng([cfg.seed, fold_key, epoch])
        train_loader.sampler.set_epoch(epoch)
        model.train()
        loss_sum, loss_count = torch.zeros((), device=runtime.device), 0
        n_batches = len(train_loader)
        for i, batch in enumerate(reporter.track(train_loader, n_batches, f"epoch {epoch + 1}/{epochs}")):
            batch = runtime.to_device(batch, cfg.channels_last)
            if mixer is not None and epoch < mixing_epochs and mix_rng.random() < cfg.mixing.prob:
                batch["input"], batch["target"] = mixer(batch["input"], batch["target"], mix_rng)
            group_start = i - i % cfg.grad_accum
            group_size = min(cfg.grad_accum, n_batches - group_start)
            is_update = i + 1 == group_start + group_size
            with runtime.no_sync(model) if not is_update else contextlib.nullcontext():
                with runtime.autocast():
                    loss = loss_fn(task.forward(model, batch), batch["target"])
                runtime.backward(loss / group_size)
            loss_sum += loss.detach()
            loss_count += 1
            if not is_update:
                continue
            if cfg.grad_clip > 0:
                runtime.clip_grad_norm(model, cfg.grad_clip)
            lr_mult = warmup_cosine(step, total_steps, warmup_steps, cfg.min_lr_ratio)
            set_lr(optimizer, lr_mult)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(runtime.unwrap(model), step)
            if step % 10 == 0:
                reporter.status(f"loss {loss_sum.item() / loss_count:.4f}")

        eval_model = ema.module if ema is not None else runtime.unwrap(model)
        # files and the console count epochs from 1; the resume state keeps the 0-based index
        row = {"epoch": epoch + 1, "lr": cfg.lr * lr_mult, "train_loss": loss_sum.item() / max(loss_count, 1)}
        improved = valid_loader is None
        if valid_loader is not None:
            index, predictions, valid_loss = evaluate(task, eval_model, valid_loader, loss_fn, runtime, cfg)
            metric = task.metric(valid_rows.iloc[index], predictions)
            row.update(valid_loss=valid_loss, metric=metric)
            improved = best_metric is None or metric > best_metric
            if improved:
                best_metric, best_index, best_predictions = metric, index, predictions
        if improved:
            best_epoch = epoch
        row["seconds"] = round(time.perf_counter() - started, 3)
        log.append(row)

        if runtime.is_main:
            if improved:
                with atomic_path(best_path) as tmp:
                    save_model(eval_model, str(tmp))
            write_csv(log_path, pd.DataFrame(log))
            state = {
                "model": runtime.unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "best_metric": best_metric,
                "best_epoch": best_epoch,
                "best_index": torch.from_numpy(np.asarray(best_index)),
                "best_predictions": torch.from_numpy(np.asarray(best_predictions)),
            }
            if ema is not None:
                state["ema"] = ema.state_dict()
            with atomic_path(state_path) as tmp:
                torch.save(state, tmp)
        runtime.wait()
        reporter.log(_summary(fold, row, getattr(task, "metric_name", "metric")))
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    return FoldResult(fold, best_metric, best_epoch + 1, best_index, best_predictions, log)


@torch.no_grad()
def evaluate(
    task: Task, model: nn.Module, loader, loss_fn: nn.Module, runtime: Runtime, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray, float]:
    """Predictions for every sample of a sharded loader, gathered across processes without repeats.

    Returns:
        Sample positions, their predictions, and the mean validation loss.
    """
    model.eval()
    indices, predictions, loss_sum = [], [], 0.0
    for batch in loader:
        batch = runtime.to_device(batch, cfg.channels_last)
        with runtime.autocast():
            outputs = task.forward(model, batch)
            loss_sum += float(loss_fn(outputs, batch["target"])) * len(batch["index"])
        indices.append(batch["index"])
        predictions.append(task.predict(outputs).float())
    index, values = runtime.gather_unique(torch.cat(indices), torch.cat(predictions))
    total = torch.tensor([loss_sum, sum(len(i) for i in indices)], device=runtime.device, dtype=torch.float64)
    total = runtime.accelerator.reduce(total, reduction="sum")
    return index, values, float(total[0] / total[1])


def _summary(fold: int, row: dict, metric_name: str) -> str:
    parts = [f"fold {fold} epoch {row['epoch']}", f"train_loss {row['train_loss']:.4f}"]
    if "metric" in row:
        parts += [f"valid_loss {row['valid_loss']:.4f}", f"{metric_name} {row['metric']:.4f}"]
    return "  ".join(parts + [f"{row['seconds']:.1f}s"])
