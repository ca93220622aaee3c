"""SETI training throughput: the engine (`spotter seti train`'s fit loop) vs a plain PyTorch loop, and the loader.

All three use the cpu config's model, batch size and preprocessing on the same generated cadences, in one
process and one run:
- plain: a hand-written loop over the same DataLoader (same dataset, workers, batch) and model, with the same
  EMA update when the config has one (the work of the recipe, not of the engine);
- engine: `fit_fold` as `spotter seti train` runs it (one fold, checkpoints every epoch); both loops are timed
  from building the model, optimizer and loader to the last step;
- loader: the DataLoader alone (after its first batch), with the model's samples/s measured on in-memory
  batches beside it.
Prints the ratios last: engine/plain (target ≥ 0.95) and loader/model (target ≥ 3).

    .venv/bin/python bench/seti_throughput.py [--samples 640] [--repeats 3] [key=value config overrides ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from _plain_loop import plain_train  # bench/ is on the path when a script here runs
from spotter.config import default_config_path, load_config
from spotter.engine.loop import fit_fold, seed_everything
from spotter.engine.optim import create_optimizer
from spotter.engine.rundir import RunDir
from spotter.engine.runtime import Runtime
from spotter.models.losses import create_loss
from spotter.seti.config import SetiConfig
from spotter.seti.data import list_split
from spotter.seti.synth import write_synthetic
from spotter.seti.task import SetiTask


def plain_loop(cfg: SetiConfig, dataset) -> float:
    """The loop a user would write by hand over the same data; returns samples/s.

    Timed like `engine_loop`, from building the model, optimizer and loader to the last step.
    """
    started = time.perf_counter()
    seed_everything(cfg.seed)
    model = SetiTask().create_model(cfg, None)
    optimizer = create_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay)
    loss_fn = create_loss(cfg.loss)
    ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    plain_train(model, loader, optimizer, loss_fn, cfg.epochs, ema)
    return cfg.epochs * len(loader) * cfg.batch_size / (time.perf_counter() - started)


def engine_loop(cfg: SetiConfig, dataset, folder: Path) -> float:
    started = time.perf_counter()
    fit_fold(SetiTask(), cfg, Runtime(cfg.mixed_precision), dataset, None, None, None, RunDir(folder), fold=-1)
    return cfg.epochs * (len(dataset) // cfg.batch_size) * cfg.batch_size / (time.perf_counter() - started)


def loader_rate(cfg: SetiConfig, dataset) -> float:
    """Samples/s of the DataLoader alone in steady state: timed from its first batch, as training keeps its
    workers between epochs (starting them is in the engine and plain timings)."""
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.num_workers)
    batches = iter(loader)
    next(batches)
    started, seen = time.perf_counter(), 0
    for batch in batches:
        seen += len(batch["input"])
    return seen / (time.perf_counter() - started)


def model_rate(cfg: SetiConfig, batch: torch.Tensor, steps: int = 5) -> float:
    """Training samples/s of the model alone on one in-memory batch (no data loading)."""
    model = SetiTask().create_model(cfg, None).train()
    optimizer = create_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay)
    loss_fn = create_loss(cfg.loss)
    targets = torch.zeros(len(batch))
    for step in range(steps + 1):
        if step == 1:  # the first step pays one-off allocation costs
            started = time.perf_counter()
        loss_fn(model(batch).squeeze(-1), targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="config overrides (the cpu config by default)")
    args = parser.parse_args()
    cfg = load_config(SetiConfig, default_config_path("seti"), ["epochs=2", *args.overrides])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic(Path(tmp) / "data", args.samples, 1, 0.1, seed=0, workers=1)
        rows = list_split(Path(tmp) / "data", "train")
        train_set, _ = SetiTask().create_datasets(Path(tmp) / "data", rows, None, cfg)
        batch = torch.stack([train_set[i]["input"] for i in range(cfg.batch_size)])

        loader, model = loader_rate(cfg, train_set), model_rate(cfg, batch)
        plain, engine = [], []
        for repeat in range(args.repeats):
            plain.append(plain_loop(cfg, train_set))
            engine.append(engine_loop(cfg, train_set, Path(tmp) / f"run{repeat}"))
            print(f"repeat {repeat}: plain {plain[-1]:.1f} samples/s, engine {engine[-1]:.1f} samples/s")
    print(f"backbone {cfg.model.backbone}, input {tuple(batch.shape[1:])}, batch {cfg.batch_size}, "
          f"{cfg.num_workers} loader worker(s), {torch.get_num_threads()} torch thread(s), {args.samples} cadences")
    print(f"data loader alone: {loader:.1f} samples/s; model alone: {model:.1f} samples/s")
    print(f"plain loop: {np.median(plain):.1f} samples/s; engine: {np.median(engine):.1f} samples/s "
          f"(medians of {args.repeats} paired runs)")
    print(f"ratio loader/model: {loader / model:.2f}")
    print(f"ratio engine/plain (median of paired runs): {np.median(np.array(engine) / np.array(plain)):.3f}")


if __name__ == "__main__":
    main()
