"""`flowtime sim ...` as a user runs it: exact lines, exit codes, pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from flowtime.cli import app

REFERENCE_DIR = Path(__file__).parent / "reference_templates"


Invoke = Callable[..., Result]


@pytest.fixture
def sim(tmp_path: Path) -> Invoke:
    """Invoke `flowtime sim ...` with the data folder tmp_path (the store is tmp_path/sim); returns the Result."""
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, ["sim", *args, "--data-dir", str(tmp_path)], input=input)
    return invoke


def flowtime(*args: str, stdin: str | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowtime", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)


def test_templates_lists_the_library_as_a_table(sim: Invoke) -> None:
    r = sim("templates")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "VERSION", "PARAMS", "TITLE", "TAGS"]
    assert lines[1].startswith("assembly-line            1.0.0    7       Assembly Line with Rework")
    assert len(lines) == 1 + 9


def test_templates_dir_adds_templates_and_can_filter(sim: Invoke) -> None:
    r = sim("templates", "--templates-dir", str(REFERENCE_DIR), "--tag", "transportation")
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["commuter-rail", "transportation-basic"]
    r = sim("templates", "--json", "--search", "backlog")
    assert [t["id"] for t in json.loads(r.stdout)] == ["support-backlog"]


def test_templates_dir_from_the_environment(tmp_path: Path) -> None:
    proc = flowtime("sim", "show", "manufacturing-line", env={"FLOWTIME_SIM_TEMPLATES_DIR": str(REFERENCE_DIR)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "manufacturing-line 1.0 - Manufacturing Production Line"


def test_show_lists_parameters_with_defaults_and_ranges(sim: Invoke) -> None:
    r = sim("show", "support-backlog")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "support-backlog 1.0.0 - Support Ticket Backlog"
    header = next(i for i, line in enumerate(lines) if line.startswith("PARAMETER"))
    assert lines[header].split() == ["PARAMETER", "TYPE", "DEFAULT", "ALLOWED", "DESCRIPTION"]
    agents = next(line for line in lines if line.startswith("agents"))
    assert agents.split()[:4] == ["agents", "integer", "5", "0..10000"]
    assert "arrays" not in r.stdout and "array of number  [40, 55, 70, 65, 30, 20, 45, 50]" in r.stdout


def test_generate_writes_only_yaml_to_stdout(sim: Invoke) -> None:
    r = sim("generate", "support-backlog", "--param", "agents=6", "-p", "arrivals=[1,2,3,4,5,6,7,8]")
    assert r.exit_code == 0 and r.stderr == ""
    data = yaml.safe_load(r.stdout)
    assert data["schemaVersion"] == 1 and data["nodes"][0]["values"] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert data["nodes"][1]["expr"] == "6 * 10"


def test_param_values_are_read_as_yaml(sim: Invoke, tmp_path: Path) -> None:
    r = sim("generate", "ecommerce-checkout", "--param", "peak_factor=1e0", "--param", "base_capacity=200.0",
            "--provenance", str(tmp_path / "p.json"))
    assert r.exit_code == 0
    params = json.loads((tmp_path / "p.json").read_text())["parameters"]
    assert params["peak_factor"] == 1 and params["base_capacity"] == 200


def test_params_file_and_param_override(sim: Invoke, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("parameters:\n  agents: 2\n  tickets_per_agent: 3\n")
    r = sim("generate", "support-backlog", "--params", str(tmp_path / "p.yaml"), "-p", "agents=4",
            "--embed-provenance")
    prov = yaml.safe_load(r.stdout)["provenance"]
    assert (prov["parameters"]["agents"], prov["parameters"]["tickets_per_agent"]) == (4, 3)


def test_generate_to_a_file_or_directory_with_provenance(sim: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    r = sim("generate", "commuter-rail", "--out", str(out), "--provenance", str(tmp_path / "prov.json"))
    assert r.exit_code == 0 and r.stdout == ""
    prov = json.loads((tmp_path / "prov.json").read_text())
    assert r.stderr == f"wrote {out / 'model.yaml'} ({prov['modelId']})\n"
    assert "provenance" not in yaml.safe_load((out / "model.yaml").read_text())
    sim("generate", "commuter-rail", "-o", str(tmp_path / "m.yaml"), "--embed-provenance")
    assert yaml.safe_load((tmp_path / "m.yaml").read_text())["provenance"]["templateId"] == "commuter-rail"


def test_generate_pipes_into_flowtime_run(tmp_path: Path) -> None:
    gen = flowtime("sim", "generate", "support-backlog", "--data-dir", str(tmp_path))
    assert gen.returncode == 0 and gen.stderr == ""
    run = flowtime("run", "-", "--data-dir", str(tmp_path), stdin=gen.stdout)
    assert run.returncode == 0, run.stderr
    folder = Path(run.stdout.splitlines()[1].strip())
    assert folder.parent == tmp_path / "engine"  # one data folder: Sim's store in sim/, runs in engine/
    series = {p.name: p.read_text() for p in (folder / "series").iterdir()}
    backlog = next(text for name, text in series.items() if name.startswith("backlog"))
    assert backlog.splitlines()[1:] == ["0,0", "1,5", "2,25", "3,40", "4,20", "5,0", "6,0", "7,0"]


def test_parameter_errors_are_listed_and_exit_1(tmp_path: Path) -> None:
    proc = flowtime("sim", "generate", "support-backlog", "-p", "agents=-1", "-p", "agnets=2",
                    "--data-dir", str(tmp_path))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: 2 parameter problem(s) for template 'support-backlog':",
        "  - parameters.agents: `agents` must be between 0 and 10000, got -1",
        "  - parameters.agnets: unknown parameter `agnets` (did you mean `agents`?); this template takes: "
        "bins, arrivals, agents, tickets_per_agent",
    ]


def test_unknown_template_exits_1_naming_it(tmp_path: Path) -> None:
    proc = flowtime("sim", "show", "nope", "--data-dir", str(tmp_path))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "error: template 'nope' not found; 9 templates are available\n"


def test_usage_errors_exit_2(sim: Invoke, tmp_path: Path) -> None:
    r = sim("generate", "support-backlog", "-p", "agents")
    assert r.exit_code == 2 and "expected NAME=VALUE, got 'agents'" in r.stderr
    r = sim("templates", "--templates-dir", str(tmp_path / "missing"))
    assert r.exit_code == 2 and "Invalid value for '--templates-dir'" in r.stderr
    r = sim("generate", "support-backlog", "--params", str(tmp_path / "missing.json"))
    assert r.exit_code == 2


def test_new_named_models_and_versions(sim: Invoke, tmp_path: Path) -> None:
    r1 = sim("new", "--template", "ecommerce-checkout", "--name", "checkout-baseline")
    r2 = sim("new", "--template", "ecommerce-checkout", "--name", "checkout-baseline")
    r3 = sim("new", "--template", "ecommerce-checkout", "--name", "checkout-baseline", "-p", "peak_factor=2")
    root = tmp_path / "sim" / "named" / "checkout-baseline_31cb"
    assert r1.stdout.splitlines() == ["checkout-baseline_31cb v1", str(root / "v1")]
    assert r2.stdout.splitlines()[0] == "checkout-baseline_31cb v1 (unchanged: same model as the latest version)"
    assert r3.stdout.splitlines() == ["checkout-baseline_31cb v2", str(root / "v2")]
    r4 = sim("new", "-t", "ecommerce-checkout", "-n", "elsewhere", "--out", str(tmp_path / "artifacts" / "models"))
    assert r4.stdout.splitlines()[1].startswith(str(tmp_path / "artifacts" / "models" / "elsewhere_"))


def test_derive_and_models(sim: Invoke) -> None:
    sim("new", "-t", "ecommerce-checkout", "-n", "checkout-baseline")
    d = sim("derive", "--from", "checkout-baseline_31cb", "--set", "peak_factor=2.0", "--name", "checkout-peak")
    assert d.exit_code == 0, d.output
    assert d.stdout.splitlines()[0].startswith("checkout-peak_") and d.stdout.splitlines()[0].endswith(" v1")
    assert d.stderr.startswith("derived from model_")
    gen = sim("generate", "support-backlog", "--embed-provenance")
    model_id = yaml.safe_load(gen.stdout)["provenance"]["modelId"]
    child = sim("derive", "--from", model_id, "--set", "agents=7")
    assert child.stdout.splitlines()[0].startswith("model_") and child.stderr == f"derived from {model_id}\n"
    listing = sim("models").stdout.splitlines()
    assert listing[0].split() == ["TEMPLATE", "HASH", "MODEL", "ID", "GENERATED", "TITLE"]
    assert sum(line.startswith("support-backlog ") for line in listing) == 2
    named = listing[listing.index("") + 1:]
    assert named[0].split()[:2] == ["NAMED", "MODEL"] and len(named) == 3
    only = sim("models", "--template", "ecommerce-checkout").stdout
    assert "support-backlog" not in only and "checkout-peak_" in only


def test_validate_prints_problems_and_the_quality_report(sim: Invoke, tmp_path: Path) -> None:
    gen = sim("generate", "manufacturing-line", "--templates-dir", str(REFERENCE_DIR), "--embed-provenance")
    model_id = yaml.safe_load(gen.stdout)["provenance"]["modelId"]
    r = sim("validate", model_id, "--templates-dir", str(REFERENCE_DIR))
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("valid: ") and lines[1] == "quality: 0.857 (6 of 7 checks pass)"
    assert "  FAIL nodes_reach_output: 1 node(s) feed no output: quality_control_capacity" in lines
    bad = tmp_path / "bad.yaml"
    bad.write_text("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
                   "nodes: [{id: a, kind: const, values: [1]}]\n")
    r = sim("validate", str(bad))
    assert r.exit_code == 1
    assert r.stdout.splitlines()[0] == f"invalid: {bad} (1 problem(s))"
    assert "has 1 values but grid.bins is 2" in r.stdout and "quality: 0 (0 of 1 checks pass)" in r.stdout
    r = sim("validate", "-", "--json", input=gen.stdout)
    assert json.loads(r.stdout)["valid"] is True


def test_gc_removes_expired_models(sim: Invoke, tmp_path: Path) -> None:
    sim("generate", "support-backlog")
    assert sim("gc").stdout == f"removed 0 expired model folder(s) from {tmp_path / 'sim'} (time-to-live 7 days)\n"
    assert sim("gc", "--ttl-days", "0").stdout.startswith("removed 1 expired model folder(s)")
    assert sim("models").stdout.startswith("no models in")


@pytest.mark.parametrize("command", ["templates", "show", "generate", "new", "derive", "models", "validate", "gc"])
def test_every_subcommand_has_help_with_both_directory_options(command: str) -> None:
    r = CliRunner().invoke(app, ["sim", command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "--templates-dir" in r.stdout and "--data-dir" in r.stdout
