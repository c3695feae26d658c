"""UI test fixtures: fake Engine and Sim on loopback, and a UI server pointed at them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import create_fake_engine, create_fake_sim
from live import closed_port_url, serve

from flowtime.settings import UiSettings
from flowtime.ui.app import create_ui_app


class Stack:
    """A fake Engine, a fake Sim and the UI, all live on 127.0.0.1."""

    def __init__(self, engine_app: Any, sim_app: Any, ui_url: str) -> None:
        self.engine_app = engine_app
        self.sim_app = sim_app
        self.ui_url = ui_url
        self.http = httpx.Client(base_url=ui_url, timeout=30)

    def engine_requests(self, method: str, path_prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.engine_app.state.requests
                if r["method"] == method and r["path"].startswith(path_prefix)]


@pytest.fixture
def start_stack() -> Iterator[Callable[..., AbstractContextManager[Stack]]]:
    """Build a stack; ``engine_down`` / ``sim_down`` point the UI at a closed port instead."""

    @contextmanager
    def start(*, engine_down: bool = False, sim_down: bool = False, api_token: str | None = None,
              engine_token: str | None = None) -> Iterator[Stack]:
        engine_app, sim_app = create_fake_engine(token=engine_token), create_fake_sim()
        with serve(engine_app, "fake-engine") as e, serve(sim_app, "fake-sim") as s:
            settings = UiSettings(engine_url=closed_port_url() if engine_down else e,
                                  sim_url=closed_port_url() if sim_down else s,
                                  api_token=api_token)
            with serve(create_ui_app(settings), "ui") as u:
                stack = Stack(engine_app, sim_app, u)
                try:
                    yield stack
                finally:
                    stack.http.close()

    yield start


@pytest.fixture
def stack(start_stack: Callable[..., AbstractContextManager[Stack]]) -> Iterator[Stack]:
    with start_stack() as s:
        yield s
