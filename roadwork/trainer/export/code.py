"""The multi-view model's own source, rewritten to travel inside a Hugging Face model repository.

transformers' remote-code loader imports `modeling_roadwork.py` as a module of a flat package and follows its
relative imports (`from .x import y` -> `x.py` beside it; no subfolders). So every roadwork module the model
needs, starting from `roadwork.trainer.model.multiview` and `roadwork.trainer.model.backbone_net` (the backbone
of the exported networks), is copied as one flat file with its imports of other roadwork modules made relative:

    roadwork/trainer/model/multiview.py          -> roadwork_multiview.py
    roadwork/trainer/model/layers/__init__.py    -> roadwork_layers.py
    roadwork/trainer/model/layers/norms.py       -> roadwork_layers_norms.py
    from roadwork.trainer.model.layers.norms import RMSNorm  ->  from .roadwork_layers_norms import RMSNorm

Blocks under `if TYPE_CHECKING:` (imports for annotations only) are dropped. Everything else a copy imports
must be on a miner's machine: `check_portable` enforces it with transformers' own import scan.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from transformers.dynamic_module_utils import get_imports

PACKAGE = "roadwork.trainer.model"
ENTRIES = ("roadwork.trainer.model.multiview", "roadwork.trainer.model.backbone_net")
PACKAGE_DIR = Path(__file__).parents[1] / "model"
PREFIX = "roadwork_"
# What a miner running the exported model has: the standard library plus these (top-level import names).
MINER_PACKAGES = frozenset({"torch", "transformers", "numpy", "PIL"})


class ExportCodeError(ValueError):
    """A module the model needs cannot be made portable; the message names it and the import."""


def flat_name(module: str) -> str:
    """`roadwork.trainer.model.layers.norms` -> `roadwork_layers_norms` (the copy's module name, without `.py`)."""
    return PREFIX + module.removeprefix(PACKAGE + ".").replace(".", "_")


def source_path(module: str) -> Path:
    """The file of a roadwork.trainer module or package."""
    parts = module.removeprefix(PACKAGE + ".").split(".")
    package_init = PACKAGE_DIR.joinpath(*parts, "__init__.py")
    return package_init if package_init.exists() else PACKAGE_DIR.joinpath(*parts).with_suffix(".py")


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name an ImportFrom in `module` refers to."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def rewrite(module: str) -> tuple[str, list[str]]:
    """The portable text of `module` and the roadwork modules it imports."""
    path = source_path(module)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text, filename=str(path))
    dropped: set[int] = set()  # 0-based line numbers
    kept: list[ast.stmt] = []
    for stmt in tree.body:
        if _is_type_checking(stmt):
            if stmt.orelse:
                raise ExportCodeError(f"{path}:{stmt.lineno}: `if TYPE_CHECKING:` with an else branch")
            dropped.update(range(stmt.lineno - 1, stmt.end_lineno))
        else:
            kept.append(stmt)
    needed: list[str] = []
    for node in (n for stmt in kept for n in ast.walk(stmt)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "roadwork" for a in node.names):
            raise ExportCodeError(f"{path}:{node.lineno}: write `from roadwork... import x` so it can be made relative")
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _absolute(module, path.name == "__init__.py", node)
        if target.split(".")[0] != "roadwork":
            continue
        if not target.startswith(PACKAGE + "."):
            raise ExportCodeError(f"{path}:{node.lineno}: imports {target}, outside {PACKAGE}")
        line = lines[node.lineno - 1]
        head, tail = line[: node.col_offset], line[node.col_offset :]
        tail, n = re.subn(r"^from\s+[\w.]+\s+import\b", f"from .{flat_name(target)} import", tail)
        if n != 1:
            raise ExportCodeError(f"{path}:{node.lineno}: cannot rewrite {line.strip()!r}")
        lines[node.lineno - 1] = head + tail
        needed.append(target)
    header = f"# Copied from {module} by Roadwork Ops' export; imports of roadwork made relative.\n"
    return header + "".join(line for i, line in enumerate(lines) if i not in dropped), needed


def write_model_code(out_dir: Path) -> list[str]:
    """Write the portable copies of ENTRIES and every roadwork module they need into `out_dir`; their file names."""
    written: list[str] = []
    queue, seen = list(ENTRIES), set(ENTRIES)
    while queue:
        module = queue.pop(0)
        text, needed = rewrite(module)
        name = flat_name(module) + ".py"
        (Path(out_dir) / name).write_text(text)
        written.append(name)
        for dep in needed:
            if dep not in seen:
                seen.add(dep)
                queue.append(dep)
    return written


def foreign_imports(path: Path) -> list[str]:
    """Top-level packages a Python file imports (as transformers' remote-code check sees them) that a miner
    need not have: anything beyond the standard library and MINER_PACKAGES."""
    return [m for m in get_imports(path) if m not in MINER_PACKAGES and m not in sys.stdlib_module_names]


def check_portable(out_dir: Path) -> None:
    """Raise ExportCodeError when a Python file in `out_dir` imports a package a miner may not have."""
    for path in sorted(Path(out_dir).glob("*.py")):
        if foreign := foreign_imports(path):
            raise ExportCodeError(f"{path.name} imports {', '.join(foreign)}, which a miner may not have")
