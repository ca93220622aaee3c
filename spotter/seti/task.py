"""The SETI task on the engine: cadences → preprocessed images → a timm CNN → needle probability."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from spotter.binary.task import BinaryTask
from spotter.config import pretrained_value
from spotter.engine.predict import load_weights
from spotter.errors import SpotterError
from spotter.models.attention import TripletAttention
from spotter.models.backbones import create_backbone
from spotter.models.pooling import create_pooling
from spotter.seti.cleaning import bin_time
from spotter.seti.config import SetiAugmentConfig, SetiConfig, SetiModelConfig, SetiPreprocessConfig
from spotter.seti.data import available_splits, list_split, load_cadence
from spotter.seti.needles import NeedleRanges, add_interference, add_signal, needle_preset, normalized_noise_std
from spotter.seti.preprocess import build_pipeline

FLOAT16_MAX = float(np.finfo(np.float16).max)


def input_preprocess(cfg: SetiConfig) -> SetiPreprocessConfig:
    """The preprocessing of a config, with `image_size` applied as a square resize."""
    if cfg.image_size:
        return replace(cfg.preprocess, height=cfg.image_size, width=cfg.image_size)
    return cfg.preprocess


def input_channels(cfg: SetiPreprocessConfig) -> int:
    """Channels of the preprocessed input: 1 when panels are stacked in time, else one per panel; with
    `dedoppler`, then their de-Doppler maps and the cadence score map."""
    panels = 1 if cfg.stack == "time" else (3 if cfg.panels == "on" else 6)
    return 2 * panels + 1 if cfg.dedoppler else panels


def injection_recipe(augment: SetiAugmentConfig | None) -> tuple[NeedleRanges, list[float] | None]:
    """The needle recipe and SNR range injection draws from: `augment.inject_preset`'s (None: its own SNR range)
    when set, else the default recipe with `augment.inject_snr`."""
    if augment is not None and augment.inject_preset is not None:
        return needle_preset(augment.inject_preset).ranges, None
    return NeedleRanges(), list(augment.inject_snr) if augment is not None else None


class CadenceDataset(Dataset):
    """Cadences → preprocessed (C, H, W) tensors, with flips and needle injection when training.

    Args:
        paths: One `.npy` path per sample, or the (6, 273, 256) arrays themselves.
        targets: Labels (0/1), or None for unlabelled test data.
        preprocess_cfg: How a cadence becomes an input (its pipeline is built once, here).
        augment: Training augmentations, or None for evaluation.
    """

    def __init__(
        self,
        paths: list[str] | list[np.ndarray],
        targets: np.ndarray | None,
        preprocess_cfg: SetiPreprocessConfig,
        augment: SetiAugmentConfig | None = None,
    ) -> None:
        self.paths = list(paths)
        self.targets = np.zeros(len(paths), np.float32) if targets is None else np.asarray(targets, np.float32)
        self.pipeline = build_pipeline(preprocess_cfg)
        self.augment = augment
        self.inject_ranges, self.inject_snr = injection_recipe(augment)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        item = self.paths[i]
        cadence = item if isinstance(item, np.ndarray) else load_cadence(item)
        target = self.targets[i]
        aug = self.augment
        # numpy draws come from torch's RNG, which the engine seeds per epoch (and per loader worker)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        needle = aug is not None and aug.inject > 0 and target < 0.5 and rng.random() < aug.inject
        interference = aug is not None and aug.inject_rfi > 0 and rng.random() < aug.inject_rfi
        if needle or interference:
            cadence = bin_time(cadence, 1)  # one float32 copy, which the signals are added to in place
            noise_std = normalized_noise_std(cadence)
            if needle:
                add_signal(cadence, rng, noise_std, aug.inject_kinds, self.inject_snr, ranges=self.inject_ranges)
                target = np.float32(1.0)
            if interference:
                add_interference(cadence, rng, noise_std, aug.inject_kinds, self.inject_snr, self.inject_ranges)
        # float16, as the cadences are: half the bytes to pass from loader workers (and to the GPU), which was
        # a sixth of the loader's time; the model computes in float32 or its autocast type
        image = torch.from_numpy(self.pipeline(cadence)).clamp_(-FLOAT16_MAX, FLOAT16_MAX).half()
        if aug is not None:
            if rng.random() < aug.hflip:
                image = image.flip(-1)
            if rng.random() < aug.vflip:
                image = image.flip(-2)
        return {"index": i, "input": image, "target": torch.tensor(target, dtype=torch.float32)}


def set_stem_stride(backbone: nn.Module, stride: tuple[int, int]) -> nn.Conv2d:
    """Sets the stride of the backbone's first convolution, e.g. (1, 2) to keep one axis at full resolution."""
    first = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise SpotterError("model.stem_stride: the backbone has no Conv2d to change")
    first.stride = tuple(stride)
    return first


