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
from spotter.seti.search.hits import Hits, find_hits
from spotter.seti.search.reader import ChannelReader

TRIALS_PER_STEP = 64  # drift trials de-Dopplered together (memory: trials x block channels x files)


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
    """What one block found: hits per file (channel in the core), channels with a drift above the cut, events."""

    hits: dict[int, Hits]
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


def search_block(
    block: Block,
    readers: list[ChannelReader],
    stats: list[CoarseStats],
    geometry: CadenceGeometry,
    on_path: OnPathSearch,
    config: SearchConfig,
    device: torch.device,
) -> BlockResult:
    """Searches one block of every file of the cadence."""
    grid = geometry.grid
    pad = int(grid.widths(np.array([grid.max_index]))[0])  # the widest boxcar reads this far past a region
    margin = grid.max_index + 1  # the furthest a path moves inside one file
    files = range(geometry.n_files)
    reach = {k: geometry.reach(k) for k in files}
    tensors, sums, first = {}, {}, {}
    for k in files:
        region_start = block.core_start - reach[k] - pad - margin
        region_stop = block.core_stop + reach[k] + pad + margin
        lo, hi = max(region_start, block.coarse_start), min(region_stop, block.coarse_stop)
        buffer = np.zeros((geometry.rows[k], region_stop - region_start), dtype=np.float32)
        buffer[:, lo - region_start : hi - region_start] = normalize(readers[k].read(lo, hi), lo, stats[k], in_place=True)
        sums[k], first[k] = running_sums(buffer, stats[k].noise[1]), region_start
        tensors[k] = torch.from_numpy(sums[k]).to(device)
    widths = {k: block.core + 2 * reach[k] for k in files}
    step = _trials_per_step(grid.span)
    widest = max(widths.values()) + 2 * pad + 1
    paths = torch.empty((step, widest), device=device)
    workspace = Workspace(step, widest, device)
    off_buffer = torch.empty((step, max(widths.values())), device=device)  # OFF files' SNR is not kept
    snr_buffers = {k: torch.empty((step, widths[k]), device=device) if geometry.on[k] else off_buffer for k in files}
    cadence_workspace = {"bound": torch.empty((step, block.core), device=device),
                         "pooled": torch.empty((step, widest), device=device)}  # fmt: skip
    best = {k: torch.full((widths[k],), -torch.inf, device=device) for k in files}
    best_index = {k: torch.zeros(widths[k], dtype=torch.int64, device=device) for k in files}
    found = []
    indices = grid.indices()
    threshold = config.cadence_threshold * np.sqrt(len(geometry.on_files))
    for lo in range(0, len(indices), step):
        trials = indices[lo : lo + step]
        trial_tensor = torch.as_tensor(trials, device=device)
        for k in files:
            cumulative = dedoppler(tensors[k], grid, trials, margin - 1, widths[k] + 2 * pad + 1, out=paths)
            snr = path_snr(cumulative, grid, trials, stats[k].noise, pad, out=snr_buffers[k], workspace=workspace)
            _update_best(snr, trial_tensor, best[k], best_index[k], config.snr)
        on_snr = {k: snr_buffers[k][: len(trials), : widths[k]] for k in geometry.on_files}
        found.append(on_path.search(on_snr, trials, block.core_start, block.core, reach, threshold, cadence_workspace))
    candidates = strongest(Candidates.concat(found, len(geometry.on_files)))
    above = {k: int((best[k][reach[k] : reach[k] + block.core] >= config.snr).sum()) for k in files}
    hits = {
        k: find_hits(best[k].cpu().numpy(), best_index[k].cpu().numpy(), block.core_start - reach[k], config.snr, grid)
        for k in files
    }
    data = BlockData(sums, first, {k: stats[k].noise for k in files}, geometry)
    events = [
        row
        for row in build_events(candidates, hits, data, geometry, config)
        if block.core_start <= _owner(row["channel0"], block) < block.core_stop
    ]
    core_hits = {
        k: h.select((h.channel >= block.core_start) & (h.channel < block.core_stop)) for k, h in hits.items()
    }
    return BlockResult(core_hits, above, events)


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
