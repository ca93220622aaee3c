"""The search's settings, checked once before any file is read."""

from __future__ import annotations

from dataclasses import dataclass

from spotter.errors import SpotterError

MIN_CADENCE_SNR = 8.0  # combined ON SNR below which random paths through ~1e9 trials start to pass


@dataclass(frozen=True)
class SearchConfig:
    """What `spotter seti search` does with a cadence.

    Attributes:
        snr: A hit needs this SNR in its file (turboSETI's `-s`).
        max_drift: Largest |drift| searched, Hz/s (turboSETI's `-M`).
        pattern: ON/OFF letters, one per file (A = ON target).
        cadence_snr: The ON files' combined SNR along one path that counts as seen in every ON file;
            default max(snr, 8).
        off_snr: An OFF file with this SNR on or near an event's path vetoes level 2 and 3.
        coarse_channels: Coarse channels per file; default from the header (nfpc), or 2^20 fine channels per
            coarse channel, or GBT's 2.9296875 MHz, else the whole band as one.
        block_channels: Channels searched at once (memory grows with it, not with the file).
        top: Events that get a PNG.
        blank_dc: Blank each coarse channel's centre channel (the FFT's DC spike).
        device: "auto" (CUDA when present), "cpu" or "cuda".
        rank_by: "snr" (level, then SNR) or "model_score" (with a model run).
    """

    snr: float = 10.0
    max_drift: float = 4.0
    pattern: str = "ABACAD"
    cadence_snr: float | None = None
    off_snr: float = 5.0
    coarse_channels: int | None = None
    block_channels: int = 16384
    top: int = 10
    blank_dc: bool = True
    device: str = "auto"
    rank_by: str = "snr"

    @property
    def cadence_threshold(self) -> float:
        return self.cadence_snr if self.cadence_snr is not None else max(self.snr, MIN_CADENCE_SNR)

    def check(self) -> None:
        """Raises SpotterError naming the first setting out of range."""
        if not self.snr > 0:
            raise SpotterError(f"--snr must be positive, got {self.snr}")
        if not self.max_drift >= 0:
            raise SpotterError(f"--max-drift must be at least 0 Hz/s, got {self.max_drift}")
        if self.cadence_snr is not None and not self.cadence_snr > 0:
            raise SpotterError(f"--cadence-snr must be positive, got {self.cadence_snr}")
        if not self.off_snr > 0:
            raise SpotterError(f"--off-snr must be positive, got {self.off_snr}")
        if self.block_channels < 256:
            raise SpotterError(f"--block-channels must be at least 256, got {self.block_channels}")
        if self.top < 0:
            raise SpotterError(f"--top must be at least 0, got {self.top}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SpotterError(f"--device must be auto, cpu or cuda, got {self.device}")
        if self.rank_by not in ("snr", "model_score"):
            raise SpotterError(f"--rank-by must be snr or model_score, got {self.rank_by}")
