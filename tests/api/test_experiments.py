"""/v1/experiments (background, stored) and the reference's synchronous /v1/sweep etc., on a real server."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.api.engine_server import serve_engine

from flowtime.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICE_QUEUE = (ROOT / "examples" / "service-queue.yaml").read_text(encoding="utf-8")
PROBLEM = "application/problem+json"

# orders 20,20,20,5,0,0; 25 packed in the waves of bins 1, 3, 5; the buffer holds wipLimit L.
#   L=10: bin0 20 -> 10 over; bin1 10+20-25 = 5; bin2 5+20 = 25 -> 15 over; bin3 10+5 = 15 packed -> 0. total 25
#   L=20: bin0 20; bin1 20+20-25 = 15; bin2 35 -> 15 over; bin3 20+5-25 = 0.                        total 15
#   L=30: bin0 20; bin1 15; bin2 35 -> 5 over; bin3 30+5-25 = 10; bin5 10 packed.                   total  5
WIP_SWEEP = {"kind": "sweep", "parameters": [{"target": "topology.Packing.wipLimit", "values": [10, 20, 30]}],
             "metrics": [{"name": "overflow", "series": "packing_overflow", "aggregate": "sum"}],
             "capture": ["packing_queue"]}

# 200,000 bins: each point takes milliseconds, so 100,000 of them run for minutes unless cancelled.
LONG_MODEL = """schemaVersion: 1
grid: {bins: 200000, binSize: 1, binUnit: minutes}
nodes:
  - {id: demand, kind: const, values: 5}
  - {id: served, kind: expr, expr: "MIN(demand, 3)"}
  - {id: q, kind: expr, expr: "SHIFT(served, 1) + served * 2"}
"""
LONG_SWEEP = {"kind": "sweep", "parameters": [{"target": "demand", "range": {"low": 0, "high": 10, "steps": 100000}}],
              "metrics": [{"series": "q"}]}

# Two const knobs and what they make: total = capacity * 2 + extra, per bin.
KNOBS = """schemaVersion: 1
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: capacity, kind: const, values: [4, 4, 4]}
  - {id: extra, kind: const, values: [1, 2, 3]}
  - {id: total, kind: expr, expr: "capacity * 2 + extra"}
