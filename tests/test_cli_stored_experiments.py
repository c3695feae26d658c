"""``flowtime experiments list|show``: stored experiments from the command line, without a server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.api.test_experiments import KNOBS, SERVICE_QUEUE, WIP_SWEEP
from typer.testing import CliRunner

from flowtime.artifacts.experiments import ExperimentStore, materialise
from flowtime.artifacts.registry import Registry
from flowtime.cli import app
from flowtime.experiments.runner import run_experiment

WIP_ID = "exp_20250301T083000Z_0000000a"
KNOBS_ID = "exp_20250301T090000Z_0000000b"
KNOB_SWEEP = {"kind": "sweep", "parameters": [{"target": "capacity", "values": [1, 2]}],
              "metrics": [{"series": "total", "aggregate": "sum"}]}


def store_two(data: Path) -> ExperimentStore:
    store = ExperimentStore(data / "engine")
    for exp_id, spec, text, title, at in (
            (WIP_ID, WIP_SWEEP, SERVICE_QUEUE, "Packing station with waves and a WIP limit", 8),
            (KNOBS_ID, KNOB_SWEEP, KNOBS, "", 9)):
        store.write(exp_id, result=run_experiment(spec, text), model_text=text, title=title,
                    model_hash="h" + exp_id[-1],
                    created=datetime(2025, 3, 1, at, 30 if at == 8 else 0, tzinfo=UTC), backend="inprocess")
    return store


def test_list_prints_the_stored_experiments_newest_first(tmp_path: Path) -> None:
    store_two(tmp_path)
    out = CliRunner().invoke(app, ["experiments", "list", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "KIND", "TITLE", "POINTS"]
    assert lines[1].split() == [KNOBS_ID, "2025-03-01", "09:00:00", "sweep", "2"]
    assert lines[2].split()[:4] == [WIP_ID, "2025-03-01", "08:30:00", "sweep"] and lines[2].endswith(" 3")
    assert lines[3] == "Total: 2 experiments (showing 2)"
    only = CliRunner().invoke(app, ["experiments", "list", "--data-dir", str(tmp_path), "--search", "wiplimit",
                                    "--json"])
    body = json.loads(only.stdout)
    assert [e["id"] for e in body["experiments"]] == [WIP_ID] and body["total"] == 1
    none = CliRunner().invoke(app, ["experiments", "list", "--data-dir", str(tmp_path), "--kind", "fit"])
    assert none.stdout == "No experiments found.\n"


def test_show_prints_the_summary_the_runs_made_from_it_and_the_table(tmp_path: Path) -> None:
    store = store_two(tmp_path)
    registry = Registry(tmp_path / "engine")
    made = materialise(store, WIP_ID, 1, registry.root)
    registry.register(made)
    store.link_run(WIP_ID, made.run_id)
    out = CliRunner().invoke(app, ["experiments", "show", WIP_ID, "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == WIP_ID
    assert "  kind:        sweep" in lines and "  points:      3" in lines
    assert "  parameters:  topology.Packing.wipLimit" in lines
    assert f"  runs:        {made.run_id}" in lines
    table = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert table == [["0", "10", "25"], ["1", "20", "15"], ["2", "30", "5"]]
    body = json.loads(CliRunner().invoke(app, ["experiments", "show", WIP_ID, "--data-dir", str(tmp_path),
                                               "--json"]).stdout)
    assert body["runs"] == [made.run_id] and body["result"]["table"]["rows"][2] == [30.0, 5.0]
    missing = subprocess.run([sys.executable, "-m", "flowtime", "experiments", "show",
                              "exp_20250101T000000Z_00000000", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1
    assert missing.stderr == "error: experiment exp_20250101T000000Z_00000000 not found\n"
