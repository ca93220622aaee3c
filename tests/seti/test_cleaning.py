"""The cadence cleaning shared by the de-Doppler search and the CNN input."""

from __future__ import annotations

import numpy as np
import pytest

from spotter.seti.cleaning import bin_time, clean_cadence, lower_median


def test_bin_time_averages_whole_groups_into_a_new_float32_array():
    x = np.arange(6 * 10 * 4, dtype=np.float16).reshape(6, 10, 4)
    before = x.copy()
    binned = bin_time(x, 3)  # 10 rows: three groups of 3, the last row dropped
    assert binned.shape == (6, 3, 4) and binned.dtype == np.float32
    np.testing.assert_allclose(binned[2, 1], x[2, 3:6].astype(np.float32).mean(axis=0))
    np.testing.assert_array_equal(x, before)
    x32 = x.astype(np.float32)
    same = bin_time(x32, 1)
    same[:] = 0  # a copy, not a view of the input
    assert x32.any()


def test_lower_median_takes_the_lower_middle_value():
    x = np.array([[4.0, 1.0, 3.0, 2.0], [9.0, 7.0, 8.0, 6.0]])
    np.testing.assert_array_equal(lower_median(x, axis=1), [2.0, 7.0])
    np.testing.assert_array_equal(lower_median(x[:, :3], axis=1), [3.0, 8.0])


def _cadence(seed: int, bursts: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 21, 256)).astype(np.float32) * np.linspace(0.5, 2.0, 256, dtype=np.float32)
    x += np.linspace(0, 50, 256, dtype=np.float32)  # bandpass
    if bursts:
        x[2, 7] += 40.0  # a broadband burst in one row
    return x


@pytest.mark.parametrize("precise", [False, True])
def test_cleaning_removes_bandpass_and_bursts_and_leaves_unit_rows(precise):
    out = clean_cadence(_cadence(0), precise=precise)
    assert abs(np.median(out[:, :, 10:30])) < 0.15  # bandpass gone
    assert abs(np.median(out[2, 7])) < 0.15  # burst row at the level of the others
    # each row's spread is estimated from every channel (precise) or every second one
    step = 1 if precise else 2
    np.testing.assert_allclose(out.reshape(-1, 256)[:, ::step].std(axis=1), 1.0, rtol=1e-4)


def test_channel_level_is_the_row_median_when_precise_and_the_panel_means_median_otherwise():
    x = _cadence(1, bursts=False)
    x[:, :, 100] = 0.0
    x[:, :3, 100] = 91.0  # every panel's mean is 1 in this channel, while most of its rows are 0
    precise = clean_cadence(x.copy(), precise=True)[:, 3:, 100]
    cheap = clean_cadence(x.copy())[:, 3:, 100]
    assert np.abs(precise).max() < 0.05  # the quiet rows sit at the channel's level
    assert (cheap < -0.1).all()  # below: the level is the panel means' median, 1
