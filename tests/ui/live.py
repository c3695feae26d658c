"""Serve any ASGI app on loopback for UI tests (see tests/servers.py), and an Engine with a UI in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
from tests.servers import closed_port_url, serve

S = TypeVar("S", bound="EngineAndUi")

__all__ = ["EngineAndUi", "closed_port_url", "engine_and_ui", "serve", "started"]


class EngineAndUi:
    """The base URLs of a real Engine and a UI pointing at it (Sim down), and a run stored through the Engine."""

    def __init__(self, engine: str, ui: str) -> None:
        self.engine, self.ui = engine, ui

    def run(self, text: str) -> str:
        r = httpx.post(f"{self.engine}/v1/run", content=text.encode(), params={"series": "false"},
                       headers={"Content-Type": "text/yaml"}, timeout=600)
        assert r.status_code == 200, r.text[:2000]
        return str(r.json()["runId"])


@contextmanager
def engine_and_ui(data_dir: Path) -> Iterator[tuple[str, str]]:
    """An Engine on ``data_dir`` and a UI in front of it, on loopback: their base URLs."""
    from flowtime.api.engine import create_engine_app
    from flowtime.settings import EngineSettings, UiSettings
    from flowtime.ui.app import create_ui_app

    with serve(create_engine_app(EngineSettings(data_dir=data_dir)), "engine") as engine, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=closed_port_url())), "ui") as ui:
        yield engine, ui


@contextmanager
def started(data_dir: Path, kind: type[S]) -> Iterator[S]:
    """``engine_and_ui`` as a ``kind`` (``EngineAndUi`` or a test's subclass of it)."""
    with engine_and_ui(data_dir) as (engine, ui):
        yield kind(engine, ui)
