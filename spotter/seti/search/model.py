"""The bridge to a trained spotter SETI model: events scored on Kaggle-shaped snippets, where that makes sense.

The Kaggle snippets the models learn from are GBT mid-resolution products: 273 rows of ~1.07 s per ~5-minute
file and 256 channels of ~2.86 kHz, six files ON OFF ON OFF ON OFF. A model says nothing useful about data of
another resolution, so such cadences are refused before any search.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spotter.errors import SpotterError
from spotter.seti.search.clean import CoarseStats
from spotter.seti.search.geometry import CadenceGeometry
from spotter.seti.search.header import FileHeader

MODEL_ROWS = 273
MODEL_CHANNELS = 256
MODEL_TSAMP_S = 1.073741824
MODEL_FOFF_HZ = 2861.02294921875
MODEL_ON = (True, False, True, False, True, False)
TOLERANCE = 0.1  # relative: mid-resolution products of other backends differ by a few percent


def check_model_resolution(headers: list[FileHeader], on: tuple[bool, ...]) -> None:
    """Refuses cadences a Kaggle-trained model cannot score, in one line saying why.

    Raises:
        SpotterError: If the cadence is not six ON/OFF-alternating files of ~273 rows of ~1.07 s and ~2.86 kHz
            channels.
    """
    trained = (
        f"the model was trained on Kaggle snippets of GBT mid-resolution data ({MODEL_ROWS} rows of "
        f"{MODEL_TSAMP_S:.2f} s and {MODEL_FOFF_HZ / 1e3:.2f} kHz channels per file, six files ON OFF ON OFF ON OFF)"
    )
    if tuple(on) != MODEL_ON:
        raise SpotterError(f"--run: {trained}; this cadence has pattern {''.join('A' if o else 'B' for o in on)}")
    for header in headers:
        rows_ok = abs(header.n_rows - MODEL_ROWS) <= TOLERANCE * MODEL_ROWS
        tsamp_ok = abs(header.tsamp_s - MODEL_TSAMP_S) <= TOLERANCE * MODEL_TSAMP_S
        foff_ok = abs(abs(header.foff_hz) - MODEL_FOFF_HZ) <= TOLERANCE * MODEL_FOFF_HZ
        if not (rows_ok and tsamp_ok and foff_ok) or header.nchans < MODEL_CHANNELS:
            raise SpotterError(
                f"--run: {trained}; {header.path.name} has {header.n_rows} rows of {header.tsamp_s:.4g} s and "
                f"{abs(header.foff_hz):.4g} Hz channels, so the model cannot score it (search without --run)"
            )


def snippet(
    event: dict, readers: list, stats: list[CoarseStats], geometry: CadenceGeometry
) -> np.ndarray:
    """The (6, 273, 256) float16 Kaggle-shaped snippet around an event's path, each panel standardized.

    The 256-channel window is centred on the event's mean channel over the cadence and kept inside its coarse
    channel; panels hold raw power (as the snippets did), resampled to 273 rows when a file has a few more or less.
    """
    start, stop = stats[0].start, stats[0].stop
    times = np.concatenate([geometry.row_times(k) for k in range(geometry.n_files)])
    centre = float(event["channel0"] + event["rate"] * times.mean())
    lo = int(np.clip(round(centre) - MODEL_CHANNELS // 2, start, max(start, stop - MODEL_CHANNELS)))
    hi = min(lo + MODEL_CHANNELS, stop)
    panels = []
    for k, reader in enumerate(readers):
        panel = np.zeros((reader.header.n_rows, MODEL_CHANNELS), dtype=np.float32)
        panel[:, : hi - lo] = reader.read(lo, hi)
        panels.append(_standardize(_resample_rows(panel, MODEL_ROWS)))
    return np.stack(panels).astype(np.float16)


def load_scorer(run_dir: str) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The trained run's scoring function (imported here only: the training stack is heavy)."""
    from spotter.seti.task import run_scorer

    return run_scorer(run_dir)


def _resample_rows(panel: np.ndarray, rows: int) -> np.ndarray:
    have = panel.shape[0]
    if have == rows:
        return panel
    position = np.linspace(0, have - 1, rows)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, have - 1)
    weight = (position - low)[:, None].astype(np.float32)
    return panel[low] * (1 - weight) + panel[high] * weight


def _standardize(panel: np.ndarray) -> np.ndarray:
    std = panel.std()
    return (panel - panel.mean()) / (std if std > 0 else 1.0)
