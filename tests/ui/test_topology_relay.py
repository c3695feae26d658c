"""
The topology page's server side against a real Engine on loopback: the state views relayed byte for byte,
their errors as problem+json, the vendored layout library served as pinned, and the run page's link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import EngineAndUi, closed_port_url, engine_and_ui, serve

from flowtime.settings import UiSettings
from flowtime.ui.app import create_ui_app

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src" / "flowtime" / "ui" / "static" / "vendor"
QUEUE_MODEL = (ROOT / "examples" / "service-queue.yaml").read_text()
PLAIN_MODEL = (ROOT / "examples" / "hello.yaml").read_text()


class Services(EngineAndUi):
    def __init__(self, engine: str, ui: str) -> None:
        super().__init__(engine, ui)
        self.http = httpx.Client(base_url=ui, timeout=30)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with engine_and_ui(tmp_path_factory.mktemp("engine")) as (engine, ui):
        services = Services(engine, ui)
        yield services
        services.http.close()


@pytest.fixture(scope="module")
def queue_run(services: Services) -> str:
    return services.run(QUEUE_MODEL)


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize("view,query", [
    ("graph", "mode=full"),
    ("state", "bin=3&mode=full"),
    ("state_window", "startBin=1&endBin=4"),
    ("metrics", "start=0&end=5"),
])
def test_each_state_view_is_relayed_byte_for_byte(services: Services, queue_run: str, view: str, query: str) -> None:
    ours = services.http.get(f"/runs/{queue_run}/state/{view}.json?{query}")
    theirs = httpx.get(f"{services.engine}/v1/runs/{queue_run}/{view}?{query}")
    assert ours.status_code == 200
    assert ours.headers["content-type"].startswith("application/json")
    assert ours.content == theirs.content


def test_parameters_outside_the_allow_list_are_not_passed_on(services: Services, queue_run: str) -> None:
    # `nodes` and `max_points` are passed for state_window (the inspector asks for one node's window);
    # anything else is dropped before the Engine sees it.
    ours = services.http.get(f"/runs/{queue_run}/state/state_window.json?nodes=Packing&max_points=2&evil=1")
    assert ours.status_code == 200
    body = ours.json()
    assert [n["id"] for n in body["nodes"]] == ["Packing"]
    assert body["downsampled"]["points"] == 2
    theirs = httpx.get(f"{services.engine}/v1/runs/{queue_run}/state_window?nodes=Packing&max_points=2")
    assert ours.content == theirs.content
    unknown = problem(services.http.get(f"/runs/{queue_run}/state/state_window.json?nodes=NoSuchNode"), 400)
    assert "NoSuchNode" in unknown["detail"]


def test_a_bin_outside_the_run_is_the_engines_400_as_problem_json(services: Services, queue_run: str) -> None:
    body = problem(services.http.get(f"/runs/{queue_run}/state/state.json?bin=6"), 400)
    engine = httpx.get(f"{services.engine}/v1/runs/{queue_run}/state?bin=6").json()
    assert body["detail"] == engine["detail"]
    assert "6" in body["detail"]


def test_an_unknown_view_or_run_is_a_404_problem(services: Services, queue_run: str) -> None:
    assert "not a state view" in problem(services.http.get(f"/runs/{queue_run}/state/series.json"), 404)["detail"]
    problem(services.http.get("/runs/run_20990101T000000Z_deadbeef/state/graph.json"), 404)


def test_a_run_without_topology_answers_409_for_state(services: Services) -> None:
    plain = services.run(PLAIN_MODEL)
    graph = services.http.get(f"/runs/{plain}/state/graph.json?mode=full").json()
    assert graph["nodes"] and not any("semantics" in n for n in graph["nodes"])
    problem(services.http.get(f"/runs/{plain}/state/state_window.json"), 409)


def test_an_unreachable_engine_is_a_503_problem_for_scripts() -> None:
    with serve(create_ui_app(UiSettings(engine_url=closed_port_url(), sim_url=closed_port_url())), "ui") as ui:
        body = problem(httpx.get(f"{ui}/runs/run_20990101T000000Z_deadbeef/state/graph.json"), 503)
    assert "Engine" in body["title"]


def test_the_vendored_files_match_their_pins() -> None:
    pins = json.loads((VENDOR / "vendored.json").read_text())
    assert pins["dagre"]["package"] == "@dagrejs/dagre"
    for spec in pins.values():
        assert spec["version"] in spec["tarball"]
        for pin in spec["files"].values():
            assert hashlib.sha256((VENDOR / pin["to"]).read_bytes()).hexdigest() == pin["sha256"], pin["to"]
    assert "MIT License" in (VENDOR / "dagre" / "LICENSE").read_text() or \
        "Permission is hereby granted" in (VENDOR / "dagre" / "LICENSE").read_text()


def test_the_topology_page_loads_the_layout_library_it_serves(services: Services, queue_run: str) -> None:
    page = services.http.get(f"/runs/{queue_run}/topology")
    assert page.status_code == 200
    scripts = ["/static/viewstate.js", "/static/vendor/dagre/dagre.min.js", "/static/topology-layout.js",
               "/static/topology.js", "/static/scrubber.js"]
    positions = [page.text.index(f'<script src="{s}" defer>') for s in scripts]
    assert positions == sorted(positions)
    served = services.http.get("/static/vendor/dagre/dagre.min.js")
    assert served.status_code == 200
    assert served.content == (VENDOR / "dagre" / "dagre.min.js").read_bytes()


def test_the_run_page_links_the_topology_only_for_runs_with_one(services: Services, queue_run: str) -> None:
    assert f'href="/runs/{queue_run}/topology" id="topology-link"' in services.http.get(f"/runs/{queue_run}").text
    plain = services.run(PLAIN_MODEL)
    assert 'id="topology-link"' not in services.http.get(f"/runs/{plain}").text
