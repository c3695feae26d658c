"""Experiments beside runs: the paged listing, progress as server-sent events, and requests that survive a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.engine_server import serve_engine
from tests.api.test_experiments import KNOBS, LONG_MODEL, SERVICE_QUEUE, TERMINAL, WIP_SWEEP, start, wait

from flowtime.experiments.runner import run_experiment
from flowtime.settings import EngineSettings

PROBLEM = "application/problem+json"


def long_sweep(steps: int) -> dict[str, Any]:
    """``steps`` points of about 7 ms each (200,000 bins), progress reported every few points."""
    return {"kind": "sweep", "parameters": [{"target": "demand", "range": {"low": 0, "high": 10, "steps": steps}}],
            "metrics": [{"name": "q_mean", "series": "q"}]}


KNOB_SWEEP = {"kind": "sweep", "parameters": [{"target": "capacity", "values": [1, 2]}],
              "metrics": [{"series": "total", "aggregate": "sum"}]}


def events(resp: httpx.Response) -> Iterator[tuple[str, str, Any]]:
    """(event, id, data) of a text/event-stream body, as it arrives."""
    name = eid = ""
    data: list[str] = []
    for line in resp.iter_lines():
        if line == "":
            if data:
                yield name, eid, json.loads("\n".join(data))
            name, data = "", []
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("id: "):
            eid = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])


# -- the listing ---------------------------------------------------------------------------------


def test_listing_filters_and_pages_stored_and_running_experiments(tmp_path: Path) -> None:
    with serve_engine(EngineSettings(data_dir=tmp_path, experiment_workers=2)) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        wip = wait(c, start(c, WIP_SWEEP, SERVICE_QUEUE))["id"]
        knobs = wait(c, start(c, KNOB_SWEEP, KNOBS))["id"]
        running = start(c, long_sweep(100000), LONG_MODEL)
        assert wait(c, running, until=("running", *TERMINAL))["status"] == "running"
        run_id = running.rsplit("/", 1)[1]
        newest_first = [run_id, knobs, wip]

        every = c.get("/v1/experiments").json()
        assert [e["id"] for e in every["experiments"]] == newest_first
        assert (every["total"], every["count"], every["limit"], every["skip"]) == (3, 3, 50, 0)
        assert every["experiments"][0]["status"] == "running"
        assert every["experiments"][0]["progress"]["total"] == 100000
        assert every["experiments"][1]["parameters"] == ["capacity"]

        def ids(**params: Any) -> list[str]:
            resp = c.get("/v1/experiments", params=params)
            assert resp.status_code == 200, resp.text
            return [e["id"] for e in resp.json()["experiments"]]

        assert ids(status="running") == [run_id]
        assert ids(status="done") == [knobs, wip]
        assert ids(status="queued,cancelled") == []
        assert ids(search="WIPLIMIT") == [wip]  # a parameter's target
        assert ids(q="packing station") == [wip]  # the title; q is search's other name
        assert ids(search=every["experiments"][1]["modelHash"][-12:]) == [knobs]
        assert ids(kind="montecarlo") == []
        assert ids(limit=1, skip=1) == [knobs]
        assert ids(limit=2, offset=1) == [knobs, wip]
        assert ids(skip=3) == [] and ids(skip=2**80) == []  # past the end, even past SQLite's integers
        assert ids(sortBy="id", sortOrder="asc") == sorted(newest_first)
        assert ids(createdAfter=every["experiments"][1]["createdUtc"]) == [run_id, knobs]

        bad = c.get("/v1/experiments", params={"status": "finished"})
        assert bad.status_code == 400 and bad.headers["content-type"].startswith(PROBLEM)
        assert bad.json()["errors"][0]["path"] == "status"
        assert "finished" in bad.json()["errors"][0]["message"]
        assert c.delete(running).json()["status"] == "cancelled"
        assert ids(status="cancelled") == [run_id]


def test_a_materialised_run_is_listed_by_its_experiment(tmp_path: Path) -> None:
    with serve_engine(EngineSettings(data_dir=tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        location = start(c, WIP_SWEEP, SERVICE_QUEUE)
        assert wait(c, location)["runs"] == []
        made = [c.post(f"{location}/points/{k}/run").json()["runId"] for k in (2, 0)]
        assert c.get(location).json()["runs"] == sorted(made)
        assert c.get(f"/v1/runs/{made[0]}").json()["run"]["experiment"] == {"id": location.rsplit("/", 1)[1],
                                                                             "point": 2}
        assert c.delete(f"/v1/runs/{made[0]}").status_code == 204
        assert c.get(location).json()["runs"] == [made[1]]  # a deleted run is no longer named


# -- progress events ----------------------------------------------------------------------------


def test_events_stream_progress_then_done_and_close(tmp_path: Path) -> None:
    with serve_engine(EngineSettings(data_dir=tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        location = start(c, long_sweep(300), LONG_MODEL)
        with c.stream("GET", f"{location}/events") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            got = list(events(resp))  # the stream ends by itself after the final event
        names = [name for name, _, _ in got]
        assert names[-1] == "done" and names.count("done") == 1
        assert "status" in names and "progress" in names
        statuses = [data["status"] for name, _, data in got if name == "status"]
        assert statuses[-1] == "running"
        progress = [data for name, _, data in got if name == "progress"]
        done = [p["done"] for p in progress]
        assert done == sorted(done) and done[-1] <= 300
        assert all(p["total"] == 300 for p in progress)
        late = [p for p in progress if p["done"] > 0]
        assert late and all(p["rate"] > 0 and p["etaSeconds"] >= 0 for p in late)
        ids = [int(eid) for name, eid, _ in got if name in ("status", "progress")]
        assert ids == sorted(ids)
        final = got[-1]
        assert final[1] == "end" and final[2]["status"] == "done" and final[2]["points"] == 300

        # finished: the final event at once, whatever the client saw before
        started = time.monotonic()
        for headers in ({}, {"Last-Event-ID": str(ids[-1])}):
            with c.stream("GET", f"{location}/events", headers=headers) as resp:
                again = list(events(resp))
            assert [(n, e) for n, e, _ in again] == [("done", "end")]
            assert again[0][2]["progress"] == {"done": 300, "total": 300}
        print(f"two finished streams answered in {time.monotonic() - started:.3f} s")
        missing = c.get("/v1/experiments/exp_20250101T000000Z_00000000/events")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)


def test_events_of_a_cancelled_experiment_and_last_event_id(tmp_path: Path) -> None:
    with serve_engine(EngineSettings(data_dir=tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c, \
            httpx.Client(base_url=url, timeout=60) as other:
        location = start(c, long_sweep(100000), LONG_MODEL)
        with c.stream("GET", f"{location}/events") as resp:
            stream = events(resp)
            first = next(stream)
            assert first[0] == "status" and first[2]["status"] in ("queued", "running")
            seen = next(e for e in stream if e[0] == "progress" and e[2]["done"] > 0)
            # a reconnect with the latest id is sent only what changes after it (progress moves on)
            with other.stream("GET", f"{location}/events", headers={"Last-Event-ID": seen[1]}) as again:
                name, eid, data = next(events(again))
                assert int(eid) > int(seen[1])
                assert name == "progress" and data["done"] > seen[2]["done"]
            assert other.delete(location).json()["status"] == "cancelled"
            rest = list(stream)
        assert rest[-1][0] == "cancelled" and rest[-1][1] == "end"
        assert rest[-1][2]["status"] == "cancelled" and rest[-1][2]["progress"]["done"] < 100000


# -- restarts -------------------------------------------------------------------------------------

SERVER = """
import sys, uvicorn
from pathlib import Path
from flowtime.api.engine import create_engine_app
from flowtime.settings import EngineSettings
uvicorn.run(create_engine_app(EngineSettings(data_dir=Path(sys.argv[1]))), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_process(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(data_dir), str(port)], env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the engine process did not start")
        time.sleep(0.05)


def test_a_killed_server_runs_its_unfinished_experiment_again_after_a_restart(tmp_path: Path) -> None:
    spec = long_sweep(600)
    proc, url = engine_process(tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            location = start(c, spec, LONG_MODEL)
            exp_id = location.rsplit("/", 1)[1]
            deadline = time.monotonic() + 60
            while c.get(location).json()["progress"]["done"] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            before = c.get(location).json()
            assert before["status"] == "running" and 0 < before["progress"]["done"] < 600
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (tmp_path / "experiments" / "queue" / f"{exp_id}.json").is_file()
    assert not (tmp_path / "experiments" / exp_id).exists()

    proc, url = engine_process(tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            listed = c.get("/v1/experiments").json()["experiments"]
            assert [(e["id"], e["createdUtc"]) for e in listed] == [(exp_id, before["createdUtc"])]
            after = wait(c, location)
            assert after["status"] == "done", after
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not (tmp_path / "experiments" / "queue" / f"{exp_id}.json").exists()
    # the same numbers as one uninterrupted run of the spec the server kept (its seed included)
    kept = json.loads((tmp_path / "experiments" / exp_id / "spec.json").read_text(encoding="utf-8"))
    assert kept["seed"] == after["result"]["seed"]
    alone = run_experiment(kept, LONG_MODEL)
    assert after["result"]["table"]["rows"] == alone.to_json()["table"]["rows"]
    assert len(after["result"]["table"]["rows"]) == 600


def test_a_shut_down_server_keeps_queued_and_running_requests(tmp_path: Path) -> None:
    settings = EngineSettings(data_dir=tmp_path, experiment_workers=1)
    with serve_engine(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        first = start(c, long_sweep(100000), LONG_MODEL)
        assert wait(c, first, until=("running", *TERMINAL))["status"] == "running"
        second = start(c, WIP_SWEEP, SERVICE_QUEUE)
        assert c.get(second).json()["status"] == "queued"
    with serve_engine(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get(first).json()["status"] in ("queued", "running")
        assert c.get(second).json()["status"] == "queued"
        assert c.delete(first).json()["status"] == "cancelled"  # a client's cancel is for good
        assert wait(c, second)["result"]["table"]["rows"] == [[10.0, 25.0], [20.0, 15.0], [30.0, 5.0]]
    with serve_engine(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert [e["id"] for e in c.get("/v1/experiments").json()["experiments"]] == [second.rsplit("/", 1)[1]]


@pytest.mark.parametrize("content", [b"{not json", b'{"id": "exp_20250101T000000Z_0000beef"}', b"\xff\xfe"])
def test_an_unreadable_saved_request_is_a_failed_experiment_not_a_crash(tmp_path: Path, content: bytes) -> None:
    exp_id = "exp_20250101T000000Z_0000beef"
    queue = tmp_path / "experiments" / "queue"
    queue.mkdir(parents=True)
    (queue / f"{exp_id}.json").write_bytes(content)
    (queue / "notes.txt").write_text("not a request", encoding="utf-8")  # not ours: left alone
    with serve_engine(EngineSettings(data_dir=tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as c:
        body = c.get(f"/v1/experiments/{exp_id}").json()
        assert body["status"] == "failed"
        assert body["error"]["title"] == "Unreadable experiment request"
        assert f"{exp_id}.json" in body["error"]["detail"]
        assert [e["status"] for e in c.get("/v1/experiments").json()["experiments"]] == ["failed"]
        assert c.delete(f"/v1/experiments/{exp_id}").status_code == 204  # dismissed: the file goes
        assert not (queue / f"{exp_id}.json").exists()
    assert (queue / "notes.txt").is_file()


def test_a_saved_request_the_server_no_longer_accepts_fails_saying_why(tmp_path: Path) -> None:
    with serve_engine(EngineSettings(data_dir=tmp_path, experiment_workers=1)) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        first = start(c, long_sweep(100000), LONG_MODEL)
        assert wait(c, first, until=("running", *TERMINAL))["status"] == "running"
        second = start(c, long_sweep(5000), LONG_MODEL)
    # restarted with a lower cap: the 100,000-point request is refused, the 5,000-point one runs
    with serve_engine(EngineSettings(data_dir=tmp_path, max_experiment_points=5000)) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        body = c.get(first).json()
        assert body["status"] == "failed" and body["error"]["title"] == "Experiment request no longer accepted"
        assert "5000" in body["error"]["detail"] and "after a restart" in body["error"]["detail"]
        assert c.get(second).json()["status"] in ("queued", "running")
        assert c.delete(second).json()["status"] == "cancelled"
