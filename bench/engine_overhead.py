"""Engine overhead: `fit_fold` training throughput vs a plain hand-written PyTorch loop, in one process.

Both train the same small timm model on the same in-memory data for the same number of steps, with the same
optimizer and batch size. Runs alternate, so each engine run has a plain run beside it under the same machine
load; the ratio printed last is the median of these paired ratios (engine samples/s ÷ plain samples/s; the
target is ≥ 0.95), which a single noisy run cannot swing the way a best-of comparison can.

    .venv/bin/python bench/engine_overhead.py [--samples 512] [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from _plain_loop import plain_train  # bench/ is on the path when a script here runs
from spotter.config import load_config
from spotter.engine.loop import fit_fold, seed_everything
from spotter.engine.optim import create_optimizer
from spotter.engine.rundir import RunDir
from spotter.engine.runtime import Runtime
from spotter.binary.task import BinaryTask
from spotter.toy.config import ToyConfig
from spotter.toy.task import BackbonePoolHead


class MemoryDataset(Dataset):
    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "input": self.images[i], "target": self.targets[i]}


class BenchTask(BinaryTask):
    name = "bench"
    config_class = ToyConfig

    def create_model(self, cfg, train_rows):
        return BackbonePoolHead(cfg.model, cfg.pooling)


def plain_loop(cfg, dataset: Dataset) -> float:
    """The loop a user would write by hand; returns samples/s."""
    seed_everything(cfg.seed)
    model = BackbonePoolHead(cfg.model, cfg.pooling)
    optimizer = create_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    return plain_train(model, loader, optimizer, nn.BCEWithLogitsLoss(), cfg.epochs)


def engine_loop(cfg, dataset: Dataset, runtime: Runtime, folder: Path) -> float:
    """`fit_fold` as `spotter train` runs it (full fit: checkpoints every epoch); returns samples/s."""
    started = time.perf_counter()
    fit_fold(BenchTask(), cfg, runtime, dataset, None, None, None, RunDir(folder), fold=-1)
    steps = cfg.epochs * (len(dataset) // cfg.batch_size)
    return steps * cfg.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.set_num_threads(1)  # one core each; the second core absorbs the rest of the machine's noise
    cfg = load_config(
        ToyConfig, None,
        [f"model={args.model}", "pooling=avg", "epochs=2", "batch_size=32", "lr=1e-3", "mixed_precision=fp32"],
    )
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.standard_normal((args.samples, 1, args.size, args.size), dtype=np.float32))
    targets = torch.from_numpy((rng.random(args.samples) < 0.5).astype(np.float32))
    dataset = MemoryDataset(images, targets)
    runtime = Runtime("fp32")

    plain, engine = [], []
    with tempfile.TemporaryDirectory() as tmp:
        plain_loop(cfg, dataset)  # warm-up: allocator and kernels
        for repeat in range(args.repeats):
            plain.append(plain_loop(cfg, dataset))
            engine.append(engine_loop(cfg, dataset, runtime, Path(tmp) / f"r{repeat}"))
            print(f"repeat {repeat}: plain {plain[-1]:.1f} samples/s, engine {engine[-1]:.1f} samples/s")
    print(f"model {args.model}, {args.samples} samples of 1x{args.size}x{args.size}, batch {cfg.batch_size}, "
          f"{cfg.epochs} epochs, {args.repeats} paired runs")
    print(f"plain loop: best {max(plain):.1f}, median {np.median(plain):.1f} samples/s")
    print(f"engine:     best {max(engine):.1f}, median {np.median(engine):.1f} samples/s")
    print(f"ratio of bests: {max(engine) / max(plain):.3f}")
    print(f"ratio engine/plain (median of paired runs): {np.median(np.array(engine) / np.array(plain)):.3f}")


if __name__ == "__main__":
    main()
