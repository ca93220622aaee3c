"""Reads and checks the headers of one cadence's filterbank/HDF5 files before any data is read."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from spotter.errors import SpotterError

HIRES_FFT_LENGTH = 2**20  # fine channels per coarse channel in Breakthrough Listen high-resolution products
GBT_COARSE_BANDWIDTH_MHZ = 2.9296875  # GBT: 800 MHz over 256 coarse channels
SUPPORTED_BITS = (8, 16, 32)
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class FileHeader:
    """The header values of one observation file that the search uses.

    Channels are numbered in file order: channel `c` is at `fch1_mhz + c * foff_mhz` (foff is negative for the
    usual descending Breakthrough Listen bands).
    """

    path: Path
    fch1_mhz: float
    foff_mhz: float
    nchans: int
    n_rows: int
    tsamp_s: float
    tstart_mjd: float
    source: str
    ra: str
    dec: str
    nbits: int
    telescope_id: int | None
    fine_per_coarse: int | None  # `nfpc` when the header has it

    @property
    def foff_hz(self) -> float:
        return self.foff_mhz * 1e6

    @property
    def duration_s(self) -> float:
        return self.n_rows * self.tsamp_s

    def frequency_mhz(self, channel: float) -> float:
        """Frequency of a (possibly fractional) channel index, in MHz."""
        return self.fch1_mhz + channel * self.foff_mhz


def read_header(path: str | Path) -> FileHeader:
    """Reads one file's header through blimpy without loading its data, and checks its size.

    Raises:
        SpotterError: If the file is missing, unreadable, lacks a needed key, or is shorter than its header
            promises (a truncated `.fil`).
    """
    path = Path(path)
    if not path.is_file():
        raise SpotterError("observation file not found", path)
    quiet_blimpy()
    try:
        from blimpy import Waterfall

        waterfall = Waterfall(str(path), load_data=False)
        raw = dict(waterfall.header)
        n_rows = int(waterfall.n_ints_in_file)
    except Exception as err:  # blimpy raises many kinds (IOError, ValueError, KeyError, struct.error, OSError)
        raise SpotterError(f"cannot read filterbank/HDF5 header ({type(err).__name__}: {err})", path) from None
    missing = [k for k in ("fch1", "foff", "nchans", "tstart", "tsamp", "nbits") if k not in raw]
    if missing:
        raise SpotterError(f"header lacks {', '.join(missing)}; expected a Breakthrough Listen .fil/.h5 header", path)
    header = FileHeader(
        path=path,
        fch1_mhz=float(raw["fch1"]),
        foff_mhz=float(raw["foff"]),
        nchans=int(raw["nchans"]),
        n_rows=n_rows,
        tsamp_s=float(raw["tsamp"]),
        tstart_mjd=float(raw["tstart"]),
        source=str(raw.get("source_name", "")),
        ra=str(raw.get("src_raj", "")),
        dec=str(raw.get("src_dej", "")),
        nbits=int(raw["nbits"]),
        telescope_id=int(raw["telescope_id"]) if "telescope_id" in raw else None,
        fine_per_coarse=int(raw["nfpc"]) if int(raw.get("nfpc", 0) or 0) > 0 else None,
    )
    _check_values(header)
    if not _is_hdf5(path):
        _check_filterbank_size(header, int(raw.get("nifs", 1)), raw.get("nsamples"))
    return header


def quiet_blimpy() -> None:
    """Keeps blimpy's INFO/WARNING chatter off the terminal; our own errors say what went wrong."""
    for name in ("blimpy", "blimpy.waterfall", "blimpy.io.base_reader", "blimpy.io.fil_reader", "blimpy.io.hdf_reader"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def _check_values(header: FileHeader) -> None:
    where = header.path
    if header.nchans < 1 or header.foff_mhz == 0 or not math.isfinite(header.foff_mhz):
        raise SpotterError(f"header has nchans={header.nchans}, foff={header.foff_mhz} MHz; expected channels", where)
    if not header.tsamp_s > 0:
        raise SpotterError(f"header has tsamp={header.tsamp_s} s; expected a positive sample time", where)
    if header.nbits not in SUPPORTED_BITS:
        raise SpotterError(f"has {header.nbits}-bit samples; the search reads {'/'.join(map(str, SUPPORTED_BITS))}-bit", where)
    if header.n_rows < 2:
        raise SpotterError(f"has {header.n_rows} time row(s); a drift search needs at least 2", where)


def _check_filterbank_size(header: FileHeader, nifs: int, nsamples) -> None:
    """A `.fil` holds whole rows of nchans x nifs samples after its header; anything else was cut short."""
    from blimpy.io.sigproc import len_header

    data_bytes = header.path.stat().st_size - len_header(str(header.path))
    row_bytes = header.nchans * max(nifs, 1) * header.nbits // 8
    if data_bytes % row_bytes:
        raise SpotterError(
            f"truncated: {data_bytes} data bytes is not a whole number of {row_bytes}-byte rows "
            f"({header.nchans} channels x {nifs} IF x {header.nbits} bits); the file is shorter than its header promises",
            header.path,
        )
    if nsamples is not None and int(nsamples) > header.n_rows:
        raise SpotterError(
            f"truncated: the header promises {int(nsamples)} rows, the file holds {header.n_rows}", header.path
        )


def parse_pattern(pattern: str, n_files: int) -> tuple[bool, ...]:
    """ON/OFF flags of a cadence pattern such as ABACAD: `A` marks the ON-target files, other letters OFF.

    Raises:
        SpotterError: If the pattern's length differs from the number of files or lacks ON or OFF files.
    """
    letters = pattern.strip().upper()
    if not letters.isalpha():
        raise SpotterError(f"--pattern {pattern!r}: expected letters such as ABACAD (A = ON target, others OFF)")
    if len(letters) != n_files:
        raise SpotterError(
            f"--pattern {pattern} has {len(letters)} letters for {n_files} files; give one letter per file "
            "(A = ON target, others OFF), e.g. --pattern " + ("AB" * n_files)[:n_files]
        )
    on = tuple(letter == "A" for letter in letters)
    if not any(on) or all(on):
        raise SpotterError(f"--pattern {pattern}: a cadence needs ON (A) and OFF (other letters) files")
    return on


def check_cadence(headers: list[FileHeader]) -> None:
    """Checks the files form one cadence: same band and channels, same sample time, in time order.

    Raises:
        SpotterError: Naming the first file that does not line up and why.
    """
    if len(headers) < 2:
        raise SpotterError(f"a cadence needs at least 2 files (ON and OFF), got {len(headers)}")
    first = headers[0]
    names = [h.path.name for h in headers]
    stems = [h.path.stem for h in headers]
    for header in headers[1:]:
        if header.nchans != first.nchans:
            raise SpotterError(f"has {header.nchans} channels, {first.path.name} has {first.nchans}", header.path)
        if not math.isclose(header.foff_mhz, first.foff_mhz, rel_tol=1e-6) or abs(header.fch1_mhz - first.fch1_mhz) > abs(
            first.foff_mhz
        ) / 2:
            raise SpotterError(
                f"band differs from {first.path.name} (fch1 {header.fch1_mhz} vs {first.fch1_mhz} MHz, "
                f"foff {header.foff_mhz} vs {first.foff_mhz} MHz)",
                header.path,
            )
        if not math.isclose(header.tsamp_s, first.tsamp_s, rel_tol=1e-6):
            raise SpotterError(
                f"sample time {header.tsamp_s} s differs from {first.path.name}'s {first.tsamp_s} s", header.path
            )
    for before, after in zip(headers, headers[1:]):
        gap_s = (after.tstart_mjd - before.tstart_mjd) * SECONDS_PER_DAY - before.duration_s
        if after.tstart_mjd <= before.tstart_mjd:
            raise SpotterError(
                f"starts at MJD {after.tstart_mjd:.8f}, not after {before.path.name} (MJD {before.tstart_mjd:.8f}); "
                "give the files in observation order",
                after.path,
            )
        if gap_s < -before.tsamp_s / 2:
            raise SpotterError(
                f"starts {-gap_s:.1f} s before {before.path.name} ends; files of one cadence cannot overlap", after.path
            )
    if len(set(stems)) != len(stems):
        duplicate = next(n for n, s in zip(names, stems) if stems.count(s) > 1)
        raise SpotterError(f"two files share the name stem of {duplicate}; each file's hits go to <stem>.dat")


def fine_per_coarse(header: FileHeader, coarse_channels: int | None = None) -> int:
    """Fine channels per coarse channel: from `--coarse-channels`, the header's `nfpc`, or the BL products.

    High-resolution BL files have 2^20 fine channels per coarse channel; GBT products have 2.9296875 MHz coarse
    channels. When neither fits, the whole band is treated as one coarse channel.

    Raises:
        SpotterError: If `coarse_channels` does not divide the file's channels.
    """
    if coarse_channels is not None:
        if coarse_channels < 1 or header.nchans % coarse_channels:
            raise SpotterError(
                f"--coarse-channels {coarse_channels} does not divide the {header.nchans} channels of the file",
                header.path,
            )
        return header.nchans // coarse_channels
    if header.fine_per_coarse and header.nchans % header.fine_per_coarse == 0:
        return header.fine_per_coarse
    if header.nchans % HIRES_FFT_LENGTH == 0:
        return HIRES_FFT_LENGTH
    if header.telescope_id == 6:
        per_coarse = GBT_COARSE_BANDWIDTH_MHZ / abs(header.foff_mhz)
        if abs(per_coarse - round(per_coarse)) < 1e-6 and header.nchans % round(per_coarse) == 0:
            return int(round(per_coarse))
    return header.nchans
