"""The state API (/v1/runs/{id}/graph, /state, /state_window, /metrics) against a real server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.engine_server import serve_engine
from typer.testing import CliRunner

from flowtime.artifacts import layout
from flowtime.artifacts.writer import write_run
from flowtime.cli import app
from flowtime.engine import evaluate
from flowtime.errors import QueryError
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings

PROBLEM = "application/problem+json"
MODELS = Path(__file__).parent.parent / "artifacts" / "models"
EXAMPLES = Path(__file__).parent.parent.parent / "examples"
LONG_BINS = 10_000


def store(root: Path, text: str) -> str:
    loaded = load_model(text)
    return write_run(loaded, evaluate(loaded.model), root).run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("state-data")
    values = [2.0] * LONG_BINS
    values[4_321] = 900.0
    values[9_999] = -1.0
    long_text = (MODELS / "long-template.yaml").read_text().replace("BINS", str(LONG_BINS)).replace(
        "VALUES", json.dumps(values))
    plain = "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1, 2, 3]}\n"
    ids = {"two": store(root, (MODELS / "two-stage.yaml").read_text()), "long": store(root, long_text),
           "plain": store(root, plain), "hub": store(root, (EXAMPLES / "classes-router.yaml").read_text())}
    return root, ids


@pytest.fixture(scope="module")
def client(runs: tuple[Path, dict[str, str]]) -> Iterator[httpx.Client]:
    with serve_engine(EngineSettings(data_dir=runs[0])) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def ids(runs: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return runs[1]


def problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = r.json()
    return body


def test_state_at_a_bin_has_hand_computed_numbers(client: httpx.Client, ids: dict[str, str]) -> None:
    r = client.get(f"/v1/runs/{ids['two']}/state", params={"bin": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["bin"] == {"index": 1, "startUtc": "2025-01-01T01:00:00Z", "endUtc": "2025-01-01T02:00:00Z",
                           "durationMinutes": 60}
    assert body["metadata"]["runId"] == ids["two"] and body["metadata"]["title"] == "Two stages"
    intake, pack = body["nodes"]
    # bin 1: arrivals 20, served MIN(20, 20) = 20, capacity 20 -> utilization 1.0 (red)
    assert intake["metrics"] == {"arrivals": 20.0, "served": 20.0, "capacity": 20.0}
    assert intake["derived"]["utilization"] == 1.0 and intake["color"] == "red"
    # the buffer: Q = max(0, 0 + 20 - 15) = 5; queue time 5 / 15 h = 1,200,000 ms = 20 minutes
    assert pack["metrics"]["queue"] == 5.0
    assert pack["derived"]["queueTimeMs"] == pytest.approx(1_200_000.0)
    assert pack["derived"]["latencyMinutes"] == pytest.approx(20.0)
    assert body["edges"][0]["flowVolume"] == 20.0
    same = client.get(f"/v1/runs/{ids['two']}/state", params={"binIndex": 1}).json()
    assert same["nodes"] == body["nodes"]


def test_undefined_metrics_are_null(client: httpx.Client, ids: dict[str, str]) -> None:
    pack = client.get(f"/v1/runs/{ids['two']}/state?bin=0").json()["nodes"][1]
    # Pack has no capacity: no utilization at all; queue 0 over 15 served: latency 0, defined
    assert "utilization" not in pack["derived"] and pack["derived"]["latencyMinutes"] == 0.0
    text = client.get(f"/v1/runs/{ids['two']}/state_window?start=0&end=3").text
    assert "NaN" not in text


def test_a_bin_outside_the_run_is_a_400_naming_the_parameter(client: httpx.Client, ids: dict[str, str]) -> None:
    body = problem(client.get(f"/v1/runs/{ids['two']}/state", params={"bin": 4}), 400)
    assert body["parameter"] == "bin" and body["validRange"] == "0..3"
    assert "bins are 0..3" in str(body["detail"])
    assert problem(client.get(f"/v1/runs/{ids['two']}/state", params={"binIndex": -1}), 400)["parameter"] == "bin"
    assert problem(client.get(f"/v1/runs/{ids['two']}/state"), 400)["parameter"] == "bin"
    assert problem(client.get(f"/v1/runs/{ids['two']}/state?bin=1&binIndex=2"), 400)["parameter"] == "bin"
    problem(client.get(f"/v1/runs/{ids['two']}/state?bin=x"), 422)


def test_unknown_runs_and_runs_without_topology(client: httpx.Client, ids: dict[str, str]) -> None:
    problem(client.get("/v1/runs/run_20990101T000000Z_00000000/state?bin=0"), 404)
    problem(client.get("/v1/runs/not-a-run/graph"), 400)
    body = problem(client.get(f"/v1/runs/{ids['plain']}/state?bin=0"), 409)
    assert "has no topology" in str(body["detail"])
    problem(client.get(f"/v1/runs/{ids['plain']}/state_window"), 409)
    graph = client.get(f"/v1/runs/{ids['plain']}/graph").json()
    assert [(n["id"], n["kind"]) for n in graph["nodes"]] == [("a", "const")] and graph["edges"] == []


def test_the_graph(client: httpx.Client, ids: dict[str, str]) -> None:
    body = client.get(f"/v1/runs/{ids['two']}/graph").json()
    assert [(n["id"], n["category"], n["ui"]["layer"], n["ui"]["order"]) for n in body["nodes"]] == [
        ("Intake", "service", 0, 0), ("Pack", "service", 1, 0)]
    assert body["nodes"][1]["initialCondition"] == {"queueDepth": 0.0}
    assert [(e["id"], e["from"], e["to"], e["edgeType"]) for e in body["edges"]] == [
        ("intake_to_pack", "Intake", "Pack", "throughput")]
    full = client.get(f"/v1/runs/{ids['two']}/graph?mode=full").json()
    kinds = {n["id"]: n["kind"] for n in full["nodes"]}
    assert kinds["arrivals"] == "const" and kinds["served"] == "expr" and kinds["Intake"] == "service"
    problem(client.get(f"/v1/runs/{ids['two']}/graph?mode=everything"), 422)


def test_a_window_of_a_small_run_is_every_bin(client: httpx.Client, ids: dict[str, str]) -> None:
    body = client.get(f"/v1/runs/{ids['two']}/state_window", params={"startBin": 1, "endBin": 3}).json()
    assert body["window"] == {"startBin": 1, "endBin": 3, "binCount": 3}
    assert body["downsampled"] is None
    assert body["timestampsUtc"] == ["2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z", "2025-01-01T03:00:00Z"]
    intake = body["nodes"][0]
    assert intake["series"]["utilization"] == [1.0, 1.0, 0.0]  # 20/20, 20/20, 0/20
    assert body["colorLegend"][intake["color"][0]] == "red"
    pack = client.get(f"/v1/runs/{ids['two']}/state_window?nodes=Pack").json()
    assert [n["id"] for n in pack["nodes"]] == ["Pack"]
    assert pack["nodes"][0]["series"]["queue"] == [0.0, 5.0, 10.0, 0.0]


def test_a_10000_bin_window_is_downsampled_and_keeps_min_and_max(client: httpx.Client, ids: dict[str, str]) -> None:
    body = client.get(f"/v1/runs/{ids['long']}/state_window").json()
    assert body["window"] == {"startBin": 0, "endBin": LONG_BINS - 1, "binCount": LONG_BINS}
    # at most 2,000 points per series: 1,000 buckets of 10 bins, two points each
    assert body["downsampled"] == {"bucketBins": 10, "points": 2_000, "buckets": 1_000}
    arrivals = body["nodes"][0]["series"]["arrivals"]
    assert len(arrivals) == 2_000 and len(body["bins"]) == 2_000 and len(body["timestampsUtc"]) == 2_000
    assert max(arrivals) == 900.0 and min(arrivals) == -1.0
    # the bucket of bin 4321 is 4320..4329: 2 (first, at 4320) then the spike (at 4329)
    i = arrivals.index(900.0)
    assert (body["bins"][i - 1], body["bins"][i]) == (4_320, 4_329) and arrivals[i - 1] == 2.0
    few = client.get(f"/v1/runs/{ids['long']}/state_window?start=4000&end=4999&max_points=10").json()
    assert few["downsampled"]["bucketBins"] == 200 and max(few["nodes"][0]["series"]["arrivals"]) == 900.0
    whole = client.get(f"/v1/runs/{ids['long']}/state_window?start=4300&end=4339").json()
    assert whole["downsampled"] is None and whole["nodes"][0]["series"]["arrivals"][21] == 900.0


def test_a_window_past_the_end_or_backwards_is_a_400(client: httpx.Client, ids: dict[str, str]) -> None:
    url = f"/v1/runs/{ids['long']}/state_window"
    body = problem(client.get(url, params={"start": 9_000, "end": 10_000}), 400)
    assert body["parameter"] == "end" and body["validRange"] == "0..9999"
    assert problem(client.get(url, params={"startBin": 10_000}), 400)["parameter"] == "start"
    assert problem(client.get(url, params={"start": -5}), 400)["parameter"] == "start"
    body = problem(client.get(url, params={"start": 5, "end": 4}), 400)
    assert body["parameter"] == "start" and "after end=4" in str(body["detail"])
    assert problem(client.get(url, params={"max_points": 1}), 400)["parameter"] == "max_points"
    assert problem(client.get(url, params={"nodes": "Nope"}), 400)["parameter"] == "nodes"


def test_metrics_per_node(client: httpx.Client, ids: dict[str, str]) -> None:
    body = client.get(f"/v1/runs/{ids['two']}/metrics").json()
    intake = body["nodes"][0]
    # utilization [0.5, 1, 1, 0]: mean 0.625, p95 1 (numpy's linear interpolation between the two 1s), max 1
    assert intake["utilization"] == {"mean": 0.625, "p95": 1.0, "max": 1.0, "bins": 4}
    assert intake["totals"] == {"arrivals": 60.0, "served": 50.0, "errors": None}
    assert body["services"][0] | {"mini": None} == {"id": "Intake", "slaPct": 0.75, "binsMet": 3, "binsTotal": 4,
                                                    "mini": None, "miniBucketBins": 1}
    window = client.get(f"/v1/runs/{ids['two']}/metrics", params={"startBin": 2, "endBin": 2}).json()
    # bin 2: served 20 of 30 arrivals = 0.667 < 0.95: not met
    assert window["services"][0]["binsMet"] == 0 and window["services"][0]["binsTotal"] == 1
    problem(client.get(f"/v1/runs/{ids['two']}/metrics?end=4"), 400)


def test_the_openapi_document_lists_the_state_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("graph", "state", "state_window", "metrics"):
        op = paths[f"/v1/runs/{{run_id}}/{path}"]["get"]
        assert op["summary"] and "400" in op["responses"] and "404" in op["responses"]


def test_a_run_written_before_the_analyser_opens(client: httpx.Client, runs: tuple[Path, dict[str, str]]) -> None:
    """A run folder as an older engine left it: no coded findings, no derived series in its index."""
    root, _ = runs
    run_id = store(root, (MODELS / "two-stage.yaml").read_text().replace("Two stages", "Old"))
    folder = root / run_id
    run = json.loads((folder / layout.RUN_JSON).read_text())
    run["warnings"] = []
    (folder / layout.RUN_JSON).write_text(json.dumps(run))
    index = json.loads((folder / layout.SERIES_DIR / layout.INDEX).read_text())
    model_nodes = {"arrivals", "capacity", "served", "pack_rate", "pack_queue", "edge_intake_to_pack_flowVolume"}
    index["series"] = [e for e in index["series"] if e["nodeId"] in model_nodes]
    (folder / layout.SERIES_DIR / layout.INDEX).write_text(json.dumps(index))
    body = client.get(f"/v1/runs/{run_id}/state?bin=2").json()
    assert body["metadata"]["findingsSource"] == "analysed"
    assert body["nodes"][1]["derived"]["latencyMinutes"] == pytest.approx(40.0)  # 10 / 15 x 60


def test_runs_show_bin_prints_the_state_at_one_bin(tmp_path: Path) -> None:
    data = tmp_path
    run_id = store(data / "engine", (MODELS / "two-stage.yaml").read_text())
    r = CliRunner().invoke(app, ["runs", "show", run_id, "--bin", "2", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"{run_id} at bin 2 (60 minutes, 2025-01-01T02:00:00Z to 2025-01-01T03:00:00Z)"
    assert lines[1].split() == ["node", "kind", "arrivals", "served", "queue", "utilization", "latency", "(min)",
                                "colour", "warnings"]
    # Intake: 30 arrive, 20 served of 20 capacity; Pack: 20 arrive, 15 served, 10 queued -> 40 minutes
    assert lines[2].split() == ["Intake", "service", "30", "20", "-", "1", "-", "red"]
    assert lines[3].split() == ["Pack", "serviceWithBuffer", "20", "15", "10", "-", "40", "gray"]
    # the analyser's notes (info, about the model or the whole run) once, under the table; Pack's arrivals
    # [10, 20, 20, 0] average 15 then 10 over the halves: a third apart, past the 25 % of non_stationary
    assert lines[4:] == ["info: Intake missing_processing_time_series, Intake missing_served_count_series, "
                         "Pack non_stationary"]
    r = CliRunner().invoke(app, ["runs", "show", run_id, "--bin", "4", "--data-dir", str(data)])
    assert isinstance(r.exception, QueryError) and "bins are 0..3" in str(r.exception)  # main() prints it
    r = CliRunner().invoke(app, ["runs", "show", run_id, "--bin", "0", "--json", "--data-dir", str(data)])
    assert json.loads(r.stdout)["nodes"][0]["derived"]["utilization"] == 0.5  # 10 / 20


def test_the_openapi_schemas_describe_the_answers(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    window = paths["/v1/runs/{run_id}/state_window"]["get"]["responses"]["200"]["content"]["application/json"]
    assert set(window["schema"]["properties"]) >= {"window", "downsampled", "bins", "timestampsUtc", "nodes"}
    state = paths["/v1/runs/{run_id}/state"]["get"]
    assert {p["name"] for p in state["parameters"]} >= {"bin", "binIndex"}


def test_state_by_class_over_http(client: httpx.Client, ids: dict[str, str]) -> None:
    body = client.get(f"/v1/runs/{ids['hub']}/state", params={"bin": 3, "classIds": "Airport"}).json()
    assert body["metadata"]["classCoverage"] == "full"
    assert [c["id"] for c in body["metadata"]["classes"]] == ["Airport", "Downtown"]
    hub = body["nodes"][0]
    # bin 3: backlog 32 (8 a bin), a quarter Airport: 8; served 8 of Airport's 10 -> 0.8; 8/8 h = 60 min
    assert hub["byClass"] == {"Airport": {"arrivals": 10.0, "served": 8.0, "queue": 8.0, "throughputRatio": 0.8,
                                          "queueTimeMs": 3_600_000.0, "latencyMinutes": 60.0}}
    assert hub["classTruth"] == {"coverage": "full", "hasSpecificClasses": True, "hasFallbackClass": False}
    window = client.get(f"/v1/runs/{ids['hub']}/state_window").json()
    assert window["nodes"][0]["byClass"]["Airport"]["queue"] == [2.0, 4.0, 6.0, 8.0]
    assert window["nodes"][0]["byClass"]["Downtown"]["queue"] == [6.0, 12.0, 18.0, 24.0]
    bad = problem(client.get(f"/v1/runs/{ids['hub']}/state_window?classIds=Airport,Harbour"), 400)
    assert bad["parameter"] == "classIds" and bad["validRange"] == "Airport, Downtown"
    assert problem(client.get(f"/v1/runs/{ids['two']}/state?bin=0&classIds=A"), 400)["parameter"] == "classIds"


def test_full_mode_and_edge_filters_over_http(client: httpx.Client, ids: dict[str, str]) -> None:
    full = client.get(f"/v1/runs/{ids['hub']}/state_window?mode=full&nodes=Hub,hub_in").json()
    assert full["mode"] == "full" and [n["id"] for n in full["nodes"]] == ["Hub", "hub_in"]
    assert full["nodes"][1]["series"] == {"values": [40.0] * 4}  # 10 Airport + 30 Downtown
    state = client.get(f"/v1/runs/{ids['hub']}/state?bin=0&mode=full").json()
    assert {n["id"]: n["metrics"] for n in state["nodes"]}["hub_queue"] == {"values": 8.0}  # 40 in, 32 out
    assert not any("#" in n["id"] for n in state["nodes"])
    problem(client.get(f"/v1/runs/{ids['hub']}/state?bin=0&mode=everything"), 422)
    edges = client.get(f"/v1/runs/{ids['two']}/state_window?edgeIds=intake_to_pack&edgeMetrics=flowVolume").json()
    assert edges["edges"][0]["series"] == {"flowVolume": [10.0, 20.0, 20.0, 0.0]}  # MIN(arrivals, 20)
    bad = problem(client.get(f"/v1/runs/{ids['two']}/state_window?edgeIds=pack_to_nowhere"), 400)
    assert bad["parameter"] == "edgeIds" and bad["validRange"] == "intake_to_pack"
    bad = problem(client.get(f"/v1/runs/{ids['two']}/state_window?edgeMetrics=flowVolume,speed"), 400)
    assert bad["parameter"] == "edgeMetrics" and "retryVolume" in str(bad["validRange"])


def test_the_openapi_document_describes_classes_modes_and_filters(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    window = paths["/v1/runs/{run_id}/state_window"]["get"]
    assert {p["name"] for p in window["parameters"]} >= {"mode", "classIds", "edgeIds", "edgeMetrics"}
    node = window["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["nodes"]["items"]
    assert {"classTruth", "byClass"} <= set(node["properties"])
    state = paths["/v1/runs/{run_id}/state"]["get"]
    assert {p["name"] for p in state["parameters"]} >= {"mode", "classIds"}
    truth = state["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["nodes"]["items"]
    assert truth["properties"]["classTruth"]["properties"]["coverage"]["enum"] == ["full", "partial", "missing"]


def test_a_run_just_made_is_opened_from_the_model_in_hand_with_the_same_answers(tmp_path: Path) -> None:
    """
    POST /v1/run opens the new run's state after answering, from the model it computed (its spec is not
    parsed again); every state view then equals, byte for byte, what an Engine reading the folder answers.
    """
    import time

    from tests.servers import serve

    from flowtime.api.engine import create_engine_app

    text = (EXAMPLES / "classes-router.yaml").read_text()
    views = ["graph?mode=full", "state?bin=3&mode=full", "state_window", "metrics"]
    app = create_engine_app(EngineSettings(data_dir=tmp_path))
    with serve(app, "seeding-engine") as url, httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/run?series=false&set=hub_capacity=7", content=text, headers={"content-type": "text/yaml"})
        assert r.status_code == 200, r.text
        run_id = r.json()["runId"]
        cache = app.state.state_cache
        deadline = time.monotonic() + 20
        while cache.seeded == 0:  # opened after the answer was sent
            assert time.monotonic() < deadline, "the run's state was not opened after the run"
            time.sleep(0.01)
        seeded = [c.get(f"/v1/runs/{run_id}/{v}").content for v in views]
        assert (cache.seeded, cache.loads) == (1, 0)  # every view was answered from the seeded state
    fresh = create_engine_app(EngineSettings(data_dir=tmp_path))
    with serve(fresh, "reading-engine") as url, httpx.Client(base_url=url, timeout=30) as c:
        read = [c.get(f"/v1/runs/{run_id}/{v}").content for v in views]
        assert fresh.state.state_cache.loads == 1
    assert seeded == read
