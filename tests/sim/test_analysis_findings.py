"""Sim hands back the analyser's model-only findings with a generated model, and scores them (0028)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowtime.cli import app
from flowtime.sim.catalog import Catalog
from flowtime.sim.quality import validate_text
from flowtime.sim.workspace import Workspace

# Two desks joined by an edge with a lag: edge_behavior_violation_lag (a warning), found from the model alone.
LAGGED = """\
metadata:
  id: lagged-desks
  title: Lagged desks
parameters:
  - {name: lag, type: integer, default: 1, minimum: 0, maximum: 3}
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: arrivals, kind: const, values: [5, 5, 5]}
topology:
  nodes:
    - {id: Front, kind: service, semantics: {arrivals: arrivals, served: arrivals}}
    - {id: Back, kind: service, semantics: {arrivals: arrivals, served: arrivals}}
  edges:
    - {from: Front, to: Back, lag: "${lag}"}
outputs:
  - {series: arrivals}
"""


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "lagged-desks.yaml").write_text(LAGGED)
    return folder


@pytest.fixture
def workspace(templates: Path, tmp_path: Path) -> Workspace:
    return Workspace(Catalog.load(templates), tmp_path / "sim")


def test_generation_returns_the_model_only_findings_and_the_score_counts_them(workspace: Workspace) -> None:
    gen = workspace.generate("lagged-desks")
    body = gen.response()
    [lag] = [w for w in body["warnings"] if w["code"] == "edge_behavior_violation_lag"]
    assert lag["severity"] == "warning" and lag["bins"] == []  # from the model: no bins
    checks = {c["name"]: c["passed"] for c in body["quality"]["checks"]}
    assert checks["no_analyser_warnings"] is False
    # schema, has_outputs, nodes_reach_output, parameters_used, capacities_non_negative,
    # no_constant_zero_outputs, no_warnings pass; no_analyser_warnings fails: 7 of 8
    assert sum(checks.values()) == len(checks) - 1
    assert body["quality"]["score"] == round((len(checks) - 1) / len(checks), 3)


def test_without_the_lag_the_check_passes(workspace: Workspace) -> None:
    body = workspace.generate("lagged-desks", {"lag": 0}).response()
    assert not [w for w in body["warnings"] if w["severity"] != "info"]
    checks = {c["name"]: c["passed"] for c in body["quality"]["checks"]}
    assert checks["no_analyser_warnings"] is True


def test_a_model_without_topology_has_no_analyser_check() -> None:
    report = validate_text("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
                           "nodes:\n  - {id: d, kind: const, values: [1, 2]}\noutputs: [{series: d}]\n")
    assert "no_analyser_warnings" not in [c.name for c in report.quality.checks]
    assert report.to_json()["analysis"] == []


def test_sim_generate_prints_the_findings_to_stderr(templates: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["sim", "generate", "lagged-desks", "--templates-dir", str(templates),
                                 "--data-dir", str(tmp_path / "d"), "--no-store"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("schemaVersion: 1") or "grid:" in r.stdout  # the model, untouched
    assert any(line.startswith("warning: edge_behavior_violation_lag (warning)") for line in r.stderr.splitlines())


def test_sim_validate_json_lists_the_findings(templates: Path, tmp_path: Path, workspace: Workspace) -> None:
    model = tmp_path / "m.yaml"
    model.write_text(workspace.generate("lagged-desks", persist=False).text())
    r = CliRunner().invoke(app, ["sim", "validate", str(model), "--json", "--templates-dir", str(templates),
                                 "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert [f["code"] for f in json.loads(r.stdout)["analysis"]].count("edge_behavior_violation_lag") == 1
