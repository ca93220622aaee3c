"""The classical de-Doppler baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from spotter.seti import ON_PANELS
from spotter.seti.dedoppler import Dedoppler, DedopplerConfig, baseline_scores
from spotter.seti.needles import N_ROWS, TCHANS
from spotter.seti.synth import chi2_noise, normalize_panels
from tests.seti.test_needles import with_needle


def _noise(seed: int) -> np.ndarray:
    return normalize_panels(chi2_noise(np.random.default_rng(seed), 1.0))


@pytest.mark.parametrize("drift", [0.0, 0.03, -0.07, 0.11])
def test_recovers_straight_drift_within_one_channel(drift):
    rng = np.random.default_rng(10)
    cadence, needle = with_needle(
        _noise(0), rng, snr=30, drift=drift, width=2, panels=ON_PANELS, partial=False, pulsed=False
    )
    hit = Dedoppler().search(cadence.astype(np.float16))
    rows = np.concatenate([np.arange(p * TCHANS, (p + 1) * TCHANS) for p in ON_PANELS])
    found = hit.channel + hit.drift * rows
    assert np.abs(found - needle.path[rows]).max() <= 1.0
    assert abs(hit.drift - drift) * N_ROWS <= 2.0  # end to end over the whole cadence
    assert hit.score > 10 and hit.snr_off < 3


def test_needle_outscores_noise_and_cadence_filter_rejects_all_panel_signal():
    rng = np.random.default_rng(11)
    search = Dedoppler()
    noise = [search.search(_noise(s)).score for s in range(5)]
    on, _ = with_needle(_noise(20), rng, snr=20, drift=0.05, panels=ON_PANELS, partial=False, pulsed=False)
    everywhere, _ = with_needle(
        _noise(21), rng, snr=40, drift=0.05, panels=tuple(range(6)), partial=False, pulsed=False
    )
    assert search.search(on).score > max(noise) + 5
    # in all six panels: the cadence filter leaves it at the noise level
    assert search.search(everywhere).score < max(noise) + 3


@pytest.mark.parametrize("bin_rows", [13, 16])
def test_path_power_of_prepared_cadence_reads_the_same_sums_as_the_full_maps(bin_rows):
    search = Dedoppler(config=DedopplerConfig(bin_rows=bin_rows))
    x = search.prepare(_noise(3))
    full = search.along_paths(search.dedrift(x))
    np.testing.assert_array_equal(search.paths_of_prepared(x), full)
    assert full.shape == (6, len(search.drifts), 256) and np.isfinite(full).all()
    with pytest.raises(ValueError, match="time bins"):
        search.paths_of_prepared(x[:, :-1])


def test_baseline_cli_writes_submission(tmp_path, make_layout, capsys):
    root = tmp_path / "data"
    make_layout(root, {"0a1": 0}, ["1c3", "e04"])
    sub = tmp_path / "sub.csv"
    assert main(["seti", "baseline", str(root), "--out", str(sub), "--quiet"]) == 0
    frame = pd.read_csv(sub, dtype={"id": str})
    assert list(frame.columns) == ["id", "target"] and list(frame["id"]) == ["1c3", "e04"]
    assert list(frame["target"]) == pytest.approx(list(baseline_scores(root)["target"]))
    assert baseline_scores(root, workers=2).equals(baseline_scores(root))
    train = baseline_scores(root, split="train")
    assert list(train["id"]) == ["0a1"] and {"drift", "channel", "snr_on", "snr_off"} <= set(train.columns)
    (root / "test" / "e" / "e04.npy").unlink()
    assert main(["seti", "baseline", str(root), "--out", str(sub), "--quiet"]) == 2
    assert "e04" in capsys.readouterr().err
