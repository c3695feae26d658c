"""``flowtime serve ...`` and ``flowtime up``: options, the port check, start and clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flowtime.cli import app
from flowtime.cli.serve import port_is_free


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_serve_has_one_command_per_service() -> None:
    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0
    for name in ("engine", "sim", "ui"):
        assert name in r.stdout


def test_serve_ui_takes_port_and_service_urls() -> None:
    r = CliRunner().invoke(app, ["serve", "ui", "--help"])
    for option in ("--host", "--port", "--engine-url", "--sim-url"):
        assert option in r.stdout


def test_a_listening_port_is_not_free(busy_port: int) -> None:
    assert not port_is_free("127.0.0.1", busy_port)
    assert port_is_free("127.0.0.1", free_port())


def test_up_refuses_a_taken_port_before_starting_anything(busy_port: int, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path / "d"), "--engine-port", str(free_port()),
                                 "--sim-port", str(busy_port), "--ui-port", str(free_port())])
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"error: port {busy_port} on 127.0.0.1 is already in use, so Sim cannot start; "
                                "stop what is using it or pick another with --sim-port")
    assert not (tmp_path / "d").exists()


def test_up_refuses_the_same_port_twice(tmp_path: Path) -> None:
    port = str(free_port())
    r = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path), "--engine-port", port, "--sim-port", port])
    assert r.exit_code == 2 and "the three ports must differ" in r.stderr


@pytest.mark.slow
def test_up_starts_three_services_and_stops_them_on_ctrl_c(tmp_path: Path) -> None:
    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowtime", "up", "--data-dir", str(tmp_path / "data"),
         "--engine-port", str(ports[0]), "--sim-port", str(ports[1]), "--ui-port", str(ports[2])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(4)]
        assert lines[:3] == [f"Engine http://127.0.0.1:{ports[0]}", f"Sim    http://127.0.0.1:{ports[1]}",
                             f"UI     http://127.0.0.1:{ports[2]}"]
        assert lines[3].startswith(f"FlowTime is up - open http://127.0.0.1:{ports[2]}")
        health = httpx.get(f"http://127.0.0.1:{ports[2]}/healthz").json()
        assert health["engineUrl"] == f"http://127.0.0.1:{ports[0]}"
        home = httpx.get(f"http://127.0.0.1:{ports[2]}/").text
        assert home.count('data-status>up<') == 2  # the UI reaches both services
        assert str(tmp_path / "data" / "engine") in home and str(tmp_path / "data" / "sim") in home
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines()[-2:] == ["stopping Engine, Sim and UI ...", "stopped."]
    deadline = time.monotonic() + 5
    while not all(port_is_free("127.0.0.1", p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(port_is_free("127.0.0.1", p) for p in ports)
