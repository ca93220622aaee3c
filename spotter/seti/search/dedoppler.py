"""The per-file de-Doppler sum over every drift trial, exact for any number of rows, in vectorized torch.

Trial `j`'s path puts row `t` at channel offset `round(j * t / span)`. Trials `j` and `j + span` differ by
exactly `t` channels in row `t`, so for each residue class of `j` modulo `span` a row's contributions to all
trials of the class are one strided view of that row: the sum costs `span * rows` tensor additions per block
of trials instead of `trials * rows`, with the same result as adding every path by hand.

Rows are first added in pairs (row 2p plus row 2p+1 shifted by d, for the few d a block of trials needs);
within a residue class d grows by one per member, so a pair's contributions are again one strided view, of
the pair table, and each path costs half the additions. The same code runs on CPU threads and on CUDA.
"""

from __future__ import annotations

import numpy as np
import torch

from spotter.seti.search.geometry import DriftGrid


def dedoppler(
    data: torch.Tensor, grid: DriftGrid, indices: np.ndarray, start: int, width: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Path sums `P[i, c] = sum_t data[t, start + c + offset(indices[i], t)]` for `c` in `[0, width)`.

    Args:
        data: (rows, channels) cleaned power, contiguous; paths must stay inside it (pad with zeros outside the
            band).
        grid: The drift trials.
        indices: Consecutive increasing trial indices.
        start: Column of `data` where output channel 0 starts.
        width: Output channels.
        out: Optional (at least len(indices), at least width) buffer to write into (reusing memory is much
            faster than allocating a fresh tensor per block of trials).

    Returns:
        (len(indices), width) path sums (a view of `out` when given), same dtype and device as `data`.
    """
    rows, columns = data.shape
    indices = np.asarray(indices)
    if len(indices) > 1 and not np.all(np.diff(indices) == 1):
        raise ValueError("drift trial indices must be consecutive")
    offsets = grid.offsets(indices, rows)
    if start + offsets.min() < 0 or start + width + offsets.max() > columns:
        raise ValueError(f"paths leave the data: start {start}, width {width}, offsets {offsets.min()}..{offsets.max()}")
    data = data.contiguous()
    if out is None:
        out = torch.empty((len(indices), width), dtype=data.dtype, device=data.device)
    out = out[: len(indices), :width]
    classes = min(grid.span, len(indices))
    # terms: (tensor, row, column of member 0 of residue class 0.., step per member) summed into every class
    terms = _pair_terms(data, offsets, start, width, classes) if len(indices) > grid.span and rows >= 4 else None
    for residue in range(classes):
        members = out[residue :: grid.span]
        count = members.shape[0]
        if terms is None:
            sources = [(data, t, start + int(offsets[residue, t]), t) for t in range(rows)]
        else:
            sources = [(table, row0 + int(rows_of[residue]), column0 + int(columns_of[residue]), step)
                       for table, row0, rows_of, column0, columns_of, step in terms]  # fmt: skip
        for n, (table, row, column, step) in enumerate(sources):
            line = table[row]
            row_step = table.stride(0) if table.dim() == 2 and table is not data else 0
            view = table.as_strided((count, width), (row_step + step, 1), line.storage_offset() + column)
            if n == 0:
                members.copy_(view)
            else:
                members.add_(view)
    return out


def _pair_terms(data: torch.Tensor, offsets: np.ndarray, start: int, width: int, classes: int) -> list:
    """Tables of row pairs for `dedoppler`: table[d - d_min, x] = data[2p, x] + data[2p + 1, x + d].

    For residue class r and member k, trial j = j_r + k * span has relative shift d(j_r) + k and first-row
    offset offsets[j_r, 2p] + 2p * k, so the member's column in the table moves 2p + row length per member.
    """
    rows, columns = data.shape
    count = offsets.shape[0]
    members = -(-count // classes)
    terms = []
    for p in range(rows // 2):
        first, second = offsets[:classes, 2 * p], offsets[:classes, 2 * p + 1]
        shift = second - first
        d_min, d_max = int(shift.min()), int(shift.max()) + members - 1
        x_min = start + int(first.min())
        length = width + int(first.max() - first.min()) + 2 * p * (members - 1)
        table = torch.zeros((d_max - d_min + 1, length), dtype=data.dtype, device=data.device)
        for d in range(d_min, d_max + 1):
            # corners no path reads may lie outside the data: left at zero
            lo, hi = max(0, -(x_min + d)), min(length, columns - x_min, columns - x_min - d)
            torch.add(data[2 * p, x_min + lo : x_min + hi], data[2 * p + 1, x_min + d + lo : x_min + d + hi],
                      out=table[d - d_min, lo:hi])  # fmt: skip
        terms.append((table, -d_min, shift, -x_min + start, first, 2 * p))
    if rows % 2:
        t = rows - 1
        terms.append((data, t, np.zeros(classes, np.int64), start, offsets[:classes, t], t))
    return terms


class Workspace:
    """A reusable buffer for `path_snr` (page-faulting fresh multi-megabyte tensors costs more than the sums)."""

    def __init__(self, trials: int, width: int, device: torch.device) -> None:
        self.boxed = torch.empty((trials, width), dtype=torch.float32, device=device)


def path_snr(
    cumulative: torch.Tensor,
    grid: DriftGrid,
    indices: np.ndarray,
    noise: dict[int, float],
    pad: int,
    out: torch.Tensor | None = None,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """SNR of each path at its best boxcar width, 1 or the channels the trial crosses per row.

    The input is the de-Doppler sum of data that were divided by the width-1 noise and summed along channels
    (`running_sums`), so a path's sum over any run of channels is a difference of two of its columns: width 1
    and every boxcar cost one subtraction each, with no pass over the paths to build running sums.

    A signal drifting faster than a channel per row is smeared over several channels in each row; summing a
    boxcar of that many channels (in the drift's direction, from the path's position at the row's start) gathers
    it, at the cost of more noise, so both widths are tried, as hyperseti's boxcar trials do.

    Args:
        cumulative: (trials, width + 2 * pad + 1) de-Doppler sums of the running sums; column `i` belongs to
            output channel `i - pad - 1`.
        noise: Robust noise of a path sum by boxcar width (`CoarseStats.noise`).
        pad: At least the widest boxcar.
        out: Optional buffer for the result (as `dedoppler`'s).
        workspace: Optional reusable buffer at least (trials, width).

    Returns:
        (trials, width) SNR.
    """
    trials, total = cumulative.shape
    width = total - 2 * pad - 1
    if out is None:
        out = torch.empty((trials, width), dtype=cumulative.dtype, device=cumulative.device)
    snr = out[:trials, :width]
    torch.sub(cumulative[:, pad + 1 : pad + 1 + width], cumulative[:, pad : pad + width], out=snr)
    widths = grid.widths(indices)
    if widths.max() <= 1:
        return snr
    if widths.max() > pad:
        raise ValueError(f"pad {pad} is narrower than the widest boxcar {widths.max()}")
    workspace = workspace or Workspace(trials, width, cumulative.device)
    sign = np.sign(np.asarray(indices))
    for lo, hi in _runs(widths * sign):
        w = int(widths[lo])
        if w == 1:
            continue
        first = pad if sign[lo] > 0 else pad - w + 1  # the box covers output channels c + first - pad .. + w - 1
        boxed = workspace.boxed[: hi - lo, :width]
        torch.sub(cumulative[lo:hi, first + w : first + w + width], cumulative[lo:hi, first : first + width], out=boxed)
        boxed.mul_(noise[1] / noise[w])
        torch.maximum(snr[lo:hi], boxed, out=snr[lo:hi])
    return snr


def running_sums(cleaned: np.ndarray, noise: float, out: np.ndarray | None = None) -> np.ndarray:
    """Cleaned data in units of the width-1 noise, summed along channels per row (float64 sums, float32 out).

    Column `i` holds the sum of channels `0..i`; `clean.normalize` clips single pixels, which keeps the float32
    sums exact to ~1e-3 sigma even in blocks full of strong interference.
    """
    scale = 1.0 / noise if np.isfinite(noise) and noise > 0 else 0.0
    out = np.empty(cleaned.shape, dtype=np.float32) if out is None else out
    for row in range(cleaned.shape[0]):  # row by row: the float64 sums never exceed one row
        np.multiply(np.cumsum(cleaned[row], dtype=np.float64), scale, out=out[row], casting="same_kind")
    return out


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges of equal consecutive values."""
    edges = np.flatnonzero(np.diff(values)) + 1
    bounds = np.concatenate([[0], edges, [len(values)]])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
