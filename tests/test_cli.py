"""The engine commands as a user runs them: exact lines, exit codes, stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from flowtime.cli import app

GOOD = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n" \
       "  - {id: a, values: [1, 2]}\n  - {id: b, kind: expr, expr: 'a * 3'}\n"
BAD = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n" \
      "  - {id: a, values: [1, 2, 3]}\n  - {id: b, kind: expr, expr: 'aa * 3'}\n"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_run_prints_the_run_id_and_folder(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, GOOD), "--out", str(tmp_path / "d")])
    assert r.exit_code == 0
    run_id, folder = r.stdout.splitlines()
    assert run_id.startswith("run_") and folder == str(tmp_path / "d" / run_id)
    assert (Path(folder) / "series" / "b@B@DEFAULT.csv").read_text() == "t,value\n0,3\n1,6\n"


def test_run_json_summary(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, GOOD), "--out", str(tmp_path), "--json",
                                 "--deterministic-run-id"])
    data = json.loads(r.stdout)
    assert data["runId"].startswith("run_deterministic_") and data["series"] == ["a", "b"]


def test_validate_ok_and_invalid_with_every_problem(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["validate", write(tmp_path, GOOD)])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: ") and "2 nodes, 2 bins of 1 hours" in ok.stdout


def test_invalid_model_exits_1_naming_each_problem(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    proc = subprocess.run([sys.executable, "-m", "flowtime", "validate", path], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "2 errors" in proc.stderr
    assert "line 4" in proc.stderr and "has 3 values but grid.bins is 2" in proc.stderr
    assert "unknown node 'aa' (did you mean `a`?)" in proc.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_run_reads_the_model_from_stdin(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", "-", "--out", str(tmp_path)],
                          input=GOOD, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run_")


def test_graph_prints_nodes_edges_and_order(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["graph", write(tmp_path, GOOD)])
    assert r.stdout.splitlines() == ["nodes:", "  a (const)", "  b (expr) <- a", "edges:", "  a -> b",
                                     "order: a -> b"]


def test_version_flag_prints_the_package_version() -> None:
    from flowtime import __version__

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"flowtime {__version__}"
