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
    assert len(files) == 9 + 4
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
