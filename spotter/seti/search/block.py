"""One block of channels searched in every file at once: clean, de-Doppler, hits, ON paths, events.

A block owns the events whose line starts (at the first file's start) in its core channels. Each file is read
with margins wide enough for every path of those events, so a file split into blocks gives the same hits and
events as one read whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spotter.seti.search.cadence import Candidates, OnPathSearch, strongest
from spotter.seti.search.clean import CoarseStats, normalize
from spotter.seti.search.config import SearchConfig
from spotter.seti.search.dedoppler import Workspace, dedoppler, path_snr, running_sums
from spotter.seti.search.events import build_events
from spotter.seti.search.evidence import BlockData
from spotter.seti.search.geometry import CadenceGeometry
from spotter.seti.search.hits import Hits, find_peaks, suppress
from spotter.seti.search.reader import ChannelReader

TRIALS_PER_STEP = 64  # drift trials de-Dopplered together (memory: trials x block channels x files)
CANDIDATE_SHARE = 0.7  # of the cadence threshold an ON-path candidate needs on the trial grid
HALO = 4  # channels each region reaches beyond what its core needs, so peaks at a core's edge are the same


@dataclass(frozen=True)
class Block:
    """A run of channels inside one coarse channel (absolute channel indices, file order)."""

    coarse: int
    coarse_start: int
    coarse_stop: int
    core_start: int
    core_stop: int

    @property
    def core(self) -> int:
        return self.core_stop - self.core_start


@dataclass
class BlockResult:
    """What one block found: per file, hit peaks in the core (before `suppress`) and channels above the cut; events."""

    peaks: dict[int, Hits]
    above_cut: dict[int, int]
    events: list[dict]


def plan_blocks(nchans: int, coarse_width: int, block_channels: int) -> list[Block]:
    """Blocks of at most `block_channels` core channels, never crossing a coarse channel."""
    blocks = []
    for coarse, start in enumerate(range(0, nchans, coarse_width)):
        stop = min(start + coarse_width, nchans)
        for core_start in range(start, stop, block_channels):
            blocks.append(Block(coarse, start, stop, core_start, min(core_start + block_channels, stop)))
    return blocks


class BlockBuffers:
    """Every array one block needs, allocated once per search and reused block after block.

    Fresh multi-megabyte arrays per block would cost page faults and leave the heap fragmented, so peak memory
    would creep up over a long file instead of staying flat.
    """

    def __init__(self, geometry: CadenceGeometry, core: int, device: torch.device) -> None:
        grid = geometry.grid
        self.device = device
        self.pad = int(grid.widths(np.array([grid.max_index]))[0])  # the widest boxcar reads this far past a region
        self.margin = grid.max_index + 1  # the furthest a path moves inside one file
        self.step = _trials_per_step(grid.span)
        files = range(geometry.n_files)
        self.reach = {k: geometry.reach(k) + HALO for k in files}
        regions = {k: core + 2 * (self.reach[k] + self.pad + self.margin) for k in files}
        self.cleaned = {k: np.zeros((geometry.rows[k], regions[k]), dtype=np.float32) for k in files}
        self.sums = {k: np.zeros((geometry.rows[k], regions[k]), dtype=np.float32) for k in files}
        self.tensors = {k: self._on_device(self.sums[k]) for k in files}
        widest = max(regions.values())
        self.paths = torch.empty((self.step, widest), device=device)
        self.workspace = Workspace(self.step, widest, device)
        off = torch.empty((self.step, widest), device=device)  # OFF files' SNR is not kept between files
        self.snr = {k: torch.empty((self.step, widest), device=device) if geometry.on[k] else off for k in files}
        # the pooled ON tables of the cadence step reuse the boxcar buffer (the SNR of the trials is done by then)
        self.cadence = {"bound": torch.empty((self.step, core + 2 * HALO), device=device), "pooled": self.workspace.boxed}
        self.best = {k: torch.empty(widest, device=device) for k in files}
        self.best_index = {k: torch.empty(widest, dtype=torch.int64, device=device) for k in files}

    def _on_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)  # shares memory on the CPU
        return tensor if self.device.type == "cpu" else tensor.to(self.device)


def search_block(
    block: Block,
    readers: list[ChannelReader],
    stats: list[CoarseStats],
    geometry: CadenceGeometry,
    on_path: OnPathSearch,
    config: SearchConfig,
    buffers: BlockBuffers,
) -> BlockResult:
    """Searches one block of every file of the cadence (`buffers` sized for at least its core)."""
    grid = geometry.grid
    pad, margin, reach, step = buffers.pad, buffers.margin, buffers.reach, buffers.step
    device = buffers.device
    files = range(geometry.n_files)
    tensors, sums, first = {}, {}, {}
    for k in files:
        region_start = block.core_start - reach[k] - pad - margin
        region = block.core + 2 * (reach[k] + pad + margin)
        lo, hi = max(region_start, block.coarse_start), min(region_start + region, block.coarse_stop)
        cleaned = buffers.cleaned[k][:, :region]
        cleaned.fill(0.0)
        cleaned[:, lo - region_start : hi - region_start] = normalize(readers[k].read(lo, hi), lo, stats[k], in_place=True)
        sums[k] = running_sums(cleaned, stats[k].noise[1], out=buffers.sums[k][:, :region])
        first[k] = region_start
        tensors[k] = buffers.tensors[k][:, :region]
        if device.type != "cpu":
            tensors[k].copy_(torch.from_numpy(sums[k]))
    widths = {k: block.core + 2 * reach[k] for k in files}
    best = {k: buffers.best[k][: widths[k]].fill_(-torch.inf) for k in files}
    best_index = {k: buffers.best_index[k][: widths[k]].zero_() for k in files}
    found = []
    indices = grid.indices()
    # trial paths start on whole channels; a narrow signal between two can lose a third of its SNR to
    # rounding, which the event step's sub-channel lines win back, so candidates need only part of the sum
    threshold = CANDIDATE_SHARE * config.cadence_threshold * np.sqrt(len(geometry.on_files))
    for lo in range(0, len(indices), step):
        trials = indices[lo : lo + step]
        trial_tensor = torch.as_tensor(trials, device=device)
        for k in files:
            cumulative = dedoppler(tensors[k], grid, trials, margin - 1, widths[k] + 2 * pad + 1, out=buffers.paths)
            snr = path_snr(cumulative, grid, trials, stats[k].noise, pad, buffers.snr[k], buffers.workspace)
            _update_best(snr, trial_tensor, best[k], best_index[k], config.snr)
        on_snr = {k: buffers.snr[k][: len(trials), : widths[k]] for k in geometry.on_files}
        # candidates start within HALO channels beyond the core too, so the peak test sees both neighbours
        inner = {k: reach[k] - HALO for k in geometry.on_files}
        found.append(on_path.search(on_snr, trials, block.core_start - HALO, block.core + 2 * HALO, inner, threshold,
                                    buffers.cadence))  # fmt: skip
    candidates = strongest(Candidates.concat(found, len(geometry.on_files)))
    above = {k: int((best[k][reach[k] : reach[k] + block.core] >= config.snr).sum()) for k in files}
    peaks = {k: find_peaks(best[k].cpu().numpy(), best_index[k].cpu().numpy(), block.core_start - reach[k], config.snr)
             for k in files}  # fmt: skip
    hits = {k: suppress(peaks[k], grid) for k in files}  # for grouping into events; the file's are suppressed whole
    data = BlockData(sums, first, {k: stats[k].noise for k in files}, geometry)
    events = [
        row
        for row in build_events(candidates, hits, data, geometry, config)
        if block.core_start <= _owner(row["channel0"], block) < block.core_stop
    ]
    core_peaks = {k: p.select((p.channel >= block.core_start) & (p.channel < block.core_stop)) for k, p in peaks.items()}
    return BlockResult(core_peaks, above, events)


def _update_best(snr: torch.Tensor, trials: torch.Tensor, best: torch.Tensor, best_index: torch.Tensor, cut: float) -> None:
    """Keeps each channel's best SNR over trials; the trial that gave it only where it clears the cut (cheaper)."""
    value = torch.amax(snr, dim=0)
    strong = torch.nonzero((value >= cut) & (value > best)).squeeze(1)
    if len(strong):
        best_index[strong] = trials[snr[:, strong].argmax(dim=0)]
    torch.maximum(best, value, out=best)


def _owner(channel0: float, block: Block) -> int:
    """The channel whose block owns an event: its start channel, kept inside its coarse channel."""
    return int(np.clip(np.floor(channel0 + 0.5), block.coarse_start, block.coarse_stop - 1))


def _trials_per_step(span: int) -> int:
    # whole residue classes per step keep the de-Doppler at `span * rows` tensor operations
    return span * max(1, round(TRIALS_PER_STEP / span)) if span <= TRIALS_PER_STEP else TRIALS_PER_STEP
