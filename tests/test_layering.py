"""The package's import graph: the engine never imports a task, and no module imports back up a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "spotter"


def module_imports() -> dict[str, set[str]]:
    """spotter module → the spotter modules it imports (at any depth, lazy imports included)."""
    names = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            found |= {t for t in targets if t in names and t != name}
        graph[name] = found
    return graph


GRAPH = module_imports()


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if nxt.startswith(node + "."):  # a package importing its own submodule is not a cycle back up
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("layer", ["spotter.engine", "spotter.binary", "spotter.models"])
def test_shared_layers_never_import_a_task(layer: str) -> None:
    tasks = ("spotter.seti", "spotter.whale", "spotter.toy")
    for module, imported in GRAPH.items():
        if module.startswith(layer):
            assert not [i for i in imported if i.startswith(tasks)], module
