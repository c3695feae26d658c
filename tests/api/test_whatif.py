"""
/v1/whatif: sessions over a frozen plan, the WebSocket protocol, save as a run.

The WebSocket is driven in process here (Starlette's TestClient: exact control of
timing for the coalescing test); tests/api/test_whatif_server.py drives it on a real
uvicorn Engine, and tests/ui/test_whatif_browser.py through the UI from Chromium.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from flowtime.api.engine import create_engine_app
from flowtime.api.whatif_sessions import Sessions
from flowtime.engine import plan
from flowtime.errors import SessionNotFound, SessionsFull
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx, raised once on import
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
SERVICE_QUEUE = (ROOT / "examples" / "service-queue.yaml").read_text(encoding="utf-8")
ROUTED = (ROOT / "tests" / "experiments" / "whatif" / "model.yaml").read_text(encoding="utf-8")
YAML = {"content-type": "application/x-yaml"}
WS = "ws://127.0.0.1"  # the TestClient ignores base_url for WebSockets; the Engine checks the Host
# 200,000 bins with a feedback loop: an evaluation takes long enough for messages to queue up behind it.
SLOW = """schemaVersion: 1
grid: {bins: 200000, binSize: 1, binUnit: minutes}
nodes:
  - {id: a, kind: const, values: 1}
  - {id: b, kind: const, values: 1}
  - {id: q, kind: expr, expr: "SHIFT(q, 1) * 0.5 + a + b"}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_engine_app(EngineSettings(data_dir=tmp_path, whatif_max_sessions=3))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def open_yaml(client: TestClient, text: str = SERVICE_QUEUE) -> dict[str, Any]:
    r = client.post("/v1/whatif", content=text, headers=YAML)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_opening_a_session_lists_its_parameters_and_the_first_answer(client: TestClient) -> None:
    s = open_yaml(client)
    assert s["websocket"] == f"/v1/whatif/{s['sessionId']}"
    assert [p["id"] for p in s["parameters"]] == ["topology.Packing.wipLimit", "orders", "packers"]
    assert s["parameters"][2] == {"id": "packers", "kind": "const", "target": "packers", "mode": "value",
                                  "value": 25.0, "min": 0.0, "max": 75.0, "step": 0.1, "unit": "",
                                  "label": "packers", "replans": False}
    # buffer 30: 5 overflow in bin 2 (test_experiments.py's hand computation)
    assert sum(s["result"]["series"]["packing_overflow"]) == 5.0


def test_a_message_answers_with_the_engines_numbers_for_the_new_point(client: TestClient) -> None:
    s = open_yaml(client, ROUTED)
    with client.websocket_connect(WS + s["websocket"]) as ws:
        ws.send_json({"seq": 7, "set": {"topology.Svc.capacity": 5}, "bin": 2})
        m = ws.receive_json()
    assert m["seq"] == 7 and m["coalesced"] == 0 and m["evalMs"] >= 0
    direct = plan(load_model(ROUTED).model).evaluate(set={"cap": 5})
    assert m["series"]["served"] == direct["served"].tolist() == [10.0, 10.0, 10.0, 10.0]
    assert m["state"]["values"]["left"] == 7.5  # bin 2: 3/4 of 10
    assert m["state"]["nodes"]["Svc"]["metrics"]["utilization"] == 1.0  # 10 / (5 x 2)
    assert m["state"]["nodes"]["Svc"]["color"] == "red"
    assert m["values"]["topology.Svc.capacity"] == 5.0


def test_chosen_series_and_the_run_mean(client: TestClient) -> None:
    s = open_yaml(client, ROUTED)
    with client.websocket_connect(WS + s["websocket"]) as ws:
        ws.send_json({"seq": 1, "series": ["left"], "set": {"router.split.right": 3}})
        m = ws.receive_json()
        ws.send_json({"seq": 2, "set": {}})  # the chosen series stay chosen
        m2 = ws.receive_json()
    assert list(m["series"]) == list(m2["series"]) == ["left"]
    assert m["series"]["left"] == [5.0, 10.0, 15.0, 15.0]
    assert m["state"]["stat"] == "mean" and m["state"]["values"]["right"] == 11.25


