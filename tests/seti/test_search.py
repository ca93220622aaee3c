"""`spotter seti search` on tiny setigen cadences: recovery, drifts with slews, the cadence filter, streaming."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import setigen as stg
import torch
from astropy import units as u

from spotter.cli import main
from spotter.errors import SpotterError
from spotter.seti.search.config import SearchConfig
from spotter.seti.search.dedoppler import dedoppler, path_snr, running_sums
from spotter.seti.search.geometry import DriftGrid
from spotter.seti.search.runner import search_cadence
from tests.seti.cadence_files import DF_HZ, FCH1_MHZ, CadenceSpec, Signal, write_cadence

ON = (0, 2, 4)
OFF = (1, 3, 5)
ALL = tuple(range(6))


def search(paths, out: Path, **settings):
    return search_cadence(paths, out, SearchConfig(**{"top": 0, **settings}))


def matches(events: pd.DataFrame, signal: Signal, channels: float = 3, drift: float = 0.05) -> pd.DataFrame:
    frequency = FCH1_MHZ - signal.channel * DF_HZ * 1e-6
    near = (np.abs(events.freq_mhz - frequency) * 1e6 <= channels * DF_HZ) & (np.abs(events.drift_hz_s - signal.drift_hz_s) <= drift)
    return events[near]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[list[Path], list[Signal]]:
    """Needles in the ON files, interference in all files and in the OFF files only, one cadence."""
    signals = [
        Signal(900, 0.37, 25, ON),
        Signal(2100, -1.9, 20, ON),  # a few channels per row: the boxcar's case
        Signal(3300, 0.0, 40, ALL),  # zero-drift interference in every file
        Signal(4200, 0.8, 30, ALL),  # drifting interference, straight through every file
        Signal(5200, -0.6, 40, OFF),  # in the OFF files only
        Signal(6300, 1.2, 15, (1,)),  # in one OFF file only
    ]
    folder = tmp_path_factory.mktemp("mixed")
    return write_cadence(folder, CadenceSpec(fchans=8192, signals=signals, seed=1)), signals


def test_needles_found_at_level_3_with_drift_within_a_step(mixed, tmp_path: Path) -> None:
    paths, signals = mixed
    result = search(paths, tmp_path / "out")
    step = DriftGrid.create(16, 18.253611008, DF_HZ, 4.0).resolution_hz_s
    for needle in signals[:2]:
        found = matches(result.events[result.events.level == 3], needle)
        assert len(found) == 1, needle
        assert abs(found.drift_hz_s.iloc[0] - needle.drift_hz_s) <= step
        assert found.files.iloc[0] == "0;2;4"
    # one event per signal: nothing else near a needle, at any level
    for needle in signals[:2]:
        assert len(matches(result.events, needle, channels=40, drift=0.5)) == 1


def test_off_and_all_file_signals_never_reach_level_3(mixed, tmp_path: Path) -> None:
    paths, signals = mixed
    events = search(paths, tmp_path / "out").events
    assert (events.level == 3).sum() == 2  # the two needles only
    for interference in signals[2:]:
        near = matches(events, interference, channels=40, drift=1.0)
        assert len(near) >= 1 and (near.level == 1).all(), interference
        assert all(any(int(k) in interference.files for k in files.split(";")) for files in near.files)


def test_drifts_unbiased_across_slews(tmp_path: Path) -> None:
    # long, uneven slews: treating the files as back to back would make every drift ~30% too steep
    rng = np.random.default_rng(3)
    needles = [Signal(600 + 1100 * i, float(d), 25, ON) for i, d in enumerate(rng.uniform(-3, 3, 6))]
    spec = CadenceSpec(fchans=8192, signals=needles, slews_s=(150.0, 20.0, 90.0, 60.0, 5.0), seed=2)
    events = search(write_cadence(tmp_path / "data", spec), tmp_path / "out").events
    errors = []
    for needle in needles:
        found = matches(events[events.level == 3], needle, drift=0.05)
        assert len(found) == 1, needle
        errors.append(found.drift_hz_s.iloc[0] - needle.drift_hz_s)
    file_step = DriftGrid.create(16, 18.253611008, DF_HZ, 4.0).resolution_hz_s
    cadence_step = DF_HZ / (spec.starts_s[4] + 15 * 18.253611008)  # one channel over the ON files' span
    assert np.max(np.abs(errors)) <= file_step / 4
    assert abs(np.mean(errors)) <= cadence_step / 2


def test_streaming_gives_the_same_hits_and_events(tmp_path: Path) -> None:
    signals = [Signal(700, 0.9, 20, ON), Signal(1900, -2.5, 18, ON), Signal(2500, 0.0, 30, ALL), Signal(3400, 0.3, 25, OFF)]
    paths = write_cadence(tmp_path / "data", CadenceSpec(fchans=4096, signals=signals, coarse_channels=2, bandpass=True))
    whole = search(paths, tmp_path / "whole", coarse_channels=2, block_channels=2048)
    blocks = search(paths, tmp_path / "blocks", coarse_channels=2, block_channels=700)
    columns = ["freq_mhz", "drift_hz_s", "level", "files", "hits"]
    pd.testing.assert_frame_equal(whole.events[columns], blocks.events[columns], check_exact=False, rtol=1e-6)
    assert np.allclose(whole.events.snr, blocks.events.snr, rtol=1e-4)
    for path in paths:
        assert _dat_rows(tmp_path / "whole" / f"{path.stem}.dat") == _dat_rows(tmp_path / "blocks" / f"{path.stem}.dat")
    assert whole.hits_per_file == blocks.hits_per_file and sum(whole.hits_per_file) >= 9


def _dat_rows(path: Path) -> list[tuple]:
    rows = []
    for line in path.read_text().splitlines()[9:]:
        fields = re.split(r"\s+", line.replace("\t", " ").strip())
        rows.append((round(float(fields[1]), 4), round(float(fields[2]), 2), fields[3], fields[5], fields[10]))
    return rows


def test_dat_files_in_turboseti_layout(mixed, tmp_path: Path) -> None:
    paths, signals = mixed
    search(paths, tmp_path / "out", max_drift=4.0)
    text = (tmp_path / "out" / "obs2.dat").read_text()
    lines = text.splitlines(keepends=True)
    # the nine header lines turboSETI 2.x writes and its find_event.read_dat parses by position
    assert lines[0] == lines[2] == "# -------------------------- o --------------------------\n"
    assert lines[1] == "# File ID: obs2.h5 \n"
    assert lines[3] == "# Source:Synthetic\n"
    mjd, ra, dec = lines[4].strip().split("\t")
    assert re.fullmatch(r"# MJD: \d{5}\.\d{12}", mjd) and ra.startswith("RA: ") and dec.startswith("DEC: ")
    fields = [f.split(":")[-1].strip() for f in lines[5].strip().split("\t")]
    assert lines[5].startswith("# DELTAT: ") and "DELTAF(Hz): " in lines[5]
    assert float(fields[0]) == pytest.approx(18.253611) and float(fields[1]) == pytest.approx(-DF_HZ, abs=1e-6)
    assert float(fields[2]) == 4.0 and float(fields[3]) == pytest.approx(16 * 18.253611, abs=1e-5)
    assert lines[6] == lines[8] == "# --------------------------\n"
    assert lines[7].split("\t")[:3] == ["# Top_Hit_# ", "Drift_Rate ", "SNR "] and lines[7].count("\t") == 12
    hits = [re.split(r"\s+", line.replace("\t", " ").strip()) for line in lines[9:]]
    assert all(len(h) == 12 for h in hits) and [h[0] for h in hits] == [f"{n:06d}" for n in range(1, len(hits) + 1)]
    needle = signals[0]  # in obs2 the needle starts at channel + drift * t2 / foff
    start_s = CadenceSpec(fchans=8192).starts_s[2]
    frequency = FCH1_MHZ + (needle.drift_hz_s * start_s - needle.channel * DF_HZ) * 1e-6
    hit = min(hits, key=lambda h: abs(float(h[3]) - frequency))
    assert float(hit[3]) == pytest.approx(frequency, abs=3 * DF_HZ * 1e-6)
    assert float(hit[1]) == pytest.approx(needle.drift_hz_s, abs=0.02) and float(hit[2]) > 15
    assert int(hit[5]) == round((FCH1_MHZ - float(hit[3])) / (DF_HZ * 1e-6)) and hit[10] == "0"
    assert re.fullmatch(r"\d{6}\t +-?\d+\.\d{6}\t +\d+\.\d{6}\t +\d+\.\d{6}\t.*\t\n", lines[9])


def test_truncated_file_is_refused_in_one_line(mixed, tmp_path: Path, capsys) -> None:
    paths, _ = mixed
    cut = tmp_path / "cut.fil"
    cut.write_bytes(paths[3].read_bytes()[:-1000])
    files = [*map(str, paths[:3]), str(cut), *map(str, paths[4:])]
    with pytest.raises(SpotterError, match="truncated") as info:
        search(files, tmp_path / "out")
    assert "cut.fil" in str(info.value)
    assert main(["--quiet", "seti", "search", *files, "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cut.fil" in err and "shorter than its header" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_headers_checked_before_the_search(mixed, tmp_path: Path) -> None:
    paths, _ = mixed
    with pytest.raises(SpotterError, match="not after") as info:
        search([paths[1], paths[0], *paths[2:]], tmp_path / "out")
    assert "obs0.fil" in str(info.value)
    with pytest.raises(SpotterError, match="6 letters for 5 files"):
        search(paths[:5], tmp_path / "out")
    with pytest.raises(SpotterError, match="not found"):
        search([*paths[:5], tmp_path / "missing.fil"], tmp_path / "out")
    other = write_cadence(tmp_path / "other", CadenceSpec(fchans=4096, seed=5))
    with pytest.raises(SpotterError, match="channels") as info:
        search([*paths[:3], other[3], *paths[4:]], tmp_path / "out")
    assert "obs3.fil" in str(info.value)


def test_real_gbt_frame_with_injected_needle(tmp_path: Path) -> None:
    """setigen's sample.fil (GBT, 32 rows x 1024 channels of real noise) tiled into an ABACAD cadence."""
    sample = str(importlib.resources.files("setigen") / "assets" / "sample.fil")
    base = stg.Frame(waterfall=sample)
    frames = []
    for k in range(6):
        frame = stg.Frame(waterfall=sample)
        # different real backgrounds per file: time-rolled (ON) or time-reversed (OFF) copies of the sample
        frame.data = np.roll(base.data, 7 * k, axis=0) if k % 2 == 0 else base.data[::-1].copy()
        frame.t_start = base.t_start + k * (base.tchans * base.dt + 20.0)  # 20 s slews
        frames.append(frame)
    drift = 0.08  # Hz/s: about 2.6 channels per file
    start_index = 300
    for k in ON:
        elapsed = frames[k].t_start - base.t_start
        frames[k].add_signal(
            stg.constant_path(f_start=base.get_frequency(start_index) + drift * elapsed, drift_rate=drift * u.Hz / u.s),
            stg.constant_t_profile(level=base.get_intensity(snr=25)),
            stg.gaussian_f_profile(width=3 * base.df * u.Hz),
            stg.constant_bp_profile(level=1),
        )  # fmt: skip
    paths = []
    for k, frame in enumerate(frames):
        frame.waterfall.header["tstart"] = base.waterfall.header["tstart"] + (frame.t_start - base.t_start) / 86400
        paths.append(tmp_path / f"gbt{k}.fil")
        frame.save_fil(str(paths[-1]))
    events = search(paths, tmp_path / "out").events
    level3 = events[events.level == 3]
    assert len(level3) >= 1
    best = level3.iloc[0]
    assert best.freq_mhz == pytest.approx(base.get_frequency(start_index) * 1e-6, abs=3 * base.df * 1e-6)
    assert best.drift_hz_s == pytest.approx(drift, abs=0.01) and best.files == "0;2;4"


