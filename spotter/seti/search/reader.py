"""Streams channel ranges of one filterbank/HDF5 file through blimpy, so memory never holds a whole file."""

from __future__ import annotations

import numpy as np

from spotter.errors import SpotterError
from spotter.seti.search.header import FileHeader, quiet_blimpy


class ChannelReader:
    """Reads `[start, stop)` channel ranges (file order, all rows, first IF) of one file.

    The blimpy reader is opened on first use and kept, so a reader can be built in one process and used in
    another (it pickles without its open file).
    """

    def __init__(self, header: FileHeader) -> None:
        self.header = header
        self._waterfall = None

    def __getstate__(self) -> dict:
        return {"header": self.header, "_waterfall": None}

    def read(self, start: int, stop: int) -> np.ndarray:
        """The (rows, stop - start) float32 power of channels `start..stop-1`.

        Raises:
            SpotterError: If the range is outside the file or blimpy cannot read it (a damaged or cut-short file).
        """
        header = self.header
        if not 0 <= start < stop <= header.nchans:
            raise SpotterError(f"channel range {start}..{stop} is outside the file's {header.nchans} channels", header.path)
        # blimpy selects by frequency and rounds back to channels; the band edges of `start` and `stop` map exactly
        low, high = sorted((header.frequency_mhz(start), header.frequency_mhz(stop)))
        try:
            waterfall = self._open()
            waterfall.read_data(f_start=low, f_stop=high, t_start=0, t_stop=header.n_rows)
            data = np.asarray(waterfall.data)
            waterfall.data = waterfall.container.data = None  # blimpy would keep the block alive until the next read
        except Exception as err:  # blimpy/h5py raise many kinds on damaged files
            raise SpotterError(f"cannot read channels {start}..{stop} ({type(err).__name__}: {err})", header.path) from None
        if data.ndim != 3 or data.shape[0] != header.n_rows or data.shape[2] != stop - start:
            raise SpotterError(
                f"reading channels {start}..{stop} gave an array of shape {data.shape}, expected "
                f"({header.n_rows}, IFs, {stop - start}); the file may be damaged",
                header.path,
            )
        return np.ascontiguousarray(data[:, 0, :], dtype=np.float32)

    def _open(self):
        if self._waterfall is None:
            quiet_blimpy()
            from blimpy import Waterfall

            self._waterfall = Waterfall(str(self.header.path), load_data=False)
        return self._waterfall

    def close(self) -> None:
        self._waterfall = None