def test_bad_messages_are_answered_with_located_problems_and_the_socket_stays_open(client: TestClient) -> None:
    s = open_yaml(client)
    with client.websocket_connect(WS + s["websocket"]) as ws:
        ws.send_json({"seq": 1, "set": {"packerz": 3}})
        e = ws.receive_json()
        assert e["seq"] == 1 and e["error"]["status"] == 400
        assert e["error"]["errors"][0]["path"] == "set.packerz"
        assert "did you mean `packers`" in e["error"]["errors"][0]["message"]
        ws.send_text("not json")
        assert ws.receive_json()["error"]["title"] == "Invalid what-if message"
        ws.send_bytes(b"\x00\x01")
        assert "text frames" in ws.receive_json()["error"]["detail"]
        ws.send_json({"set": {"packers": 3}})
        assert ws.receive_json()["error"]["errors"][0]["path"] == "seq"
        ws.send_json({"seq": 2, "colour": 1})
        assert [p["path"] for p in ws.receive_json()["error"]["errors"]] == ["colour"]
        ws.send_json({"seq": 2, "bin": 99})
        assert [p["path"] for p in ws.receive_json()["error"]["errors"]] == ["bin"]
        ws.send_text("x" * 70_000)
        assert "at most 65536 characters" in ws.receive_json()["error"]["detail"]
        # Out of the published range (packers 25: 0..75): refused, and the good value beside it is not applied.
        ws.send_json({"seq": 3, "set": {"packers": 80, "orders": 2}})  # orders: a profile, scaled
        out = ws.receive_json()["error"]["errors"]
        assert [p["path"] for p in out] == ["set.packers"] and "0 to 75" in out[0]["message"]
        ws.send_json({"seq": 4, "set": {"packers": 20}})  # still serving
        m = ws.receive_json()
    assert m["seq"] == 4 and m["values"]["packers"] == 20.0
    assert m["values"]["orders"] == 1.0  # the factor the session started with


def test_messages_queued_behind_an_evaluation_are_coalesced_into_the_latest(client: TestClient) -> None:
    s = open_yaml(client, SLOW)
    sent = 30
    with client.websocket_connect(WS + s["websocket"]) as ws:
        ws.send_json({"seq": 1, "set": {"a": 2}})
        for n in range(2, sent + 1):
            ws.send_json({"seq": n, "set": {"b": n / 10}})  # b's range is 0..3
        answers = []
        while not answers or answers[-1]["seq"] != sent:
            answers.append(ws.receive_json())
    assert sum(a["coalesced"] + 1 for a in answers) == sent  # every message is accounted for, once
    assert [a["seq"] for a in answers] == sorted(a["seq"] for a in answers)
    last = answers[-1]
    # every set was applied, in order, although only some points were evaluated: a = 2, b = 3
    assert last["values"] == {"a": 2.0, "b": 3.0}
    assert last["series"]["q"][0] == 5.0
    print(f"\n{sent} messages -> {len(answers)} evaluations")


def test_save_stores_the_point_as_a_run_with_its_base_and_overrides(client: TestClient) -> None:
    s = open_yaml(client)
    with client.websocket_connect(WS + s["websocket"]) as ws:
        ws.send_json({"seq": 1, "set": {"packers": 10, "topology.Packing.wipLimit": 10}})
        ws.receive_json()
    r = client.post(f"/v1/whatif/{s['sessionId']}/save")
    assert r.status_code == 201 and r.headers["location"] == f"/v1/runs/{r.json()['runId']}"
    saved = r.json()
    assert saved["whatif"] == {"sessionId": s["sessionId"], "baseRunId": None,
                               "baseModelHash": s["base"]["modelHash"],
                               "parameters": {"topology.Packing.wipLimit": 10.0, "packers": 10.0}}
    detail = client.get(f"/v1/runs/{saved['runId']}").json()
    # the WIP limit is a const the loader made (packing_wip_limit): both are overrides of const nodes
    assert detail["run"]["overrides"] == {"packing_wip_limit": 10.0, "packers": 10.0}
    assert detail["run"]["whatif"] == saved["whatif"]
    assert detail["provenance"]["whatif"] == saved["whatif"]
    stored = client.get(f"/v1/runs/{saved['runId']}/series/packing_overflow",
                        headers={"accept": "application/json"}).json()
    direct = plan(load_model(SERVICE_QUEUE).model).evaluate(set={"packers": 10, "packing_wip_limit": 10})
    assert stored["values"] == direct["packing_overflow"].tolist()


