"""Needle physics: paths, panels, pulses, rendering and the injection helpers training uses."""

from __future__ import annotations

import numpy as np
import pytest

from spotter.seti import NEEDLE_KINDS, OFF_PANELS, ON_PANELS
from spotter.seti.needles import (
    DT_S,
    FCHANS,
    N_ROWS,
    TCHANS,
    add_interference,
    add_signal,
    cadence_times,
    draw_needle,
    inject_needle,
    normalized_noise_std,
    pulse_train,
    render,
    robust_std,
)


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


def test_inject_needle_leaves_input_alone_and_adds_on_power():
    rng = np.random.default_rng(5)
    cadence = (rng.standard_normal((6, 273, 256)) + 3).astype(np.float16)
    before = cadence.copy()
    out, needle = inject_needle(cadence, "straight", rng, snr=50, panels=ON_PANELS, partial=False, pulsed=False)
    np.testing.assert_array_equal(cadence, before)
    added = out - before.astype(np.float32)
    assert _panels_with_signal(np.where(np.abs(added) > 1e-2, added, 0)) == set(ON_PANELS)
    assert needle.kind == "straight" and needle.path.shape == (N_ROWS,)


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




def test_noise_estimates_follow_each_panels_level_and_ignore_a_bright_needle():
    rng = np.random.default_rng(7)
    scale = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], np.float32)[:, None, None]
    cadence = rng.standard_normal((6, 273, 256)).astype(np.float32) * scale
    np.testing.assert_allclose(normalized_noise_std(cadence), scale.ravel(), rtol=0.03)
    bright, _ = inject_needle(cadence, "straight", rng, noise_std=scale.ravel(), snr=500, panels=ON_PANELS)
    np.testing.assert_allclose(robust_std(bright), scale.ravel(), rtol=0.05)  # the median one barely moves


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
