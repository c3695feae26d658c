"""
The UI's what-if socket (/runs/{id}/whatif/ws) against a real Engine, both under uvicorn on loopback:
the UI opens the Engine session, relays frames both ways, answers "save" itself, refuses other sites'
pages, and deletes the Engine session when the browser goes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import closed_port_url, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from flowtime.api.engine import create_engine_app
from flowtime.engine import plan
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings, UiSettings
from flowtime.ui.app import create_ui_app

SPIKE = (Path(__file__).parent / "models" / "topology-spike.yaml").read_text()
TOKEN = "t0ken"


class Services:
    def __init__(self, engine: str, ui: str) -> None:
        self.engine, self.ui = engine, ui
        self.ws = ui.replace("http://", "ws://")
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    def run(self, text: str) -> str:
        r = httpx.post(f"{self.engine}/v1/run", content=text.encode(),
                       headers={**self.auth, "Content-Type": "text/yaml"})
        assert r.status_code == 200, r.text[:2000]
        return str(r.json()["runId"])

    def sessions(self) -> int:
        return len(self.engine_app.state.whatif)

    engine_app: Any = None


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    app = create_engine_app(EngineSettings(data_dir=tmp_path_factory.mktemp("engine"), api_token=TOKEN))
    with serve(app, "engine") as engine, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=closed_port_url(), api_token=TOKEN)), "ui") as ui:
        s = Services(engine, ui)
        s.engine_app = app
        yield s


@pytest.fixture(scope="module")
def spike(services: Services) -> str:
    return services.run(SPIKE)


def receive(ws: ClientConnection) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return got


def ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    return receive(ws)


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_ui_relays_moves_answers_located_errors_and_saves(services: Services, spike: str) -> None:
    origin = {"Origin": services.ui}
    with connect(f"{services.ws}/runs/{spike}/whatif/ws?series=pack_served", additional_headers=origin,
                 open_timeout=10) as ws:
        session = receive(ws)
        assert session["type"] == "session" and session["base"]["runId"] == spike
        assert "topology.Pack.capacity" in [p["id"] for p in session["parameters"]]
        assert services.sessions() == 1
        m = ask(ws, {"seq": 1, "set": {"topology.Pack.capacity": 80}, "bin": 7})
        # Hour 7: 95 arrive, Pack serves its capacity 80 and keeps 15 (hand computed; the core agrees below).
        direct = plan(load_model(SPIKE).model).evaluate(set={"pack_cap": 80})
        assert m["seq"] == 1 and m["series"]["pack_served"] == direct["pack_served"].tolist()
        assert m["series"]["pack_served"][7] == 80.0
        assert m["state"]["nodes"]["Pack"]["metrics"]["queue"] == 15.0
        bad = ask(ws, {"seq": 2, "set": {"topology.Pack.capacty": 1}})
        assert bad["seq"] == 2 and [e["path"] for e in bad["error"]["errors"]] == ["set.topology.Pack.capacty"]
        assert "topology.Pack.capacity" in bad["error"]["errors"][0]["message"]  # the suggestion
        high = ask(ws, {"seq": 3, "set": {"topology.Pack.capacity": 181}})
        assert [e["path"] for e in high["error"]["errors"]] == ["set.topology.Pack.capacity"]
        saved = ask(ws, {"seq": 4, "save": True})
        assert saved["type"] == "saved" and saved["seq"] == 4 and saved["url"] == f"/runs/{saved['runId']}"
        assert saved["parameters"] == {"topology.Pack.capacity": 80.0}
        assert ask(ws, {"seq": 5, "set": {}})["values"]["topology.Pack.capacity"] == 80.0  # still open
    wait_for(lambda: services.sessions() == 0, "the Engine session outlived its page")
    detail = httpx.get(f"{services.engine}/v1/runs/{saved['runId']}", headers=services.auth).json()
    assert detail["run"]["overrides"] == {"pack_cap": 80.0}
    assert detail["provenance"]["whatif"]["baseRunId"] == spike
    page = httpx.get(f"{services.ui}{saved['url']}")
    assert page.status_code == 200 and saved["runId"] in page.text


def test_another_sites_page_is_refused_and_an_unknown_run_is_reported(services: Services, spike: str) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(
            f"{services.ws}/runs/{spike}/whatif/ws", additional_headers={"Origin": "http://evil.example"},
            open_timeout=10):
        pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus), connect(f"{services.ws}/runs/{spike}/whatif/ws",
                                               additional_headers={"Host": "evil.example"}, open_timeout=10):
        pass
    missing = "run_20250101T000000Z_ab12cd34"
    with connect(f"{services.ws}/runs/{missing}/whatif/ws", additional_headers={"Origin": services.ui},
                 open_timeout=10) as ws:
        e = receive(ws)
        assert e["type"] == "error" and e["error"]["status"] == 404
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 1011
    assert services.sessions() == 0


def test_the_what_if_page_is_linked_from_the_run_page(services: Services, spike: str) -> None:
    run_page = httpx.get(f"{services.ui}/runs/{spike}").text
    assert f'href="/runs/{spike}/whatif" id="whatif-link"' in run_page
    page = httpx.get(f"{services.ui}/runs/{spike}/whatif")
    assert page.status_code == 200 and "/static/whatif.js" in page.text
    assert httpx.get(f"{services.ui}/runs/run_20250101T000000Z_ab12cd34/whatif").status_code == 404
