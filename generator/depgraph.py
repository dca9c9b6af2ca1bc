"""The generator package's own import graph, read from its source with `ast`.

`module_graph(root)` maps every module of the package (dotted name, e.g.
"generator.firmware.rp2040") to the package modules it imports, at module level
or inside functions (the stages import their heavy dependencies late, so both
count). `closure(graph, entries)` is everything `entries` can reach: the code a
build stage runs, which is what the stage must depend on (pipeline.py derives
each stage's source files from it instead of a hand-kept list).
`find_cycle(graph)` returns one import cycle, or None.

Nothing is imported or executed: the source is parsed, so reading the graph
stays cheap enough for a no-op build.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Package modules named by the import statements of one module."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (here[:len(here) - node.level + 1] if node.level else [])
            prefix = ".".join(base + ([node.module] if node.module else []))
            names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # "from . import cmsis" names a module; "from .spec import Project" names spec
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


@functools.lru_cache(maxsize=4)
def module_graph(root: Path = PACKAGE_DIR) -> dict[str, frozenset[str]]:
    files = sorted(root.rglob("*.py"))
    names = {_module_name(f, root): f for f in files}
    known = set(names)
    graph = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = frozenset(_imports(tree, name, path.name == "__init__.py", known) - {
            root.name})  # the package's __init__ is imported by everything; it holds nothing
    return graph


def module_file(name: str, root: Path = PACKAGE_DIR) -> Path:
    rel = Path(*name.split(".")[1:])
    package = root / rel
    return package / "__init__.py" if package.is_dir() else root / rel.with_suffix(".py")


def closure(graph: dict[str, frozenset[str]], entries: list[str]) -> set[str]:
    """Every module reachable from `entries`, the entries included."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in graph:
            raise KeyError(f"{name} is not a module of the package")
        seen.add(name)
        todo += graph[name]
    return seen


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph has none."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
