"""Fixtures for the whale tests: one tiny synthetic data folder per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def whale_data(tmp_path_factory) -> Path:
    from spotter.whale.synth import SynthConfig, make_synthetic

    out = tmp_path_factory.mktemp("whale") / "data"
    make_synthetic(out, SynthConfig(individuals=12, seed=5, image_size=64, bboxes=True))
    return out
