"""Cadence preprocessing: each option's effect, and the pipeline of steps a config builds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from omegaconf import OmegaConf

from spotter.errors import SpotterError
from spotter.seti.config import SetiPreprocessConfig
from spotter.seti.preprocess import (
    AppendMaps,
    BinRows,
    CleanCadence,
    DedopplerMaps,
    Pipeline,
    RowNoiseUnits,
    build_pipeline,
    preprocess,
)


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


def test_unknown_choices_and_bad_shapes_are_named(cadence):
    with pytest.raises(SpotterError, match="preprocess.stack"):
        build_pipeline(SetiPreprocessConfig(stack="diagonal"))
    with pytest.raises(SpotterError, match="preprocess.normalize"):
        build_pipeline(SetiPreprocessConfig(normalize="global"))
    with pytest.raises(SpotterError, match=r"\(6, T, F\) cadence"):
        build_pipeline(SetiPreprocessConfig())(cadence[:5])


def test_nests_in_an_omegaconf_schema():
    @dataclass
    class Train:
        preprocess: SetiPreprocessConfig = field(default_factory=SetiPreprocessConfig)

    merged = OmegaConf.merge(OmegaConf.structured(Train), OmegaConf.from_dotlist(["preprocess.panels=all"]))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg.preprocess, SetiPreprocessConfig) and cfg.preprocess.panels == "all"


@pytest.mark.parametrize("bin_rows", [0, 8])
def test_cadence_normalization_suppresses_lines_in_every_panel_but_keeps_on_only_ones(bin_rows):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 273, 256)).astype(np.float32)
    x += np.linspace(0, 50, 256, dtype=np.float32)  # bandpass
    x[:, :, 40] += 20.0 * (1 + rng.standard_normal((6, 273)).astype(np.float32))  # fluctuating RFI line, all panels
    x[[0, 2, 4], :, 200] += 3.0  # a needle in the ON panels only
    x[:, 100, :] += 30.0  # a broadband burst in every panel
    cfg = SetiPreprocessConfig(bin_rows=bin_rows, panels="all", stack="channels", normalize="cadence")
    out = preprocess(x, cfg)
    assert out.shape == (6, 273 // max(bin_rows, 1), 256)
    on, off = out[[0, 2, 4]], out[[1, 3, 5]]
    needle = on[:, :, 200].mean() - off[:, :, 200].mean()
    line = on[:, :, 40].mean() - off[:, :, 40].mean()
    assert needle > 2.0  # ~3 noise stds of ON-OFF contrast survive
    assert abs(line) < 0.2 and out[:, :, 40].std() < 1.5  # the all-panel line is scaled down to noise
    assert abs(out[:, 100 // max(bin_rows, 1), :].mean()) < 0.1  # the burst row is removed
    assert abs(np.median(out[:, :, 10:30])) < 0.1  # and the bandpass


def _straight_line(x: np.ndarray, panels: tuple[int, ...], channel: int, amplitude: float = 1.5) -> np.ndarray:
    rows = np.arange(273)
    for p in panels:  # drifting 0.05 channels per row, continuous across the cadence
        x[p, rows, np.rint(channel + 0.05 * (rows + 273 * p - 819)).astype(int)] += amplitude
    return x


def test_dedoppler_channels_follow_frequency_flips_and_light_up_a_straight_needle():
    from spotter.seti.preprocess import CADENCE_SCORE, dedoppler_power

    x = _straight_line(np.random.default_rng(2).standard_normal((6, 273, 256)).astype(np.float32), (0, 2, 4), 100)
    power = dedoppler_power(x)
    assert power.shape[0] == 7 and power.shape[2] == 256 and power.dtype == np.float32
    on_peak = power[[0, 2, 4]].max(axis=(1, 2))
    assert (on_peak > 8).all() and (power[[1, 3, 5]].max(axis=(1, 2)) < on_peak.min() / 2).all()
    assert power[CADENCE_SCORE].max() > 12  # ON power summed over the three panels, no OFF power
    np.testing.assert_allclose(dedoppler_power(x[:, :, ::-1].copy()), power[:, :, ::-1], atol=1e-4)
    cfg = SetiPreprocessConfig(panels="all", stack="channels", height=34, width=256, resize_mode="area", dedoppler=True)
    out = preprocess(x, cfg)
    assert out.shape == (13, 34, 256)
    binned = SetiPreprocessConfig(bin_rows=8, panels="all", stack="channels", normalize="cadence", dedoppler=True)
    out = preprocess(x, binned)
    assert out.shape == (13, 34, 256)
    assert (out[[6, 8, 10, 12]].max(axis=(1, 2)) > 8).all()  # the maps of binned panels still light up
    on = SetiPreprocessConfig(stack="channels", height=34, width=256, resize_mode="area", dedoppler=True)
    assert preprocess(x, on).shape == (7, 34, 256)


def test_cadence_score_map_rejects_a_line_in_every_panel():
    from spotter.seti.preprocess import CADENCE_SCORE, dedoppler_power

    x = np.random.default_rng(3).standard_normal((6, 273, 256)).astype(np.float32)
    power = dedoppler_power(_straight_line(x, tuple(range(6)), 100))
    assert power[[0, 2, 4]].max() > 8  # each ON panel sees the line
    assert power[CADENCE_SCORE].max() < 6  # but it shows in the OFF panels too: noise level


def test_max_pooling_to_a_smaller_map_takes_each_runs_peak():
    from spotter.seti.preprocess import _max_resize

    x = np.random.default_rng(4).standard_normal((2, 87, 20)).astype(np.float32)
    out = _max_resize(x, 34, 20)
    starts = np.arange(35) * 87 // 34  # the runs of rows partition the input
    expected = np.stack([x[:, starts[i] : starts[i + 1]].max(axis=1) for i in range(34)], axis=1)
    np.testing.assert_array_equal(out, expected)
    assert _max_resize(x, 100, 40).shape == (2, 100, 40)  # larger: interpolated


def _names(pipeline: Pipeline) -> list[str]:
    return [type(step).__name__ for step in pipeline.steps]


def test_pipeline_holds_only_the_steps_asked_for_in_order():
    assert _names(build_pipeline(SetiPreprocessConfig())) == ["BinRows", "SelectPanels", "StackTime"]
    every = SetiPreprocessConfig(bin_rows=4, subtract_baseline=True, subtract_off=True, normalize="frequency",
                                 transpose=True, height=32, width=64)
    assert _names(build_pipeline(every)) == [
        "BinRows", "SubtractBaseline", "SubtractOff", "SelectPanels", "Standardize", "StackTime", "Transpose",
        "Resize",
    ]
    channel = SetiPreprocessConfig(panels="all", normalize="channel", transpose=True)
    assert _names(build_pipeline(channel)) == ["BinRows", "StackTime", "Transpose", "Standardize"]


def test_cadence_cleaning_is_shared_with_the_maps_only_when_nothing_comes_before_it():
    cfg = SetiPreprocessConfig(bin_rows=8, panels="all", stack="channels", normalize="cadence", dedoppler=True)
    shared = build_pipeline(cfg)
    assert _names(shared) == ["BinRows", "CleanCadence", "DedopplerMaps", "RowNoiseUnits", "AppendMaps"]
    assert shared.steps[2] == DedopplerMaps(8, clean=False)
    # the same numbers as cleaning a copy for the maps and the input on its own
    apart = Pipeline([BinRows(8), DedopplerMaps(8, clean=True), CleanCadence(), RowNoiseUnits(8), AppendMaps()])
    x = np.random.default_rng(5).standard_normal((6, 273, 256)).astype(np.float16)
    np.testing.assert_array_equal(shared(x), apart(x))
    subtracted = build_pipeline(SetiPreprocessConfig(**{**cfg.__dict__, "subtract_baseline": True}))
    assert _names(subtracted)[:4] == ["BinRows", "DedopplerMaps", "SubtractBaseline", "CleanCadence"]
    assert subtracted.steps[1] == DedopplerMaps(8, clean=True)
