"""A real Engine server on loopback: uvicorn in a thread on an ephemeral port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.servers import serve

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
    with serve(create_engine_app(settings), "engine-server") as url:
        yield url

