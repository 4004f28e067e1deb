"""No import cycle among the package's modules, counting every import: at the top, inside
functions, under ``TYPE_CHECKING``. Read from the source with ``ast``, nothing imported."""

from __future__ import annotations

import ast
from pathlib import Path

import hwsigner

PACKAGE = Path(hwsigner.__file__).parent

# Edges that other branches remove; the lead deletes each entry when its branch merges (the
# second test fails once an entry is stale, so none outlives its fix).
KNOWN: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:  # "from pkg import module" imports pkg.module
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in known else base)
    return {found for target in targets if (found := owner(target, known)) not in (None, name)}


def owner(target: str, known: set[str]) -> str | None:
    """The package module ``target`` names (``a.b.c`` may be the attribute ``c`` of ``a.b``)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    edges = {
        name: {t for t in targets if (name, t) not in KNOWN} for name, targets in graph().items()
    }
    loops = cycles(edges)
    shown = [
        " ".join(f"{a}->{b}" for a in loop for b in sorted(edges[a] & set(loop))) for loop in loops
    ]
    assert not loops, shown


def test_the_known_edges_still_exist() -> None:
    edges = graph()
    stale = [edge for edge in KNOWN if edge[1] not in edges.get(edge[0], set())]
    assert not stale, f"remove these fixed edges from KNOWN: {stale}"


def test_the_walk_sees_lazy_and_type_checking_imports() -> None:
    """Imports inside functions and under TYPE_CHECKING count (the test can fail)."""
    edges = graph()
    assert "hwsigner.keys.file" in edges["hwsigner.keys"]  # inside open_key
    assert "hwsigner.session" in edges["hwsigner"]  # under _TYPE_CHECKING
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(toy) == [["a", "b", "c"]]
