"""The trainer stands on its own: it imports nothing of the platform or the dashboard, its modules import one
another without cycles (imports inside functions count: they hide a cycle, they do not remove it), and no
module reaches for another's private (`_x`) names."""

from __future__ import annotations

import ast
from pathlib import Path

import roadwork

ROOT = Path(roadwork.__file__).parent.parent
TRAINER = ROOT / "roadwork" / "trainer"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import in the file, wherever it stands."""
    module, found = module_name(path), []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, base] if base else package)
            found += [(base, alias.name, node.lineno) for alias in node.names]
    return found


def trainer_graph() -> tuple[dict[str, set[str]], list[str], list[str]]:
    """Edges between trainer modules, imports of the platform/dashboard, and cross-module private imports."""
    modules = {module_name(p): p for p in TRAINER.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    outside, private = [], []
    for module, path in modules.items():
        for target, name, line in imports(path):
            where = f"{module}:{line} imports {target}" + (f".{name}" if name else "")
            if target.startswith(("roadwork.platform", "roadwork.dashboard")):
                outside.append(where)
            submodule = f"{target}.{name}" if name else target
            target = submodule if submodule in modules else target
            if name and target != submodule and name.startswith("_") and not name.startswith("__"):
                private.append(where)
            while target and target not in modules:  # `a.b.c` where only `a.b` is ours: the package
                target = target.rpartition(".")[0]
            if target and target != module:
                edges[module].add(target)
    return edges, outside, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import path that returns to where it started, one per cycle found by depth-first search."""
    found, state = [], dict.fromkeys(edges, 0)  # 0 new, 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state[nxt] == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if state[start] == 0:
            visit(start, [start])
    return found


def test_the_trainer_imports_nothing_of_the_platform_or_the_dashboard() -> None:
    assert trainer_graph()[1] == []


def test_trainer_modules_import_one_another_without_cycles() -> None:
    edges, _, _ = trainer_graph()
    assert len(edges) > 40  # the walk saw the package
    assert cycles(edges) == []


def test_no_trainer_module_imports_another_ones_private_names() -> None:
    assert trainer_graph()[2] == []


def test_the_checks_see_cycles_and_imports_inside_functions() -> None:
    # the checks above would pass vacuously if the search missed cycles or the walk missed lazy imports
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    lazy = [(t, n) for t, n, _ in imports(TRAINER / "data" / "batches.py") if n == "gps_sampler"]
    assert lazy == [("roadwork.trainer.data.sampling", "gps_sampler")]  # imported inside `_gps_weights`
