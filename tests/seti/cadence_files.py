"""Tiny Breakthrough Listen cadences written with setigen for the search tests: known signals, real slews."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import setigen as stg
from astropy import units as u

DF_HZ = 2.7939677238464355  # GBT high-resolution channel width
DT_S = 18.253611008  # GBT high-resolution row time
FCH1_MHZ = 8000.0
MJD0 = 60000.0


@dataclass
class Signal:
    """A straight line in absolute time: file channel at the first file's start, drift (Hz/s), SNR per file."""

    channel: float
    drift_hz_s: float
    snr: float
    files: tuple[int, ...]
    width_channels: float = 3.0


@dataclass
class CadenceSpec:
    """What to write: shape, timing (slews between files), signals, and the real-data artefacts to add."""

    fchans: int = 8192
    tchans: int = 16
    df_hz: float = DF_HZ
    dt_s: float = DT_S
    slews_s: tuple[float, ...] = (12.0, 47.0, 9.0, 33.0, 21.0)
    signals: list[Signal] = field(default_factory=list)
    coarse_channels: int = 1
    bandpass: bool = False  # a roll-off at each coarse channel's edges and a DC spike at its centre
    gain_drift: float = 0.0  # relative gain change from the first row to the last
    seed: int = 0
    suffix: str = ".fil"

    @property
    def starts_s(self) -> np.ndarray:
        duration = self.tchans * self.dt_s
        return np.concatenate([[0.0], np.cumsum(duration + np.asarray(self.slews_s))])


def frequency_hz(channel: float, df_hz: float = DF_HZ) -> float:
    """Frequency of a (fractional) file channel: files are written descending from FCH1_MHZ."""
    return FCH1_MHZ * 1e6 - channel * df_hz


def write_cadence(folder: Path, spec: CadenceSpec) -> list[Path]:
    """Writes len(slews) + 1 files named obs<k><suffix>; returns their paths in observation order."""
    folder.mkdir(parents=True, exist_ok=True)
    starts = spec.starts_s
    paths = []
    for k, start in enumerate(starts):
        frame = stg.Frame(
            fchans=spec.fchans, tchans=spec.tchans, df=spec.df_hz * u.Hz, dt=spec.dt_s * u.s, fch1=FCH1_MHZ * u.MHz,
            ascending=False, mjd=MJD0 + start / 86400, seed=spec.seed * 100 + k,
        )  # fmt: skip
        frame.add_noise(x_mean=10, noise_type="chi2")
        for signal in spec.signals:
            if k in signal.files:
                frame.add_signal(
                    stg.constant_path(f_start=frequency_hz(signal.channel, spec.df_hz) + signal.drift_hz_s * start,
                                      drift_rate=signal.drift_hz_s * u.Hz / u.s),
                    stg.constant_t_profile(level=frame.get_intensity(snr=signal.snr)),
                    stg.gaussian_f_profile(width=signal.width_channels * spec.df_hz * u.Hz),
                    stg.constant_bp_profile(level=1),
                )  # fmt: skip
        if spec.bandpass or spec.gain_drift:
            frame.data = frame.data * _artefacts(spec, k)
        path = folder / f"obs{k}{spec.suffix}"
        if spec.suffix == ".h5":
            frame.save_h5(str(path))
        else:
            frame.save_fil(str(path))
        paths.append(path)
    return paths


MIDRES = CadenceSpec(fchans=1024, tchans=273, df_hz=2861.02294921875, dt_s=1.073741824, slews_s=(15.0, 25.0, 20.0, 30.0, 10.0))


def _artefacts(spec: CadenceSpec, k: int) -> np.ndarray:
    """Multiplicative bandpass (roll-off per coarse channel, DC spike) and gain drift, in the frame's order."""
    width = spec.fchans // spec.coarse_channels
    x = (np.arange(width) + 0.5) / width
    shape = np.ones(width)
    if spec.bandpass:
        shape = 0.35 + 0.65 / (1 + np.exp(-(x - 0.06) / 0.015)) / (1 + np.exp((x - 0.94) / 0.015))
        shape[width // 2] *= 6.0  # the DC spike
    band = np.tile(shape, spec.coarse_channels)[::-1]  # frame arrays run opposite to file channels (descending)
    gain = 1 + spec.gain_drift * np.linspace(0, 1, spec.tchans) * (1 if k % 2 == 0 else -0.5)
    return gain[:, None] * band[None, :]
