"""Bad input across every command: exit 2, one line on stderr naming the file/line/key, no traceback, and
nothing written (outputs absent, earlier outputs and the inputs untouched).

Each case builds its bad input in its own folder from small shared fixtures (data folders and trained runs of
the seti and whale tasks), runs `spotter` in-process, and compares a snapshot of every file it could have
touched. `check` commands report each problem on its own line and then a count; their cases expect one
problem. A few cases run through the real entry point in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from tests.conftest import run_cli

SETI_FAST = [
    "epochs=1", "batch_size=4", "n_folds=2", "train_folds=[]", "threads=1", "model.backbone=test_resnet", "preprocess.panels=all",
    "preprocess.stack=channels", "preprocess.height=34", "preprocess.width=64", "preprocess.resize_mode=area",
    "num_workers=0", "augment.inject=0", "augment.inject_rfi=0", "preprocess.dedoppler=false", "model.score_head=false",
]
WHALE_FAST = [
    "model.backbone=test_efficientnet", "model.pretrained=false", "model.embedding_size=16", "image_size=32",
    "batch_size=4", "n_folds=2", "train_folds=[]", "epochs=1", "threads=1", "retrieval.k=20",
]
CADENCE = (6, 273, 256)


# ----------------------------------------------------------------------------------------------- shared inputs


@dataclass
class Shared:
    """Data folders and finished runs every case may read (never change)."""

    seti_data: Path
    seti_run: Path
    seti_run_b: Path
    whale_data: Path
    whale_run: Path
    toy_data: Path


def _write_seti(root: Path, n_train: int = 12, n_test: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split, count, labels in (("train", n_train, "train_labels.csv"), ("test", n_test, "sample_submission.csv")):
        ids = [f"{'ab'[i % 2]}{split[:2]}{i:03d}" for i in range(count)]
        for sample_id in ids:
            path = root / split / sample_id[0] / f"{sample_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rng.standard_normal(CADENCE).astype(np.float16))
        targets = [i % 2 for i in range(count)] if split == "train" else [0.5] * count
        pd.DataFrame({"id": ids, "target": targets}).to_csv(root / labels, index=False)
    pd.DataFrame({"id": ids, "target": [i % 2 for i in range(n_test)]}).to_csv(root / "test_labels.csv", index=False)
    return root


@pytest.fixture(scope="module")
def shared(tmp_path_factory, toy_data) -> Shared:
    from spotter.config import load_config, resolve_config
    from spotter.engine.cv import train
    from spotter.seti.config import SetiConfig
    from spotter.seti.task import SetiTask
    from spotter.whale.config import WhaleConfig
    from spotter.whale.synth import SynthConfig, make_synthetic
    from spotter.whale.task import WhaleTask

    root = tmp_path_factory.mktemp("shared")
    seti = _write_seti(root / "seti")
    # the library's train with the CLI's config: the run folder of `spotter seti train`, without its report
    # (seconds of plotting)
    for run, extra in (("seti_run", []), ("seti_run_b", ["lr=1e-3"])):
        train(SetiTask(), seti, load_config(SetiConfig, resolve_config("seti", None), [*SETI_FAST, *extra]), root / run)
    make_synthetic(root / "whale", SynthConfig(individuals=6, seed=1, image_size=32, bboxes=True))
    train(WhaleTask(), root / "whale", load_config(WhaleConfig, resolve_config("whale", None), WHALE_FAST),
          root / "whale_run")
    assert main(["--quiet", "whale", "index", str(root / "whale_run"), str(root / "whale")]) == 0
    return Shared(seti, root / "seti_run", root / "seti_run_b", root / "whale", root / "whale_run", toy_data)


# ----------------------------------------------------------------------------------------------- bad files


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming a huge image (a decompression bomb), with no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def cut(path: Path, keep: float = 0.5) -> None:
    """Truncates a file to a share of its length (a copy cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_bytes(path: Path, start: float = 0.5, count: int = 64) -> None:
    """Inverts bytes in the middle of a file (bit rot the file's length does not show)."""
    data = bytearray(path.read_bytes())
    at = int(len(data) * start)
    data[at : at + count] = bytes(b ^ 0xFF for b in data[at : at + count])
    path.write_bytes(bytes(data))


def edit_csv(path: Path, row: int, column: str, value) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def seti_file(data: Path, split: str = "train", index: int = 1) -> Path:
    labels = "train_labels.csv" if split == "train" else "sample_submission.csv"
    sample_id = pd.read_csv(data / labels, dtype=str)["id"][index]
    return data / split / sample_id[0] / f"{sample_id}.npy"


def whale_image(data: Path, split: str = "train", index: int = 1) -> Path:
    table, folder = ("train.csv", "train_images") if split == "train" else ("sample_submission.csv", "test_images")
    return data / folder / pd.read_csv(data / table, dtype=str)["image"][index]


# ----------------------------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """A bad input: the command, the text its one error line must contain, and the problem count for check."""

    argv: list[str]
    names: list[str]
    problems: int | None = None  # a check command: this many problem lines, then the count line
    subprocess: bool = False


@dataclass
class World:
    """What a case builds with: its own folder, copies of the shared inputs, the shared inputs themselves."""

    tmp: Path
    shared: Shared
    copies: dict = field(default_factory=dict)

    def copy(self, name: str) -> Path:
        """A private copy of a shared input (`seti_data`, `seti_run`, `whale_run`, ...)."""
        if name not in self.copies:
            self.copies[name] = Path(shutil.copytree(getattr(self.shared, name), self.tmp / name, symlinks=True))
        return self.copies[name]


CASES: dict[str, Callable[[World], Case]] = {}


def case(name: str):
    def register(build: Callable[[World], Case]):
        assert name not in CASES
        CASES[name] = build
        return build

    return register


# --- seti synth

@case("seti-synth-positive-rate")
def _(w): return Case(["seti", "synth", str(w.tmp / "out"), "--train", "4", "--test", "2", "--positive-rate", "2"], ["--positive-rate"])
@case("seti-synth-negative-count")
def _(w): return Case(["seti", "synth", str(w.tmp / "out"), "--train", "-1", "--test", "2"], ["--train"])
@case("seti-synth-workers-0")
def _(w): return Case(["seti", "synth", str(w.tmp / "out"), "--train", "4", "--test", "2", "--workers", "0"], ["--workers"])


@case("seti-synth-out-is-a-file")
def _(w):
    (w.tmp / "out").write_text("a file")
    return Case(["seti", "synth", str(w.tmp / "out"), "--train", "4", "--test", "2"], [str(w.tmp / "out")])


@case("seti-synth-out-holds-cadences")
def _(w):
    data = w.copy("seti_data")
    return Case(["seti", "synth", str(data), "--train", "4", "--test", "2"], [str(data), "already holds"])


# --- seti labels, in check and in train (the same message)

def _label(w, value, pseudo=False):
    data = w.copy("seti_data")
    if pseudo:
        frame = pd.read_csv(data / "train_labels.csv", dtype=str)
        frame["pseudo"] = "1"
        frame.to_csv(data / "train_labels.csv", index=False)
    edit_csv(data / "train_labels.csv", 1, "target", value)
    return data, [str(data / "train_labels.csv"), "line 3"]


for command in ("check", "train"):
    for label, (value, pseudo, why) in {
        "2": ("2", False, "not 0 or 1"), "nan": ("nan", False, "NaN"), "empty": ("", False, "empty"),
        "word": ("yes", False, "not a number"), "soft-not-pseudo": ("0.7", False, "not 0 or 1"),
        "pseudo-1.5": ("1.5", True, "outside [0, 1]"),
    }.items():
        @case(f"seti-{command}-label-{label}")
        def _(w, command=command, value=value, pseudo=pseudo, why=why):
            data, names = _label(w, value, pseudo)
            extra = [] if command == "check" else ["--out", str(w.tmp / "run"), *SETI_FAST]
            return Case(["seti", command, str(data), *extra], [*names, why], problems=1 if command == "check" else None)


for command in ("check", "train", "baseline"):
    @case(f"seti-{command}-folder-named-npy")
    def _(w, command=command):
        data = w.copy("seti_data")
        path = seti_file(data, "test" if command == "baseline" else "train")  # baseline reads the test split
        path.unlink()
        path.mkdir()
        extra = {"check": [], "train": ["--out", str(w.tmp / "run"), *SETI_FAST], "baseline": ["--out", str(w.tmp / "b.csv")]}
        return Case(["seti", command, str(data), *extra[command]], [str(path), "not a file"],
                    problems=1 if command == "check" else None)

    @case(f"seti-{command}-truncated-npy")
    def _(w, command=command):
        data = w.copy("seti_data")
        path = seti_file(data, "test")
        cut(path)
        extra = {"check": [], "train": ["--out", str(w.tmp / "run"), *SETI_FAST], "baseline": ["--out", str(w.tmp / "b.csv")]}
        # training reads only the train split: cut a train file for it
        if command == "train":
            path = seti_file(data, "train", 2)
            cut(path)
            return Case(["seti", command, str(data), *extra[command]], [str(path), "cut short"])
        return Case(["seti", command, str(data), *extra[command]], [str(path), "cut short"],
                    problems=1 if command == "check" else None)


@case("seti-check-duplicate-id")
def _(w):
    data = w.copy("seti_data")
    frame = pd.read_csv(data / "train_labels.csv", dtype=str)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(data / "train_labels.csv", index=False)
    return Case(["seti", "check", str(data)], [str(data / "train_labels.csv"), f"line {len(frame) + 2}", "duplicate id"], problems=1)


@case("seti-check-nan-values")
def _(w):
    data = w.copy("seti_data")
    path = seti_file(data)
    array = np.load(path)
    array[2, 3, 4] = np.nan
    np.save(path, array)
    return Case(["seti", "check", str(data)], [str(path), "non-finite"], problems=1)


@case("seti-check-missing-folder")
def _(w): return Case(["seti", "check", str(w.tmp / "nowhere")], [str(w.tmp / "nowhere")], problems=1)


# --- train: config, output folder, resume

def _train(w, *extra, config=None, out=None):
    out = out or w.tmp / "run"
    return ["seti", "train", str(w.shared.seti_data), "--out", str(out), *(["--config", str(config)] if config else []),
            *SETI_FAST, *extra]


@case("train-unknown-key")
def _(w): return Case(_train(w, "epochz=2"), ["'epochz'"])
@case("train-value-of-wrong-type")
def _(w): return Case(_train(w, "epochs=many"), ["'epochs'"])
@case("train-section-given-a-value")
def _(w): return Case(_train(w, "model=3"), ["'model'"])


for label, text, why in (
    ("list", "- epochs: 1\n- lr: 0.1\n", "top level is a list"),
    ("scalar", "42\n", "top level is a single value"),
    ("word", "cpu\n", "top level is a bare string"),
    ("broken", "epochs: [1\n", "cannot parse YAML"),
    ("duplicate-key", "epochs: 1\nepochs: 2\n", "duplicate key epochs"),
):
    @case(f"train-yaml-{label}")
    def _(w, text=text, why=why):
        (w.tmp / "c.yaml").write_text(text)
        return Case(_train(w, config=w.tmp / "c.yaml"), [str(w.tmp / "c.yaml"), why])


@case("train-config-missing")
def _(w): return Case(_train(w, config=w.tmp / "none.yaml"), [str(w.tmp / "none.yaml")])


@case("train-out-is-a-file")
def _(w):
    (w.tmp / "run").write_text("x")
    return Case(_train(w), [str(w.tmp / "run"), "not a folder"])


@case("train-out-under-a-file")
def _(w):
    (w.tmp / "f").write_text("x")
    return Case(_train(w, out=w.tmp / "f" / "run"), [str(w.tmp / "f" / "run"), "cannot create"])


@case("train-out-not-empty")
def _(w):
    (w.tmp / "run").mkdir()
    (w.tmp / "run" / "notes.txt").write_text("mine")
    return Case(_train(w), [str(w.tmp / "run"), "not empty"])


@case("train-out-holds-a-run")
def _(w):
    run = w.copy("seti_run")
    return Case(_train(w, out=run), [str(run), "already holds a run"])


@case("train-fold-without-positives")
def _(w):
    data = w.copy("seti_data")
    labels = pd.read_csv(data / "train_labels.csv", dtype=str)
    labels["target"] = ["1"] * 2 + ["0"] * (len(labels) - 2)  # 2 positives cannot reach 4 folds
    labels.to_csv(data / "train_labels.csv", index=False)
    return Case(["seti", "train", str(data), "--out", str(w.tmp / "run"), *SETI_FAST, "n_folds=4"],
                ["fold", "no positive", "n_folds"])


@case("train-more-folds-than-samples")
def _(w): return Case(_train(w, "n_folds=50"), ["cannot fill 50 folds"])


@case("train-missing-data")
def _(w): return Case(["seti", "train", str(w.tmp / "nodata"), "--out", str(w.tmp / "run"), *SETI_FAST], [str(w.tmp / "nodata")])


for label, damage in (("truncated", cut), ("corrupt", flip_bytes), ("garbage", lambda p: p.write_bytes(b"not torch"))):
    @case(f"resume-{label}-state")
    def _(w, damage=damage):
        run = w.copy("seti_run")
        (run / "metrics.json").unlink()  # an interrupted run
        damage(run / "fold1" / "state.pt")
        return Case(_train(w, "resume=true", out=run), [str(run / "fold1" / "state.pt")])


@case("resume-changed-config")
def _(w):
    run = w.copy("seti_run")
    (run / "metrics.json").unlink()
    return Case(_train(w, "resume=true", "lr=0.5", out=run), ["'lr'", str(run / "config.yaml")])


# --- predict

def _predict(w, run, data=None, out=None):
    return ["seti", "predict", str(run), str(data or w.shared.seti_data), "--out", str(out or w.tmp / "sub.csv")]


for label, damage in (
    ("missing", lambda p: p.unlink()), ("truncated", cut), ("garbage", lambda p: p.write_bytes(b"x" * 50)),
    ("empty", lambda p: p.write_bytes(b"")),
):
    @case(f"predict-weights-{label}")
    def _(w, damage=damage):
        run = w.copy("seti_run")
        damage(run / "fold1" / "best.safetensors")
        return Case(_predict(w, run), [str(run / "fold1" / "best.safetensors")])


@case("predict-out-is-a-folder")
def _(w):
    (w.tmp / "sub.csv").mkdir()
    return Case(_predict(w, w.shared.seti_run), [str(w.tmp / "sub.csv"), "is a folder"])


@case("predict-out-under-a-file")
def _(w):
    (w.tmp / "f").write_text("x")
    return Case(_predict(w, w.shared.seti_run, out=w.tmp / "f" / "sub.csv"), [str(w.tmp / "f"), "cannot create"])


@case("predict-unfinished-run")
def _(w):
    run = w.copy("seti_run")
    (run / "metrics.json").unlink()
    return Case(_predict(w, run), [str(run), "did not finish"])


@case("predict-not-a-run")
def _(w):
    (w.tmp / "empty").mkdir()
    return Case(_predict(w, w.tmp / "empty"), [str(w.tmp / "empty"), "not a run folder"])


@case("predict-earlier-output-kept")
def _(w):
    (w.tmp / "sub.csv").write_text("id,target\nkeep,0.5\n")
    run = w.copy("seti_run")
    cut(run / "fold0" / "best.safetensors")
    return Case(_predict(w, run), [str(run / "fold0" / "best.safetensors")])


@case("predict-test-file-missing")
def _(w):
    data = w.copy("seti_data")
    path = seti_file(data, "test", 0)
    path.unlink()
    return Case(_predict(w, w.shared.seti_run, data), [str(path), "has no file"])


@case("toy-predict-wrong-task-run")
def _(w): return Case(["toy", "predict", str(w.shared.whale_run), str(w.shared.toy_data), "--out", str(w.tmp / "s.csv")], [])


@case("toy-train-label-nan")
def _(w):
    data = w.copy("toy_data")
    edit_csv(data / "train_labels.csv", 4, "target", "")
    return Case(["toy", "train", str(data), "--out", str(w.tmp / "run"), "epochs=1"], [str(data / "train_labels.csv"), "line 6"])


# --- ensemble

def _ensemble(w, *runs, out=None, extra=()):
    return ["ensemble", *map(str, runs), "--data", str(w.shared.seti_data), "--out", str(out or w.tmp / "ens.csv"), *extra]


for label, damage in (("missing", lambda p: p.unlink()), ("truncated", cut), ("header", lambda p: flip_bytes(p, 0.0, 16))):
    @case(f"ensemble-weights-{label}")
    def _(w, damage=damage):
        run = w.copy("seti_run_b")
        damage(run / "fold0" / "best.safetensors")
        return Case(_ensemble(w, w.shared.seti_run, run), [str(run / "fold0" / "best.safetensors")])


@case("ensemble-out-is-a-folder")
def _(w):
    (w.tmp / "ens.csv").mkdir()
    return Case(_ensemble(w, w.shared.seti_run, w.shared.seti_run_b), [str(w.tmp / "ens.csv"), "is a folder"])


@case("ensemble-record-path-is-a-folder")
def _(w):
    (w.tmp / "ens.json").mkdir()
    return Case(_ensemble(w, w.shared.seti_run, w.shared.seti_run_b), [str(w.tmp / "ens.json"), "is a folder"])


@case("ensemble-same-run-twice")
def _(w): return Case(_ensemble(w, w.shared.seti_run, w.shared.seti_run), [str(w.shared.seti_run), "twice"])
@case("ensemble-unknown-method")
def _(w): return Case(_ensemble(w, w.shared.seti_run, w.shared.seti_run_b, extra=["--method", "median"]), ["median"])
@case("ensemble-tasks-differ")
def _(w): return Case(_ensemble(w, w.shared.seti_run, w.shared.whale_run), ["different tasks"])


@case("ensemble-whale-weights-truncated")
def _(w):
    run = w.copy("whale_run")
    cut(run / "fold1" / "best.safetensors")
    return Case(["ensemble", str(run), "--data", str(w.shared.whale_data), "--out", str(w.tmp / "e.csv")],
                [str(run / "fold1" / "best.safetensors")])


@case("ensemble-whale-method")
def _(w):
    return Case(["ensemble", str(w.shared.whale_run), "--data", str(w.shared.whale_data), "--out", str(w.tmp / "e.csv"),
                 "--method", "rank"], ["--method mean"])


# --- pseudo

def _pseudo(w, *extra, run=None, out=None):
    return ["seti", "pseudo", str(run or w.shared.seti_run), str(w.shared.seti_data), "--out", str(out or w.tmp / "d2"),
            *extra]


@case("seti-pseudo-out-not-empty")
def _(w):
    (w.tmp / "d2").mkdir()
    (w.tmp / "d2" / "x").write_text("x")
    return Case(_pseudo(w, "--top", "1", "--bottom", "1"), [str(w.tmp / "d2"), "not empty"])


@case("seti-pseudo-out-is-data")
def _(w): return Case(_pseudo(w, "--top", "1", out=w.shared.seti_data), ["not empty"])
@case("seti-pseudo-threshold-range")
def _(w): return Case(_pseudo(w, "--threshold", "0.3"), ["--threshold"])
@case("seti-pseudo-two-selections")
def _(w): return Case(_pseudo(w, "--threshold", "0.9", "--top", "1"), ["--top/--bottom or --threshold"])


@case("seti-pseudo-out-under-a-file")
def _(w):
    (w.tmp / "f").write_text("x")
    return Case(_pseudo(w, "--top", "1", out=w.tmp / "f" / "d2"), [str(w.tmp / "f"), "cannot create"])


@case("seti-pseudo-weights-truncated")
def _(w):
    run = w.copy("seti_run")
    cut(run / "fold0" / "best.safetensors")
    return Case(_pseudo(w, "--top", "1", run=run), [str(run / "fold0" / "best.safetensors")])


@case("seti-pseudo-weights-truncated-behind-a-cache")
def _(w):
    run = w.copy("seti_run")
    assert main(["--quiet", "ensemble", str(run), "--data", str(w.shared.seti_data), "--out", str(w.tmp / "e.csv")]) == 0
    weights = run / "fold1" / "best.safetensors"
    size, stamp = weights.stat().st_size, weights.stat().st_mtime_ns
    flip_bytes(weights, 0.0, 8)  # damaged in place, its size and time kept: the cache key cannot tell
    os.utime(weights, ns=(stamp, stamp))
    assert weights.stat().st_size == size
    return Case(_pseudo(w, "--top", "1", run=run), [str(weights)])


@case("whale-pseudo-out-not-empty")
def _(w):
    (w.tmp / "d2").mkdir()
    (w.tmp / "d2" / "x").write_text("x")
    return Case(["whale", "pseudo", str(w.shared.whale_run), str(w.shared.whale_data), "--out", str(w.tmp / "d2"),
                 "--threshold", "0.5"], [str(w.tmp / "d2"), "not empty"])


@case("whale-pseudo-threshold-nan")
def _(w):
    return Case(["whale", "pseudo", str(w.shared.whale_run), str(w.shared.whale_data), "--out", str(w.tmp / "d2"),
                 "--threshold", "nan"], ["--threshold"])


@case("whale-pseudo-run-twice")
def _(w):
    run = str(w.shared.whale_run)
    return Case(["whale", "pseudo", run, run, str(w.shared.whale_data), "--out", str(w.tmp / "d2"), "--threshold", "0.5"],
                [run, "twice"])


# --- score

def _score_files(w, sub_values, truth_values):
    pd.DataFrame({"id": ["a", "b", "c"], "target": sub_values}).to_csv(w.tmp / "sub.csv", index=False)
    pd.DataFrame({"id": ["a", "b", "c"], "target": truth_values}).to_csv(w.tmp / "truth.csv", index=False)
    return ["score", str(w.tmp / "sub.csv"), str(w.tmp / "truth.csv")]


for label, sub, truth, bad_file, why in (
    ("truth-2", ["0.1", "0.2", "0.3"], ["0", "2", "1"], "truth.csv", "line 3"),
    ("truth-nan", ["0.1", "0.2", "0.3"], ["0", "1", "nan"], "truth.csv", "line 4"),
    ("truth-soft", ["0.1", "0.2", "0.3"], ["0", "0.5", "1"], "truth.csv", "line 3"),
    ("sub-nan", ["0.1", "nan", "0.3"], ["0", "1", "1"], "sub.csv", "line 3"),
    ("sub-inf", ["inf", "0.2", "0.3"], ["0", "1", "1"], "sub.csv", "line 2"),
    ("sub-word", ["0.1", "0.2", "high"], ["0", "1", "1"], "sub.csv", "line 4"),
):
    @case(f"score-{label}")
    def _(w, sub=sub, truth=truth, bad_file=bad_file, why=why):
        return Case(_score_files(w, sub, truth), [str(w.tmp / bad_file), why])


@case("score-unknown-layout")
def _(w):
    (w.tmp / "sub.csv").write_text("x,y\n1,2\n")
    (w.tmp / "truth.csv").write_text("id,target\n1,0\n")
    return Case(["score", str(w.tmp / "sub.csv"), str(w.tmp / "truth.csv")], [str(w.tmp / "sub.csv"), "layout"])


@case("score-whale-truth-column-missing")
def _(w):
    (w.tmp / "sub.csv").write_text("image,predictions\na.jpg,x y z\n")
    (w.tmp / "truth.csv").write_text("image,species\na.jpg,beluga\n")
    return Case(["score", str(w.tmp / "sub.csv"), str(w.tmp / "truth.csv")], [str(w.tmp / "truth.csv")])


# --- report, baseline, config

@case("seti-report-unfinished-run")
def _(w):
    run = w.copy("seti_run")
    (run / "oof.csv").unlink()
    (run / "metrics.json").unlink()
    return Case(["seti", "report", str(run), str(w.shared.seti_data)], [str(run)])


@case("whale-report-not-a-run")
def _(w):
    (w.tmp / "empty").mkdir()
    return Case(["whale", "report", str(w.tmp / "empty")], [str(w.tmp / "empty")])


@case("baseline-out-is-a-folder")
def _(w):
    (w.tmp / "b.csv").mkdir()
    return Case(["seti", "baseline", str(w.shared.seti_data), "--out", str(w.tmp / "b.csv")], [str(w.tmp / "b.csv")])


@case("baseline-details-under-a-file")
def _(w):
    (w.tmp / "f").write_text("x")
    return Case(["seti", "baseline", str(w.shared.seti_data), "--out", str(w.tmp / "b.csv"), "--details",
                 str(w.tmp / "f" / "d.csv")], [str(w.tmp / "f")])


@case("baseline-workers-nan-cadence")
def _(w):
    data = w.copy("seti_data")
    path = seti_file(data, "test", 2)
    array = np.load(path)
    array[0, 0, 0] = np.inf
    np.save(path, array)
    # met inside a pool worker: the same one line as in the main process
    return Case(["seti", "baseline", str(data), "--out", str(w.tmp / "b.csv"), "--workers", "2"], [str(path), "non-finite"])


@case("config-unknown-task")
def _(w): return Case(["config", "sety"], ["sety"])


# --- whale synth and check

def _whale_synth(w, *extra):
    return ["whale", "synth", str(w.tmp / "w"), "--individuals", "3", "--image-size", "32", *extra]


@case("whale-synth-individuals-0")
def _(w): return Case(["whale", "synth", str(w.tmp / "w"), "--individuals", "0"], ["--individuals"])
@case("whale-synth-image-size")
def _(w): return Case(["whale", "synth", str(w.tmp / "w"), "--image-size", "8"], ["image_size"])
@case("whale-synth-new-ratio")
def _(w): return Case(_whale_synth(w, "--test-new-ratio", "1.5"), ["--test-new-ratio"])


@case("whale-synth-out-is-a-file")
def _(w):
    (w.tmp / "w").write_text("x")
    return Case(_whale_synth(w), [str(w.tmp / "w")])


def _whale_bad(w, damage: str):
    """A whale data copy with one damage; returns (data, the damaged file, the words its problem must contain)."""
    data = w.copy("whale_data")
    image = whale_image(data)
    if damage == "bomb":
        image.write_bytes(png_claiming(100_000, 100_000))
        return data, image, [str(image), "too large"]
    if damage == "truncated":
        cut(image, 0.6)
        return data, image, [str(image), "truncated"]
    if damage == "not-an-image":
        image.write_bytes(b"GIF? no")
        return data, image, [str(image), "unreadable image"]
    if damage == "missing":
        image.unlink()
        return data, image, [str(image), "not found"]
    if damage == "folder":
        image.unlink()
        image.mkdir()
        return data, image, [str(image), "not a file"]
    boxes = data / "bboxes.csv"
    if damage == "box-outside":
        row = pd.read_csv(boxes, dtype=str)["image"].tolist().index(image.name)
        for column, value in (("x1", "500"), ("y1", "500"), ("x2", "600"), ("y2", "600")):
            edit_csv(boxes, row, column, value)
        return data, boxes, [str(boxes), f"line {row + 2}", "outside its image"]
    if damage == "box-inf":
        edit_csv(boxes, 0, "x2", "inf")
        return data, boxes, [str(boxes), "line 2", "finite"]
    if damage == "box-word":
        edit_csv(boxes, 0, "y1", "top")
        return data, boxes, [str(boxes), "line 2", "numbers"]
    if damage == "empty-id":
        edit_csv(data / "train.csv", 2, "individual_id", "")
        return data, data / "train.csv", [str(data / "train.csv"), "line 4", "empty individual_id"]
    raise ValueError(damage)


WHALE_DAMAGES = ("bomb", "truncated", "not-an-image", "missing", "folder", "box-outside", "box-inf", "box-word", "empty-id")

for damage in WHALE_DAMAGES:
    @case(f"whale-check-{damage}")
    def _(w, damage=damage):
        data, _, names = _whale_bad(w, damage)
        return Case(["whale", "check", str(data)], names, problems=1)

for damage in ("bomb", "truncated", "box-outside", "folder", "box-inf"):
    @case(f"whale-train-{damage}")
    def _(w, damage=damage):
        data, _, names = _whale_bad(w, damage)
        return Case(["whale", "train", str(data), "--out", str(w.tmp / "run"), *WHALE_FAST], names)


@case("whale-predict-bomb-test-photo")
def _(w):
    data = w.copy("whale_data")
    image = whale_image(data, "test", 0)
    image.write_bytes(png_claiming(100_000, 100_000))
    return Case(["whale", "predict", str(w.shared.whale_run), str(data), "--out", str(w.tmp / "s.csv")], [str(image), "too large"])


@case("whale-predict-weights-truncated")
def _(w):
    run = w.copy("whale_run")
    cut(run / "fold0" / "best.safetensors")
    return Case(["whale", "predict", str(run), str(w.shared.whale_data), "--out", str(w.tmp / "s.csv")],
                [str(run / "fold0" / "best.safetensors")])


# --- whale index and match

@case("whale-index-bomb-in-catalogue")
def _(w):
    data, _, names = _whale_bad(w, "bomb")
    return Case(["whale", "index", str(w.shared.whale_run), str(data), "--out", str(w.tmp / "idx")], names)


@case("whale-index-truncated-in-catalogue")
def _(w):
    data, _, names = _whale_bad(w, "truncated")
    return Case(["whale", "index", str(w.shared.whale_run), str(data), "--out", str(w.tmp / "idx")], names)


@case("whale-index-out-is-a-file")
def _(w):
    (w.tmp / "idx").write_text("x")
    return Case(["whale", "index", str(w.shared.whale_run), str(w.shared.whale_data), "--out", str(w.tmp / "idx")],
                [str(w.tmp / "idx")])


@case("whale-index-no-catalogue")
def _(w): return Case(["whale", "index", str(w.shared.whale_run), str(w.tmp / "none")], [str(w.tmp / "none")])


@case("whale-index-weights-garbage")
def _(w):
    run = w.copy("whale_run")
    (run / "fold1" / "best.safetensors").write_bytes(b"\x00" * 40)
    return Case(["whale", "index", str(run), str(w.shared.whale_data), "--out", str(w.tmp / "idx")],
                [str(run / "fold1" / "best.safetensors")])


def _match(w, photo: Path, *extra, run=None):
    return ["whale", "match", str(run or w.shared.whale_run), str(photo), "--out", str(w.tmp / "m.csv"), *extra]


@case("whale-match-bomb-photo")
def _(w):
    (w.tmp / "q.png").write_bytes(png_claiming(100_000, 100_000))
    return Case(_match(w, w.tmp / "q.png"), [str(w.tmp / "q.png"), "too large"])


@case("whale-match-truncated-photo")
def _(w):
    shutil.copy(whale_image(w.shared.whale_data, "test", 0), w.tmp / "q.jpg")
    cut(w.tmp / "q.jpg", 0.6)
    return Case(_match(w, w.tmp / "q.jpg"), [str(w.tmp / "q.jpg"), "truncated"])


@case("whale-match-photo-missing")
def _(w): return Case(_match(w, w.tmp / "nope.jpg"), [str(w.tmp / "nope.jpg"), "not found"])


@case("whale-match-out-is-a-folder")
def _(w):
    (w.tmp / "m.csv").mkdir()
    return Case(_match(w, whale_image(w.shared.whale_data, "test", 0)), [str(w.tmp / "m.csv"), "is a folder"])


@case("whale-match-sheet-is-a-folder")
def _(w):
    (w.tmp / "m.png").mkdir()
    return Case(_match(w, whale_image(w.shared.whale_data, "test", 0)), [str(w.tmp / "m.png"), "is a folder"])


@case("whale-match-no-index")
def _(w):
    run = w.copy("whale_run")
    shutil.rmtree(run / "index")
    return Case(_match(w, whale_image(w.shared.whale_data, "test", 0), run=run), [str(run / "index")])


# --- through the real entry point (no --quiet: what a user sees)

@case("subprocess-whale-check-bomb")
def _(w):
    data, _, names = _whale_bad(w, "bomb")
    return Case(["whale", "check", str(data)], names, problems=1, subprocess=True)


@case("subprocess-score-truth-nan")
def _(w):
    argv = _score_files(w, ["0.1", "0.2", "0.3"], ["0", "", "1"])
    return Case(argv, [str(w.tmp / "truth.csv"), "line 3", "empty"], subprocess=True)


@case("subprocess-train-yaml-list")
def _(w):
    (w.tmp / "c.yaml").write_text("- a\n- b\n")
    return Case(_train(w, config=w.tmp / "c.yaml"), [str(w.tmp / "c.yaml"), "top level is a list"], subprocess=True)


# ----------------------------------------------------------------------------------------------- the test


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file under `roots` with its size, modification time and inode (a rewrite changes them)."""
    state = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.is_dir() else [root] if root.exists() else []:
            info = path.lstat()
            state[str(path)] = ("dir",) if path.is_dir() else (info.st_size, info.st_mtime_ns, info.st_ino)
    return state


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_in_one_line(name, shared, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # a default output (matches.csv, runs/...) would land here
    world = World(tmp_path / "case", shared)
    world.tmp.mkdir()
    bad = CASES[name](world)
    watched = [tmp_path, *(getattr(shared, f) for f in Shared.__dataclass_fields__)]
    before = snapshot(*watched)
    if bad.subprocess:
        result = run_cli(*bad.argv)
        code, out, err = result.returncode, result.stdout, result.stderr
    else:
        code = main(["--quiet", *bad.argv])
        out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    if bad.problems is None:
        assert len(lines) == 1, err
        assert lines[0].startswith("spotter: error: "), err
    else:  # check: each problem, then the count
        assert len(lines) == bad.problems + 1 and lines[-1].endswith(f"{bad.problems} problem(s) in {bad.argv[-1]}"), err
        assert out == "", out
    for name_part in bad.names:
        assert name_part.lower() in lines[0].lower(), f"{name_part!r} not in {lines[0]!r}"
    assert snapshot(*watched) == before, "something was written"


def test_the_corpus_is_large_and_covers_every_command_family() -> None:
    families = {"synth", "check", "train", "predict", "ensemble", "pseudo", "score", "report", "baseline",
                "index", "match", "config", "resume"}
    assert len(CASES) >= 60
    assert families <= {part for name in CASES for part in name.split("-")}
    assert {"seti", "whale"} <= {part for name in CASES for part in name.split("-")}


# ----------------------------------------------------------------------------------------------- met during work


def test_bad_cadence_met_in_a_dataloader_worker_is_one_line(shared, tmp_path, capsys) -> None:
    """A NaN only shows when the file is read: training stops with the same line a main-process read gives.

    The run folder keeps what was written before (config, folds), as an interrupted run does; no fold finishes.
    """
    data = Path(shutil.copytree(shared.seti_data, tmp_path / "data"))
    path = seti_file(data, "train", 3)
    array = np.load(path)
    array[1, 2, 3] = np.nan
    np.save(path, array)
    code = main(["--quiet", "seti", "train", str(data), "--out", str(tmp_path / "run"), *SETI_FAST, "num_workers=1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"spotter: error: {path}: 1 non-finite value(s) (NaN or inf)"]
    assert not (tmp_path / "run" / "metrics.json").exists()


# ----------------------------------------------------------------------------------------------- caches


def _seti_cache_damages() -> dict[str, Callable[[Path], None]]:
    def values(new):
        def damage(path: Path) -> None:
            frame = pd.read_csv(path, dtype={"id": str})
            frame.loc[1, "target"] = new
            frame.to_csv(path, index=False)
        return damage

    def other_ids(path: Path) -> None:
        frame = pd.read_csv(path, dtype={"id": str})
        frame.loc[0, "id"] = "zzz"
        frame.to_csv(path, index=False)

    return {"nan": values(np.nan), "7.5": values(7.5), "negative": values(-0.1), "ids": other_ids,
            "truncated": lambda p: cut(p, 0.3), "garbage": lambda p: p.write_bytes(b"\x00\x01\x02")}


@pytest.mark.parametrize("damage", list(_seti_cache_damages()))
def test_seti_cache_that_fails_a_check_is_predicted_afresh(damage, shared, tmp_path, capsys) -> None:
    run = Path(shutil.copytree(shared.seti_run, tmp_path / "run"))
    args = ["--quiet", "ensemble", str(run), "--data", str(shared.seti_data), "--out"]
    assert main([*args, str(tmp_path / "first.csv")]) == 0
    cache = Path(pd.read_json(tmp_path / "first.json", typ="series")["test_predictions"][0]["file"])
    fresh = cache.read_bytes()
    _seti_cache_damages()[damage](cache)
    assert main([*args, str(tmp_path / "second.csv")]) == 0
    record = pd.read_json(tmp_path / "second.json", typ="series")
    assert record["test_predictions"][0]["from_cache"] is False
    assert cache.read_bytes() == fresh
    assert (tmp_path / "second.csv").read_bytes() == (tmp_path / "first.csv").read_bytes()


def _whale_cache_damages() -> dict[str, Callable[[Path], None]]:
    def rewrite(change):
        def damage(path: Path) -> None:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k].copy() for k in z.files}
            change(arrays)
            with open(path, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return damage

    def nan_score(a): a["test_scores"][0, 0] = np.nan
    def other_photos(a): a["test_images"] = np.asarray(["x.jpg"] * len(a["test_images"]))
    def foreign_label(a): a["oof_labels"][0, 0] = len(a["vocab"]) + 3
    def missing_array(a): del a["test_scores"]

    return {"truncated": lambda p: cut(p, 0.5), "nan": rewrite(nan_score), "photos": rewrite(other_photos),
            "label": rewrite(foreign_label), "missing": rewrite(missing_array)}


@pytest.mark.parametrize("damage", list(_whale_cache_damages()))
def test_whale_cache_that_fails_a_check_is_predicted_afresh(damage, shared, tmp_path) -> None:
    run = Path(shutil.copytree(shared.whale_run, tmp_path / "run"))
    args = ["--quiet", "ensemble", str(run), "--data", str(shared.whale_data), "--out"]
    assert main([*args, str(tmp_path / "first.csv")]) == 0
    (cache,) = run.glob("ensemble_scores-*.npz")
    fresh = np.load(cache)["test_scores"]
    _whale_cache_damages()[damage](cache)
    assert main([*args, str(tmp_path / "second.csv")]) == 0
    assert np.array_equal(np.load(cache)["test_scores"], fresh)
    assert (tmp_path / "second.csv").read_bytes() == (tmp_path / "first.csv").read_bytes()


# ----------------------------------------------------------------------------------------------- the good side


def test_soft_labels_of_pseudo_rows_pass_check_and_training_reads(shared, tmp_path, capsys) -> None:
    """The reverse of the label cases: what a pseudo-label folder writes is valid for check and train alike."""
    from spotter.seti.data import list_split

    data = Path(shutil.copytree(shared.seti_data, tmp_path / "data"))
    labels = pd.read_csv(data / "train_labels.csv", dtype={"id": str})
    labels["pseudo"] = [0] * (len(labels) - 3) + [1, 1, 1]
    labels["target"] = labels["target"].astype(float)
    labels.loc[len(labels) - 3 :, "target"] = [0.93, 0.04, 1.0]
    labels.to_csv(data / "train_labels.csv", index=False)
    assert main(["--quiet", "seti", "check", str(data)]) == 0
    assert capsys.readouterr().out.strip() == f"{data}: ok"
    assert list_split(data, "train")["target"].tolist()[-3:] == [0.93, 0.04, 1.0]
