"""Sim never executes: its modules import neither the engine nor the artifacts store."""

from __future__ import annotations

import ast
from pathlib import Path

import flowtime

SRC = Path(flowtime.__file__).parent
SIM_MODULES = [*sorted((SRC / "sim").rglob("*.py")), SRC / "api" / "sim.py"]
FORBIDDEN = ("flowtime.engine", "flowtime.artifacts")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _file_of(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for candidate in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_sim_modules_do_not_import_engine_or_artifacts() -> None:
    for path in SIM_MODULES:
        bad = [n for n in _imports(path) if n.startswith(FORBIDDEN)]
        assert not bad, (path, bad)


def test_nothing_sim_reaches_imports_engine_or_artifacts() -> None:
    """Followed transitively through flowtime modules (the package's own __init__ aside)."""
    seen: set[Path] = set()
    todo = list(SIM_MODULES)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if not name.startswith("flowtime."):
                continue
            assert not name.startswith(FORBIDDEN), (path, name)
            target = _file_of(name)
            if target is not None:
                todo.append(target)
    assert SRC / "model" / "load.py" in seen  # the walk really followed imports
