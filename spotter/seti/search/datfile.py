"""Per-file hit tables in turboSETI's `.dat` layout, so its `find_event_pipeline` and plotting read them."""

from __future__ import annotations

import numpy as np

from spotter.seti.search.geometry import DriftGrid
from spotter.seti.search.header import FileHeader
from spotter.seti.search.hits import Hits

RULE = "# --------------------------\n"
BANNER = "# -------------------------- o --------------------------\n"
COLUMNS = [
    "Top_Hit_#", "Drift_Rate", "SNR", "Uncorrected_Frequency", "Corrected_Frequency", "Index", "freq_start",
    "freq_end", "SEFD", "SEFD_freq", "Coarse_Channel_Number", "Full_number_of_hits",
]  # fmt: skip


def dat_text(
    header: FileHeader,
    hits: Hits,
    grid: DriftGrid,
    coarse_width: int,
    above_cut: dict[int, int],
    max_drift_hz_s: float,
    stem: str,
) -> str:
    """The `.dat` text of one file: turboSETI 2.x's nine header lines, then one tab-separated line per hit.

    Args:
        header: The file's header.
        hits: Its hits (absolute channels at the file's first row), any order.
        grid: The drift trials (to turn trial indices into Hz/s).
        coarse_width: Fine channels per coarse channel (Index counts within one).
        above_cut: Coarse channel -> channels with any drift above the SNR cut (for Full_number_of_hits).
        max_drift_hz_s: The search's drift limit.
        stem: The file name without extension (turboSETI writes `File ID: <stem>.h5`).
    """
    lines = [
        BANNER,
        f"# File ID: {stem}.h5 \n",
        BANNER,
        f"# Source:{header.source}\n",
        f"# MJD: {header.tstart_mjd:18.12f}\tRA: {header.ra}\tDEC: {header.dec}\n",
        f"# DELTAT: {header.tsamp_s:10.6f}\tDELTAF(Hz): {header.foff_hz:10.6f}\tmax_drift_rate: {max_drift_hz_s:10.6f}"
        f"\tobs_length: {header.duration_s:10.6f}\n",
        RULE,
        "# " + "".join(f"{name} \t" for name in COLUMNS) + "\n",
        RULE,
    ]
    order = np.argsort(hits.channel, kind="stable")
    end_offsets = grid.offsets(hits.drift_index, header.n_rows)[:, -1] if len(hits) else np.zeros(0, np.int64)
    for number, n in enumerate(order, start=1):
        channel = int(hits.channel[n])
        end = channel + int(end_offsets[n])
        coarse = channel // coarse_width
        frequency = header.frequency_mhz(channel)
        drift = float(grid.hz_per_s(hits.drift_index[n] * grid.step_rate))
        fields = [
            f"{number:06d}",
            f"{drift:10.6f}",
            f"{hits.snr[n]:10.6f}",
            f"{frequency:14.6f}",
            f"{frequency:14.6f}",  # no barycentric correction, as turboSETI
            f"{channel - coarse * coarse_width:d}",
            f"{header.frequency_mhz(min(channel, end)):14.6f}",
            f"{header.frequency_mhz(max(channel, end)):14.6f}",
            "0.0",
            f"{0.0:14.6f}",
            f"{coarse:d}",
            f"{above_cut.get(coarse, 0):d}",
        ]
        lines.append("".join(f"{field}\t" for field in fields) + "\n")
    return "".join(lines)
