"""
Derived metrics in the run folder: one series file per metric of each topology node, an undefined bin as an
empty cell, indexed as ``kind: derived``; and the readers (runs show, export, compare) read them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

import flowtime
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import write_run
from flowtime.cli import app
from flowtime.model.load import load_model

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def text(served: str = "[4, 0, 2]", extra: str = "") -> str:
    return ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: minutes}\nnodes:\n"
            f"  - {{id: arr, values: [4, 4, 4]}}\n  - {{id: srv, values: {served}}}\n"
            f"  - {{id: cap, values: [8, 8, 8]}}\n{extra}"
            "topology:\n  nodes:\n"
            "    - {id: Api, kind: serviceWithBuffer, semantics: {arrivals: arr, served: srv, capacity: cap, "
            "slaMin: 1}}\n")


def write(root: Path, model_text: str, minutes: int = 0) -> str:
    loaded = load_model(model_text)
    return write_run(loaded, flowtime.evaluate(loaded.model), root, now=T0 + timedelta(minutes=minutes)).run_id


def entries(root: Path, run_id: str) -> dict[str, dict[str, object]]:
    index = json.loads((root / run_id / "series" / "index.json").read_text())
    return {e["id"].split("@")[0]: e for e in index["series"]}


def test_each_metric_is_a_series_file_indexed_as_derived_with_its_unit_and_node(tmp_path: Path) -> None:
    run_id = write(tmp_path, text())
    found = entries(tmp_path, run_id)
    derived = {k: e for k, e in found.items() if e["kind"] == "derived"}
    assert sorted(derived) == ["api_cycle_time_ms", "api_flow_latency_ms", "api_kingman_wq", "api_latency_min",
                               "api_queue_time_ms", "api_throughput_ratio", "api_utilization"]
    e = derived["api_latency_min"]
    assert (e["nodeId"], e["componentId"], e["metric"], e["unit"], e["points"]) == ("Api", "API", "latencyMinutes",
                                                                                  "minutes", 3)
    assert derived["api_utilization"]["unit"] == "ratio" and derived["api_queue_time_ms"]["unit"] == "ms"
    assert found["arr"]["kind"] == "flow"  # inputs are the model's series, not written twice
    # queue 0+4-4 = 0, 0+4-0 = 4, 4+4-2 = 6; latency = queue / served minutes: 0, (served 0) undefined, 3
    data = (tmp_path / run_id / e["path"]).read_bytes()  # type: ignore[operator]
    assert data == b"t,value\n0,0\n1,\n2,3\n"
    manifest = json.loads((tmp_path / run_id / "manifest.json").read_text())
    assert manifest["seriesHashes"][e["id"]] == "sha256:" + hashlib.sha256(data).hexdigest() == e["hash"]
    run = json.loads((tmp_path / run_id / "run.json").read_text())
    assert {s["id"] for s in run["series"] if s.get("kind") == "derived"} == {d["id"] for d in derived.values()}
    assert Registry(tmp_path).verify(run_id) == []


def test_derived_files_are_the_same_bytes_in_every_run(tmp_path: Path) -> None:
    a, b = write(tmp_path, text()), write(tmp_path, text(), minutes=1)
    for name, e in entries(tmp_path, a).items():
        if e["kind"] == "derived":
            assert e["hash"] == entries(tmp_path, b)[name]["hash"], name


def test_a_model_node_named_like_a_derived_series_keeps_the_name(tmp_path: Path) -> None:
    run_id = write(tmp_path, text(extra="  - {id: api_utilization, values: [7, 7, 7]}\n"))
    e = entries(tmp_path, run_id)["api_utilization"]
    assert (e["kind"], e["nodeId"]) == ("flow", "api_utilization")
    assert Registry(tmp_path).all_series(run_id)["api_utilization"].tolist() == [7, 7, 7]


def test_the_registry_reads_an_empty_cell_as_nan_and_names_derived_series_by_their_own_name(tmp_path: Path) -> None:
    run_id = write(tmp_path, text())
    registry = Registry(tmp_path)
    values = registry.all_series(run_id)
    assert "Api" not in values  # not keyed by the topology node (its metrics would overwrite each other)
    latency = values["api_latency_min"]
    assert latency[0] == 0 and latency[2] == 3 and latency[1] != latency[1]  # NaN
    assert registry.find_series(run_id, "api_latency_min")["metric"] == "latencyMinutes"


def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout


def test_runs_show_export_and_compare_read_a_run_with_derived_series(tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    a, b = write(engine, text()), write(engine, text(served="[4, 1, 2]"), minutes=1)
    code, out = invoke("runs", "show", a, "--data-dir", str(tmp_path))
    assert code == 0, out
    assert "api_latency_min" in out and "hashes:        ok" in out
    code, out = invoke("runs", "show", a, "--data-dir", str(tmp_path), "--series", "api_latency_min", "--json")
    assert code == 0 and json.loads(out)["series"]["api_latency_min"] == [0, None, 3]
    code, out = invoke("runs", "export", a, "--data-dir", str(tmp_path), "-o", "-")
    assert code == 0
    rows = [r for r in out.splitlines() if ",api_latency_min," in r]
    assert rows == ["0,0,api_latency_min,0", "1,1,api_latency_min,NaN", "2,2,api_latency_min,3"]
    code, out = invoke("runs", "compare", b, a, "--data-dir", str(tmp_path), "--json")
    assert code == 0
    deltas = {s["id"]: s for s in json.loads(out)["series"]}
    # served 1 instead of 0 in bin 1: queue 3 instead of 4, and bin 2's queue 5 instead of 6
    assert deltas["api_queue_time_ms"]["a"] == [0, 180_000, 150_000]
    assert deltas["srv"]["delta"] == [0, 1, 0]
