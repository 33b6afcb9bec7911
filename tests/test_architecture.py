"""The package's shape, checked from its source: no import cycles, no private names crossing modules, layers that
only depend downwards, and tests that share helpers through tests/helpers.py rather than importing each other.

Imports are read with `ast`, function-level ones included: a cycle broken only by deferring an import to call time
is still a cycle for the reader, and the next refactor that hoists it fails at import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "roadwork"
SKIP = ("roadwork.db.migrations",)  # Alembic loads these by path; they import the schema, nothing imports them


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: path for name, path in found.items() if not name.startswith(SKIP)}


MODULES = modules()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def absolute(name: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if is_package(name) else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(name: str) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every roadwork import in the module, at any depth."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "roadwork":
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = absolute(name, node)
            if target.split(".")[0] != "roadwork":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    yield sub, None, node.lineno
                else:
                    yield target, alias.name, node.lineno


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _, _ in imports(name):
            if target in MODULES and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_name_is_imported_across_modules() -> None:
    crossing = []
    for name in MODULES:
        aliases: dict[str, str] = {}
        tree = ast.parse(MODULES[name].read_text())
        for target, imported, line in imports(name):
            if imported is not None and is_private(imported) and target != name:
                crossing.append(f"{name}:{line} imports {target}.{imported}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("roadwork"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and is_private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases):
                crossing.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not crossing, "private names used outside their module:\n" + "\n".join(crossing)


# Lower layers never import higher ones: settings and cron are read by everything; the trainer is a library the
# platform drives; the database layer knows tables, not jobs; nothing but the CLI's own modules imports the CLI.
FORBIDDEN = {
    "roadwork.settings": ("roadwork.platform", "roadwork.dashboard", "roadwork.cli", "roadwork.trainer"),
    "roadwork.cron": ("roadwork.platform", "roadwork.dashboard", "roadwork.cli", "roadwork.trainer", "roadwork.db"),
    "roadwork.trainer": ("roadwork.platform", "roadwork.dashboard", "roadwork.cli", "roadwork.db"),
    "roadwork.db": ("roadwork.platform", "roadwork.dashboard", "roadwork.cli", "roadwork.trainer"),
    "roadwork.platform": ("roadwork.dashboard", "roadwork.cli"),
    "roadwork.dashboard": ("roadwork.cli",),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_only_depend_downwards(layer: str) -> None:
    wrong = []
    for name in MODULES:
        if name != layer and not name.startswith(layer + "."):
            continue
        for target, _, line in imports(name):
            if target.startswith(FORBIDDEN[layer]):
                wrong.append(f"{name}:{line} imports {target}")
    assert not wrong, f"{layer} must not import {', '.join(FORBIDDEN[layer])}:\n" + "\n".join(wrong)


def test_tests_do_not_import_other_test_files() -> None:
    wrong = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.split(".")[-1].startswith("test_") for n in names if n.startswith("tests")):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, "shared test code belongs in tests/helpers.py:\n" + "\n".join(wrong)
