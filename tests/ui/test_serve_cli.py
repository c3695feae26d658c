"""``flowtime serve ...`` and ``flowtime up``: options, the port check, start and clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from typer.testing import CliRunner

from flowtime.cli import app
from flowtime.cli.serve import LOG_LINES, Child, _echo, _watch, default_engine_workers, describe_exit, port_is_free


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
            stop(proc)
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines()[-2:] == ["stopping Engine, Sim and UI ...", "stopped."]
    deadline = time.monotonic() + 5
    while not all(port_is_free("127.0.0.1", p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(port_is_free("127.0.0.1", p) for p in ports)


# ---- up watches its children ------------------------------------------------------------------


def children_of(pid: int) -> dict[int, str]:
    """pid -> command line of the processes whose parent is ``pid`` (read from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out[int(entry)] = cmdline
    return out


def service_pids(up_pid: int) -> dict[str, int]:
    return {kind: pid for pid, cmd in children_of(up_pid).items()
            for kind in ("engine", "sim", "ui") if f" serve {kind} " in cmd}


class Lines:
    """Lines of a child's stream, read by a thread, waited for by the test."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], guard: float = 60.0) -> str:
        """The first line matching ``predicate``; ``guard`` only stops a broken run from hanging."""
        with self._cond:
            found = self._cond.wait_for(lambda: next((ln for ln in self.lines if predicate(ln)), None), guard)
        assert found, f"no such line in: {self.lines}"
        return found


def stop(proc: subprocess.Popen[str]) -> None:
    """If a test failed with the process still running: SIGTERM (``up`` then stops its services), SIGKILL last."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(url: str, guard: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + guard
    while True:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(url)
            if r.status_code == 200:
                return r
        assert time.monotonic() < deadline, f"{url} never answered 200"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the service processes in /proc")
def test_up_restarts_a_killed_engine_on_its_port_and_leaves_sim_and_ui_running(tmp_path: Path) -> None:
    ports = [free_port(), free_port(), free_port()]
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowtime", "up", "--data-dir", str(data), "--engine-port", str(ports[0]),
         "--sim-port", str(ports[1]), "--ui-port", str(ports[2])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        out.wait_for(lambda ln: ln.startswith("FlowTime is up"))
        before = service_pids(proc.pid)
        assert sorted(before) == ["engine", "sim", "ui"]
        if (os.cpu_count() or 1) > 1:  # two Engine workers by default on a multi-core machine
            assert len(children_of(before["engine"])) >= 2
        os.kill(before["engine"], signal.SIGKILL)

        err.wait_for(lambda ln: ln == "error: Engine stopped (killed by signal SIGKILL); its last output:")
        # the Engine's own start line is among the last lines shown
        err.wait_for(lambda ln: ln.startswith("  | ") and f"FlowTime engine (pid {before['engine']}) serving runs in "
                     f"{data / 'engine'} on http://127.0.0.1:{ports[0]}" in ln)
        err.wait_for(lambda ln: ln == "restarting Engine in 0.5 s (restart 1 of 3 allowed within 60 s)")
        out.wait_for(lambda ln: ln == f"Engine is back at http://127.0.0.1:{ports[0]}")
        health = wait_healthy(f"http://127.0.0.1:{ports[0]}/v1/healthz").json()
        assert health["dataDir"] == str((data / "engine").resolve())
        after = service_pids(proc.pid)
        assert after["engine"] != before["engine"]
        assert (after["sim"], after["ui"]) == (before["sim"], before["ui"])
        assert httpx.get(f"http://127.0.0.1:{ports[2]}/").text.count("data-status>up<") == 2

        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err.lines
    assert out.lines[-2:] == ["stopping Engine, Sim and UI ...", "stopped."]
    assert all(port_is_free("127.0.0.1", p) for p in ports) or _ports_free_soon(ports)


def _ports_free_soon(ports: list[int]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(port_is_free("127.0.0.1", p) for p in ports):
            return True
        time.sleep(0.1)
    return False


def test_a_child_that_keeps_dying_is_restarted_three_times_then_up_gives_up(
        capsys: pytest.CaptureFixture[str]) -> None:
    script = "import sys; print('starting'); print('boom: the disk is on fire', file=sys.stderr); sys.exit(4)"
    child = Child("Engine", [sys.executable, "-c", script], "http://127.0.0.1:9", "/v1/healthz")
    child.start(lambda name, line: None)
    assert _watch([child], lambda name, line: None, stop_requested=[]) == 1
    err = capsys.readouterr().err.splitlines()
    report = ["error: Engine stopped (exit code 4); its last output:", "  | starting",
              "  | boom: the disk is on fire"]
    assert err == [
        *report, "restarting Engine in 0.5 s (restart 1 of 3 allowed within 60 s)",
        *report, "restarting Engine in 1 s (restart 2 of 3 allowed within 60 s)",
        *report, "restarting Engine in 2 s (restart 3 of 3 allowed within 60 s)",
        *report, "error: Engine stopped 4 times within 60 s; giving up and stopping the others",
    ]


def test_a_child_keeps_only_its_last_lines() -> None:
    child = Child("Sim", [sys.executable, "-c", "for i in range(1000): print(f'line {i}')"], "http://x", "/")
    child.start(lambda name, line: None)
    assert child.process is not None and child.process.wait(timeout=60) == 0
    child.reap()
    assert child.last_lines() == [f"line {i}" for i in range(1000 - LOG_LINES, 1000)]


def test_child_output_is_echoed_whole_with_verbose_and_only_warnings_and_errors_without(
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["INFO:     127.0.0.1:5 - \"GET /v1/healthz HTTP/1.1\" 200 OK", "WARNING:  template x is not usable",
             "Traceback (most recent call last):"]
    for line in lines:
        _echo(True)("Engine", line)
    assert capsys.readouterr().err.splitlines() == [f"Engine | {line}" for line in lines]
    for line in lines:
        _echo(False)("Sim", line)
    assert capsys.readouterr().err.splitlines() == [f"Sim    | {line}" for line in lines[1:]]


def test_a_dead_childs_exit_is_described_by_code_or_signal() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-signal.SIGKILL) == "killed by signal SIGKILL"


def test_up_uses_two_engine_workers_on_a_multi_core_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_engine_workers() == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert default_engine_workers() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_engine_workers() == 1


def test_serve_engine_takes_a_worker_count() -> None:
    r = CliRunner().invoke(app, ["serve", "engine", "--workers", "0"])
    assert r.exit_code == 2
    assert "--workers" in CliRunner().invoke(app, ["serve", "engine", "--help"]).stdout
    assert "--engine-workers" in CliRunner().invoke(app, ["up", "--help"]).stdout


@pytest.mark.slow
def test_serve_engine_serves_dir_engine_and_moves_runs_of_the_old_layout_there(tmp_path: Path) -> None:
    from tests.servers import serve

    from flowtime.api.engine import create_engine_app
    from flowtime.settings import EngineSettings

    data = tmp_path / "data"
    with serve(create_engine_app(EngineSettings(data_dir=data))) as url:  # the old layout: runs in D itself
        run_id = httpx.post(f"{url}/v1/run", headers={"content-type": "application/yaml"}, content=(
            "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - {id: a, kind: const, values: [1, 2]}\n")).json()["runId"]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flowtime", "serve", "engine", "--port", str(port),
                             "--data-dir", str(data), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        err = Lines(proc.stderr)
        health = wait_healthy(f"http://127.0.0.1:{port}/v1/healthz").json()
        assert health["dataDir"] == str((data / "engine").resolve())
        assert [r["id"] for r in httpx.get(f"http://127.0.0.1:{port}/v1/runs").json()["runs"]] == [run_id]
        err.wait_for(lambda ln: ln.startswith(f"moved 1 run folder from {data} into {data / 'engine'}"))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        stop(proc)
