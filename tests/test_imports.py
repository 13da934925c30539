"""The import graph of the packages (every import, module level or inside a function): no cycle, and no
module imports another module's private (underscore) name."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("pipeline", "feature_store", "jobs", "benchmarks")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """``(module -> modules it imports, "a imports b._name" lines)`` over :data:`PACKAGES`."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    private = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in known and node.level == 0:
                graph[name].add(node.module)
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in known:
                        graph[name].add(f"{node.module}.{alias.name}")
                    elif alias.name.startswith("_") and node.module != name:
                        private.append(f"{name} imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in known)
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_module_imports_another_modules_private_name():
    _, private = import_graph()
    assert private == []
