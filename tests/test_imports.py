"""The rlev import graph has no cycle: every module's imports, at module level and inside
functions (lazy imports are still dependencies), form a DAG.

An edge goes from a module to the rlev module it names: `from rlev.a import b` is an edge to
`rlev.a.b` when that is a module, else to `rlev.a`. The implicit import of a package's
`__init__` when one of its modules is imported is not an edge (that is how Python packages
work, and a package facade that re-exports its modules would otherwise always be a cycle).
"""

from __future__ import annotations

import ast

from conftest import REPO


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((REPO / "rlev").rglob("*.py"))}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(path) -> set[str]:
    """The rlev modules `path` imports anywhere in its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {_resolve(a.name) for a in node.names if a.name.split(".")[0] == "rlev"}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; rlev imports by absolute name"
            if node.module and node.module.split(".")[0] == "rlev":
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    out.add(full if full in MODULES else _resolve(node.module))
    return out - {None}


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "rlev.data.synthetic" in graph and len(graph) > 30
    assert "rlev.train.local" in graph["rlev.train"]  # imported inside a function


def test_rlev_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
