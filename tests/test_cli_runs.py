"""``flowtime runs``: the registry from the command line, without a server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowtime.artifacts.writer import write_run
from flowtime.cli import app
from flowtime.engine import evaluate
from flowtime.model.load import load_model
from flowtime.model.provenance import Provenance

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def make_run(root: Path, values: list[float], *, title: str, template: str | None = None,
             minutes: int = 0, extra_node: bool = False) -> str:
    extra = "  - {id: extra, values: %s}\n" % ([0] * len(values)) if extra_node else ""
    loaded = load_model(f"schemaVersion: 1\nmetadata: {{title: '{title}'}}\n"
                        f"grid: {{bins: {len(values)}, binSize: 1, binUnit: hours}}\n"
                        f"nodes:\n  - {{id: demand, values: {values}}}\n"
                        f"  - {{id: served, kind: expr, expr: 'MIN(demand, 25)'}}\n{extra}")
    prov = Provenance.model_validate({"modelId": f"m-{title}", "templateId": template}) \
        if template else None
    return write_run(loaded, evaluate(loaded.model), root, provenance=prov,
                     now=T0 + timedelta(minutes=minutes)).run_id


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, list[str]]:
    """A data folder D with three runs in D/engine (the layout of every command and of `flowtime up`)."""
    engine = tmp_path / "engine"
    made = [
        make_run(engine, [10, 20, 30, 40], title="Baseline", template="capacity", minutes=0),
        make_run(engine, [12, 20, 20, 44], title="More demand", template="capacity",
                 minutes=5, extra_node=True),
        make_run(engine, [1, 2, 3], title="A rather long title that will be cut short",
                 minutes=10),
    ]
    return tmp_path, made


def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout


def test_list_prints_a_table_newest_first(data: tuple[Path, list[str]]) -> None:
    root, (a, b, c) = data
    code, out = invoke("runs", "list", "--data-dir", str(root))
    assert code == 0
    assert out.splitlines() == [
        "ID                              CREATED              TITLE                        "
        "TEMPLATE             SERIES",
        f"{c}   2025-03-01 08:40:00  A rather long title that ... -                         2",
        f"{b}   2025-03-01 08:35:00  More demand                  capacity                  3",
        f"{a}   2025-03-01 08:30:00  Baseline                     capacity                  2",
        "Total: 3 runs (showing 3)",
    ]


def test_list_filters_pages_and_prints_json(data: tuple[Path, list[str]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root, (a, b, _c) = data
    monkeypatch.setenv("FLOWTIME_DATA_DIR", str(root))
    code, out = invoke("runs", "list", "--template", "capacity", "--limit", "1", "--json")
    assert code == 0
    body = json.loads(out)
    assert (body["total"], body["count"]) == (2, 1)
    assert body["runs"][0]["id"] == b
    code, out = invoke("runs", "list", "--search", "BASELINE")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == [a]
    assert out.splitlines()[-1] == "Total: 1 runs (showing 1)"
    code, out = invoke("runs", "list", "--template", "nothing")
    assert (code, out) == (0, "No runs found.\n")


def test_list_sees_runs_written_without_the_index(data: tuple[Path, list[str]]) -> None:
    root, _ = data
    (root / "engine" / "index.sqlite").unlink(missing_ok=True)
    code, out = invoke("runs", "list", "--data-dir", str(root))
    assert code == 0 and out.splitlines()[-1] == "Total: 3 runs (showing 3)"


def test_show_prints_a_summary_and_verifies_hashes(data: tuple[Path, list[str]]) -> None:
    root, (a, _b, _c) = data
    code, out = invoke("runs", "show", a, "--data-dir", str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == a
    assert "  title:         Baseline" in lines
    assert "  grid:          4 bins of 1 hours" in lines
    assert "  provenance:    modelId=m-Baseline, templateId=capacity" in lines
    assert "  series:        demand, served" in lines
    assert "  hashes:        ok" in lines
    code, out = invoke("runs", "show", a, "--data-dir", str(root), "--json")
    body = json.loads(out)
    assert body["verify"] == {"ok": True, "problems": []}
    assert body["manifest"]["runId"] == a
    (root / "engine" / a / "series" / "served@SERVED@DEFAULT.csv").write_text("t,value\n0,0\n")
    code, out = invoke("runs", "show", a, "--data-dir", str(root))
    assert code == 1
    assert "  hashes:        1 mismatch(es)" in out.splitlines()


def test_compare_prints_a_ranking_table(data: tuple[Path, list[str]]) -> None:
    root, (a, b, _c) = data
    code, out = invoke("runs", "compare", b, a, "--data-dir", str(root))
    assert code == 0
    assert out.splitlines() == [
        f"A: {b}  More demand",
        f"B: {a}  Baseline",
        "grid: 4 bins of 1 hours",
        "model: 2 differences (B -> A)",
        "  demand (values): 3 of 4 bins, first bin 0: 10 -> 12",
        "  extra (added): const 0 in every bin",
        "SERIES   MAX_ABS_DELTA      SUM_DELTA     MEAN_DELTA",
        "demand              10             -4             -1",
        "served               5             -3          -0.75",
        "only in A: extra",
    ]
    code, out = invoke("runs", "compare", b, a, "--data-dir", str(root), "--json")
    body = json.loads(out)
    assert body["series"][0]["delta"] == [2, 0, -10, 4]
    assert body["onlyInA"] == ["extra"]


def test_compare_and_diff_show_overrides_and_the_model_difference_they_make(tmp_path: Path) -> None:
    """A run of a hand-written model with --set is compared with the plain run: the override is the difference."""
    model = tmp_path / "m.yaml"
    model.write_text("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n"
                     "  - {id: capacity, values: 10}\n  - {id: served, kind: expr, expr: 'MIN(capacity, 12)'}\n")
    ids = []
    for extra in ([], ["--set", "capacity=14"]):
        r = CliRunner().invoke(app, ["run", str(model), "--data-dir", str(tmp_path), "--quiet", *extra])
        assert r.exit_code == 0, r.stderr
        ids.append(r.stdout.strip())
    plain, edited = ids
    code, out = invoke("runs", "compare", edited, plain, "--data-dir", str(tmp_path))
    assert code == 0
    assert out.splitlines()[3:6] == ["overrides A: capacity=14", "model: 1 difference (B -> A)",
                                     "  capacity (values): 10 -> 14 in every bin"]
    code, out = invoke("runs", "diff", edited, plain, "--data-dir", str(tmp_path), "--json")
    body = json.loads(out)
    assert body["a"]["overrides"] == {"capacity": 14.0} and body["b"]["overrides"] == {}
    assert body["modelChanges"] == [{"node": "capacity", "change": "values", "detail": "10 -> 14 in every bin"}]
    code, out = invoke("runs", "diff", plain, plain, "--data-dir", str(tmp_path))
    assert out.splitlines()[-1] == "model: no differences"


def test_rebuild_index_and_delete(data: tuple[Path, list[str]]) -> None:
    root, (a, _b, _c) = data
    code, out = invoke("runs", "rebuild-index", "--data-dir", str(root))
    assert (code, out) == (0, f"indexed 3 runs in {root / 'engine'}\n")
    code, out = invoke("runs", "delete", a, "--data-dir", str(root))
    assert (code, out) == (0, f"deleted {a}\n")
    assert not (root / "engine" / a).exists()
    code, out = invoke("runs", "list", "--data-dir", str(root))
    assert out.splitlines()[-1] == "Total: 2 runs (showing 2)"


def flowtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowtime", *args], capture_output=True,
                          text=True, timeout=120)


def test_errors_exit_1_with_a_message(data: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, (a, _b, c) = data
    proc = flowtime("runs", "list", "--data-dir", str(tmp_path / "missing"))
    assert proc.returncode == 1
    assert proc.stderr == (f"error: data folder '{tmp_path / 'missing'}' does not exist "
                           "(pass --data-dir or set FLOWTIME_DATA_DIR)\n")
    proc = flowtime("runs", "show", "run_20200101T000000Z_00000000", "--data-dir", str(root))
    assert proc.returncode == 1
    assert proc.stderr == "error: run 'run_20200101T000000Z_00000000' not found\n"
    proc = flowtime("runs", "compare", a, c, "--data-dir", str(root))  # 4 bins and 3: their common 3
    assert proc.returncode == 0 and "grid: 3 bins of 1 hours" in proc.stdout
    assert "resampled: The runs are on different grids" in proc.stdout and f"{a}: bins 0–2 of 4" in proc.stdout
    assert flowtime("runs", "list", "--limit", "0", "--data-dir", str(root)).returncode == 2