def test_dedoppler_matches_paths_added_by_hand() -> None:
    rng = np.random.default_rng(0)
    for rows in (16, 13, 5):  # a power of two and two that are not
        grid = DriftGrid.create(rows, 18.0, DF_HZ, 3.0)
        assert grid.resolution_hz_s == pytest.approx(DF_HZ / ((rows - 1) * 18.0))
        width, margin = 200, grid.max_index + 2
        data = rng.standard_normal((rows, width + 2 * margin)).astype(np.float32)
        trials = grid.indices()[3:40]
        paths = dedoppler(torch.from_numpy(data), grid, trials, margin, width).numpy()
        offsets = grid.offsets(trials, rows)
        by_hand = np.array([[sum(data[t, margin + c + offsets[i, t]] for t in range(rows)) for c in range(width)]
                            for i in range(len(trials))])  # fmt: skip
        assert np.allclose(paths, by_hand, atol=1e-4)
        assert np.all(np.abs(offsets[:, -1] - trials) <= 0)  # trial j ends exactly j channels away


def test_boxcar_snr_from_running_sums() -> None:
    rng = np.random.default_rng(1)
    rows, width, pad = 16, 300, 8
    grid = DriftGrid.create(rows, 18.0, DF_HZ, 4.0)
    trials = np.array([-100, -40, 3, 60, 100])  # boxcars of 7, 3, 1, 4 and 7 channels
    data = rng.standard_normal((rows, width + 2 * pad + 2 * grid.max_index + 4)).astype(np.float32)
    margin = grid.max_index + 2
    noise = {w: 4.0 * np.sqrt(w) for w in range(1, 9)}
    sums = torch.from_numpy(running_sums(data, noise[1]))
    for j in trials:
        trial = np.array([j])
        cumulative = dedoppler(sums, grid, trial, margin - pad - 1, width + 2 * pad + 1)
        snr = path_snr(cumulative, grid, trial, noise, pad).numpy()[0]
        plain = dedoppler(torch.from_numpy(data), grid, trial, margin - pad, width + 2 * pad).numpy()[0]
        w = int(grid.widths(trial)[0])
        narrow = plain[pad : pad + width] / noise[1]
        if w == 1:
            expected = narrow
        else:
            first = pad if j > 0 else pad - w + 1
            box = sum(plain[first + s : first + s + width] for s in range(w)) / noise[w]
            expected = np.maximum(narrow, box)
        assert np.allclose(snr, expected, atol=1e-3)


