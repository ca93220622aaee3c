"""The Accelerate adapter: device, mixed precision, DDP wrapping, sharded loaders and deduplicated gathers.

Everything distributed goes through Hugging Face Accelerate (torch DDP underneath), so the same code runs
on a laptop CPU, one GPU, `accelerate launch --num_processes N` and several machines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


def resolve_mixed_precision(requested: str) -> str | None:
    """Maps the config's value to Accelerate's: `fp32` is its `no`, `auto` picks what the device supports.

    `auto` defers to `accelerate launch --mixed_precision` when that was given, otherwise picks bf16 on a
    GPU that supports it (no loss scaling needed) and full precision elsewhere (CPU autocast is slower).
    """
    if requested != "auto":
        return "no" if requested == "fp32" else requested
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def in_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """The model in the memory layout the config trains and predicts in (NHWC when `channels_last`); convolutions
    then run in that layout whatever the input's."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


class Runtime:
    """One process's view of the (possibly distributed) run.

    Args:
        mixed_precision: `auto`, `fp32`, `bf16` or `fp16`.
        cpu: Force the CPU even when a GPU is present. Without a GPU the CPU is always used, and processes
            started by a launcher (`accelerate launch --multi_gpu`, `torchrun`) then join over gloo.
    """

    def __init__(self, mixed_precision: str = "auto", cpu: bool = False) -> None:
        # Accelerate only forms a CPU process group (gloo) when told it runs on the CPU
        cpu = cpu or not torch.cuda.is_available()
        self.accelerator = Accelerator(mixed_precision=resolve_mixed_precision(mixed_precision), cpu=cpu)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def mixed_precision(self) -> str:
        return self.accelerator.mixed_precision

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, Any]:
        """Moves the model to the device and wraps it (DDP) and the optimizer (AMP scaling)."""
        return self.accelerator.prepare(model, optimizer)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return self.accelerator.unwrap_model(model)

    def loader(
        self, dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, drop_last: bool = False
    ) -> DataLoader:
        """A loader over this process's shard of `dataset`.

        Sharding is done by a `DistributedSampler` we own (also with one process), so the shuffle order is
        a pure function of (seed, epoch) via `loader.sampler.set_epoch`, which makes resume exact. Evaluation
        shards are padded by repeating samples; `gather_unique` drops the repeats.
        """
        sampler = DistributedSampler(
            dataset, num_replicas=self.num_processes, rank=self.rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            drop_last=drop_last and len(sampler) > batch_size,
            pin_memory=self.device.type == "cuda",
            persistent_workers=num_workers > 0,
        )

    def to_device(self, batch: Mapping[str, Any], channels_last: bool = False) -> dict[str, Any]:
        """Moves the tensors of a batch dict to the device."""
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if channels_last and key == "input" and value.ndim == 4:
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    def gather_unique(self, index: torch.Tensor, values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Gathers (index, values) from every process and keeps one row per index, sorted by index.

        Args:
            index: (N,) sample positions in the dataset, this process's shard.
            values: (N, ...) per-sample values.
        """
        index = self.accelerator.gather(index.to(self.device).contiguous()).cpu().numpy()
        values = self.accelerator.gather(values.to(self.device).contiguous()).float().cpu().numpy()
        unique, first = np.unique(index, return_index=True)
        return unique, values[first]

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def autocast(self):
        return self.accelerator.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> torch.Tensor:
        return self.accelerator.clip_grad_norm_(model.parameters(), max_norm)

    def no_sync(self, model: nn.Module):
        return self.accelerator.no_sync(model)
