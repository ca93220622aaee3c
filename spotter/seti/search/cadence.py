"""The ON-path search: the ON files' SNRs added along one straight path through the whole cadence.

turboSETI finds hits file by file and then matches them, so a needle must clear the SNR cut in every ON file on
its own. Here each straight path (channel at the first file's start, cadence drift trial) gets the sum of the ON
files' de-Doppler SNRs where it crosses them, so three ON files at SNR 6 add up to about 10. The cadence trials
are finer than the per-file ones (one channel over the whole cadence), so each per-file trial covers a few
cadence trials whose start channels in later files differ by a few channels.

It runs in two steps per block of per-file trials: an upper bound with each later file's SNR max-pooled over
the start channels its cadence trials reach (cheap, a handful of tensor operations per trial), then the exact
sum of every cadence trial only where the bound clears the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spotter.seti.search.geometry import CadenceGeometry

MAX_CANDIDATES = 200_000  # per block of trials; beyond this the weakest bounds are dropped (RFI storms)


@dataclass
class Candidates:
    """ON-path candidates: channel at the first file's start, cadence trial, summed SNR, each ON file's SNR."""

    channel: np.ndarray
    fine_index: np.ndarray
    snr_sum: np.ndarray
    on_snr: np.ndarray  # (n, ON files)

    @classmethod
    def empty(cls, n_on: int) -> "Candidates":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, n_on)))

    @classmethod
    def concat(cls, parts: list["Candidates"], n_on: int) -> "Candidates":
        parts = [p for p in parts if len(p.channel)]
        if not parts:
            return cls.empty(n_on)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("channel", "fine_index", "snr_sum", "on_snr")))


class OnPathSearch:
    """The ON-path search of one cadence: which cadence trials each per-file trial covers, and their shifts."""

    def __init__(self, geometry: CadenceGeometry) -> None:
        self.geometry = geometry
        fine = geometry.fine_indices()
        coarse = geometry.coarse_of(fine)
        grid = geometry.grid
        # cadence trials of per-file trial j are fine[first[j] : first[j] + count[j]] (consecutive)
        slots = coarse + grid.max_index
        self.first = np.searchsorted(slots, np.arange(2 * grid.max_index + 1), side="left")
        self.count = np.searchsorted(slots, np.arange(2 * grid.max_index + 1), side="right") - self.first
        self.fine = fine
        self.shifts = {k: geometry.start_shift(fine, k) for k in geometry.on_files}

    def search(
        self,
        snr: dict[int, torch.Tensor],
        indices: np.ndarray,
        core_start: int,
        core: int,
        reach: dict[int, int],
        threshold: float,
        workspace: dict[str, torch.Tensor] | None = None,
    ) -> Candidates:
        """Candidates of one block of per-file trials whose ON sum reaches `threshold`.

        Args:
            snr: ON file -> (trials, core + 2 * reach[k]) SNR of every path starting in the file's region.
            indices: The per-file trials of the rows of `snr`.
            core_start: Absolute channel of the block's first core channel.
            core: Channels of the block's core (the candidates' channels at the first file's start).
            reach: ON file -> channels its region extends beyond the core on each side.
            threshold: Minimum sum of the ON files' SNRs.
            workspace: Optional reusable buffers: "bound" (>= trials x core) and "pooled" (>= the largest snr).
        """
        on = self.geometry.on_files
        first_table = snr[on[0]]
        trials, device = len(indices), first_table.device
        workspace = workspace or {}
        bound = workspace.get("bound", torch.empty((trials, core), device=device))[:trials, :core]
        bound.zero_()
        slots = np.asarray(indices) + self.geometry.grid.max_index
        first, count = self.first[slots], self.count[slots]
        usable = count > 0
        last = len(self.fine) - 1
        for k in on:
            lowest = np.where(usable, self.shifts[k][np.minimum(first, last)], 0)
            highest = np.where(usable, self.shifts[k][np.minimum(first + count - 1, last)], 0)
            window = int((highest - lowest).max()) + 1 if usable.any() else 1
            table = snr[k]
            if window > 1:  # pooled[i, c] = max(snr[i, c : c + window]): an upper bound over the window's trials
                pooled = workspace.get("pooled", torch.empty_like(table))[: table.shape[0], : table.shape[1]]
                pooled.copy_(table)
                for step in range(1, window):
                    torch.maximum(pooled[:, :-step], table[:, step:], out=pooled[:, :-step])
                table = pooled
            for row in np.flatnonzero(usable):
                start = reach[k] + int(lowest[row])
                bound[row] += table[row, start : start + core]
        if not usable.all():
            bound[torch.as_tensor(~usable, device=device)] = -torch.inf
        rows, columns = torch.nonzero(bound >= threshold, as_tuple=True)
        if len(rows) > MAX_CANDIDATES:
            keep = torch.topk(bound[rows, columns], MAX_CANDIDATES).indices
            rows, columns = rows[keep], columns[keep]
        if len(rows) == 0:
            return Candidates.empty(len(on))
        return self._refine(snr, slots, rows, columns, reach, threshold, core_start)

    def _refine(self, snr, slots, rows, columns, reach, threshold, core_start) -> Candidates:
        """Exact ON sums of every cadence trial under each bound that cleared the threshold."""
        on = self.geometry.on_files
        device = rows.device
        rows_np = rows.cpu().numpy()
        first, count = self.first[slots[rows_np]], self.count[slots[rows_np]]
        width = int(count.max())
        fine_pos = first[:, None] + np.arange(width)[None, :]
        valid = np.arange(width)[None, :] < count[:, None]
        fine_pos = np.where(valid, fine_pos, first[:, None])
        total = torch.zeros((len(rows_np), width), dtype=torch.float32, device=device)
        per_file = []
        for k in on:
            position = columns[:, None] + torch.as_tensor(reach[k] + self.shifts[k][fine_pos], device=device)
            values = snr[k][rows[:, None], position]
            per_file.append(values)
            total += values
        total[torch.as_tensor(~valid, device=device)] = -torch.inf
        best_sum, best_col = total.max(dim=1)
        keep = best_sum >= threshold
        pick = best_col[:, None]
        on_snr = torch.cat([values.gather(1, pick) for values in per_file], dim=1)
        keep_np = keep.cpu().numpy()
        chosen = fine_pos[np.arange(len(rows_np)), best_col.cpu().numpy()]
        return Candidates(
            channel=columns.cpu().numpy()[keep_np].astype(np.int64) + core_start,
            fine_index=self.fine[chosen][keep_np].astype(np.int64),
            snr_sum=best_sum.cpu().numpy()[keep_np].astype(np.float64),
            on_snr=on_snr.cpu().numpy()[keep_np].astype(np.float64),
        )


def strongest(candidates: Candidates) -> Candidates:
    """One candidate per start channel (its strongest trial), kept only where it beats both neighbouring channels.

    The same signal clears the threshold at many neighbouring channels and trials; this leaves the peaks for
    the event step to group, instead of every partial match.
    """
    if len(candidates.channel) == 0:
        return candidates
    order = np.lexsort((-candidates.snr_sum, candidates.channel))
    channel = candidates.channel[order]
    best = order[np.concatenate([[True], channel[1:] != channel[:-1]])]
    channel, value = candidates.channel[best], candidates.snr_sum[best]
    at = np.searchsorted(channel, channel - 1)
    left = np.where((at < len(channel)) & (channel[np.minimum(at, len(channel) - 1)] == channel - 1),
                    value[np.minimum(at, len(channel) - 1)], -np.inf)  # fmt: skip
    at = np.searchsorted(channel, channel + 1)
    right = np.where((at < len(channel)) & (channel[np.minimum(at, len(channel) - 1)] == channel + 1),
                     value[np.minimum(at, len(channel) - 1)], -np.inf)  # fmt: skip
    keep = best[(value >= left) & (value > right)]
    return Candidates(candidates.channel[keep], candidates.fine_index[keep], candidates.snr_sum[keep],
                      candidates.on_snr[keep])  # fmt: skip
