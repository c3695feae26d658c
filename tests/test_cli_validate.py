"""``flowtime validate --tier``, ``flowtime run --strict`` and the run's node table, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.api.test_validate import BAD_REF, BAD_SHAPE, CLEAN, OVER_SERVED
from typer.testing import CliRunner

from flowtime.cli import app

# A desk with a buffer: 10 arrive each hour, it serves [10, 8, 10, 6] of capacity 10.
#   queue      = [0, 2, 2, 6]                    (max(0, Q + 10 - served))
#   utilization = served / 10 = [1, 0.8, 1, 0.6]   -> mean 0.85, max 1
#   latency     = queue / served x 60 min = [0, 15, 12, 60]
#                 p95 (linear): sorted [0, 12, 15, 60], rank 0.95 x 3 = 2.85 -> 15 + 0.85 x 45 = 53.25
#   SLA (served / arrivals >= 0.95): bins 0 and 2 of 4 -> 50 %
DESK = """schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: arrivals, values: [10, 10, 10, 10]}
  - {id: served, values: [10, 8, 10, 6]}
  - {id: cap, values: [10, 10, 10, 10]}
topology:
  nodes:
    - id: Desk
      kind: serviceWithBuffer
      semantics: {arrivals: arrivals, served: served, capacity: cap}
outputs:
  - series: served
"""
GOOD = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n" \
       "  - {id: a, values: [1, 2]}\n  - {id: b, kind: expr, expr: 'a * 3'}\n"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def flowtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowtime", *args], capture_output=True, text=True, timeout=120)


def runs_in(data: Path) -> list[str]:
    folder = data / "engine"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("run_")) if folder.is_dir() else []


# -- validate --------------------------------------------------------------------------------


def test_each_tier_goes_as_far_as_it_says(tmp_path: Path) -> None:
    bad_ref = write(tmp_path, BAD_REF)
    schema = CliRunner().invoke(app, ["validate", bad_ref, "--tier", "schema"])
    assert schema.exit_code == 0
    assert schema.stdout.startswith(f"ok: {bad_ref} has the right shape (schema tier")
    compiled = flowtime("validate", bad_ref, "--tier", "compile")
    assert compiled.returncode == 1 and "nodes.b.expr: unknown node 'aa'" in compiled.stderr
    shape = flowtime("validate", write(tmp_path, BAD_SHAPE, "s.yaml"), "--tier", "schema")
    assert shape.returncode == 1 and "line 4" in shape.stderr and "has 3 values" in shape.stderr


def test_the_default_tier_analyses_and_prints_findings_located(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["validate", write(tmp_path, OVER_SERVED)])
    assert r.exit_code == 0, r.output  # findings are warnings: the model is valid
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ok: ") and "2 nodes, 4 bins of 1 hours" in lines[0]
    assert any(line.startswith("  served_exceeds_arrivals (warning) at Desk, bins 1, 3:") for line in lines)
    clean = CliRunner().invoke(app, ["validate", write(tmp_path, GOOD, "g.yaml")])
    assert clean.stdout.splitlines()[-1] == "no analyser findings"


def test_validate_json_is_the_api_body_and_exit_1_when_invalid(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["validate", write(tmp_path, GOOD), "--json", "--tier", "compile"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {"tier": "compile", "valid": True, "isValid": True, "problems": [],
                                     "errors": [], "warnings": []}
    bad = CliRunner().invoke(app, ["validate", write(tmp_path, BAD_REF, "b.yaml"), "--json"])
    assert bad.exit_code == 1
    body = json.loads(bad.stdout)
    assert body["tier"] == "analyse" and body["isValid"] is False
    assert [(e["path"], e["line"]) for e in body["errors"]] == [("nodes.b.expr", 5)]


def test_an_unreadable_input_or_an_unknown_tier_is_exit_2(tmp_path: Path) -> None:
    assert flowtime("validate", str(tmp_path / "nope.yaml")).returncode == 2
    assert flowtime("validate", str(tmp_path)).returncode == 2
    assert flowtime("validate", write(tmp_path, GOOD), "--tier", "lint").returncode == 2


def test_validate_reads_standard_input(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "validate", "-", "--tier", "schema"], input=GOOD,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: <stdin> has the right shape")


# -- run --strict ----------------------------------------------------------------------------


def test_strict_run_with_a_warning_exits_1_and_stores_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    proc = flowtime("run", write(tmp_path, OVER_SERVED), "--data-dir", str(data), "--strict")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "the run was not stored (strict)" in proc.stderr
    assert "served_exceeds_arrivals (warning) at Desk, bins 1, 3" in proc.stderr
    assert runs_in(data) == []


def test_strict_run_of_a_clean_model_is_stored_and_a_lax_run_with_warnings_too(tmp_path: Path) -> None:
    data = tmp_path / "d"
    ok = CliRunner().invoke(app, ["run", write(tmp_path, CLEAN), "--data-dir", str(data), "--strict", "-q"])
    assert ok.exit_code == 0, ok.output
    lax = CliRunner().invoke(app, ["run", write(tmp_path, OVER_SERVED, "o.yaml"), "--data-dir", str(data), "-q"])
    assert lax.exit_code == 0
    assert runs_in(data) == sorted([ok.stdout.strip(), lax.stdout.strip()])


# -- the run's node table ----------------------------------------------------------------------


def test_run_prints_a_node_table_after_the_series(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, DESK), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("run_") and lines[3:5] == ["series  min  mean  max  last",
                                                           "served    6   8.5   10     6"]
    header = lines.index("node  category  util mean  util max  latency p95 (min)  SLA %")
    assert lines[header + 1].split() == ["Desk", "service", "0.85", "1", "53.25", "50"]


def test_run_json_lists_nodes_and_findings(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, DESK), "--data-dir", str(tmp_path / "d"), "--json"])
    body = json.loads(r.stdout)
    assert body["nodes"] == [{"id": "Desk", "category": "service", "utilizationMean": pytest.approx(0.85),
                              "utilizationMax": 1.0, "latencyP95Minutes": pytest.approx(53.25), "slaPercent": 50.0}]
    assert isinstance(body["findings"], list)


def test_a_model_without_topology_prints_nothing_extra(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, GOOD), "--data-dir", str(tmp_path / "d")])
    assert r.stdout.splitlines()[3:] == ["series  min  mean  max  last", "a         1   1.5    2     2",
                                         "b         3   4.5    6     6"]
