"""Needle physics: paths, panels, pulses, rendering and the injection helpers training uses."""

from __future__ import annotations

import numpy as np
import pytest

from spotter.seti import NEEDLE_KINDS, OFF_PANELS, ON_PANELS
from spotter.seti.needles import (
    DT_S,
    FCHANS,
    TCHANS,
    add_interference,
    add_signal,
    cadence_times,
    draw_needle,
    intensity_for_snr,
    normalized_noise_std,
    pulse_train,
    render,
)


def with_needle(cadence: np.ndarray, rng: np.random.Generator, kind: str = "straight", **params):
    """A float32 copy of `cadence` with a drawn needle added at its noise level, and the needle."""
    out = np.array(cadence, np.float32)
    needle = draw_needle(kind, rng, **params)
    return render(needle, normalized_noise_std(out), out), needle


def _panels_with_signal(signal: np.ndarray) -> set[int]:
    return {p for p in range(6) if np.abs(signal[p]).max() > 0}


@pytest.mark.parametrize("kind", NEEDLE_KINDS)
def test_needle_only_in_on_panels_and_continuous(kind):
    rng = np.random.default_rng(1)
    needle = draw_needle(kind, rng, panels=ON_PANELS, snr=30, width=3, partial=False, pulsed=False)
    signal = render(needle, noise_std=1.0)
    assert _panels_with_signal(signal) == set(ON_PANELS)
    # one path through the whole cadence: no jumps between consecutive rows (OFF rows included)
    assert np.abs(np.diff(needle.path)).max() < 2.0
    # the injected power sits on the path
    for p in ON_PANELS:
        for t in (0, TCHANS // 2, TCHANS - 1):
            centre = needle.path[p * TCHANS + t]
            if 2 <= centre < FCHANS - 2:
                assert abs(int(np.argmax(signal[p, t])) - centre) <= 1


def test_drawn_panels_are_on_subsets_and_partial_needles_are_shorter():
    rng = np.random.default_rng(2)
    for _ in range(50):
        needle = draw_needle(str(rng.choice(NEEDLE_KINDS)), rng)
        assert set(needle.panels) <= set(ON_PANELS) and needle.panels
        present = _panels_with_signal(render(needle, 1.0))
        assert present <= set(needle.panels)
        if needle.partial:
            assert (needle.level > 0).sum() < len(needle.panels) * TCHANS


def test_render_adds_to_out_at_each_panels_noise_level():
    needle = draw_needle("straight", np.random.default_rng(5), snr=50, panels=ON_PANELS, partial=False, pulsed=False)
    unit = render(needle, 1.0)
    noise = np.array([1.0, 1.0, 2.0, 1.0, 0.5, 1.0])
    scaled = render(needle, noise)
    np.testing.assert_allclose(scaled, unit * noise[:, None, None], rtol=1e-6, atol=1e-30)
    # the profile's peak per row is setigen's level for this SNR and noise
    assert unit[0].max() == pytest.approx(intensity_for_snr(50, 1.0), rel=0.01)
    out = np.ones((6, 273, 256), np.float32)
    assert render(needle, 1.0, out) is out
    np.testing.assert_allclose(out - 1, unit, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_pulse_train_matches_setigen(seed):
    import setigen as stg

    rng = np.random.default_rng(seed)
    period = rng.uniform(8, 80) * DT_S
    width, phase = rng.uniform(0.2, 0.6) * period, rng.uniform(0, period)
    t = cadence_times()
    expected = stg.periodic_gaussian_t_profile(
        pulse_width=width, period=period, phase=phase, pulse_direction="up", level=0.0
    )(t)
    np.testing.assert_allclose(pulse_train(t, period, width, phase), expected, rtol=1e-12, atol=1e-12)
    assert expected.max() - expected.min() > 0.5  # pulses, not a constant




def test_noise_estimate_follows_each_panels_level():
    scale = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], np.float32)[:, None, None]
    cadence = np.random.default_rng(7).standard_normal((6, 273, 256)).astype(np.float32) * scale
    np.testing.assert_allclose(normalized_noise_std(cadence), scale.ravel(), rtol=0.03)


def test_add_signal_draws_kind_and_snr_from_its_ranges_in_on_panels():
    rng = np.random.default_rng(8)
    noise = np.ones(6, np.float32)
    for _ in range(20):
        cadence = np.zeros((6, 273, 256), np.float32)
        out = add_signal(cadence, rng, noise, kinds=["sine"], snr=(30.0, 30.0))
        assert out is cadence and set(_panels_with_signal(out)) <= set(ON_PANELS) and out.any()
    # the same draws as drawing the needle by hand: kind index, log-uniform SNR, then the needle
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    got = add_signal(np.zeros((6, 273, 256), np.float32), a, noise, kinds=NEEDLE_KINDS, snr=(8.0, 60.0))
    kind = NEEDLE_KINDS[int(b.integers(len(NEEDLE_KINDS)))]
    snr = float(np.exp(b.uniform(np.log(8.0), np.log(60.0))))
    np.testing.assert_array_equal(got, render(draw_needle(kind, b, snr=snr), noise))


def test_interference_is_drawn_in_all_six_panels_or_in_off_panels_only():
    noise = np.ones(6, np.float32)
    lit = {"six": [], "off": []}
    for seed in range(20):
        branch = "six" if np.random.default_rng(seed).random() < 0.7 else "off"  # the helper's first draw
        added = add_interference(np.zeros((6, 273, 256), np.float32), np.random.default_rng(seed), noise)
        lit[branch].append(_panels_with_signal(added))
    assert lit["off"] and all(panels and panels <= set(OFF_PANELS) for panels in lit["off"])
    assert any(panels == set(range(6)) for panels in lit["six"])  # a partial signal may light fewer
