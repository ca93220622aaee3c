"""The SETI config checks its keys as it loads, before torch; the names it accepts are the registries' names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spotter.config import load_config
from spotter.errors import SpotterError
from spotter.seti.config import SetiConfig

CHANNELS = ["preprocess.stack=channels", "preprocess.panels=all"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["preprocess.stack=diagonal"], "preprocess.stack"),
        (["preprocess.panels=off"], "preprocess.panels"),
        (["preprocess.normalize=global"], "preprocess.normalize"),
        (["preprocess.resize_mode=lanczos"], "preprocess.resize_mode"),
        (["preprocess.bin_rows=-1"], "preprocess.bin_rows"),
        (["preprocess.height=10"], "preprocess.height"),
        (["image_size=64", "preprocess.height=32", "preprocess.width=32"], "image_size"),
        (["preprocess.dedoppler=true"], "preprocess.dedoppler"),  # panels stacked in time
        ([*CHANNELS, "preprocess.transpose=true", "preprocess.dedoppler=true"], "preprocess.dedoppler"),
        ([*CHANNELS, "preprocess.dedoppler=true", "preprocess.bin_rows=5"], "preprocess.bin_rows"),  # 5 ∤ 16
        ([*CHANNELS, "preprocess.dedoppler=true", "augment.vflip=0.5"], "augment.vflip"),
        ([*CHANNELS, "preprocess.dedoppler=true", "tta=[identity,hvflip]"], "tta"),
        (["tta=[identity,rot90]"], "tta"),
        (["augment.inject_kinds=[straight,spiral]"], "augment.inject_kinds"),
        (["augment.inject_kinds=[]"], "augment.inject_kinds"),
        (["augment.inject_snr=[60,8]"], "augment.inject_snr"),
        (["augment.inject_preset=loud"], "augment.inject_preset"),
        (["augment.inject=1.5"], "augment.inject"),
        (["model.pooling=max"], "model.pooling"),
        (["model.gem_p=0"], "model.gem_p"),
        (["model.stem_stride=[1]"], "model.stem_stride"),
        (["model.score_head=true"], "model.score_head"),
        (["epochs=0"], "epochs"),  # the common checks run too
    ],
)
def test_bad_keys_are_refused_as_the_config_loads(overrides, key):
    with pytest.raises(SpotterError, match=f"'{key}'"):
        load_config(SetiConfig, None, overrides)


def test_accepted_combinations_load():
    cfg = load_config(SetiConfig, None, [*CHANNELS, "preprocess.dedoppler=true", "preprocess.bin_rows=8",
                                         "model.score_head=true", "tta=[identity,hflip]", "image_size=64"])
    assert cfg.preprocess.dedoppler and cfg.model.score_head


def test_names_match_the_registries():
    from spotter.engine.tta import TRANSFORMS
    from spotter.models.pooling import POOLING
    from spotter.seti import config
    from spotter.seti.preprocess import NORMALIZERS, PANEL_CHOICES, STACK_STEPS

    assert set(config.NORMALIZE) == set(NORMALIZERS)
    assert set(config.PANELS) == set(PANEL_CHOICES)
    assert set(config.STACKS) == set(STACK_STEPS)
    assert set(config.POOLINGS) == set(POOLING)
    assert set(config.TTA) == set(TRANSFORMS)


def test_config_module_imports_no_torch_setigen_or_blimpy():
    code = "import sys, spotter.seti.config; print(sorted({'torch', 'setigen', 'blimpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
