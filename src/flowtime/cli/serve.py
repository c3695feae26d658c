"""
``flowtime serve engine|sim|ui`` (one service, in one process or several
workers) and ``flowtime up`` (all three as child processes, watched).

``up`` keeps the last lines each child printed. When a child dies, ``up`` says
so on stderr with those lines and starts it again after a short back-off, while
the other two keep running; a service that dies more than ``MAX_RESTARTS``
times within ``RESTART_WINDOW`` seconds stops everything with exit code 1.

Settings objects are built here, from the options given plus ``FLOWTIME_*``
environment variables, and handed to the app factories in
``flowtime.api.factories`` (through the environment, so workers get them too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import httpx
import typer

from flowtime.datadir import DataDir, migrate, resolve

serve_app = typer.Typer(name="serve", help="Run one FlowTime service over HTTP.", no_args_is_help=True)

Host = Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")]
LogLevel = Annotated[str, typer.Option("--log-level", help="uvicorn log level.")]
DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", help="Data folder: Engine runs go to DIR/engine, Sim models to DIR/sim "
    "(env FLOWTIME_DATA_DIR, default ./data).")]

# How many times ``up`` restarts one service within the window before it gives up,
# and the pause before each restart (a crash loop must not spin the CPU).
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0
BACKOFF = (0.5, 1.0, 2.0)
# Lines of each child's output kept for the crash report.
LOG_LINES = 40


def _settings(cls: Any, **options: Any) -> Any:
    """A settings object from the options that were given; the rest from the environment."""
    return cls(**{k: v for k, v in options.items() if v is not None})


def _data(option: Path | None) -> DataDir:
    """The data folder, with runs of the old layout moved into D/engine first."""
    data = resolve(option)
    for message in migrate(data):
        typer.echo(message, err=True)
    return data


def _start(service: str, settings: Any, *, workers: int, log_level: str, what: str) -> None:
    from flowtime.api.factories import SETTINGS_ENV, serve, server_config, settings_to_env

    os.environ[SETTINGS_ENV] = settings_to_env(settings)
    config = server_config(f"flowtime.api.factories:{service}_app", host=settings.host, port=settings.port,
                           workers=workers, log_level=log_level)
    # Through uvicorn's logger (configured by now): ``up`` keeps this line for its crash reports.
    logging.getLogger("uvicorn.error").info(
        "FlowTime %s (pid %d) serving %s on http://%s:%d with %d worker%s", service, os.getpid(), what,
        settings.host, settings.port, workers, "" if workers == 1 else "s")
    serve(config)


@serve_app.command("engine")
def serve_engine(
    host: Host = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    data_dir: DataDirOption = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes sharing the port.")] = 1,
    log_level: LogLevel = "info",
    telemetry_root: Annotated[Path | None, typer.Option(
        "--telemetry-root", metavar="DIR", help="Folder that models' `file:` series may be read from "
        "(env FLOWTIME_TELEMETRY_ROOT); without it no file is read.")] = None,
) -> None:
    """Serve the Engine API (/v1): run models, keep the run registry (in DIR/engine)."""
    from flowtime.settings import EngineSettings

    engine_dir = _data(data_dir).engine
    settings = _settings(EngineSettings, host=host, port=port, data_dir=engine_dir,
                         telemetry_root=telemetry_root.resolve() if telemetry_root is not None else None)
    _start("engine", settings, workers=workers, log_level=log_level, what=f"runs in {engine_dir}")


@serve_app.command("sim")
def serve_sim(
    host: Host = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8090).")] = None,
    data_dir: DataDirOption = None,
    templates_dir: Annotated[Path | None, typer.Option("--templates-dir", help="Extra template folder "
                                                       "(default: the built-in library).")] = None,
    log_level: LogLevel = "info",
) -> None:
    """Serve the Sim API (/api/v1): templates, model generation, temporary model store (in DIR/sim)."""
    from flowtime.settings import SimSettings

    # FLOWTIME_SIM_DATA_DIR names Sim's own folder; it applies when no --data-dir is given.
    own = None if data_dir is None and os.environ.get("FLOWTIME_SIM_DATA_DIR") else resolve(data_dir).sim
    settings = _settings(SimSettings, host=host, port=port, data_dir=own, templates_dir=templates_dir)
    _start("sim", settings, workers=1, log_level=log_level, what=f"models in {settings.data_dir}")


@serve_app.command("ui")
def serve_ui(
    host: Host = None,
    port: Annotated[int | None, typer.Option(help="Port (default 5219).")] = None,
    engine_url: Annotated[str | None, typer.Option("--engine-url", help="Engine base URL "
                                                   "(default http://127.0.0.1:8080).")] = None,
    sim_url: Annotated[str | None, typer.Option("--sim-url", help="Sim base URL "
                                                "(default http://127.0.0.1:8090).")] = None,
    log_level: LogLevel = "info",
) -> None:
    """Serve the web UI, which talks to Engine and Sim over HTTP."""
    from flowtime.settings import UiSettings

    settings = _settings(UiSettings, host=host, port=port, engine_url=engine_url, sim_url=sim_url)
    _start("ui", settings, workers=1, log_level=log_level,
           what=f"pages for Engine {settings.engine_url} and Sim {settings.sim_url}")


# ---- flowtime up ----------------------------------------------------------------------------


Echo = Callable[[str, str], None]


@dataclass
class Child:
    """One service run by ``up``: its command, its process, the last lines it printed."""

    name: str
    command: list[str]
    url: str
    health_path: str
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)  # monotonic times, for the window
    restart_at: float | None = None
    recovering: bool = False
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, echo: Echo) -> None:
        with self._lock:  # a report is about this life of the service
            self.log.clear()
        # Own session (so a process group of its own): Ctrl-C reaches only ``up``, which stops
        # the children in order, and a dead child's workers can be ended with it.
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout, echo),
                                        name=f"{self.name} output", daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes], echo: Echo) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self.log.append(line)
                echo(self.name, line)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def last_lines(self) -> list[str]:
        with self._lock:
            return list(self.log)

    def reap(self) -> None:
        """After the main process ended: end what it left behind (workers) and read its output to the end."""
        self._kill_group()
        if self._reader is not None:
            self._reader.join(timeout=5.0)

    def _kill_group(self) -> None:
        if self.process is not None and hasattr(os, "killpg"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reap()

    def healthy(self, client: httpx.Client) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return client.get(self.url + self.health_path).status_code == 200
        return False


def describe_exit(code: int) -> str:
    """``exit code 1``, or ``killed by signal SIGKILL`` for a negative return code."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def crash_report(child: Child, code: int) -> str:
    """What ``up`` prints when a child has died: how, and the last lines it printed."""
    lines = child.last_lines()
    if not lines:
        return f"error: {child.name} stopped ({describe_exit(code)}) and printed nothing"
    body = "\n".join(f"  | {line}" for line in lines)
    return f"error: {child.name} stopped ({describe_exit(code)}); its last output:\n{body}"


