"""The 1st place's recipe as a config (`configs/seti/gpu_1st.yaml`): its parts, and one tiny CPU forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spotter.config import CONFIG_ROOT, load_config
from spotter.seti.config import SetiConfig
from spotter.seti.needles import NEEDLE_PRESETS
from spotter.seti.task import CadenceDataset, SetiTask, injection_recipe
from tests.seti.test_task import needle_data  # noqa: F401  (module-scoped fixture)

GPU_1ST = CONFIG_ROOT / "seti" / "gpu_1st.yaml"


def test_the_config_holds_the_published_parts() -> None:
    cfg = load_config(SetiConfig, GPU_1ST)
    assert cfg.model.backbone.startswith("eca_nfnet_l2") and cfg.model.pretrained == "true"
    assert cfg.model.stem_stride == [1, 2]
    p = cfg.preprocess
    assert (p.panels, p.stack, p.subtract_baseline, cfg.image_size, p.height) == ("on", "time", True, 0, 0)
    assert cfg.mixing.name == "mixup" and cfg.augment.vflip > 0 and "vflip" in cfg.tta
    assert "sine" in cfg.augment.inject_kinds and cfg.augment.inject > 0
    assert injection_recipe(cfg.augment)[0] == NEEDLE_PRESETS["wide"].ranges
    assert cfg.train_folds == [0]  # a single fold, as published


def test_a_tiny_cpu_forward_pass(needle_data: Path) -> None:  # noqa: F811
    # the same family at its smallest size, from scratch: the recipe's input, stem and head, without a download
    cfg = load_config(SetiConfig, GPU_1ST, ["model.backbone=eca_nfnet_l0", "model.pretrained=false"])
    paths = sorted(str(p) for p in (needle_data / "train").rglob("*.npy"))[:2]
    dataset = CadenceDataset(paths, np.zeros(len(paths)), cfg.preprocess, cfg.augment)
    batch = torch.stack([dataset[i]["input"] for i in range(len(paths))])
    assert batch.shape == (2, 1, 3 * 273, 256)  # ON panels stacked in time, no resize
    model = SetiTask().create_model(cfg, None).eval()
    first = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.stride == (1, 2)
    with torch.no_grad():
        logits = model(batch)
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
