"""Fixtures for the review page tests: one tiny trained whale run with a catalogue index, and per-test copies."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

FAST = [
    "model.backbone=test_efficientnet",
    "model.pretrained=false",
    "model.embedding_size=16",
    "image_size=32",
    "batch_size=4",
    "n_folds=2",
    "train_folds=[]",
    "epochs=1",
    "threads=1",
    "retrieval.k=20",
]


@dataclass(frozen=True)
class TinyRun:
    data: Path  # a whale data folder (its train photos are the catalogue)
    run: Path  # a run trained on it in about a second
    index: Path  # the catalogue index of its train photos (copy it before changing it)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    from spotter.config import load_config, resolve_config
    from spotter.engine.cv import train
    from spotter.whale.config import WhaleConfig
    from spotter.whale.service import index_catalogue
    from spotter.whale.synth import SynthConfig, make_synthetic
    from spotter.whale.task import WhaleTask

    root = tmp_path_factory.mktemp("review")
    make_synthetic(root / "data", SynthConfig(individuals=6, seed=1, image_size=32))
    train(WhaleTask(), root / "data", load_config(WhaleConfig, resolve_config("whale", None), FAST), root / "run")
    index_catalogue(root / "run", root / "data", out=root / "index")
    return TinyRun(root / "data", root / "run", root / "index")


@pytest.fixture()
def index_copy(tiny_run, tmp_path) -> Path:
    """A fresh copy of the catalogue index that a test may change."""
    return Path(shutil.copytree(tiny_run.index, tmp_path / "index"))


@pytest.fixture()
def queue(tiny_run, tmp_path) -> Path:
    """A folder of query photos: the data's test photos, and a byte-for-byte twin of the first (`twin.jpg`) that
    sorts last, so a photo decided first is certain to be a strong candidate for a later query."""
    folder = Path(shutil.copytree(tiny_run.data / "test_images", tmp_path / "queue"))
    first = min(folder.iterdir())
    shutil.copyfile(first, folder / "zz-twin.jpg")
    return folder
