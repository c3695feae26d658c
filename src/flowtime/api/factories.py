"""
How ``flowtime serve`` hands the services to uvicorn.

    engine_app / sim_app / ui_app   import-string app factories
                                    (``flowtime.api.factories:engine_app``)
    SETTINGS_ENV                    settings JSON the factories read
    server_config(...)              the one uvicorn configuration every service
                                    is started with: timeouts and a connection cap
    GuardedH11Protocol              uvicorn's h11 protocol plus a deadline for
                                    a request's head (uvicorn has none), the
                                    connection cap and TCP_NODELAY
    serve(config)                   run it, with one process or several workers

uvicorn starts several workers by importing the app in each new process, so the
app must be named by an import string and its settings must travel through the
environment: the parent resolves them once (options, then ``FLOWTIME_*``) and
puts the JSON in ``SETTINGS_ENV``; every worker rebuilds the same object from it.
Why a header deadline and a cap are needed: docs/decisions/0011-http-server-timeouts.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings
    from starlette.types import ASGIApp

SETTINGS_ENV = "FLOWTIME_SERVE_SETTINGS"
STARTUP_FAILURE = 3  # uvicorn's exit code when the app or the socket cannot start
# WebSockets (the live what-if, decision 0043) through the ``websockets`` package's sans-I/O protocol:
# uvicorn's older "websockets" implementation runs on that package's deprecated legacy API.
WS_PROTOCOL = "websockets-sansio"
WS_MAX_BYTES = 1024 * 1024  # a what-if message sets a few numbers; the Engine refuses past 64 KiB itself

logger = logging.getLogger("uvicorn.error")


# ---- app factories ----------------------------------------------------------------------------


def settings_to_env(settings: BaseSettings) -> str:
    """The JSON the factories rebuild ``settings`` from (every field, so nothing is re-read from the environment)."""
    return settings.model_dump_json()


def _settings_from_env() -> dict[str, Any]:
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start the service with `flowtime serve`")
    data: dict[str, Any] = json.loads(text)
    return data


# The imports are inside the factories: a Sim worker must never load the Engine.
def engine_app() -> ASGIApp:
    """The Engine app for one uvicorn worker."""
    from flowtime.api.engine import create_engine_app
    from flowtime.settings import EngineSettings

    return create_engine_app(EngineSettings(**_settings_from_env()))


def sim_app() -> ASGIApp:
    """The Sim app for one uvicorn worker."""
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import SimSettings

    return create_sim_app(SimSettings(**_settings_from_env()))


def ui_app() -> ASGIApp:
    """The UI app for one uvicorn worker."""
    from flowtime.settings import UiSettings
    from flowtime.ui.app import create_ui_app

    return create_ui_app(UiSettings(**_settings_from_env()))


# ---- the server -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerLimits:
    """What one server process tolerates from its clients."""

    # Seconds a client has to send a complete request head (request line and
    # headers), counted from the connection or from the first byte of a request
    # on a kept-alive one.
    header_timeout: float = 10.0
    # Seconds an idle kept-alive connection stays open between requests.
    keep_alive_timeout: int = 5
    # Open connections per process; requests past it get 503 and connections past
    # it are closed at once, so file descriptors stay free for the ones served.
    max_connections: int = 1000


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus the header deadline (pickled as-is into each worker)."""

    def __init__(self, app: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout


_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"connection: close\r\ncontent-length: 38\r\n\r\nrequest headers not complete in time\r\n")
_FULL_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"connection: close\r\ncontent-length: 25\r\n\r\ntoo many open connections")


class GuardedH11Protocol(H11Protocol):
    """
    uvicorn's h11 protocol, closing connections whose request head is not
    complete within ``config.header_timeout`` seconds, and connections opened
    past ``limit_concurrency``. uvicorn's own keep-alive timer is reset by every
    byte received, so a client sending a byte a second held a connection forever.

    It also turns Nagle's algorithm off on every connection: with ``--workers``
    uvicorn binds the listening socket itself with ``proto=0``, so asyncio does
    not (uvicorn issue #3149), and each answer on a kept-alive connection waited
    for the client's delayed ACK (about 40 ms on Linux).
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout = float(getattr(config, "header_timeout", ServerLimits.header_timeout))
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.limit_concurrency is not None and len(self.connections) > self.limit_concurrency:
            logger.warning("Closing a connection: %d are open, the limit is %d",
                           len(self.connections), self.limit_concurrency)
            self.transport.write(_FULL_RESPONSE)
            self.transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        waiting = self.conn.their_state is h11.IDLE
        if waiting:
            self._head_bytes += len(data)
            if self._head_timer is None:  # a new request on a kept-alive connection
                self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in: the app has the request now
            self._disarm()
            self._head_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_bytes:  # a client that sent nothing (an unused pre-connection) is just closed
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def server_config(app: ASGIApp | str, *, host: str, port: int, workers: int = 1, log_level: str = "info",
                  limits: ServerLimits | None = None) -> ServerConfig:
    """
    The uvicorn configuration every FlowTime service runs with. ``app`` is an
    app, or the import string of a factory (needed for ``workers > 1``).
    """
    limits = limits or ServerLimits()
    return ServerConfig(
        app, host=host, port=port, workers=workers, factory=isinstance(app, str), log_level=log_level,
        http=GuardedH11Protocol, ws=WS_PROTOCOL, ws_max_size=WS_MAX_BYTES, lifespan="on",
        header_timeout=limits.header_timeout, timeout_keep_alive=limits.keep_alive_timeout,
        limit_concurrency=limits.max_connections,
    )


def _raise_file_limit(needed: int) -> None:
    """Lift the soft open-files limit towards the hard one: each connection is a descriptor."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        logger.warning("Could not raise the open-files limit from %d to %d", soft, target)


def _listener(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A socket of its own on ``address``, sharing the port with its siblings (SO_REUSEPORT)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class _PortShare(socket.socket):
    """
    The parent's claim on the port (bound, never listening), which each worker
    receives as a listening socket of its own on the same port. With one shared
    listening socket, the worker that wakes first accepts every connection of a
    burst, and kept-alive clients then stay on that one worker.
    """

    def __reduce__(self) -> tuple[Any, ...]:  # how uvicorn hands the "socket" to a worker
        return (_listener, (self.family, self.getsockname()))


def _port_share(config: ServerConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = _PortShare(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        if config.port:
            # A plain bind first: SO_REUSEPORT alone would let a second server on the
            # same port start and silently take half of the first one's connections.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((config.host, config.port))
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        logger.error("Cannot listen on %s:%d: %s", config.host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    logger.info("Listening on http://%s:%d with %d workers", config.host, sock.getsockname()[1], config.workers)
    return sock


def serve(config: ServerConfig) -> None:
    """Run the server until it is told to stop; exits with code 3 when it cannot start."""
    if config.limit_concurrency is not None:
        _raise_file_limit(config.limit_concurrency + 256)  # plus the run files and the index
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        # Without SO_REUSEPORT (Windows) the workers share uvicorn's one listening socket.
        sock = _port_share(config) if hasattr(socket, "SO_REUSEPORT") else config.bind_socket()
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            sys.exit(STARTUP_FAILURE)
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
