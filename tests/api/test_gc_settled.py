"""
A running service's start-up heap is frozen out of the cyclic collector
(``flowtime.gcpause.settled``): full collections skip it while the service
runs, and it is handed back when the service stops.
"""

from __future__ import annotations

import gc
from pathlib import Path

import httpx
from tests.servers import closed_port_url, serve

from flowtime.api.engine import create_engine_app
from flowtime.api.sim import create_sim_app
from flowtime.gcpause import settled
from flowtime.settings import EngineSettings, SimSettings, UiSettings
from flowtime.ui.app import create_ui_app


def collected(probe: object) -> bool:
    """Whether the collector's generations hold ``probe`` (a frozen object is in none of them)."""
    return any(o is probe for o in gc.get_objects())


def test_settled_freezes_the_survivors_for_the_block_and_frees_them_after() -> None:
    probe: list[object] = [object()]
    cycle: list[object] = []
    cycle.append(cycle)  # garbage with a cycle, dropped before the block: collected, not frozen
    del cycle
    assert collected(probe)
    with settled() as frozen:
        assert frozen > 0 and not collected(probe)
    assert collected(probe)


def test_every_service_runs_settled_and_hands_the_heap_back(tmp_path: Path) -> None:
    apps = {"engine": create_engine_app(EngineSettings(data_dir=tmp_path / "engine")),
            "sim": create_sim_app(SimSettings(data_dir=tmp_path / "sim")),
            "ui": create_ui_app(UiSettings(engine_url=closed_port_url(), sim_url=closed_port_url()))}
    for name, app in apps.items():
        probe: list[object] = [name]  # made before the service starts: part of its start-up heap
        with serve(app, name) as url:
            assert httpx.get(f"{url}/healthz" if name == "ui" else f"{url}/v1/healthz").status_code < 500
            assert gc.get_freeze_count() > 0 and not collected(probe), name
        assert collected(probe), name
