"""A clairvoyant detector on generated data: a matched filter along each needle's true path and presence.

No detector that has to find the needle can do better than one told where it runs, so this score is the
ceiling every model on `spotter seti synth` data is measured against. The generator stores each sample's
needle track (`spotter.seti.needles.NeedleTracks`): the path's centre channel per row, the needle's level per
row and its width. Each row of the cleaned cadence is filtered with the needle's Gaussian profile centred on
the path; the ON statistic weights the ON rows by the needle's presence there, the OFF statistic the OFF rows
the same way (uniformly where the needle is absent from them), each scaled to unit variance under noise:

    score = z_on − max(z_off, 0)

Positives, and hard negatives whose signal sits in OFF panels or in every panel, are filtered along their own
path; plain negatives along a path and presence drawn from the positives' distribution, so the null the
positives are ranked against is the one the same template meets in noise.

A detector that has to find the needle also meets every other path's noise. `search_bound_scores` charges the
ceiling the least of that cost, a search over straight whole-time paths in pure noise, and so bounds what a
searching detector can reach: on the faintest needles far below the ceiling.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.errors import SpotterError
from spotter.metrics import roc_auc
from spotter.progress import NullReporter, Reporter
from spotter.seti import OFF_PANELS, ON_PANELS
from spotter.seti.cleaning import clean_cadence
from spotter.seti.data import SPLITS, list_split, load_cadence
from spotter.seti.needles import FCHANS, FWHM_PER_SIGMA, N_ROWS, NEEDLE_PRESETS, TCHANS, NeedleTracks
from spotter.seti.synth import chi2_noise

SEARCH_WIDTH = 2.5  # FWHM of `straight_search_score`'s one profile: mid-range of the generators' 1-6 channels
SEARCH_MAX_DRIFT = max(preset.ranges.max_drift for preset in NEEDLE_PRESETS.values())  # channels over the cadence
SEARCH_NULL_SEED = 20211  # the noise stand-ins' stream, fixed so the bound is the same on every run
ON_ROWS = np.isin(np.arange(N_ROWS) // TCHANS, ON_PANELS)
OFF_ROWS = np.isin(np.arange(N_ROWS) // TCHANS, OFF_PANELS)


def read_tracks(root: str | Path, split: str) -> NeedleTracks:
    """The needle tracks the generator wrote for a split.

    Raises:
        SpotterError: If the file is missing (data not made by `spotter seti synth`) or unreadable.
    """
    path = Path(root) / NeedleTracks.file_name(split)
    if not path.is_file():
        raise SpotterError(f"no {path.name}: the ceiling needs data made by `spotter seti synth`", root)
    try:
        return NeedleTracks.load(path)
    except (OSError, ValueError, KeyError) as err:
        raise SpotterError(f"unreadable needle tracks ({err})", path) from None


def row_filter(cadence: np.ndarray, path: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's matched-filter output along the path, at unit variance under noise, and where it is defined.

    Args:
        cadence: (6, 273, 256) cadence, cleaned (`clean_cadence`: unit noise per row and channel).
        path: (N_ROWS,) centre channel per cadence row.
        width: The needle's FWHM in channels.

    Returns:
        (N_ROWS,) filter outputs, and a mask of the rows whose profile falls at least partly inside the band.
    """
    rows = cadence.reshape(N_ROWS, FCHANS)
    sigma = width / FWHM_PER_SIGMA
    half = int(math.ceil(3.5 * sigma)) + 1
    cols = np.floor(path).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    profile = np.exp(-((cols - path[:, None]) ** 2) / (2 * sigma**2))
    inside = (cols >= 0) & (cols < FCHANS)
    profile = np.where(inside, profile, 0.0)
    values = rows[np.arange(N_ROWS)[:, None], np.clip(cols, 0, FCHANS - 1)]
    norm = np.sqrt((profile**2).sum(axis=1))
    defined = norm > 1e-6
    out = np.zeros(N_ROWS)
    out[defined] = (profile * values).sum(axis=1)[defined] / norm[defined]
    return out, defined


def weighted_z(filtered: np.ndarray, weights: np.ndarray) -> float:
    """Σ w·f / sqrt(Σ w²): a unit-variance statistic under noise (0 where the weights are all zero)."""
    norm = math.sqrt(float((weights**2).sum()))
    return float((weights * filtered).sum() / norm) if norm > 0 else 0.0


