"""Whale prediction goes through the engine's sharded predict path: two processes write one process's submission."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_cli


def test_whale_predict_on_two_processes_writes_the_one_process_submission(whale_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["epochs=1", "image_size=32", "batch_size=8", "n_folds=2", "train_folds=[]", "threads=1",
            "model.pretrained=false", "model.embedding_size=16", "retrieval.k=10", "retrieval.batch_size=8"]
    trained = run_cli("--quiet", "whale", "train", str(whale_data), "--out", str(run), *tiny)
    assert trained.returncode == 0, trained.stderr
    single = run_cli("--quiet", "whale", "predict", str(run), str(whale_data), "--out", str(tmp_path / "one.csv"))
    assert single.returncode == 0, single.stderr
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "spotter", "--quiet",
        "whale", "predict", str(run), str(whale_data), "--out", str(tmp_path / "two.csv"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
