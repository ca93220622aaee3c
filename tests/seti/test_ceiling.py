"""The clairvoyant ceiling: unit-variance statistics in noise, needles found along their tracks, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spotter.cli import main
from spotter.errors import SpotterError
from spotter.metrics import roc_auc
from spotter.seti import ON_PANELS
from spotter.seti.ceiling import (
    ceiling_score,
    ceiling_scores,
    ceiling_table,
    search_bound_scores,
    slice_masks,
    straight_search_score,
)
from spotter.seti.needles import draw_needle, render
from spotter.seti.synth import chi2_noise, normalize_panels, write_synthetic


def noise_cadence(seed: int) -> np.ndarray:
    return chi2_noise(np.random.default_rng(seed), 1.0)


def test_statistics_have_unit_variance_in_noise() -> None:
    z = []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        needle = draw_needle(["straight", "sine"][seed % 2], rng)
        _, z_on, z_off = ceiling_score(normalize_panels(noise_cadence(seed)), needle.path, needle.level, needle.width)
        z += [z_on, z_off]
    assert abs(np.mean(z)) < 0.4 and 0.6 < np.std(z) < 1.4


def test_a_faint_needle_scores_above_the_same_noise_without_it() -> None:
    needle = draw_needle("quadratic", np.random.default_rng(3), panels=ON_PANELS, snr=3.0, partial=False, pulsed=False)
    data = noise_cadence(4)
    std = float(data.std())
    without, *_ = ceiling_score(normalize_panels(data.copy()), needle.path, needle.level, needle.width)
    with_needle, z_on, z_off = ceiling_score(normalize_panels(render(needle, std, data)), needle.path, needle.level,
                                             needle.width)
    assert with_needle > without + 3 and z_on > 3 and abs(z_off) < 4


def test_a_signal_in_every_panel_scores_low_whatever_its_on_power() -> None:
    needle = draw_needle("straight", np.random.default_rng(5), panels=tuple(range(6)), snr=30.0, partial=False,
                         pulsed=False)
    data = noise_cadence(6)
    score, z_on, z_off = ceiling_score(normalize_panels(render(needle, float(data.std()), data)), needle.path,
                                       needle.level, needle.width)
    assert z_on > 20 and z_off > 20 and score < 0.2 * z_on


def test_the_straight_search_finds_an_on_only_needle_that_noise_alone_does_not_match() -> None:
    needle = draw_needle("straight", np.random.default_rng(8), panels=ON_PANELS, snr=12.0, partial=False,
                         pulsed=False)
    data = noise_cadence(9)
    noise_only = straight_search_score(normalize_panels(data.copy()))
    found = straight_search_score(normalize_panels(render(needle, float(data.std()), data)))
    assert 2.0 < noise_only < 6.0  # the best of ~10^5 unit-variance paths in noise: a few sigma, not zero
    assert found > noise_only + 5


def test_the_search_bound_is_the_larger_of_ceiling_and_search(generated) -> None:
    bound = search_bound_scores(generated, "test")
    ceiling = ceiling_scores(generated, "test")
    assert list(bound["id"]) == list(ceiling["id"])
    np.testing.assert_allclose(bound["ceiling"], ceiling["target"])
    np.testing.assert_allclose(bound["target"], np.maximum(bound["ceiling"], bound["search"]))
    assert (bound["search"] > 1.0).all()  # noise alone has paths a search must beat
    assert bound["search"].std() > 0  # a stand-in of its own for each sample
    again = search_bound_scores(generated, "test")
    np.testing.assert_array_equal(again["target"], bound["target"])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("ceiling") / "data"
    write_synthetic(root, 0, 60, positive_rate=0.5, seed=4)
    return root


def test_ceiling_cli_writes_a_submission_that_scores_by_slice(generated, tmp_path, capsys) -> None:
    out = tmp_path / "ceiling.csv"
    assert main(["seti", "ceiling", str(generated), "--out", str(out), "--quiet"]) == 0
    assert "wrote 60 clairvoyant scores" in capsys.readouterr().out
    scores = pd.read_csv(out, dtype={"id": str})
    truth = pd.read_csv(generated / "test_labels.csv", dtype={"id": str}, keep_default_na=False)
    assert list(scores["id"]) == list(truth["id"])
    assert roc_auc(truth["target"], scores["target"]) > 0.9  # SNR 4 and up, told where: nearly perfect
    assert main(["score", str(out), str(generated / "test_labels.csv"), "--by", "time_mode"]) == 0
    assert "whole" in capsys.readouterr().out


def test_ceiling_needs_tracks(tmp_path) -> None:
    write_synthetic(tmp_path / "d", 0, 2, seed=1)
    (tmp_path / "d" / "test_needles.npz").unlink()  # e.g. data not made by the generator
    with pytest.raises(SpotterError, match="no test_needles.npz"):
        ceiling_scores(tmp_path / "d", "test")
    with pytest.raises(SpotterError, match="unknown split"):
        ceiling_scores(tmp_path / "d", "dev")


def test_ceiling_table_by_hand() -> None:
    truth = pd.DataFrame({
        "id": list("abcdef"), "target": [1, 1, 0, 0, 0, 1], "kind": ["sine", "straight", "none", "off_only", "none", "sine"],
        "shape": ["sine", "straight", "", "sine", "", "sine"], "time_mode": ["whole", "pulsed", "", "", "", "whole"],
        "snr_band": ["1_faintest", "5_brightest", "", "", "", "1_faintest"],
    })
    masks = slice_masks(truth)
    assert set(masks) >= {"overall", "snr 1_faintest", "time pulsed", "needle sine", "negatives off_only"}
    np.testing.assert_array_equal(masks["negatives off_only"], [1, 1, 0, 1, 0, 1])
    ceiling = pd.DataFrame({"id": list("abcdef"), "target": [0.9, 0.8, 0.1, 0.2, 0.3, 0.7]})
    model = pd.DataFrame({"id": list("fedcba"), "target": [0.7, 0.5, 0.6, 0.1, 0.9, 0.4]})  # b below d
    table = ceiling_table(truth, {"model": model, "ceiling": ceiling}).set_index("slice")
    assert table.loc["overall", "ceiling"] == 1.0
    # a (0.4) and f (0.7) against the negatives c 0.1, d 0.6, e 0.5: a wins 1 of 3 pairs, f all 3
    assert table.loc["time whole", "model"] == pytest.approx(4 / 6)
    assert table.loc["time whole", "model/ceiling"] == pytest.approx(table.loc["time whole", "model"])
    assert table.loc["time pulsed", "positives"] == 1 and table.loc["time pulsed", "negatives"] == 3
    with pytest.raises(SpotterError, match="lack 1 id"):
        ceiling_table(truth, {"model": model.iloc[1:], "ceiling": ceiling})
