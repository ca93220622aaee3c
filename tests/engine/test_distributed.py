"""DDP over gloo on the CPU with `accelerate launch`: one OOF row per sample, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from tests.conftest import REPO, run_cli

ARGS = ["epochs=2", "batch_size=8", "n_folds=2", "threads=1"]


def test_two_process_ddp_writes_each_sample_once(tmp_path: Path) -> None:
    from spotter.toy.data import synth

    data = synth(tmp_path / "data", n_train=45, n_test=4, seed=1)  # folds of 23 and 22: odd shards get padded
    run = tmp_path / "ddp"
    # accelerate's torchrun launcher; on a machine without a GPU the runtime joins the processes over gloo
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "spotter", "--quiet",
        "toy", "train", str(data), "--out", str(run), *ARGS,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["processes"] == 2
    oof = pd.read_csv(run / "oof.csv", dtype={"id": str})
    labels = pd.read_csv(data / "train_labels.csv", dtype={"id": str})
    assert len(oof) == len(labels) == 45
    assert sorted(oof.id) == sorted(labels.id)
    assert result.stdout.count("run: ") == 1  # only the main process reports


def test_kill_mid_epoch_then_resume(toy_data: Path, tmp_path: Path) -> None:
    args = ["epochs=4", "batch_size=4", "n_folds=2", "train_folds=[0]", "threads=1"]
    reference = run_cli("--quiet", "toy", "train", str(toy_data), "--out", str(tmp_path / "ref"), *args)
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "cut"
    process = subprocess.Popen(
        [sys.executable, "-m", "spotter", "--quiet", "toy", "train", str(toy_data), "--out", str(run), *args],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    state = run / "fold0" / "state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists() and not (run / "metrics.json").exists(), "the run ended before it could be killed"
    # whatever was on disk when it died is whole: the state loads and the log parses
    saved = torch.load(state, weights_only=True)
    # each epoch writes its log row, then its state: a kill between the two leaves the log one row ahead,
    # which resume drops (it keeps the log's first state["epoch"] + 1 rows)
    assert len(pd.read_csv(run / "fold0" / "log.csv")) in (saved["epoch"] + 1, saved["epoch"] + 2)

    resumed = run_cli("--quiet", "toy", "train", str(toy_data), "--out", str(run), *args, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    ref_metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    cut_metrics = json.loads((run / "metrics.json").read_text())
    assert cut_metrics["oof_metric"] == ref_metrics["oof_metric"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ref" / "oof.csv"), pd.read_csv(run / "oof.csv"))
    assert not list(run.rglob("*.tmp"))

