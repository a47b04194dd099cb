"""The ledger's shape, checked from its source: no import circle among its modules, and only
the dialect modules know which database they talk to."""

from __future__ import annotations

import ast
from pathlib import Path

import spendgate.ledger

LEDGER = Path(next(iter(spendgate.ledger.__path__)))
PACKAGE = "spendgate.ledger"


def modules() -> dict[str, Path]:
    """Every module of the ledger package, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in LEDGER.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(LEDGER).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: set[str] | None = None) -> set[str]:
    """Every module ``name`` imports, anywhere in it (in functions too: an import put off to
    call time still makes a circle). ``from package import module`` counts as importing
    ``package.module`` when that is one of the ``known`` modules."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names} & (known or set())
            names |= submodules
            if len(submodules) < len(node.names):
                names.add(module)
    return names


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {
        name: {m for m in imported(name, path, set(found)) if m in found and m != name} for name, path in found.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_check_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_ledger_imports_no_circle() -> None:
    graph = import_graph()
    assert len(graph) > 15  # it found the modules
    assert "spendgate.ledger.store.sql_store" in graph["spendgate.ledger.store.dialects.sqlite"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_only_the_dialect_modules_know_the_database() -> None:
    drivers = {"sqlite3", "psycopg", "psycopg_pool"}
    knowing = sorted(
        name for name, path in modules().items() if {m.split(".")[0] for m in imported(name, path)} & drivers
    )
    assert knowing == ["spendgate.ledger.store.dialects.postgresql", "spendgate.ledger.store.dialects.sqlite"]
