"""
The UI as an amplifier: pages and downloads of a run with many series.

A real Engine over two runs of 20,000 series x 2 bins (written by the real
writer) and a real UI in front of it. One zip download is a single streamed
Engine export, sent while it is built, and the UI answers ``/healthz`` while
the download is in flight (the Engine's export is held half way, so the
download provably has not finished). The run page lists one page of series,
and a comparison answers with a bounded page of series and says so.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.servers import closed_port_url, serve

from flowtime.api.engine import create_engine_app
from flowtime.artifacts.compare import MAX_COMPARED_SERIES, MAX_COMPARED_VALUES, compare_runs, series_limit
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine.evaluate import evaluate
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings, UiSettings
from flowtime.ui.app import create_ui_app
from flowtime.ui.pages.run_detail import SERIES_PAGE

SERIES = 20_000


class ExportGate:
    """
    ASGI middleware for the Engine: the body of ``/export`` answers stops after
    ``after`` chunks until ``release()`` (``held`` is set while it waits).
    """

    def __init__(self, app: ASGIApp, after: int) -> None:
        self.app = app
        self.after = after
        self.held = threading.Event()
        self.opened = threading.Event()

    def release(self) -> None:
        self.opened.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/export"):
            await self.app(scope, receive, send)
            return
        sent = 0

        async def gated(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += 1
                if sent == self.after and not self.opened.is_set():
                    self.held.set()
                    await anyio.to_thread.run_sync(self.opened.wait)
            await send(message)

        await self.app(scope, receive, gated)


@dataclass
class Big:
    engine_dir: Path
    a: str
    b: str


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Big:
    root = tmp_path_factory.mktemp("big") / "engine"
    text = ("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n"
            + "".join(f"  - {{id: n{i}, values: [{i}, {i + 0.5}]}}\n" for i in range(SERIES)))
    loaded = load_model(text)
    results = evaluate(loaded.model)
    a = write_run(loaded, results, root).run_id
    b = write_run(loaded, results, root).run_id
    return Big(root, a, b)


@dataclass
class Servers:
    engine: str
    ui: str
    gate: ExportGate


@pytest.fixture
def servers(big: Big) -> Iterator[Servers]:
    gate = ExportGate(create_engine_app(EngineSettings(data_dir=big.engine_dir)), after=SERIES // 2)
    with serve(gate, "engine") as e, \
            serve(create_ui_app(UiSettings(engine_url=e, sim_url=closed_port_url(), request_timeout_seconds=120)),
                  "ui") as u:
        yield Servers(e, u, gate)
        gate.release()


def test_the_zip_is_streamed_and_the_ui_answers_while_it_is_in_flight(big: Big, servers: Servers) -> None:
    received = bytearray()
    first_bytes, finished = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def download() -> None:
        try:
            with httpx.stream("GET", f"{servers.ui}/runs/{big.a}/download.zip", timeout=120) as r:
                assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
                for chunk in r.iter_bytes():
                    received.extend(chunk)
                    if b"/series/" in received:
                        first_bytes.set()
            finished.set()
        except BaseException as exc:  # reported by the test thread below
            failure.append(exc)
            first_bytes.set()

    thread = threading.Thread(target=download, daemon=True)
    thread.start()
    # Series entries reach the browser while the Engine's export is held half way.
    assert servers.gate.held.wait(120), "the UI never streamed the Engine's export"
    assert first_bytes.wait(120), "no zipped series before the export finished: the zip is not streamed"
    assert not failure, failure
    health = httpx.get(f"{servers.ui}/healthz", timeout=60)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert not finished.is_set()  # the health answer came while the download was in flight
    servers.gate.release()
    thread.join(120)
    assert finished.is_set() and not failure, failure

    archive = zipfile.ZipFile(io.BytesIO(bytes(received)))
    names = archive.namelist()
    series = [n for n in names if "/series/" in n]
    assert len(series) == SERIES
    assert f"{big.a}/spec.yaml" in names and f"{big.a}/manifest.json" in names
    folder = big.engine_dir / big.a / "series"
    for name in series:  # byte for byte the stored files
        assert archive.read(name) == (folder / name.rsplit("/", 1)[-1]).read_bytes(), name
    assert archive.read(f"{big.a}/series/n7@N7@DEFAULT.csv") == b"t,value\n0,7\n1,7.5\n"


def test_the_run_page_lists_one_page_of_series(big: Big, servers: Servers) -> None:
    servers.gate.release()
    with httpx.Client(base_url=servers.ui, timeout=120) as c:
        page = c.get(f"/runs/{big.a}")
        assert page.status_code == 200
        assert page.text.count('data-csv="') == SERIES_PAGE
        assert f'id="series-total">{SERIES}<' in page.text
        pages = -(-SERIES // SERIES_PAGE)
        assert f"page 1 of {pages}" in page.text and f'href="/runs/{big.a}?sp=2#files" rel="next"' in page.text
        data = json.loads(re.search(r'id="run-data">(.*?)</script>', page.text, re.S).group(1))  # type: ignore[union-attr]
        assert [s["label"] for s in data["series"]] == [f"n{i}" for i in range(SERIES_PAGE)]
        assert sum(1 for s in data["series"] if s["values"] is not None) == 24
        assert "the graph is drawn for models of up to" in page.text
        last = c.get(f"/runs/{big.a}", params={"sp": str(pages)})
        data = json.loads(re.search(r'id="run-data">(.*?)</script>', last.text, re.S).group(1))  # type: ignore[union-attr]
        assert data["series"][-1]["label"] == f"n{SERIES - 1}" and data["series"][0]["values"] == [
            SERIES - SERIES_PAGE, SERIES - SERIES_PAGE + 0.5]
        assert 'rel="next"' not in last.text
        beyond = c.get(f"/runs/{big.a}", params={"sp": "999999"})
        assert f"page {pages} of {pages}" in beyond.text
        assert "page 1 of" in c.get(f"/runs/{big.a}", params={"sp": "junk"}).text


def test_a_comparison_answers_with_one_bounded_page(big: Big, servers: Servers) -> None:
    servers.gate.release()
    body = httpx.get(f"{servers.engine}/v1/runs/compare", params={"a": big.a, "b": big.b}, timeout=120).json()
    assert len(body["series"]) == MAX_COMPARED_SERIES == len(body["ranking"])
    assert body["page"] == {"offset": 0, "limit": MAX_COMPARED_SERIES, "returned": MAX_COMPARED_SERIES,
                            "total": SERIES, "truncated": True, "nextOffset": MAX_COMPARED_SERIES,
                            "onlyInACount": 0, "onlyInBCount": 0}
    assert body["series"][0]["id"] == "n0" and body["series"][0]["delta"] == [0, 0]
    page = httpx.get(f"{servers.ui}/compare", params={"a": big.a, "b": big.b}, timeout=120)
    assert page.status_code == 200
    assert f"Showing common series 1–{MAX_COMPARED_SERIES} of {SERIES}" in page.text


def test_compare_runs_reads_only_the_page_it_answers(big: Big, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(big.engine_dir)
    read: list[str] = []
    real = Registry.series_values

    def counting(self: Registry, run_id: str, entry: dict[str, Any]) -> Any:
        read.append(str(entry["nodeId"]))
        return real(self, run_id, entry)

    monkeypatch.setattr(Registry, "series_values", counting)
    tail = compare_runs(registry, big.a, big.b, offset=SERIES - 50)
    assert [d.id for d in tail.comparison.series] == [f"n{i}" for i in range(SERIES - 50, SERIES)]
    assert tail.page is not None and tail.page.to_json()["nextOffset"] is None
    assert tail.page.truncated  # the first 19,950 are on other pages
    assert sorted(read) == sorted([f"n{i}" for i in range(SERIES - 50, SERIES)] * 2)
    assert compare_runs(registry, big.a, big.b, offset=SERIES + 5).page.returned == 0  # type: ignore[union-attr]


def test_the_series_per_comparison_shrink_on_long_grids() -> None:
    assert series_limit(2) == MAX_COMPARED_SERIES
    assert series_limit(MAX_COMPARED_VALUES // 10) == 10
    assert series_limit(MAX_COMPARED_VALUES * 4) == 1
    assert series_limit(2, None) is None  # local callers (the CLI) may compare everything


def test_a_local_caller_may_compare_every_series(tmp_path: Path) -> None:
    loaded = load_model("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n"
                        + "".join(f"  - {{id: n{i}, values: [{i}, 1]}}\n" for i in range(MAX_COMPARED_SERIES + 5)))
    other = load_model("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n"
                       + "".join(f"  - {{id: n{i}, values: [0, 1]}}\n" for i in range(MAX_COMPARED_SERIES + 5))
                       + "".join(f"  - {{id: extra{i}, values: [0, 0]}}\n" for i in range(3)))
    a = write_run(loaded, evaluate(loaded.model), tmp_path).run_id
    b = write_run(other, evaluate(other.model), tmp_path).run_id
    every = compare_runs(Registry(tmp_path), a, b, limit=None)
    assert len(every.comparison.series) == MAX_COMPARED_SERIES + 5
    assert every.page is not None and not every.page.truncated
    assert every.comparison.ranking[0].id == f"n{MAX_COMPARED_SERIES + 4}"
    assert every.comparison.ranking[0].max_abs_delta == MAX_COMPARED_SERIES + 4
    assert every.comparison.only_in_b == ["extra0", "extra1", "extra2"]
    assert every.to_json()["page"]["onlyInBCount"] == 3