def _routine(line: str) -> bool:
    """uvicorn's info-level lines (start-up, access log): shown only with --verbose."""
    return line.startswith(("INFO:", "DEBUG:", "TRACE:"))


def _echo(verbose: bool) -> Echo:
    lock = threading.Lock()

    def echo(name: str, line: str) -> None:
        if verbose or not _routine(line):
            with lock:
                typer.echo(f"{name:<6} | {line}", err=True)

    return echo


def port_is_free(host: str, port: int) -> bool:
    """True if a server could listen on ``host:port`` now (checked the way uvicorn binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def default_engine_workers() -> int:
    """Two Engine workers on a machine with more than one core, else one."""
    return 2 if (os.cpu_count() or 1) > 1 else 1


def _wait_healthy(children: list[Child], timeout: float, stop_requested: list[int]) -> Child | None:
    """Poll each child's health URL; returns the one that died or timed out, else None."""
    pending = list(children)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while pending and not stop_requested:
            for child in list(pending):
                if child.exit_code() is not None:
                    return child
                if child.healthy(client):
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                return pending[0]
            if pending:
                time.sleep(0.1)
    return None


def _watch(children: list[Child], echo: Echo, stop_requested: list[int]) -> int:
    """Until Ctrl-C: restart children that die (within bounds); returns the exit code for ``up``."""
    with httpx.Client(timeout=0.5) as client:
        while not stop_requested:
            now = time.monotonic()
            for child in children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.restart_at = None
                        child.start(echo)
                        child.recovering = True
                    continue
                code = child.exit_code()
                if code is None:
                    if child.recovering and child.healthy(client):
                        child.recovering = False
                        typer.echo(f"{child.name} is back at {child.url}")
                    continue
                child.reap()
                typer.echo(crash_report(child, code), err=True)
                child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW]
                if len(child.restarts) >= MAX_RESTARTS:
                    typer.echo(f"error: {child.name} stopped {len(child.restarts) + 1} times within "
                               f"{RESTART_WINDOW:g} s; giving up and stopping the others", err=True)
                    return 1
                delay = BACKOFF[min(len(child.restarts), len(BACKOFF) - 1)]
                child.restarts.append(now)
                child.restart_at = now + delay
                child.recovering = False
                typer.echo(f"restarting {child.name} in {delay:g} s (restart {len(child.restarts)} of "
                           f"{MAX_RESTARTS} allowed within {RESTART_WINDOW:g} s)", err=True)
            time.sleep(0.2)
    return 0


