"""The task registry: name → the task's config schema, task class, extra CLI commands, blender and report.

Everything that serves every task (the CLI's `train`/`predict`, `spotter ensemble`, the config tests) iterates
this registry, so adding a task is its package, its configs and one `register_task` line below, or an entry
point in the `spotter.tasks` group whose object is a `TaskSpec`. Parts are named as `module:attribute` strings
and imported on first use, so listing tasks (and checking a config) never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from spotter.errors import SpotterError

ENTRY_POINT_GROUP = "spotter.tasks"


@dataclass(frozen=True)
class TaskSpec:
    """How to find a task's parts.

    Attributes:
        name: The command name (`spotter NAME ...`) and the name runs record.
        help: One line for `spotter --help`.
        config: `module:Class` of its config schema (a `spotter.config.TrainConfig`; no torch import).
        task: `module:Class` of its `spotter.engine.task.Task`.
        cli: `module:function(subparsers, common)` adding its own sub-commands beside `train` and `predict`.
        blender: `module:function()` returning its `spotter ensemble` blender, if runs can be blended.
        report: `module:function(run_dir, data_dir, reporter=...) -> Path` writing a run's report after training.
    """

    name: str
    help: str
    config: str
    task: str
    cli: str | None = None
    blender: str | None = None
    report: str | None = None

    @property
    def config_class(self) -> type:
        return _resolve(self.config)

    def create_task(self) -> Any:
        return _resolve(self.task)()

    def create_blender(self) -> Any:
        """The task's blender.

        Raises:
            SpotterError: If runs of this task cannot be blended.
        """
        if self.blender is None:
            raise SpotterError(f"runs of the {self.name!r} task cannot be blended")
        return _resolve(self.blender)()

    def register_cli(self, subparsers, common) -> None:
        if self.cli is not None:
            _resolve(self.cli)(subparsers, common)

    def report_writer(self) -> Callable[..., Path] | None:
        return _resolve(self.report) if self.report else None


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, replace: bool = False) -> TaskSpec:
    """Adds a task to the registry.

    Raises:
        ValueError: If a task of that name is registered already (and `replace` is False).
    """
    if spec.name in _TASKS and not replace and _TASKS[spec.name] != spec:
        raise ValueError(f"a task named {spec.name!r} is registered already")
    _TASKS[spec.name] = spec
    return spec


def unregister_task(name: str) -> None:
    """Removes a task (tests register throwaway tasks)."""
    _TASKS.pop(name, None)


def get_task(name: str) -> TaskSpec:
    """The registered task called `name`.

    Raises:
        SpotterError: On an unknown name, listing the known ones.
    """
    _load_entry_points()
    if name not in _TASKS:
        raise SpotterError(f"unknown task {name!r}; known tasks: {', '.join(_TASKS)}")
    return _TASKS[name]


def iter_tasks() -> Iterator[TaskSpec]:
    """Every registered task, built-in ones first."""
    _load_entry_points()
    return iter(list(_TASKS.values()))


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        register_task(point.load())


register_task(TaskSpec(
    "toy", "a tiny built-in problem that exercises the engine",
    "spotter.toy.config:ToyConfig", "spotter.toy.task:ToyTask", cli="spotter.toy.cli:register",
    blender="spotter.binary.ensemble:BinaryBlender",
))
register_task(TaskSpec(
    "seti", "SETI Breakthrough Listen needles",
    "spotter.seti.config:SetiConfig", "spotter.seti.task:SetiTask", cli="spotter.seti.cli:register",
    blender="spotter.seti.ensemble:create_blender", report="spotter.seti.report:make_report",
))
register_task(TaskSpec(
    "whale", "Happywhale photo-ID by metric learning",
    "spotter.whale.config:WhaleConfig", "spotter.whale.task:WhaleTask", cli="spotter.whale.cli:register",
    blender="spotter.whale.ensemble:WhaleBlender", report="spotter.whale.report:write_report",
))