"""

TERMINAL = ("done", "failed", "cancelled")
GRID_OF_SERVICE_QUEUE = {"bins": 6, "binSize": 1, "binUnit": "hours", "binMinutes": 60,
                         "startTimeUtc": None}


def settings_for(data_dir: Path, **extra: Any) -> EngineSettings:
    return EngineSettings(data_dir=data_dir, **extra)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("experiments-data")


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[httpx.Client]:
    with serve_engine(settings_for(data_dir, max_experiment_points=1000)) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        yield c


def wait(client: httpx.Client, location: str, until: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
    while True:
        body: dict[str, Any] = client.get(location).json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def assert_nothing_stored(data_dir: Path) -> None:
    """No experiment folder, no temporary, no saved request: at most the index and the empty queue folder."""
    root = data_dir / "experiments"
    assert {p.name for p in root.iterdir()} <= {"index.sqlite", "queue"}
    assert list((root / "queue").iterdir()) == []


def start(client: httpx.Client, spec: dict[str, Any], model: str) -> str:
    resp = client.post("/v1/experiments", json={"spec": spec, "model": model})
    assert resp.status_code == 202, resp.text
    location = resp.headers["location"]
    assert location == f"/v1/experiments/{resp.json()['id']}"
    return location


def test_async_sweep_runs_to_done_and_is_stored(client: httpx.Client, data_dir: Path) -> None:
    location = start(client, WIP_SWEEP, SERVICE_QUEUE)
    body = wait(client, location)
    assert body["status"] == "done", body
    assert body["progress"] == {"done": 3, "total": 3}
    # the model's grid, as runs answer it: clients draw clock-time axes from it
    assert body["grid"] == GRID_OF_SERVICE_QUEUE
    table = body["result"]["table"]
    assert table["columns"] == ["topology.Packing.wipLimit", "overflow"]
    assert table["rows"] == [[10.0, 25.0], [20.0, 15.0], [30.0, 5.0]]
    folder = data_dir / "experiments" / body["id"]
    for name in ("spec.json", "model.yaml", "provenance.json", "result.json", "table.csv", "table.parquet",
                 "environment.json", "experiment.json"):
        assert (folder / name).is_file(), name
    assert (folder / "model.yaml").read_text(encoding="utf-8") == SERVICE_QUEUE
    assert (folder / "table.csv").read_text(encoding="utf-8").splitlines() == [
        "point,topology.Packing.wipLimit,overflow", "0,10.0,25.0", "1,20.0,15.0", "2,30.0,5.0"]
    frame = pq.read_table(io.BytesIO((folder / "table.parquet").read_bytes())).to_pandas()
    assert frame["overflow"].tolist() == [25.0, 15.0, 5.0]
    env = json.loads((folder / "environment.json").read_text(encoding="utf-8"))
    assert env["numpy"] == np.__version__ and env["backend"] == "inprocess"
    assert json.loads((folder / "provenance.json").read_text(encoding="utf-8"))["modelHash"] == body["modelHash"]
    listed = client.get("/v1/experiments").json()["experiments"]
    mine = next(e for e in listed if e["id"] == body["id"])
    assert (mine["kind"], mine["points"], mine["status"]) == ("sweep", 3, "done")
    assert mine["title"] == "Packing station with waves and a WIP limit"


def test_spec_with_model_inline(client: httpx.Client) -> None:
    resp = client.post("/v1/experiments", json={**WIP_SWEEP, "model": SERVICE_QUEUE})
    assert resp.status_code == 202, resp.text
    assert wait(client, resp.headers["location"])["result"]["table"]["rows"][0] == [10.0, 25.0]


def test_a_stored_experiment_survives_a_restart(tmp_path: Path) -> None:
    with serve_engine(settings_for(tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        exp_id = wait(c, start(c, WIP_SWEEP, SERVICE_QUEUE))["id"]
    with serve_engine(settings_for(tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        listed = c.get("/v1/experiments").json()
        assert [e["id"] for e in listed["experiments"]] == [exp_id]
        again = c.get(f"/v1/experiments/{exp_id}").json()
        assert again["status"] == "done"
        assert again["result"]["table"]["rows"][2] == [30.0, 5.0]
        assert c.delete(f"/v1/experiments/{exp_id}").status_code == 204
        assert c.get(f"/v1/experiments/{exp_id}").status_code == 404
        assert not (tmp_path / "experiments" / exp_id).exists()


def test_cancel_a_long_experiment_leaves_nothing(tmp_path: Path) -> None:
    with serve_engine(settings_for(tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        location = start(c, LONG_SWEEP, LONG_MODEL)
        running = wait(c, location, until=("running", *TERMINAL))
        assert running["status"] == "running"
        assert running["progress"]["total"] == 100000
        assert running["grid"] == {"bins": 200000, "binSize": 1, "binUnit": "minutes", "binMinutes": 1,
                                   "startTimeUtc": None}
        resp = c.delete(location)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "cancelled"
        body = c.get(location).json()
        assert body["status"] == "cancelled" and body["progress"]["done"] < 100000
        assert_nothing_stored(tmp_path)
        assert [e["status"] for e in c.get("/v1/experiments").json()["experiments"]] == ["cancelled"]
        assert c.delete(location).status_code == 204  # forgotten
        assert c.get(location).status_code == 404


def test_cancel_a_queued_experiment(tmp_path: Path) -> None:
    # one worker: the second experiment waits behind the first
    with serve_engine(settings_for(tmp_path, experiment_workers=1)) as url, httpx.Client(base_url=url, timeout=60) as c:
        first = start(c, LONG_SWEEP, LONG_MODEL)
        assert wait(c, first, until=("running", *TERMINAL))["status"] == "running"
        second = start(c, WIP_SWEEP, SERVICE_QUEUE)
        assert c.get(second).json()["status"] == "queued"
        assert c.delete(second).json()["status"] == "cancelled"
        assert c.delete(first).json()["status"] == "cancelled"
        assert c.get(second).json()["status"] == "cancelled"  # it never ran
        assert_nothing_stored(tmp_path)


def test_over_the_servers_cap_is_400(client: httpx.Client) -> None:
    # the fixture's server caps experiments at 1000 points; 2 x 600 = 1200 grid points
    spec = {"kind": "sweep", "metrics": [{"series": "total"}], "parameters": [
        {"target": "capacity", "range": {"low": 1, "high": 2, "steps": 2}},
        {"target": "extra", "range": {"low": 0, "high": 1, "steps": 600}}]}
    resp = client.post("/v1/experiments", json={"spec": spec, "model": KNOBS})
    assert resp.status_code == 400 and [e["path"] for e in resp.json()["errors"]] == ["limits.maxPoints"]
    assert "1200" in resp.json()["detail"] and "1000" in resp.json()["detail"]
    asked = client.post("/v1/experiments", json={"spec": {**spec, "limits": {"maxPoints": 5000}}, "model": KNOBS})
    assert asked.status_code == 400 and asked.headers["content-type"].startswith(PROBLEM)
    assert [e["path"] for e in asked.json()["errors"]] == ["limits.maxPoints"]
    assert "1000" in asked.json()["detail"]


def test_captured_values_over_the_response_limit_is_400(tmp_path: Path) -> None:
    # 10 points x 1 captured series x 3 bins = 30 values, over a limit of 29
    spec = {"kind": "sweep", "capture": ["total"], "parameters": [
        {"target": "capacity", "range": {"low": 1, "high": 10, "steps": 10}}]}
    with serve_engine(settings_for(tmp_path, max_response_values=29)) as url, httpx.Client(base_url=url) as c:
        resp = c.post("/v1/experiments", json={"spec": spec, "model": KNOBS})
        assert resp.status_code == 400 and [e["path"] for e in resp.json()["errors"]] == ["capture"]
        ok = c.post("/v1/experiments", json={"spec": {**spec, "parameters": [{"target": "capacity",
                                                                                  "values": [1, 2, 3]}]},
                                             "model": KNOBS})
        assert ok.status_code == 202, ok.text
        assert wait(c, ok.headers["location"])["status"] == "done"


def test_unknown_parameter_is_400_with_its_path(client: httpx.Client) -> None:
    spec = {"kind": "sweep", "metrics": [{"series": "total"}],
            "parameters": [{"target": "capacity", "values": [1]}, {"target": "capacty", "values": [1, 2]}]}
    resp = client.post("/v1/experiments", json={"spec": spec, "model": KNOBS})
    assert resp.status_code == 400 and resp.headers["content-type"].startswith(PROBLEM)
    assert [e["path"] for e in resp.json()["errors"]] == ["parameters[1].target"]
    bad_range = {**spec, "parameters": [{"target": "capacity", "range": {"low": 3, "high": 1, "steps": 2}}]}
    resp = client.post("/v1/experiments", json={"spec": bad_range, "model": KNOBS})
    assert [e["path"] for e in resp.json()["errors"]] == ["parameters[0].range.high"]


def test_reference_sweep_equals_separate_runs(client: httpx.Client) -> None:
    resp = client.post("/v1/sweep", json={"yaml": KNOBS, "paramId": "capacity", "values": [1, 5],
                                          "captureSeriesIds": ["total"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["paramId"] == "capacity"
    assert [p["paramValue"] for p in body["points"]] == [1.0, 5.0]
    for point in body["points"]:
        run = client.post("/v1/run", json={"yaml": KNOBS, "set": {"capacity": point["paramValue"]}}).json()
        assert point["series"] == {"total": run["series"]["total"]}
    # capacity 5: 5 * 2 + [1, 2, 3]
    assert body["points"][1]["series"]["total"] == [11.0, 12.0, 13.0]
    every = client.post("/v1/sweep", json={"yaml": KNOBS, "paramId": "extra", "values": [0]}).json()
    assert set(every["points"][0]["series"]) == {"capacity", "extra", "total"}  # no capture list: every series


def test_reference_sweep_problems_name_its_fields(client: httpx.Client) -> None:
    unknown = client.post("/v1/sweep", json={"yaml": KNOBS, "paramId": "capacty", "values": [1]})
    assert unknown.status_code == 400
    assert [e["path"] for e in unknown.json()["errors"]] == ["paramId"]
    missing = client.post("/v1/sweep", json={"yaml": KNOBS, "values": [1]})
    assert missing.status_code == 400
    assert [e["path"] for e in missing.json()["errors"]] == ["paramId"]
    capture = client.post("/v1/sweep", json={"yaml": KNOBS, "paramId": "capacity", "values": [1],
                                             "captureSeriesIds": ["totl"]})
    assert [e["path"] for e in capture.json()["errors"]] == ["captureSeriesIds[0]"]
    over = client.post("/v1/sweep", json={"yaml": KNOBS, "paramId": "capacity", "values": list(range(1001))})
    assert over.status_code == 400 and [e["path"] for e in over.json()["errors"]] == ["limits.maxPoints"]


def test_reference_sensitivity_gradient(client: httpx.Client) -> None:
    # mean(total) = 2 capacity + mean(extra) = 2 capacity + 2: d/dcapacity = 2, d/dextra (flattened to 1) = 1
    resp = client.post("/v1/sensitivity", json={"yaml": KNOBS, "paramIds": ["extra", "capacity"],
                                                "metricSeriesId": "total", "perturbation": 0.1})
    assert resp.status_code == 200, resp.text
    points = resp.json()["points"]
    assert [p["paramId"] for p in points] == ["capacity", "extra"]  # by |gradient|, descending
    assert points[0]["baseValue"] == 4.0 and points[0]["gradient"] == pytest.approx(2.0)
    assert points[1]["baseValue"] == 1.0 and points[1]["gradient"] == pytest.approx(1.0)
    bad = client.post("/v1/sensitivity", json={"yaml": KNOBS, "paramIds": ["capacity", "total"],
                                               "metricSeriesId": "total"})
    assert [e["path"] for e in bad.json()["errors"]] == ["paramIds[1]"]  # an expr node, not skipped


def test_reference_goal_seek(client: httpx.Client) -> None:
    # mean(total) = 2 capacity + 2 = 12 at capacity 5
    resp = client.post("/v1/goal-seek", json={"yaml": KNOBS, "paramId": "capacity", "metricSeriesId": "total",
                                              "target": 12, "searchLo": 0, "searchHi": 10})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["converged"] is True
    assert body["paramValue"] == pytest.approx(5.0, abs=1e-5)
    assert body["achievedMetricMean"] == pytest.approx(12.0, abs=1e-5)
    assert body["trace"][0]["paramValue"] == 0.0
    no_target = client.post("/v1/goal-seek", json={"yaml": KNOBS, "paramId": "capacity",
                                                   "metricSeriesId": "total", "searchLo": 0, "searchHi": 10})
    assert [e["path"] for e in no_target.json()["errors"]] == ["target"]
    reversed_ = client.post("/v1/goal-seek", json={"yaml": KNOBS, "paramId": "capacity", "metricSeriesId": "total",
                                                   "target": 12, "searchLo": 10, "searchHi": 0})
    assert reversed_.status_code == 400 and [e["path"] for e in reversed_.json()["errors"]] == ["searchHi"]


def test_reference_optimize(client: httpx.Client) -> None:
    # mean(total) = 2 capacity + 2 over capacity in [1, 3]: the minimum is at capacity 1, mean 4
    resp = client.post("/v1/optimize", json={"yaml": KNOBS, "paramIds": ["capacity"], "metricSeriesId": "total",
                                             "objective": "Minimize", "searchRanges": {"capacity": {"lo": 1, "hi": 3}},
                                             "tolerance": 1e-9})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["paramValues"]["capacity"] == pytest.approx(1.0, abs=1e-3)
    assert body["achievedMetricMean"] == pytest.approx(4.0, abs=2e-3)
    missing = client.post("/v1/optimize", json={"yaml": KNOBS, "paramIds": ["capacity"], "metricSeriesId": "total",
                                                "searchRanges": {}})
    assert [e["path"] for e in missing.json()["errors"]] == ["searchRanges.capacity"]


def test_openapi_documents_the_routes_and_the_spec(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/v1/experiments", "/v1/experiments/{exp_id}", "/v1/sweep", "/v1/sensitivity", "/v1/goal-seek",
                 "/v1/optimize"):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert "ExperimentSpec" in schemas
    events = doc["paths"]["/v1/experiments/{exp_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert "Last-Event-ID" in [p["name"] for p in events["parameters"]]
    listing = {p["name"] for p in doc["paths"]["/v1/experiments"]["get"]["parameters"]}
    assert {"search", "q", "kind", "status", "createdAfter", "createdBefore", "sortBy", "sortOrder", "limit",
            "skip", "offset", "modelHash"} <= listing

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    # every reference inside the spec resolves to a component (the kinds' settings among them)
    found = set(refs(schemas["ExperimentSpec"]))
    assert "#/components/schemas/SweepExperiment" in found
    assert all(r.removeprefix("#/components/schemas/") in schemas for r in found)


def test_not_an_experiment_id_is_400_unknown_is_404(client: httpx.Client) -> None:
    assert client.get("/v1/experiments/nope").status_code == 400
    assert client.get("/v1/experiments/exp_20250101T000000Z_ab12cd34").status_code == 404
    assert client.delete("/v1/experiments/exp_20250101T000000Z_ab12cd34").status_code == 404


def test_materialise_a_point_as_a_run(client: httpx.Client) -> None:
    body = wait(client, start(client, WIP_SWEEP, SERVICE_QUEUE))
    resp = client.post(f"/v1/experiments/{body['id']}/points/1/run")
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["runId"]
    assert resp.headers["location"] == f"/v1/runs/{run_id}"
    run = client.get(f"/v1/runs/{run_id}").json()["run"]
    assert run["experiment"] == {"id": body["id"], "point": 1}
    overflow = client.get(f"/v1/runs/{run_id}/series/packing_overflow", params={"format": "json"}).json()
    # point 1 is wipLimit 20: overflow 15, all in bin 2 (see WIP_SWEEP's comment)
    assert overflow["values"] == [0.0, 0.0, 15.0, 0.0, 0.0, 0.0]
    queue = client.get(f"/v1/runs/{run_id}/series/packing_queue", params={"format": "json"}).json()
    assert queue["values"] == body["result"]["series"]["packing_queue"][1]  # the experiment's own numbers
    assert client.post(f"/v1/experiments/{body['id']}/points/3/run").status_code == 404


def test_a_kind_this_build_lacks_is_501(client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowtime.experiments import runner

    monkeypatch.delitem(runner.RUNS, "optimize")
    spec = {"kind": "optimize", "metrics": [{"series": "total"}],
            "parameters": [{"target": "capacity", "range": {"low": 1, "high": 3}}]}
    resp = client.post("/v1/experiments", json={"spec": spec, "model": KNOBS})
    assert resp.status_code == 501 and "optimize" in resp.json()["detail"]
    sync = client.post("/v1/optimize", json={"yaml": KNOBS, "paramIds": ["capacity"], "metricSeriesId": "total",
                                             "searchRanges": {"capacity": {"lo": 1, "hi": 3}}})
    assert sync.status_code == 501 and "optimize" in sync.json()["detail"]


def test_monte_carlo_bands_are_stored(client: httpx.Client, data_dir: Path) -> None:
    # capacity drawn from {1, 3}: total = 2 capacity + [1, 2, 3], so its band p0 is [3, 4, 5] and p100 [7, 8, 9]
    # (40 draws with seed 7 take both values)
    spec = {"kind": "montecarlo", "seed": 7, "capture": ["total"],
            "settings": {"replications": 40, "percentiles": [0, 100]},
            "parameters": [{"target": "capacity", "distribution": {"kind": "discrete", "values": [1, 3],
                                                                   "probabilities": [0.5, 0.5]}}]}
    body = wait(client, start(client, spec, KNOBS))
    assert body["status"] == "done", body
    assert body["result"]["bands"]["total"] == {"p0": [3.0, 4.0, 5.0], "p100": [7.0, 8.0, 9.0]}
    with np.load(data_dir / "experiments" / body["id"] / "bands.npz", allow_pickle=False) as stored:
        assert stored["total"].tolist() == [[3.0, 4.0, 5.0], [7.0, 8.0, 9.0]]
        assert stored["__percentiles__"].tolist() == [0.0, 100.0]


def test_an_experiment_that_fails_while_running_says_where(client: httpx.Client) -> None:
    # mean(total) = 2 capacity + 2 is 4 to 8 on [1, 3]: a target of 100 is not bracketed
    spec = {"kind": "goalseek", "metrics": [{"series": "total"}], "settings": {"target": 100},
            "parameters": [{"target": "capacity", "range": {"low": 1, "high": 3}}]}
    body = wait(client, start(client, spec, KNOBS))
    assert body["status"] == "failed"
    assert [e["path"] for e in body["error"]["errors"]] == ["parameters[0].range"]
    assert "result" not in body


def test_the_detail_carries_the_models_grid_even_for_a_folder_stored_without_it(client: httpx.Client,
                                                                                  data_dir: Path) -> None:
    model = KNOBS.replace("binUnit: hours}", "binUnit: hours, start: '2025-03-01T06:00:00Z'}")
    spec = {"kind": "sweep", "parameters": [{"target": "capacity", "values": [1, 2]}], "metrics": [{"series": "total"}]}
    body = wait(client, start(client, spec, model))
    want = {"bins": 3, "binSize": 1, "binUnit": "hours", "binMinutes": 60, "startTimeUtc": "2025-03-01T06:00:00Z"}
    assert body["status"] == "done" and body["grid"] == want
    provenance = data_dir / "experiments" / body["id"] / "provenance.json"
    kept = json.loads(provenance.read_text(encoding="utf-8"))
    assert kept.pop("grid") == want
    provenance.write_text(json.dumps(kept), encoding="utf-8")  # as stored before grids were recorded
    assert client.get(f"/v1/experiments/{body['id']}").json()["grid"] == want
