"""
``flowtime serve engine|sim|ui`` (one service in this process) and
``flowtime up`` (all three as child processes, stopped together on Ctrl-C).

Settings objects are built here, from the options given plus ``FLOWTIME_*``
environment variables, and passed to the app factories.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer

serve_app = typer.Typer(name="serve", help="Run one FlowTime service over HTTP.", no_args_is_help=True)

Host = Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")]
LogLevel = Annotated[str, typer.Option("--log-level", help="uvicorn log level.")]


def _settings(cls: Any, **options: Any) -> Any:
    """A settings object from the options that were given; the rest from the environment."""
    return cls(**{k: v for k, v in options.items() if v is not None})


def _run(app: Any, host: str, port: int, log_level: str) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level)


@serve_app.command("engine")
def serve_engine(
    host: Host = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where runs are stored "
                                                  "(env FLOWTIME_DATA_DIR, default ./data).")] = None,
    log_level: LogLevel = "info",
) -> None:
    """Serve the Engine API (/v1): run models, keep the run registry."""
    from flowtime.api.engine import create_engine_app
    from flowtime.settings import EngineSettings

    settings = _settings(EngineSettings, host=host, port=port, data_dir=data_dir)
    _run(create_engine_app(settings), settings.host, settings.port, log_level)


@serve_app.command("sim")
def serve_sim(
    host: Host = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8090).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where generated models are kept "
                                                  "(env FLOWTIME_SIM_DATA_DIR, default ./data/sim).")] = None,
    templates_dir: Annotated[Path | None, typer.Option("--templates-dir", help="Extra template folder "
                                                       "(default: the built-in library).")] = None,
    log_level: LogLevel = "info",
) -> None:
    """Serve the Sim API (/api/v1): templates, model generation, temporary model store."""
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import SimSettings

    settings = _settings(SimSettings, host=host, port=port, data_dir=data_dir, templates_dir=templates_dir)
    _run(create_sim_app(settings), settings.host, settings.port, log_level)


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
    from flowtime.ui.app import create_ui_app

    settings = _settings(UiSettings, host=host, port=port, engine_url=engine_url, sim_url=sim_url)
    _run(create_ui_app(settings), settings.host, settings.port, log_level)


# ---- flowtime up ----------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    kind: str
    port: int
    health_path: str
    extra: list[str]
    process: subprocess.Popen[bytes] | None = None

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}"


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


def _wait_healthy(services: list[Service], host: str, timeout: float) -> Service | None:
    """Poll each service's health URL; returns the one that died or timed out, else None."""
    pending = list(services)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while pending:
            for svc in list(pending):
                if svc.process is not None and svc.process.poll() is not None:
                    return svc
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(svc.url(host) + svc.health_path).status_code == 200:
                        pending.remove(svc)
            if pending and time.monotonic() > deadline:
                return pending[0]
            if pending:
                time.sleep(0.1)
    return None


def _stop(services: list[Service], grace: float = 10.0) -> None:
    running = [s for s in services if s.process is not None and s.process.poll() is None]
    for svc in running:
        assert svc.process is not None
        svc.process.terminate()
    deadline = time.monotonic() + grace
    for svc in running:
        assert svc.process is not None
        try:
            svc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            svc.process.kill()
            svc.process.wait()


def up(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Data folder: Engine runs go to DIR/engine, "
                                           "Sim models to DIR/sim.")] = Path("data"),
    host: Annotated[str, typer.Option(help="Interface all three listen on.")] = "127.0.0.1",
    engine_port: Annotated[int, typer.Option("--engine-port")] = 8080,
    sim_port: Annotated[int, typer.Option("--sim-port")] = 8090,
    ui_port: Annotated[int, typer.Option("--ui-port")] = 5219,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the UI in a browser when ready.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the services to be healthy.")] = 60.0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the services' request logs.")] = False,
) -> None:
    """Start Engine, Sim and the UI together; Ctrl-C stops all three."""
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
    engine_dir, sim_dir = data_dir / "engine", data_dir / "sim"
    engine_dir.mkdir(parents=True, exist_ok=True)
    sim_dir.mkdir(parents=True, exist_ok=True)
    near = _connect_host(host)
    services = [
        Service("Engine", "engine", engine_port, "/v1/healthz", ["--data-dir", str(engine_dir)]),
        Service("Sim", "sim", sim_port, "/api/v1/healthz", ["--data-dir", str(sim_dir)]),
        Service("UI", "ui", ui_port, "/healthz",
                ["--engine-url", f"http://{near}:{engine_port}", "--sim-url", f"http://{near}:{sim_port}"]),
    ]
    stop_requested: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        for svc in services:
            cmd = [sys.executable, "-m", "flowtime", "serve", svc.kind, "--host", host,
                   "--port", str(svc.port), "--log-level", "info" if verbose else "warning", *svc.extra]
            # Own session: Ctrl-C reaches only this process, which then stops the children in order.
            svc.process = subprocess.Popen(cmd, start_new_session=True)
        for svc in services:
            typer.echo(f"{svc.name:<7}{svc.url(near)}")
        failed = _wait_healthy(services, near, timeout)
        if failed is not None:
            code = failed.process.poll() if failed.process else None
            why = f"exited with code {code}" if code is not None else f"was not healthy within {timeout:g}s"
            typer.echo(f"error: {failed.name} {why}; stopping the others", err=True)
            exit_code = 1
            return
        ui_url = services[2].url(near)
        typer.echo(f"FlowTime is up - open {ui_url} (data in {data_dir}); press Ctrl-C to stop.")
        if open_browser:
            webbrowser.open(ui_url)
        while not stop_requested:
            dead = next((s for s in services if s.process and s.process.poll() is not None), None)
            if dead is not None:
                typer.echo(f"error: {dead.name} exited with code {dead.process.returncode if dead.process else '?'}; "
                           "stopping the others", err=True)
                exit_code = 1
                return
            time.sleep(0.2)
        typer.echo("stopping Engine, Sim and UI ...")
    finally:
        _stop(services)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if exit_code:
            raise typer.Exit(exit_code)
    typer.echo("stopped.")


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
    app.command("up")(up)