class SetiNet(nn.Module):
    """timm trunk → optional triplet attention → GeM/average pooling → one logit.

    Args:
        cfg: Model options.
        in_chans: Input channels (1 for panels stacked in time).
        score_channel: The input channel holding the de-Doppler score map, for `cfg.score_head`.
        pretrained: Override of `cfg.pretrained` (False when trained weights are loaded right after).
    """

    def __init__(
        self, cfg: SetiModelConfig, in_chans: int, score_channel: int | None = None, pretrained: bool | str | None = None
    ) -> None:
        super().__init__()
        if cfg.score_head and score_channel is None:
            raise SpotterError("model.score_head needs the de-Doppler score map: set preprocess.dedoppler: true")
        self.score_channel = score_channel if cfg.score_head else None
        self.backbone = create_backbone(
            cfg.backbone, pretrained_value(cfg.pretrained) if pretrained is None else pretrained, num_classes=0,
            global_pool="", in_chans=in_chans, drop_rate=cfg.drop_rate,
            **cfg.backbone_args,
        )
        if cfg.stem_stride:
            set_stem_stride(self.backbone, tuple(cfg.stem_stride))
        self.attention = TripletAttention(cfg.attention_kernel) if cfg.triplet_attention else nn.Identity()
        self.pool = create_pooling(cfg.pooling, p=cfg.gem_p, learnable=cfg.gem_learnable)
        extra = 0 if self.score_channel is None else 1
        # the score's peak spans ~0-100 noise stds: normalized by its batch statistics like the features are
        self.score_norm = nn.BatchNorm1d(1) if extra else None
        self.head = nn.Linear(self.backbone.num_features + extra, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()  # inputs arrive as float16 (`CadenceDataset`)
        features = self.pool(self.attention(self.backbone.forward_features(x)))
        if self.score_channel is not None:
            peak = x[:, self.score_channel].amax(dim=(1, 2))[:, None]
            features = torch.cat([features, self.score_norm(peak)], dim=1)
        return self.head(features)


class SetiTask(BinaryTask):
    """Needle detection in (6, 273, 256) cadences, scored by ROC AUC."""

    name = "seti"
    config_class = SetiConfig

    def load_samples(self, data_dir: Path, cfg: SetiConfig) -> pd.DataFrame:
        splits = ["train"]
        if cfg.old_data:
            splits += [s for s in ("train_old", "test_old") if s in available_splits(data_dir)]
        rows = pd.concat([list_split(data_dir, split) for split in splits], ignore_index=True)
        rows["target"] = rows["target"].astype(float)
        return rows

    def create_datasets(self, data_dir, train_rows, valid_rows, cfg: SetiConfig):
        prep = input_preprocess(cfg)
        train = CadenceDataset(list(train_rows["path"]), train_rows["target"].to_numpy(), prep, cfg.augment)
        valid = None
        if valid_rows is not None:
            valid = CadenceDataset(list(valid_rows["path"]), valid_rows["target"].to_numpy(), prep)
        return train, valid

    def create_model(self, cfg: SetiConfig, train_rows: pd.DataFrame | None, pretrained=None) -> nn.Module:
        prep = input_preprocess(cfg)
        channels = input_channels(prep)
        return SetiNet(cfg.model, channels, channels - 1 if prep.dedoppler else None, pretrained=pretrained)

    def restore_model(self, cfg: SetiConfig, weights: Path) -> nn.Module:
        return load_weights(self.create_model(cfg, None, pretrained=False), weights)

    def test_rows(self, data_dir: Path) -> pd.DataFrame:
        return list_split(data_dir, "test")

    def test_dataset(self, data_dir: Path, rows: pd.DataFrame, cfg: SetiConfig) -> Dataset:
        return CadenceDataset(list(rows["path"]), None, input_preprocess(cfg))

    def tta(self, cfg: SetiConfig) -> list[str]:
        return list(cfg.tta)


def run_scorer(run_dir, runtime=None):
    """A function scoring in-memory (6, 273, 256) cadences with a run's fold models and TTA (for searches)."""
    from spotter.engine.predict import mean_over_folds
    from spotter.engine.rundir import RunDir
    from spotter.engine.runtime import Runtime
    from spotter.engine.tta import create_tta

    task, run = SetiTask(), RunDir(run_dir)
    cfg = run.read_config(SetiConfig)
    run.trained_weights(cfg)
    runtime = runtime or Runtime(cfg.mixed_precision)

    def score(cadences: list[np.ndarray]) -> np.ndarray:
        dataset = CadenceDataset(list(cadences), None, input_preprocess(cfg))
        return mean_over_folds(task, run, cfg, dataset, runtime, create_tta(task.tta(cfg)))

    return score
