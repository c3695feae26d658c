"""
Slow clients against a server built by ``server_config`` (what ``serve`` and ``up`` run):
request heads must arrive within the header timeout, and open connections are capped.
"""

from __future__ import annotations

import errno
import http.client
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import uvicorn

from flowtime.api.engine import create_engine_app
from flowtime.api.factories import ServerConfig, ServerLimits, server_config
from flowtime.settings import EngineSettings

HEAD = b"GET /v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nAccept: */*\r\n\r\n"
# A guard so a broken server fails the test instead of hanging it; never an expected duration.
MAX_ROUNDS = 60


@contextmanager
def running(config: ServerConfig) -> Iterator[int]:
    """The server of ``config`` in a thread on an ephemeral port; yields the port."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="slow-clients server", daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def engine_server(tmp_path: Path, **limits: float) -> ServerConfig:
    app = create_engine_app(EngineSettings(data_dir=tmp_path / "engine"))
    return server_config(app, host="127.0.0.1", port=0, log_level="warning",
                         limits=ServerLimits(**limits))  # type: ignore[arg-type]


def closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing ``sock`` (possibly b""), or None while it is still open."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return None
    received = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_many_connections_sending_headers_a_byte_a_second_are_dropped_while_health_answers(
        tmp_path: Path) -> None:
    with running(engine_server(tmp_path, header_timeout=2.0)) as port, ExitStack() as stack:
        slow = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(300)]
        sent = 0
        answers: dict[int, bytes] = {}
        health_while_open: list[int] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(MAX_ROUNDS):
                for i, sock in enumerate(slow):
                    if i not in answers:
                        with _ignore_reset():
                            sock.send(HEAD[sent:sent + 1])
                sent += 1
                still_open = len(slow) - len(answers)
                if still_open == len(slow):
                    health_while_open.append(client.get("/v1/healthz").status_code)
                for i, sock in enumerate(slow):
                    if i not in answers and (got := closed_by_server(sock)) is not None:
                        answers[i] = got
                if len(answers) == len(slow):
                    break
                time.sleep(1.0)
            after = client.get("/v1/healthz")
    assert health_while_open and set(health_while_open) == {200}
    assert sent < len(HEAD), "the whole head was sent: the test did not keep the clients slow"
    assert len(answers) == 300, f"{300 - len(answers)} slow connections were never closed by the server"
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values())
    assert after.status_code == 200


@contextmanager
def _ignore_reset() -> Iterator[None]:
    """A send on a connection the server has just closed may fail; the close is checked separately."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
            raise


def test_a_connection_that_sends_nothing_is_closed_silently(tmp_path: Path) -> None:
    with running(engine_server(tmp_path, header_timeout=1.0)) as port, \
            socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        assert sock.recv(1024) == b""


def test_a_kept_alive_connection_idle_longer_than_the_header_timeout_still_serves_its_next_request(
        tmp_path: Path) -> None:
    """The head deadline starts with a request's first byte, not at the previous answer."""
    with running(engine_server(tmp_path, header_timeout=1.0, keep_alive_timeout=30)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/v1/healthz")
            first = conn.getresponse()
            first.read()
            sock = conn.sock
            time.sleep(2.0)
            conn.request("GET", "/v1/healthz")  # http.client never reconnects silently
            second = conn.getresponse()
            second.read()
            assert conn.sock is sock
        finally:
            conn.close()
    assert first.status == second.status == 200


def test_a_slow_body_is_not_cut_by_the_header_timeout(tmp_path: Path) -> None:
    """Only the head has a deadline: a large model may take its time to upload."""
    body = (b"schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
            b"nodes:\n  - {id: a, kind: const, values: [1, 2]}\n")
    head = (b"POST /v1/validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with running(engine_server(tmp_path, header_timeout=1.0)) as port, \
            socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body[:10])
        time.sleep(2.0)
        sock.sendall(body[10:])
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_connections_past_the_cap_are_refused_at_once_and_served_again_when_the_idle_ones_time_out(
        tmp_path: Path) -> None:
    with running(engine_server(tmp_path, header_timeout=2.0, max_connections=20)) as port, ExitStack() as stack:
        idle = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(20)]
        extra = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(5)]
        for sock in extra:  # accepted in order, so these are the ones past the cap
            sock.settimeout(30)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 503 ")
        for sock in idle:  # the cap's 20 idle connections time out with no head sent
            sock.settimeout(30)
            assert sock.recv(1024) == b""
        assert httpx.get(f"http://127.0.0.1:{port}/v1/healthz", timeout=10).status_code == 200