def _stop(children: list[Child], grace: float = 10.0) -> None:
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.wait_or_kill(deadline)


def up(
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(help="Interface all three listen on.")] = "127.0.0.1",
    engine_port: Annotated[int, typer.Option("--engine-port")] = 8080,
    sim_port: Annotated[int, typer.Option("--sim-port")] = 8090,
    ui_port: Annotated[int, typer.Option("--ui-port")] = 5219,
    engine_workers: Annotated[int | None, typer.Option(
        "--engine-workers", min=1, help="Engine worker processes (default 2 on a multi-core machine, else 1).")
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the UI in a browser when ready.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the services to be healthy.")] = 60.0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the services' request logs.")] = False,
) -> None:
    """Start Engine, Sim and the UI together and restart one that dies; Ctrl-C stops all three."""
    ports = {"Engine": engine_port, "Sim": sim_port, "UI": ui_port}
    if len(set(ports.values())) != len(ports):
        typer.echo(f"error: the three ports must differ, got {ports}", err=True)
        raise typer.Exit(2)
    flags = {"Engine": "--engine-port", "Sim": "--sim-port", "UI": "--ui-port"}
    for name, port in ports.items():
        if not port_is_free(host, port):
            typer.echo(f"error: port {port} on {host} is already in use, so {name} cannot start; "
                       f"stop what is using it or pick another with {flags[name]}", err=True)
            raise typer.Exit(1)
    data = _data(data_dir)
    data.engine.mkdir(parents=True, exist_ok=True)
    data.sim.mkdir(parents=True, exist_ok=True)
    near = _connect_host(host)
    workers = engine_workers or default_engine_workers()

    def command(kind: str, port: int, *extra: str) -> list[str]:
        # Children always log at info: the lines are kept for crash reports, shown with --verbose.
        return [sys.executable, "-m", "flowtime", "serve", kind, "--host", host, "--port", str(port),
                "--log-level", "info", *extra]

    children = [
        Child("Engine", command("engine", engine_port, "--data-dir", str(data.root), "--workers", str(workers)),
              f"http://{near}:{engine_port}", "/v1/healthz"),
        Child("Sim", command("sim", sim_port, "--data-dir", str(data.root)),
              f"http://{near}:{sim_port}", "/api/v1/healthz"),
        Child("UI", command("ui", ui_port, "--engine-url", f"http://{near}:{engine_port}",
                            "--sim-url", f"http://{near}:{sim_port}"), f"http://{near}:{ui_port}", "/healthz"),
    ]
    stop_requested: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    echo = _echo(verbose)
    exit_code = 0
    try:
        for child in children:
            child.start(echo)
        for name, port in ports.items():
            typer.echo(f"{name:<7}http://{near}:{port}")
        failed = _wait_healthy(children, timeout, stop_requested)
        if failed is not None:
            code = failed.exit_code()
            if code is not None:
                failed.reap()
                typer.echo(crash_report(failed, code), err=True)
            else:
                typer.echo(f"error: {failed.name} was not healthy within {timeout:g}s", err=True)
            typer.echo("stopping the others", err=True)
            exit_code = 1
            return
        if not stop_requested:
            ui_url = f"http://{near}:{ui_port}"
            typer.echo(f"FlowTime is up - open {ui_url} (data in {data.root}); press Ctrl-C to stop.")
            if open_browser:
                webbrowser.open(ui_url)
            exit_code = _watch(children, echo, stop_requested)
            if exit_code:
                return
        typer.echo("stopping Engine, Sim and UI ...")
    finally:
        _stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if exit_code:
            raise typer.Exit(exit_code)
    typer.echo("stopped.")


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
    app.command("up")(up)
