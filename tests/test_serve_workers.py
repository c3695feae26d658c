"""
``flowtime serve engine --workers N``: several processes answer on one port and
share one data folder; start-up (temp clean-up, index sync) is safe when they
start at the same moment.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.servers import serve

from flowtime.api.engine import create_engine_app
from flowtime.api.factories import _port_share, server_config
from flowtime.artifacts.registry import ArtifactQuery, Registry
from flowtime.settings import EngineSettings

MODEL = """schemaVersion: 1
metadata: {{title: worker run {n}}}
grid: {{bins: 3, binSize: 1, binUnit: hours}}
nodes:
  - {{id: demand, kind: const, values: [{n}, 2, 3]}}
  - {{id: served, kind: expr, expr: "MIN(demand, 2)"}}
"""
YAML = {"content-type": "application/yaml"}
PROC_TCP = Path("/proc/net/tcp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flowtime", "serve", "engine", "--port", str(port),
                             "--data-dir", str(tmp_path / "data"), "--workers", "2", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60  # a guard against a server that never starts
        while True:
            assert proc.poll() is None, "serve engine --workers 2 exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve engine --workers 2 never became healthy"
            time.sleep(0.1)
        yield proc, port
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """Ctrl-C for a server started in a session of its own, then SIGKILL for anything left of it (workers)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def children_of(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


def server_side_owner(server_port: int, client_port: int, candidates: set[int]) -> int | None:
    """Which process holds the server end of the connection from ``client_port`` (read from /proc)."""
    inode = None
    for line in PROC_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    if inode is None:
        return None
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not PROC_TCP.exists(), reason="finding which worker answered reads Linux's /proc")
def test_two_worker_processes_answer_on_one_port(two_workers: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = two_workers
    workers = children_of(proc.pid)
    assert len(workers) >= 2  # uvicorn's two workers (multiprocessing may add a helper process)
    answered: set[int] = set()
    open_connections: list[http.client.HTTPConnection] = []
    try:
        for _ in range(200):  # the kernel hands each connection to whichever worker accepts first
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/v1/healthz")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            open_connections.append(conn)  # kept open, so the server end is still there to find
            assert conn.sock is not None
            owner = server_side_owner(port, conn.sock.getsockname()[1], workers)
            assert owner is not None and owner != proc.pid
            answered.add(owner)
            if len(answered) == 2:
                break
    finally:
        for conn in open_connections:
            conn.close()
    assert len(answered) == 2


@pytest.mark.slow
def test_concurrent_runs_on_two_workers_all_succeed_and_are_listed_once(
        two_workers: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = two_workers
    base = f"http://127.0.0.1:{port}"

    def client(k: int) -> list[str]:
        with httpx.Client(base_url=base, timeout=60) as c:
            answers = [c.post("/v1/run", content=MODEL.format(n=10 * k + i), headers=YAML) for i in range(5)]
        assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
        return [a.json()["runId"] for a in answers]

    with ThreadPoolExecutor(8) as pool:
        ids = [run_id for batch in pool.map(client, range(8)) for run_id in batch]
    assert len(set(ids)) == 40
    listing = httpx.get(f"{base}/v1/runs", params={"limit": 1000}).json()
    listed = [r["id"] for r in listing["runs"]]
    assert listing["total"] == 40
    assert sorted(listed) == sorted(ids)


def test_what_if_sessions_on_one_socket_work_whichever_worker_answers(
        two_workers: tuple[subprocess.Popen[bytes], int]) -> None:
    """
    A session lives in one worker's memory; POST /v1/whatif and a later socket may land on different
    workers. The one-socket form (the first frame opens the session) keeps it on one connection: every
    one of a dozen sessions opens, answers a move with the plan's numbers and saves a run any worker lists.
    """
    from websockets.sync.client import connect

    _, port = two_workers
    run_id = httpx.post(f"http://127.0.0.1:{port}/v1/run", content=MODEL.format(n=7), headers=YAML).json()["runId"]
    saved = []
    for _ in range(12):
        with connect(f"ws://127.0.0.1:{port}/v1/whatif", open_timeout=10) as ws:
            ws.send(json.dumps({"runId": run_id}))
            opened = json.loads(ws.recv(timeout=30))
            assert opened["type"] == "session", opened
            assert opened["result"]["series"]["served"] == [2.0, 2.0, 2.0]  # MIN(demand, 2), demand [7, 2, 3]
            ws.send(json.dumps({"seq": 1, "set": {"demand": 0.5}}))  # a profile knob: scaled
            moved = json.loads(ws.recv(timeout=30))
            assert moved["seq"] == 1 and moved["series"]["served"] == [2.0, 1.0, 1.5], moved
            ws.send(json.dumps({"seq": 2, "save": True}))
            done = json.loads(ws.recv(timeout=30))
            assert done["type"] == "saved" and done["seq"] == 2, done
            saved.append(done["runId"])
    listing = httpx.get(f"http://127.0.0.1:{port}/v1/runs", params={"limit": 100}).json()
    assert set(saved) <= {r["id"] for r in listing["runs"]} and len(set(saved)) == 12


# ---- start-up in several processes at once ----------------------------------------------------


# One Engine process: build the app, say it is ready, wait for the go file, then run its start-up.
START_UP = """
import asyncio, sys, time
from pathlib import Path
from flowtime.api.engine import create_engine_app
from flowtime.api.factories import _port_share, server_config
from flowtime.settings import EngineSettings

root, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
app = create_engine_app(EngineSettings(data_dir=root))
ready.touch()
while not go.exists():
    time.sleep(0.001)

async def lifespan():
    async with app.router.lifespan_context(app):
        pass

asyncio.run(lifespan())
"""


def start_together(root: Path, processes: int = 4) -> list[tuple[int, str]]:
    """Start-up of ``processes`` Engines released at the same moment; their exit codes and stderr."""
    signals = root.parent / "signals"
    signals.mkdir()
    go = signals / "go"
    procs = [subprocess.Popen([sys.executable, "-c", START_UP, str(root), str(signals / f"ready-{i}"), str(go)],
                              stderr=subprocess.PIPE, text=True) for i in range(processes)]
    try:
        deadline = time.monotonic() + 120  # a guard, not a measurement
        while not all((signals / f"ready-{i}").exists() for i in range(processes)):
            assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
            assert time.monotonic() < deadline, "the Engine processes never got ready"
            time.sleep(0.01)
        go.touch()
        return [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_engines_starting_at_once_on_an_empty_folder_all_start(tmp_path: Path, attempt: int) -> None:
    root = tmp_path / "engine"
    assert start_together(root) == [(0, "")] * 4
    assert Registry(root).count() == 0


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_engines_starting_at_once_on_a_populated_folder_list_every_run_once(tmp_path: Path, attempt: int) -> None:
    root = tmp_path / "engine"
    with serve(create_engine_app(EngineSettings(data_dir=root))) as url:
        ids = [httpx.post(f"{url}/v1/run", content=MODEL.format(n=n), headers=YAML).json()["runId"]
               for n in range(25)]
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):  # so every process rebuilds it
        (root / name).unlink(missing_ok=True)
    (root / ".tmp-run_20200101T000000Z_00000000").mkdir()  # a leftover of an interrupted write
    os.utime(root / ".tmp-run_20200101T000000Z_00000000", (0, 0))
    assert start_together(root) == [(0, "")] * 4
    page = Registry(root).query(ArtifactQuery(limit=100))
    assert page.total == 25
    assert sorted(a.id for a in page.artifacts) == sorted(ids)
    assert not (root / ".tmp-run_20200101T000000Z_00000000").exists()


# ---- the sockets the workers listen on --------------------------------------------------------


def test_connections_have_nagle_off_even_from_a_listener_made_without_a_protocol_number(tmp_path: Path) -> None:
    """uvicorn's --workers listener has proto 0, so asyncio leaves Nagle on (a 40 ms wait per answer)."""
    config = server_config(create_engine_app(EngineSettings(data_dir=tmp_path)), host="127.0.0.1", port=0,
                           log_level="warning")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as uvicorn's bind_socket makes it
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}") as client:
            assert client.get("/v1/healthz").status_code == 200
            [conn] = list(server.server_state.connections)
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="workers share one socket without SO_REUSEPORT")
def test_each_worker_gets_a_listening_socket_of_its_own_on_the_servers_port() -> None:
    config = server_config("flowtime.api.factories:engine_app", host="127.0.0.1", port=0, workers=2)
    claim = _port_share(config)
    try:
        # What uvicorn's supervisor does to hand a socket to a worker process.
        first, second = (pickle.loads(ForkingPickler.dumps(claim)) for _ in range(2))
        try:
            for sock in (first, second):
                assert type(sock) is socket.socket and sock.fileno() != claim.fileno()
                assert sock.getsockname() == claim.getsockname()
                assert sock.proto == socket.IPPROTO_TCP
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
            first.listen()
            second.listen()  # both listen on one port: the kernel spreads connections over them
        finally:
            first.close()
            second.close()
    finally:
        claim.close()


@pytest.mark.slow
def test_a_second_server_on_a_port_with_workers_is_refused(
        two_workers: tuple[subprocess.Popen[bytes], int], tmp_path: Path) -> None:
    """SO_REUSEPORT must not let another server start on the port and take half its connections."""
    _, port = two_workers
    second = subprocess.Popen([sys.executable, "-m", "flowtime", "serve", "engine", "--port", str(port),
                               "--data-dir", str(tmp_path / "other"), "--workers", "2", "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = second.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        err = ""
    finally:
        stop_group(second)
    assert second.returncode == 3
    assert f"Cannot listen on 127.0.0.1:{port}" in err
