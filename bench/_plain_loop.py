"""The hand-written PyTorch training loop the benchmarks measure the engine against."""

from __future__ import annotations

import time

from torch import nn
from torch.utils.data import DataLoader


def plain_train(
    model: nn.Module, loader: DataLoader, optimizer, loss_fn, epochs: int, ema=None
) -> float:
    """Trains `model` over `loader` for `epochs` the way a user would by hand; returns samples/s.

    `ema` (a timm ModelEmaV3), when given, is updated after every step, as the recipe being compared does.
    """
    model.train()
    started, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            loss = loss_fn(model(batch["input"]).squeeze(-1), batch["target"])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            seen += len(batch["input"])
    return seen / (time.perf_counter() - started)