def presence_weights(level: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The needle's level on `rows` as matched-filter weights; uniform on them where it is absent from all."""
    weights = np.where(rows, level, 0.0)
    return weights if weights.sum() > 0 else rows.astype(np.float64)


def filter_input(cadence: np.ndarray) -> np.ndarray:
    """A copy of the stored cadence as the matched filters read it: cleaned, each row centred on its mean."""
    clean = clean_cadence(np.array(cadence, dtype=np.float32), precise=True)
    # the cleaning centres rows on their median; chi-squared noise's mean sits above it, a bias that adds up
    # along a path of hundreds of rows, so the filter gets rows centred on their mean
    clean -= clean.mean(axis=2, keepdims=True)
    return clean


def ceiling_score(cadence: np.ndarray, path: np.ndarray, level: np.ndarray, width: float) -> tuple[float, float, float]:
    """The clairvoyant score of one cadence and its ON and OFF statistics.

    Args:
        cadence: (6, 273, 256) cadence as stored (float16 or float32); cleaned here on a copy.
        path / level / width: The needle's track (`NeedleTracks`).

    Returns:
        (score, z_on, z_off).
    """
    clean = filter_input(cadence)
    filtered, defined = row_filter(clean, np.asarray(path, np.float64), float(width))
    level = np.asarray(level, np.float64)
    z_on = weighted_z(filtered, presence_weights(level, ON_ROWS & defined))
    z_off = weighted_z(filtered, presence_weights(level, OFF_ROWS & defined))
    return z_on - max(z_off, 0.0), z_on, z_off


def straight_search_score(
    cadence: np.ndarray, width: float = SEARCH_WIDTH, max_drift: float = SEARCH_MAX_DRIFT
) -> float:
    """The best clairvoyant-style score over every straight, whole-time path of the band: what a search pays.

    The same statistic as `ceiling_score` (z_on − max(z_off, 0) along a path, rows filtered with a Gaussian
    profile), taken at every start channel and every drift up to `max_drift` channels over the cadence, one
    channel apart at its ends, and maximized. A detector that has to find the needle meets at least this
    many chances in noise alone.

    Args:
        cadence: (6, 273, 256) cadence as stored; cleaned here on a copy as `ceiling_score` cleans it.
        width: FWHM of the search's profile, channels.
        max_drift: Largest |drift| searched, channels over the whole cadence.
    """
    from scipy.ndimage import convolve1d

    clean = filter_input(cadence)
    sigma = width / FWHM_PER_SIGMA
    half = int(math.ceil(3.5 * sigma))
    profile = np.exp(-(np.arange(-half, half + 1) ** 2) / (2 * sigma**2))
    filtered = convolve1d(clean.reshape(N_ROWS, FCHANS).astype(np.float64), profile / np.linalg.norm(profile),
                          axis=1, mode="constant")
    span = int(math.ceil(max_drift / 2))
    # prefix sums over the ON rows and over the OFF rows: a path's sum over a run of rows at one channel offset
    # is two lookups, and a straight path is at most max_drift + 1 such runs
    padded = np.pad(filtered, ((0, 0), (span, span)))
    prefix = {
        name: np.vstack([np.zeros((1, padded.shape[1])), np.cumsum(padded * rows[:, None], axis=0)])
        / math.sqrt(rows.sum())
        for name, rows in (("on", ON_ROWS), ("off", OFF_ROWS))
    }
    starts = np.arange(FCHANS)
    centred_rows = np.arange(N_ROWS) - N_ROWS // 2
    best = -np.inf
    steps = int(math.ceil(max_drift))
    for drift in np.arange(-steps, steps + 1) / N_ROWS:  # one channel apart over the cadence
        offsets = np.rint(drift * centred_rows).astype(np.int64)
        begin = np.concatenate([[0], np.flatnonzero(np.diff(offsets)) + 1])
        end = np.concatenate([begin[1:], [N_ROWS]])
        cols = offsets[begin][:, None] + span + starts
        z = {name: (p[end[:, None], cols] - p[begin[:, None], cols]).sum(axis=0) for name, p in prefix.items()}
        best = max(best, float((z["on"] - np.maximum(z["off"], 0.0)).max()))
    return best


def ceiling_scores(
    root: str | Path, split: str = "test", workers: int = 1, reporter: Reporter = NullReporter()
) -> pd.DataFrame:
    """The clairvoyant score of every sample of a generated split.

    Returns:
        Columns id, target (the score), z_on, z_off, in the label file's order.

    Raises:
        SpotterError: On data without needle tracks, tracks that do not cover the split's ids, or a bad file.
    """
    if workers < 1:
        raise SpotterError(f"--workers must be at least 1, got {workers}")
    if split not in SPLITS:
        raise SpotterError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    frame = list_split(root, split)
    tracks = read_tracks(root, split)
    index = {sample_id: i for i, sample_id in enumerate(tracks.ids.tolist())}
    missing = [i for i in frame["id"] if i not in index]
    if missing:
        raise SpotterError(
            f"{len(missing)} id(s) of the {split} split have no needle track, e.g. {missing[0]!r}",
            Path(root) / NeedleTracks.file_name(split),
        )
    tasks = [
        (str(p), tracks.path[index[i]], tracks.level[index[i]], float(tracks.width[index[i]]))
        for i, p in zip(frame["id"], frame["path"])
    ]
    scores = np.asarray(_map(_score_file, tasks, workers, reporter, "ceiling"), np.float64).reshape(-1, 3)
    return pd.DataFrame({"id": frame["id"], "target": scores[:, 0], "z_on": scores[:, 1], "z_off": scores[:, 2]})


def search_bound_scores(
    root: str | Path, split: str = "test", workers: int = 1, reporter: Reporter = NullReporter()
) -> pd.DataFrame:
    """A bound for detectors that must search for the needle: the ceiling's score against a search's chances.

    Each sample scores the larger of its clairvoyant score (`ceiling_score`) and the best straight whole-time
    path (`straight_search_score`) in a stand-in of pure radiometer noise drawn for that sample. A positive
    keeps the ceiling's knowledge of its path and presence and loses only that noise elsewhere in the band
    competes with it, as it does for any search; interference costs nothing (the stand-in has none). Straight
    whole-time paths are the fewest a search for needles can try, so a detector that searches (curved and
    part-time paths too, in bands with interference) meets more chances and falls below this bound.

    Returns:
        Columns id, target (the bound's score), ceiling, search, in the label file's order.

    Raises:
        SpotterError: As `ceiling_scores`.
    """
    frame = ceiling_scores(root, split, workers, reporter)
    ceiling = frame["target"].to_numpy()
    search = np.asarray(_map(noise_search_score, range(len(frame)), workers, reporter, "search"), np.float64)
    bound = np.maximum(ceiling, search)
    return pd.DataFrame({"id": frame["id"], "target": bound, "ceiling": ceiling, "search": search})


def noise_search_score(index: int) -> float:
    """`straight_search_score` of pure chi-squared noise, the `index`-th stand-in of `search_bound_scores`."""
    return straight_search_score(chi2_noise(np.random.default_rng([SEARCH_NULL_SEED, index]), 1.0))


def _map(function: Callable, tasks: Sequence, workers: int, reporter: Reporter, label: str) -> list:
    if workers == 1:
        return [function(t) for t in reporter.track(tasks, len(tasks), label)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(reporter.track(pool.imap(function, tasks, chunksize=16), len(tasks), label))


def _score_file(task: tuple) -> tuple[float, float, float]:
    path, needle_path, level, width = task
    return ceiling_score(load_cadence(path), needle_path, level, width)


# --------------------------------------------------------------------------------------------- the table


def slice_masks(truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ceiling table's rows: which samples each row's AUC ranks (a group's positives against negatives).

    Rows: overall; each SNR fifth, needle shape and time mode (those positives against every negative); each
    negative type (every positive against those negatives).
    """
    positive = truth["target"].to_numpy() == 1
    negative = ~positive
    rows = {"overall": np.ones(len(truth), bool)}
    for column, label in (("snr_band", "snr"), ("shape", "needle"), ("time_mode", "time")):
        values = truth[column].fillna("").astype(str).to_numpy()
        for value in sorted(set(values[positive])):
            rows[f"{label} {value}"] = (positive & (values == value)) | negative
    kinds = truth["kind"].fillna("").astype(str).to_numpy()
    for kind in sorted(set(kinds[negative])):
        rows[f"negatives {kind}"] = positive | (negative & (kinds == kind))
    return rows


def ceiling_table(truth: pd.DataFrame, scores: Mapping[str, pd.DataFrame], ceiling: str = "ceiling") -> pd.DataFrame:
    """AUC of each scorer on each slice (`slice_masks`), and each scorer's ratio to the ceiling's.

    Args:
        truth: The generated split's labels (`test_labels.csv`: id, target, kind, shape, time_mode, snr_band).
        scores: Name -> submission (id, target), e.g. model, baseline and the ceiling.
        ceiling: Which of `scores` the ratios divide by.

    Returns:
        One row per slice: slice, positives, negatives, each scorer's AUC, then `<name>/ceiling` per other scorer.

    Raises:
        SpotterError: If a submission lacks a truth id, or the ceiling is not among the scores.
    """
    if ceiling not in scores:
        raise SpotterError(f"no {ceiling!r} among the scores ({', '.join(scores)})")
    truth = truth.assign(id=truth["id"].astype(str))
    aligned = {}
    for name, frame in scores.items():
        by_id = frame.assign(id=frame["id"].astype(str)).set_index("id")["target"]
        missing = truth["id"][~truth["id"].isin(by_id.index)]
        if len(missing):
            raise SpotterError(f"{name} scores lack {len(missing)} id(s), e.g. {missing.iloc[0]!r}")
        aligned[name] = by_id.loc[truth["id"]].to_numpy(np.float64)
    targets = truth["target"].to_numpy(np.float64)
    rows = []
    for label, mask in slice_masks(truth).items():
        row = {"slice": label, "positives": int((targets[mask] == 1).sum()), "negatives": int((targets[mask] == 0).sum())}
        if row["positives"] == 0 or row["negatives"] == 0:
            continue
        for name, values in aligned.items():
            row[name] = roc_auc(targets[mask], values[mask])
        for name in aligned:
            if name != ceiling:
                row[f"{name}/{ceiling}"] = row[name] / row[ceiling]
        rows.append(row)
    return pd.DataFrame(rows)
