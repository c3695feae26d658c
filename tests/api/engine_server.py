"""A real Engine server on loopback: uvicorn in a thread on an ephemeral port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from flowtime.api.engine import create_engine_app
from flowtime.settings import EngineSettings

HELLO = """schemaVersion: 1
metadata:
  title: Hello model
  tags: [demo, hello]
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: demand, kind: const, values: [10, 20, 30, 40]}
  - {id: served, kind: expr, expr: "MIN(demand, 25)"}
"""


@contextmanager
def serve_engine(settings: EngineSettings) -> Iterator[str]:
    """Start an Engine app for ``settings``; yields its base URL and stops it on exit."""
    config = uvicorn.Config(create_engine_app(settings), host="127.0.0.1", port=0,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="engine-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("engine server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
