"""Import rules from STYLE.md, enforced by parsing every module's imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "flowtime"

# package prefix -> forbidden import prefixes
RULES: dict[str, tuple[str, ...]] = {
    # errors and records are the leaves: records (frozen record classes) may be used by errors.
    "flowtime.records": ("flowtime.", "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.errors": ("flowtime.model", "flowtime.expr", "flowtime.engine", "flowtime.artifacts", "flowtime.sim",
                        "flowtime.api", "flowtime.ui", "flowtime.cli", "flowtime.settings", "flowtime.datadir",
                        "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.model": ("flowtime.engine", "flowtime.artifacts", "flowtime.sim", "flowtime.api",
                       "flowtime.ui", "flowtime.cli", "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.expr": ("flowtime.engine", "flowtime.artifacts", "flowtime.sim", "flowtime.api",
                      "flowtime.ui", "flowtime.cli", "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    # the analyser reads a model and its series: no engine, so Sim and the state API can use it too
    "flowtime.analysis": ("flowtime.engine", "flowtime.artifacts", "flowtime.sim", "flowtime.api", "flowtime.ui",
                          "flowtime.cli", "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.engine": ("flowtime.artifacts", "flowtime.sim", "flowtime.api", "flowtime.ui",
                        "flowtime.cli", "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.artifacts": ("flowtime.sim", "flowtime.api", "flowtime.ui", "flowtime.cli",
                           "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.sim": ("flowtime.engine", "flowtime.artifacts", "flowtime.api", "flowtime.ui",
                     "flowtime.cli", "fastapi", "typer", "uvicorn", "starlette"),
    # experiments run the engine many times: a pure core too; Dask only in the backends module (imported lazily)
    "flowtime.experiments": ("flowtime.artifacts", "flowtime.sim", "flowtime.api", "flowtime.ui", "flowtime.cli",
                             "fastapi", "typer", "httpx", "uvicorn", "starlette", "dask", "distributed"),
    "flowtime.experiments.backends": ("flowtime.artifacts", "flowtime.sim", "flowtime.api", "flowtime.ui",
                                      "flowtime.cli", "fastapi", "typer", "httpx", "uvicorn", "starlette"),
    "flowtime.api.engine": ("flowtime.sim", "flowtime.ui", "flowtime.cli"),
    "flowtime.api.sim": ("flowtime.engine", "flowtime.artifacts", "flowtime.ui", "flowtime.cli"),
    "flowtime.ui": ("flowtime.engine", "flowtime.sim", "flowtime.artifacts", "flowtime.analysis", "flowtime.api",
                    "flowtime.cli"),
}
# The core never opens files: the loader takes text, the edges read it.
NO_FILE_IO = ("flowtime.model", "flowtime.expr", "flowtime.engine", "flowtime.analysis", "flowtime.experiments")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


MODULES = sorted(SRC.rglob("*.py"))


def rules_for(mod: str) -> tuple[str, ...]:
    found: tuple[str, ...] = ()
    best = -1
    for prefix, forbidden in RULES.items():
        if (mod == prefix or mod.startswith(prefix + ".") or mod.startswith(prefix + "_")) and len(prefix) > best:
            found, best = forbidden, len(prefix)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_imports_only_what_its_layer_allows(path: Path) -> None:
    mod = module_name(path)
    forbidden = rules_for(mod)
    bad = [f"line {line}: {name}" for name, line in imports_of(path)
           if any(name == f.rstrip(".") or name.startswith(f if f.endswith(".") else f + ".") or name == f
                  for f in forbidden)]
    assert not bad, f"{mod} imports what its layer must not: {bad}"


@pytest.mark.parametrize("path", [p for p in MODULES if module_name(p).startswith(NO_FILE_IO)],
                         ids=lambda p: module_name(p))
def test_core_modules_never_open_files(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    opened = [c.lineno for c in calls
              if (isinstance(c.func, ast.Name) and c.func.id == "open")
              or (isinstance(c.func, ast.Attribute) and c.func.attr in ("read_text", "read_bytes", "write_text",
                                                                         "write_bytes", "open"))]
    assert not opened, f"{module_name(path)} does file I/O on lines {opened}"


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself works: a core module importing fastapi is reported."""
    fake = tmp_path / "x.py"
    fake.write_text("import fastapi\nfrom flowtime.sim import store\n")
    names = [n for n, _ in imports_of(fake)]
    forbidden = rules_for("flowtime.engine.evaluate")
    assert [n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)] == [
        "fastapi", "flowtime.sim"]


def test_public_api_is_pinned() -> None:
    import flowtime

    assert sorted(flowtime.__all__) == sorted([
        "ArtifactError", "EvaluationError", "ExpressionError", "FlowTimeError", "Graph", "InvalidRunId",
        "LimitExceeded", "StorageFull", "ManyResults", "ModelGraph", "Plan", "plan",
        "Model", "ModelError", "ModelSyntaxError", "ModelValidationError", "ParameterError", "Problem",
        "Registry", "Results", "RunNotFound", "TemplateError", "TemplateNotFound", "__version__", "compile_model",
        "evaluate", "experiment", "load_model", "montecarlo", "sweep",
    ])


def test_importing_sim_and_its_service_never_loads_the_engine() -> None:
    """Sim never executes models: not even transitively at run time."""
    import subprocess
    import sys

    code = ("import sys, flowtime.sim.workspace, flowtime.api.sim; "
            "print(sorted(m for m in sys.modules if m.startswith(('flowtime.engine', 'flowtime.artifacts'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


TESTS = Path(__file__).resolve().parent
_CLOCKS = ("perf_counter", "monotonic", "time")


def _elapsed_assertions(tree: ast.AST) -> list[int]:
    """Lines of ``assert`` statements comparing a clock difference (``clock() - t0 < 2``) to a number."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for sub in ast.walk(node.test):
            if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub) and isinstance(sub.left, ast.Call):
                func = sub.left.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in _CLOCKS:
                    lines.append(node.lineno)
    return lines


def test_no_test_asserts_on_wall_clock_time() -> None:
    """Speed is for benchmarks: an elapsed-time assertion fails under load and proves nothing."""
    found = {str(p.relative_to(TESTS)): lines for p in sorted(TESTS.rglob("*.py"))
             if (lines := _elapsed_assertions(ast.parse(p.read_text(encoding="utf-8"))))}
    assert found == {}


def test_the_wall_clock_rule_catches_an_elapsed_time_assertion() -> None:
    tree = ast.parse("import time\nt0 = time.perf_counter()\nassert time.perf_counter() - t0 < 1\n")
    assert _elapsed_assertions(tree) == [3]
