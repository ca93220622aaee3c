"""Shared fixtures: a tiny toy data folder and a fast toy config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # deterministic and fair on a shared 2-core machine

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    from spotter.toy.data import synth

    return synth(tmp_path_factory.mktemp("toy"), n_train=48, n_test=16, seed=3)


@pytest.fixture()
def toy_cfg():
    from spotter.config import load_config
    from spotter.toy.task import ToyConfig

    return load_config(ToyConfig, None, ["epochs=2", "batch_size=8", "n_folds=2", "lr=3e-3", "threads=1"])


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m spotter ARGS` in a subprocess and returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "spotter", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
