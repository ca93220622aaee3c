"""Layering of spotter.seti: no module imports one that imports it back, at the top or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import spotter.seti

PACKAGE = Path(spotter.seti.__file__).parent


def _imports(path: Path) -> set[str]:
    """The spotter.seti modules a file imports anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.startswith("spotter.seti.")}


def test_no_import_cycle():
    modules = {f"spotter.seti.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for other in sorted(graph[name]):
                visit(other, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert "spotter.seti.cleaning" in graph["spotter.seti.dedoppler"]  # the walk saw real imports


def test_light_modules_import_no_heavy_library():
    # the package root, the config and the needle physics are imported by the CLI and data loader workers
    for name in ("__init__", "config", "needles", "cleaning"):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
        assert not top & {"torch", "setigen", "blimpy", "pandas", "scipy"}, (name, top)
