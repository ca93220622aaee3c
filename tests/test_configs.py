"""Every registered task's shipped configs load against its schema (YAML pitfalls such as `on` → true), and the
choices a config offers are the ones its registries hold."""

from __future__ import annotations

import pytest

from spotter.config import CONFIG_ROOT, load_config, to_yaml
from spotter.tasks import iter_tasks

TASKS = {spec.name: spec for spec in iter_tasks()}
CONFIGS = sorted((name, path) for name in TASKS for path in (CONFIG_ROOT / name).glob("*.yaml"))


@pytest.mark.parametrize("task,path", CONFIGS, ids=[f"{t}/{p.name}" for t, p in CONFIGS])
def test_shipped_config_loads_and_round_trips(task, path, tmp_path) -> None:
    cfg = load_config(TASKS[task].config_class, path)
    saved = tmp_path / "resolved.yaml"
    saved.write_text(to_yaml(cfg))  # what a run folder keeps must load back to the same config
    assert load_config(TASKS[task].config_class, saved) == cfg


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_ships_a_cpu_default(task) -> None:
    assert (CONFIG_ROOT / task / "cpu.yaml").is_file()
    assert load_config(TASKS[task].config_class, CONFIG_ROOT / task / "cpu.yaml").epochs >= 1


def test_seti_configs_keep_panels_a_string() -> None:
    for path in CONFIG_ROOT.glob("seti/*.yaml"):
        assert load_config(TASKS["seti"].config_class, path).preprocess.panels in ("on", "all"), path


def test_whale_config_offers_exactly_the_heads_of_the_registry() -> None:
    from spotter.models.heads import HEADS
    from spotter.whale.config import HEADS as CONFIG_HEADS

    assert set(CONFIG_HEADS) == set(HEADS)
