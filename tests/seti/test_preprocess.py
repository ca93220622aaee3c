"""Cadence preprocessing options."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from omegaconf import OmegaConf

from spotter.errors import SpotterError
from spotter.seti.preprocess import SetiPreprocessConfig, preprocess


@pytest.fixture
def cadence():
    return np.random.default_rng(0).standard_normal((6, 273, 256)).astype(np.float16) + np.float16(3)


@pytest.mark.parametrize(
    "options, shape",
    [
        ({}, (1, 819, 256)),
        ({"panels": "all"}, (1, 1638, 256)),
        ({"panels": "all", "stack": "channels"}, (6, 273, 256)),
        ({"stack": "channels"}, (3, 273, 256)),
        ({"panels": "all", "transpose": True}, (1, 256, 1638)),
        ({"panels": "all", "transpose": True, "height": 64, "width": 96}, (1, 64, 96)),
        ({"height": 32, "width": 32, "resize_mode": "nearest"}, (1, 32, 32)),
    ],
)
def test_shapes(cadence, options, shape):
    out = preprocess(cadence, SetiPreprocessConfig(**options))
    assert out.shape == shape and out.dtype == np.float32


def test_on_panels_are_0_2_4_and_input_untouched(cadence):
    before = cadence.copy()
    out = preprocess(cadence, SetiPreprocessConfig(stack="channels"))
    np.testing.assert_array_equal(out, cadence[[0, 2, 4]].astype(np.float32))
    np.testing.assert_array_equal(cadence, before)


@pytest.mark.parametrize("normalize, axes", [("panel", (1, 2)), ("frequency", 1), ("channel", (1, 2))])
def test_normalization(cadence, normalize, axes):
    out = preprocess(cadence, SetiPreprocessConfig(stack="channels", normalize=normalize))
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=axes), 1, atol=1e-3)


def test_background_subtraction():
    x = np.zeros((6, 273, 256), np.float32)
    x += np.linspace(0, 5, 256, dtype=np.float32)  # a bandpass shared by all panels
    x[[1, 3, 5]] += 2.0  # OFF panels brighter
    base = preprocess(x, SetiPreprocessConfig(panels="all", stack="channels", subtract_baseline=True))
    np.testing.assert_allclose(base, 0, atol=1e-5)
    off = preprocess(x, SetiPreprocessConfig(stack="channels", subtract_off=True))
    np.testing.assert_allclose(off, -2.0, atol=1e-4)


def test_bad_option(cadence):
    with pytest.raises(SpotterError, match="preprocess.stack"):
        preprocess(cadence, SetiPreprocessConfig(stack="diagonal"))
    with pytest.raises(SpotterError, match="height"):
        preprocess(cadence, SetiPreprocessConfig(height=10))


def test_nests_in_an_omegaconf_schema():
    @dataclass
    class Train:
        preprocess: SetiPreprocessConfig = field(default_factory=SetiPreprocessConfig)

    merged = OmegaConf.merge(OmegaConf.structured(Train), OmegaConf.from_dotlist(["preprocess.panels=all"]))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg.preprocess, SetiPreprocessConfig) and cfg.preprocess.panels == "all"
