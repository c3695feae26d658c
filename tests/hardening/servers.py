"""Real Engine and Sim servers for the hardening tests: uvicorn in a thread, ephemeral port."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers import serve

from flowtime.api.engine import create_engine_app
from flowtime.api.sim import create_sim_app
from flowtime.settings import EngineSettings, SimSettings

PROBLEM = "application/problem+json"
TOKEN = "hardening-token"
ORIGIN = "http://ui.example:5219"

HELLO = """schemaVersion: 1
metadata: {title: Hardening hello}
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: demand, kind: const, values: [10, 20, 30, 40]}
  - {id: served, kind: expr, expr: "MIN(demand, 25)"}
"""


@contextmanager
def engine(data_dir: Path, **settings: Any) -> Iterator[str]:
    with serve(create_engine_app(EngineSettings(data_dir=data_dir, **settings)), "engine") as url:
        yield url


@contextmanager
def sim(data_dir: Path, **settings: Any) -> Iterator[str]:
    with serve(create_sim_app(SimSettings(data_dir=data_dir, **settings)), "sim") as url:
        yield url


class _RawConnection(http.client.HTTPConnection):
    """Sends the request target byte for byte: raw UTF-8, control characters and all."""

    def _encode_request(self, request: str) -> bytes:
        return request.encode("utf-8", "surrogateescape")

    def _validate_path(self, url: str) -> None:
        return None


def raw_request(base_url: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """
    Send ``path`` exactly as written: httpx would normalise '..', re-encode the
    path and refuse control characters, which is what these tests need to get past.
    """
    u = urlsplit(base_url)
    conn = _RawConnection(u.hostname or "", u.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