def test_cli_writes_events_dat_png_summary(mixed, tmp_path: Path, capsys) -> None:
    paths, _ = mixed
    out = tmp_path / "out"
    assert main(["--quiet", "seti", "search", *map(str, paths), "--out", str(out), "--top", "1"]) == 0
    printed = capsys.readouterr().out
    assert "2 level 3" in printed and "best:" in printed
    events = pd.read_csv(out / "events.csv")
    assert list(events.columns[:6]) == ["rank", "freq_mhz", "drift_hz_s", "snr", "level", "files"]
    assert events.level.is_monotonic_decreasing and events.png.iloc[0] == "event_001.png"
    assert (out / "event_001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.glob("*.dat")) == [f"obs{k}.dat" for k in range(6)]
    assert "level 3" in (out / "summary.md").read_text()
    assert main(["--quiet", "seti", "search", *map(str, paths), "--out", str(out)]) == 2  # not empty: refused


def test_scan_points_to_search(capsys) -> None:
    assert main(["seti", "scan", "a.fil", "b.fil", "--out", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "spotter seti search" in err


def test_model_scores_events_of_mid_resolution_data(tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    from spotter.seti.search import model
    from tests.seti.cadence_files import MIDRES

    snippets = []

    def load_scorer(run):
        def score(batch):
            snippets.extend(batch)
            return np.array([float(np.abs(s.astype(np.float32)).max()) for s in batch])

        return score

    monkeypatch.setattr(model, "load_scorer", load_scorer)
    signals = [Signal(300, 1.5, 30, ON, width_channels=1.0), Signal(700, 0.0, 60, ALL, width_channels=1.0)]
    paths = write_cadence(tmp_path / "data", replace(MIDRES, signals=signals))
    result = search_cadence(paths, tmp_path / "out", SearchConfig(top=0, rank_by="model_score"), run=tmp_path)
    events = result.events
    assert len(snippets) == len(events) >= 2
    assert all(s.shape == (6, 273, 256) and s.dtype == np.float16 for s in snippets)
    assert events.model_score.is_monotonic_decreasing and not events.level.is_monotonic_decreasing
    assert "model_score" in pd.read_csv(tmp_path / "out" / "events.csv")


def test_model_refused_for_high_resolution_data(mixed, tmp_path: Path, capsys) -> None:
    paths, _ = mixed
    code = main(["--quiet", "seti", "search", *map(str, paths), "--out", str(tmp_path / "out"), "--run", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "273 rows" in err and "obs0.fil has 16 rows" in err and not (tmp_path / "out").exists()


def test_many_cadences_on_a_local_dask_cluster(tmp_path: Path) -> None:
    from spotter.seti.search.runner import search_many

    needles = {"near": Signal(500, -0.5, 30, ON), "far": Signal(1100, 0.8, 30, ON)}
    rows = []
    for seed, (name, needle) in enumerate(needles.items()):
        write_cadence(tmp_path / name, CadenceSpec(fchans=1536, signals=[needle], seed=seed))
        rows.append({"name": name, **{f"file{k}": f"{name}/obs{k}.fil" for k in range(6)}})  # relative to the list
    listing = tmp_path / "cadences.csv"
    pd.DataFrame(rows).to_csv(listing, index=False)
    table = search_many(listing, tmp_path / "out", SearchConfig(top=1), workers=1)
    assert list(table.name) == ["near", "far"] and list(table.status) == ["ok", "ok"] and list(table.level_3) == [1, 1]
    events = pd.read_csv(tmp_path / "out" / "events.csv")
    for name, needle in needles.items():
        assert len(matches(events[(events.cadence == name) & (events.level == 3)], needle)) == 1
        assert (tmp_path / "out" / name / "event_001.png").is_file() and (tmp_path / "out" / name / "obs5.dat").is_file()
    assert "2 searched" in (tmp_path / "out" / "summary.md").read_text()
    rows[1]["file3"] = "far/missing.fil"
    pd.DataFrame(rows).to_csv(listing, index=False)
    with pytest.raises(SpotterError, match=r"row 3 \(far\).*missing.fil.*not found"):
        search_many(listing, tmp_path / "out2", SearchConfig(), workers=2)
