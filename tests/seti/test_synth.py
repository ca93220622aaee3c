"""The synthetic needle generator: layout, reproducibility, needles only where they belong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from spotter.seti import OFF_PANELS, ON_PANELS
from spotter.seti.data import check_data, list_split
from spotter.seti.synth import CHI2_DF, chi2_noise, make_cadence, write_synthetic


@pytest.mark.parametrize("kind, panels", [("off_only", set(OFF_PANELS)), ("all_panels", set(range(6)))])
def test_hard_negatives(kind, panels):
    rng = np.random.default_rng(3)
    _, meta = make_cadence(rng, 0, kind)
    assert meta["target"] == 0 and set(map(int, meta["panels"].split(","))) == panels


def test_cadence_format_and_metadata():
    cadence, meta = make_cadence(np.random.default_rng(4), 1, "sine")
    assert cadence.shape == (6, 273, 256) and cadence.dtype == np.float16
    # each panel normalized
    panels = cadence.astype(np.float64).reshape(6, -1)
    np.testing.assert_allclose(panels.mean(axis=1), 0, atol=1e-2)
    np.testing.assert_allclose(panels.std(axis=1), 1, atol=1e-2)
    assert meta["kind"] == "sine" and set(map(int, meta["panels"].split(","))) <= set(ON_PANELS)
    assert 1 <= meta["width"] <= 6 and meta["snr"] > 0


def test_noise_has_chi2_moments():
    x = chi2_noise(np.random.default_rng(6), 1.0, (200_000,)).astype(np.float64)
    assert abs(x.mean() - 1) < 0.01
    assert abs(x.std() - np.sqrt(2 / CHI2_DF)) < 0.01
    skew = ((x - x.mean()) ** 3).mean() / x.std() ** 3
    assert abs(skew - np.sqrt(8 / CHI2_DF)) < 0.05  # chi-squared skew, not Gaussian


def test_same_seed_same_bytes_regardless_of_workers(tmp_path):
    one = write_synthetic(tmp_path / "one", 5, 4, positive_rate=0.4, seed=7, workers=1)
    write_synthetic(tmp_path / "two", 5, 4, positive_rate=0.4, seed=7, workers=2)
    write_synthetic(tmp_path / "other", 5, 4, positive_rate=0.4, seed=8, workers=1)
    assert one["train_positives"] == 2 and one["test_positives"] == 2
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 9 + 4 + 2  # cadences, four CSVs, two needle-track files
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    assert (tmp_path / "one" / "test_labels.csv").read_bytes() != (tmp_path / "other" / "test_labels.csv").read_bytes()
    assert check_data(tmp_path / "one") == []
    labels = pd.read_csv(tmp_path / "one" / "test_labels.csv", dtype={"id": str})
    assert list(labels["id"]) == list(list_split(tmp_path / "one", "test")["id"])
    assert {"id", "target", "kind", "snr", "drift", "width", "panels", "rfi"} <= set(labels.columns)


def test_synth_cli_then_check(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["seti", "synth", str(out), "--train", "3", "--test", "2", "--seed", "1", "--quiet"]) == 0
    assert "wrote 3 train" in capsys.readouterr().out
    assert main(["seti", "check", str(out), "--quiet"]) == 0
    bad_rate = ["--train", "3", "--test", "2", "--positive-rate", "2", "--quiet"]
    assert main(["seti", "synth", str(tmp_path / "b"), *bad_rate]) == 2
    assert main(["seti", "synth", str(out), "--train", "3", "--test", "2", "--quiet"]) == 2
    assert "already holds generated cadences" in capsys.readouterr().err


def test_pulsed_needles_keep_their_own_width_except_in_the_classic_preset():
    from spotter.seti.needles import NeedleRanges, draw_needle

    fixed = draw_needle("straight", np.random.default_rng(1), pulsed=True, width=2.0)
    legacy = draw_needle("straight", np.random.default_rng(1), pulsed=True, width=2.0,
                         ranges=NeedleRanges(pulse_width_as_width=True))
    assert fixed.width == 2.0 and legacy.width > 6  # the pulses' width in seconds, read as channels
    np.testing.assert_array_equal(fixed.level, legacy.level)


def test_tracks_time_modes_and_snr_bands_are_written(tmp_path):
    from spotter.seti.needles import TIME_MODES, NeedleTracks
    from spotter.seti.synth import SNR_BANDS

    write_synthetic(tmp_path / "d", 0, 40, positive_rate=0.5, seed=2)
    labels = pd.read_csv(tmp_path / "d" / "test_labels.csv", dtype={"id": str}, keep_default_na=False)
    tracks = NeedleTracks.load(tmp_path / "d" / "test_needles.npz")
    assert list(tracks.ids) == list(labels["id"]) and tracks.path.shape == (40, 6 * 273)
    # a track for every sample; only plain negatives' are drawn for the ceiling
    np.testing.assert_array_equal(tracks.drawn, (labels["kind"] == "none").to_numpy())
    positives = labels[labels["target"] == 1]
    assert positives["snr"].min() < 4  # the default (wide) preset reaches below the classic floor
    assert set(positives["time_mode"]) <= set(TIME_MODES) and (labels.loc[labels["target"] == 0, "time_mode"] == "").all()
    assert positives["snr_band"].value_counts().to_dict() == {band: 4 for band in SNR_BANDS}
    by_band = positives.groupby("snr_band")["snr"]
    assert (by_band.max().loc[list(SNR_BANDS[:-1])].to_numpy() <= by_band.min().loc[list(SNR_BANDS[1:])].to_numpy()).all()
    # where the needle is absent from every ON row, a positive's track says so: its level there is zero
    for i in np.flatnonzero(labels["target"] == 1):
        panels = [int(p) for p in labels["panels"].iloc[i].split(",")]
        absent = [p for p in ON_PANELS if p not in panels]
        assert all(tracks.level[i, p * 273 : (p + 1) * 273].max() == 0 for p in absent)


def test_unknown_preset_is_refused(tmp_path):
    from spotter.errors import SpotterError

    with pytest.raises(SpotterError, match="unknown --preset 'loud'"):
        write_synthetic(tmp_path / "d", 1, 1, preset="loud")