def test_a_session_on_a_stored_run_keeps_its_overrides_and_names_it_when_saved(client: TestClient) -> None:
    run = client.post("/v1/run", json={"yaml": ROUTED, "set": {"cap": 5}}).json()
    r = client.post("/v1/whatif", json={"runId": run["runId"]})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["base"]["runId"] == run["runId"] and s["base"]["overrides"] == {"cap": 5.0}
    # the run's own override is the starting point: capacity 5, served 10 per bin
    assert next(p for p in s["parameters"] if p["id"] == "topology.Svc.capacity")["value"] == 5.0
    assert s["result"]["series"]["served"] == [10.0, 10.0, 10.0, 10.0]
    with client.websocket_connect(WS + s["websocket"]) as ws:
        ws.send_json({"seq": 1, "set": {"router.split.right": 3}})  # an edit: the saved spec holds it
        assert ws.receive_json()["series"]["left"] == [5.0, 5.0, 5.0, 5.0]
    saved = client.post(f"/v1/whatif/{s['sessionId']}/save").json()
    assert saved["whatif"]["baseRunId"] == run["runId"]
    assert saved["overrides"] == {"cap": 5.0}
    left = client.get(f"/v1/runs/{saved['runId']}/series/left", headers={"accept": "application/json"}).json()
    assert left["values"] == [5.0, 5.0, 5.0, 5.0]
    spec = client.get(f"/v1/artifacts/{saved['runId']}/files/spec.yaml").text
    assert "weight: 3.0" in spec or "weight: 3" in spec


def test_unknown_sessions_bad_bodies_and_the_cap(client: TestClient) -> None:
    missing = "wi_" + "0" * 24
    assert client.get(f"/v1/whatif/{missing}").status_code == 404
    assert client.post(f"/v1/whatif/{missing}/save").status_code == 404
    assert client.get("/v1/whatif/../../etc").status_code == 404
    with client.websocket_connect(f"{WS}/v1/whatif/{missing}") as ws:
        assert ws.receive_json()["error"]["status"] == 404
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4404
    bad = client.post("/v1/whatif", content="grid: [", headers=YAML)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert client.post("/v1/whatif", json={"runId": "run_20250101T000000Z_ab12cd34"}).status_code == 404
    assert client.post("/v1/whatif", json={"runId": "nope"}).status_code == 400
    assert client.post("/v1/whatif", json={"runId": 3}).json()["errors"][0]["path"] == "runId"
    ids = [open_yaml(client)["sessionId"] for _ in range(3)]
    full = client.post("/v1/whatif", content=SERVICE_QUEUE, headers=YAML)
    assert full.status_code == 429 and "FLOWTIME_WHATIF_MAX_SESSIONS" in full.json()["detail"]
    assert client.delete(f"/v1/whatif/{ids[0]}").status_code == 204
    assert client.get(f"/v1/whatif/{ids[0]}").status_code == 404
    assert client.post("/v1/whatif", content=SERVICE_QUEUE, headers=YAML).status_code == 201


def test_a_websocket_from_another_sites_page_or_without_the_token_is_refused(tmp_path: Path) -> None:
    app = create_engine_app(EngineSettings(data_dir=tmp_path, api_token="s3cret"))
    auth = {"authorization": "Bearer s3cret"}
    with TestClient(app, base_url="http://127.0.0.1") as c:
        sid = c.post("/v1/whatif", content=SERVICE_QUEUE, headers={**YAML, **auth}).json()["sessionId"]
        for headers in ({}, {**auth, "origin": "http://evil.example"}):
            with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect(f"{WS}/v1/whatif/{sid}",
                                                                                    headers=headers):
                pass
            assert refused.value.code == 1008
        with c.websocket_connect(f"{WS}/v1/whatif/{sid}", headers={**auth, "origin": "http://127.0.0.1"}) as ws:
            ws.send_json({"seq": 1})
            assert ws.receive_json()["seq"] == 1


def test_idle_sessions_expire_but_not_while_a_socket_is_open() -> None:
    now = [0.0]
    sessions = Sessions(2, 10.0, clock=lambda: now[0])
    a = sessions.add(object(), object())  # type: ignore[arg-type]
    b = sessions.add(object(), object())  # type: ignore[arg-type]
    with pytest.raises(SessionsFull):
        sessions.add(object(), object())  # type: ignore[arg-type]
    sessions.attach(b, +1)
    now[0] = 11.0
    with pytest.raises(SessionNotFound):
        sessions.get(a.id)
    assert sessions.get(b.id) is b and len(sessions) == 1
    sessions.attach(b, -1)
    now[0] = 30.0
    assert len(sessions) == 0
