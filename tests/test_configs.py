"""Every shipped experiment config loads against its task's schema (YAML pitfalls such as `on` → true)."""

from __future__ import annotations

import importlib

import pytest

from spotter.config import CONFIG_ROOT, load_config

SCHEMAS = {"toy": "spotter.toy.config:ToyConfig", "seti": "spotter.seti.config:SetiConfig", "whale": "spotter.whale.config:WhaleConfig"}
CONFIGS = sorted(p for p in CONFIG_ROOT.glob("*/*.yaml") if p.parent.name in SCHEMAS)


def _schema(task: str):
    module, name = SCHEMAS[task].split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_config_loads(path) -> None:
    cfg = load_config(_schema(path.parent.name), path)
    for key in ("seed", "epochs", "batch_size", "lr", "n_folds", "train_folds", "num_workers", "image_size"):
        assert hasattr(cfg, key)


def test_every_task_has_a_cpu_default() -> None:
    tasks = {p.parent.name for p in CONFIGS}
    assert {"toy", "seti"} <= tasks
    assert all((CONFIG_ROOT / task / "cpu.yaml").is_file() for task in tasks)


def test_seti_configs_keep_panels_a_string() -> None:
    from spotter.seti.config import SetiConfig

    for path in CONFIG_ROOT.glob("seti/*.yaml"):
        assert load_config(SetiConfig, path).preprocess.panels in ("on", "all"), path
