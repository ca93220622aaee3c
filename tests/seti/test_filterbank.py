"""Scanning a real Breakthrough Listen cadence: setigen's sample.fil tiled into six files."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import setigen as stg
from astropy import units as u

from spotter.cli import main
from spotter.errors import SpotterError
from spotter.seti.filterbank import scan, window_starts

SIGNAL_INDEX = 600  # channel of the injected signal at the cadence's start (ascending frame order)
DRIFT = 0.1  # channels per file row


def write_cadence(folder: Path, snr: float, shifted: int | None = None) -> list[Path]:
    """Six .fil files from the real sample, ON files sharing one continuous drifting signal."""
    sample = str(importlib.resources.files("setigen") / "assets" / "sample.fil")
    base = stg.Frame(waterfall=sample)
    frames = []
    for i in range(6):
        frame = stg.Frame(waterfall=sample)
        # different real backgrounds per file: time-rolled (ON) or time-reversed (OFF) copies of the sample
        frame.data = np.roll(base.data, 5 * i, axis=0) if i % 2 == 0 else base.data[::-1].copy()
        frame.t_start = base.t_start + i * base.tchans * base.dt  # back to back, so the path is continuous
        frames.append(frame)
    if snr:
        # this setigen has no OrderedCadence; a Cadence of the ON frames uses their t_start the same way
        stg.Cadence([frames[0], frames[2], frames[4]]).add_signal(
            stg.constant_path(
                f_start=base.get_frequency(index=SIGNAL_INDEX), drift_rate=DRIFT * base.df / base.dt * u.Hz / u.s
            ),
            stg.constant_t_profile(level=base.get_intensity(snr=snr)),
            stg.gaussian_f_profile(width=3 * base.df * u.Hz),
            stg.constant_bp_profile(level=1),
        )
    paths = []
    for i, frame in enumerate(frames):
        if i == shifted:
            # a band 100 channels higher; blimpy writes fch1 from the container's selection
            frame.waterfall.container.f_start += 100 * base.df * 1e-6
            frame.waterfall.container.f_stop += 100 * base.df * 1e-6
        frame.waterfall.header["tstart"] = base.waterfall.header["tstart"] + i * base.tchans * base.dt / 86400
        path = folder / f"obs{i}.fil"
        frame.save_fil(str(path))
        paths.append(path)
    return paths


def test_scan_finds_injected_signal(tmp_path):
    paths = write_cadence(tmp_path, snr=30)
    candidates, observations = scan(paths, step=128)
    assert len(candidates) == len(window_starts(1024, 256, 128)) == 7
    assert candidates["score"].is_monotonic_decreasing
    best = candidates.iloc[0]
    # the file stores channels in descending frequency; the frame index 600 is file channel 1023 - 600
    file_channel = 1023 - SIGNAL_INDEX
    assert best["channel_start"] <= file_channel < best["channel_stop"]
    expected_hz_s = DRIFT * observations[0].foff_mhz * 1e6 / observations[0].tsamp_s
    assert best["drift_hz_s"] == pytest.approx(abs(expected_hz_s), rel=0.1)
    assert best["score"] > 3 * candidates.iloc[-1]["score"]


def test_scan_without_signal_scores_low(tmp_path):
    candidates, _ = scan(write_cadence(tmp_path, snr=0))
    assert candidates["score"].max() < 15


def test_misaligned_files(tmp_path):
    paths = write_cadence(tmp_path, snr=0)
    with pytest.raises(SpotterError, match="cadence order") as info:
        scan(paths[::-1])
    assert "obs4.fil" in str(info.value)
    with pytest.raises(SpotterError, match="needs 6 files"):
        scan(paths[:5])
    (tmp_path / "bad").mkdir()
    uneven = write_cadence(tmp_path / "bad", snr=0, shifted=3)
    with pytest.raises(SpotterError, match="channels differ") as info:
        scan(uneven)
    assert "obs3.fil" in str(info.value)
    broken = tmp_path / "broken.fil"
    broken.write_bytes(b"garbage" * 10)
    with pytest.raises(SpotterError, match="cannot read") as info:
        scan([broken, *paths[1:]])
    assert "broken.fil" in str(info.value)


def test_scan_cli_writes_candidates_and_png(tmp_path, capsys):
    paths = write_cadence(tmp_path, snr=30)
    out = tmp_path / "cands.csv"
    assert main(["seti", "scan", *map(str, paths), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[:5]) == ["file", "channel_start", "channel_stop", "freq_mhz", "drift_hz_s"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["seti", "scan", *map(str, paths[:3]), "--out", str(out), "--quiet"]) == 2
