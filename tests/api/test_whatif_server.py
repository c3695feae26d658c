"""
WS /v1/whatif/{id} on a real Engine: uvicorn on loopback with the configuration ``flowtime serve`` uses
(``server_config``: the guarded h11 protocol plus the websockets sans-I/O protocol), driven by the
``websockets`` client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from flowtime.api.engine import create_engine_app
from flowtime.api.factories import server_config
from flowtime.engine import plan
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings

ROUTED = (Path(__file__).resolve().parents[1] / "experiments" / "whatif" / "model.yaml").read_text(encoding="utf-8")


@contextmanager
def production_server(settings: EngineSettings) -> Iterator[str]:
    server = uvicorn.Server(server_config(create_engine_app(settings), host="127.0.0.1", port=0,
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, name="engine-ws", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Engine did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[str]:
    with production_server(EngineSettings(data_dir=tmp_path, api_token="s3cret")) as hostport:
        yield hostport


AUTH = {"Authorization": "Bearer s3cret"}


def open_session(hostport: str) -> dict[str, Any]:
    r = httpx.post(f"http://{hostport}/v1/whatif", content=ROUTED, headers={**AUTH, "content-type": "text/yaml"})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return answer


def test_a_real_engine_answers_what_if_messages_over_a_websocket(engine: str) -> None:
    s = open_session(engine)
    with connect(f"ws://{engine}{s['websocket']}", additional_headers=AUTH, open_timeout=10) as ws:
        m = ask(ws, {"seq": 1, "set": {"topology.Svc.capacity": 5}, "bin": 2})
        # capacity 5 x parallelism 2 = 10 per bin, whatever the demand [10, 20, 30, 40]
        assert m["seq"] == 1 and m["series"]["served"] == [10.0, 10.0, 10.0, 10.0]
        assert m["state"]["nodes"]["Svc"]["metrics"]["utilization"] == 1.0
        bad = ask(ws, {"seq": 2, "set": {"topology.Svc.capacity": 1000, "demnd": 1}})
        assert bad["seq"] == 2 and bad["error"]["status"] == 400
        assert sorted(p["path"] for p in bad["error"]["errors"]) == ["set.demnd", "set.topology.Svc.capacity"]
        m = ask(ws, {"seq": 3, "set": {"demand": 0.5}})  # the session survives; demand is a profile, scaled
    direct = plan(load_model(ROUTED).model).evaluate(set={"cap": 5, "demand": [5.0, 10.0, 15.0, 20.0]})
    assert m["seq"] == 3 and m["series"]["served"] == direct["served"].tolist() == [5.0, 10.0, 10.0, 10.0]


def test_the_real_engine_refuses_a_handshake_without_the_token_or_from_another_site(engine: str) -> None:
    s = open_session(engine)
    url = f"ws://{engine}{s['websocket']}"
    for headers in ({}, {**AUTH, "Origin": "http://evil.example"}):
        with pytest.raises(InvalidStatus), connect(url, additional_headers=headers, open_timeout=10):
            pass
    # a session that is gone: the socket opens, says why, and closes with 4404
    with connect(f"ws://{engine}/v1/whatif/wi_{'0' * 24}", additional_headers=AUTH, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["error"]["status"] == 404
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 4404


def test_a_session_opened_by_the_sockets_first_frame_lives_as_long_as_the_socket(engine: str) -> None:
    url = f"ws://{engine}/v1/whatif"
    with connect(url, additional_headers=AUTH, open_timeout=10) as ws:
        ws.send(json.dumps({"yaml": ROUTED}))
        opened = json.loads(ws.recv(timeout=30))
        assert opened["type"] == "session" and opened["result"]["series"]["served"] == [10.0, 20.0, 30.0, 30.0]
        session = opened["sessionId"]
        assert httpx.get(f"http://{engine}/v1/whatif/{session}").status_code == 200
        m = ask(ws, {"seq": 1, "set": {"topology.Svc.capacity": 5}})
        assert m["series"]["served"] == [10.0, 10.0, 10.0, 10.0]
        bad = ask(ws, {"seq": 2, "save": "yes"})
        assert bad["seq"] == 2 and [p["path"] for p in bad["error"]["errors"]] == ["save"]
        saved = ask(ws, {"seq": 3, "save": True})
        assert saved["type"] == "saved" and saved["overrides"] == {"cap": 5.0}
        stored = httpx.get(f"http://{engine}/v1/runs/{saved['runId']}/series/served",
                           headers={"accept": "application/json"}).json()
        assert stored["values"] == [10.0, 10.0, 10.0, 10.0]
    deadline = time.monotonic() + 10  # closed with the socket
    while httpx.get(f"http://{engine}/v1/whatif/{session}").status_code != 404:
        assert time.monotonic() < deadline, "the session outlived its socket"
        time.sleep(0.02)


def test_a_first_frame_that_opens_nothing_is_answered_and_closed(engine: str) -> None:
    for frame, path in (("not json", "body"), (json.dumps({"runId": "run_20990101T000000Z_deadbeef"}), None),
                        (json.dumps({"yaml": "schemaVersion: 1\ngrid: {bins: 0}\n"}), None)):
        with connect(f"ws://{engine}/v1/whatif", additional_headers=AUTH, open_timeout=10) as ws:
            ws.send(frame)
            answer = json.loads(ws.recv(timeout=30))
            assert 400 <= answer["error"]["status"] < 500, answer
            if path is not None:
                assert [p["path"] for p in answer["error"]["errors"]] == [path]
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
        assert ws.close_code == 4400
    with pytest.raises(InvalidStatus), connect(f"ws://{engine}/v1/whatif", open_timeout=10):
        pass  # no token: refused at the handshake
