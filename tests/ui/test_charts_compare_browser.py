"""
Charts, compare and polish in headless Chromium, against a real Engine, Sim and UI on loopback.

Charts read clock time from the grid's start (``models/topology-spike.yaml`` starts at
2025-01-01 00:00 UTC, hourly) and put a ratio on its own axis; an 8,760-bin series is
drawn min/max per pixel with its one-bin peak kept. Three runs are compared against a
baseline (deltas by hand), runs on different grids show the Engine's resampling
statement, a generated model's page survives a reload, and the runs list, run page,
compare and topology pages fit a 390 px wide screen (screenshots in test-artifacts/ui).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page
from tests.browser import SHOTS, chromium_page, marks
from tests.servers import serve

pytestmark = marks
MODELS = Path(__file__).parent / "models"
SPIKE_BIN = 5003


class Services:
    def __init__(self, engine: str, sim: str, ui: str) -> None:
        self.engine, self.sim, self.ui = engine, sim, ui

    def run(self, text: str) -> str:
        r = httpx.post(f"{self.engine}/v1/run", content=text.encode(), headers={"Content-Type": "text/yaml"},
                       timeout=120)
        assert r.status_code == 200, r.text
        return str(r.json()["runId"])


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    from flowtime.api.engine import create_engine_app
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import EngineSettings, SimSettings, UiSettings
    from flowtime.ui.app import create_ui_app

    root = tmp_path_factory.mktemp("charts")
    with serve(create_engine_app(EngineSettings(data_dir=root / "engine")), "engine") as engine, \
            serve(create_sim_app(SimSettings(data_dir=root / "sim")), "sim") as sim, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=sim)), "ui") as ui:
        yield Services(engine, sim, ui)


@pytest.fixture(scope="module")
def spike(services: Services) -> str:
    return services.run((MODELS / "topology-spike.yaml").read_text())


def hello(values: list[float], size: int = 1, unit: str = "hours") -> str:
    return (f"schemaVersion: 1\nmetadata: {{title: Hello}}\n"
            f"grid: {{bins: {len(values)}, binSize: {size}, binUnit: {unit}, start: '2025-01-01T00:00:00Z'}}\n"
            f"nodes:\n  - {{id: demand, kind: const, values: {values}}}\n"
            f"  - {{id: served, kind: expr, expr: \"MIN(demand, 25)\"}}\n")


@pytest.fixture()
def page() -> Iterator[Page]:
    with chromium_page() as pg:
        yield pg


def first_tick(pg: Page, chart: str) -> str:
    return str(pg.locator(f"{chart} .xtick text").first.text_content())


def test_the_run_chart_reads_clock_time_from_the_grid_start(page: Page, services: Services, spike: str) -> None:
    page.goto(f"{services.ui}/runs/{spike}")
    page.wait_for_selector("#chart[data-ready=true]")
    assert page.get_attribute("#chart", "data-axis") == "clock"
    assert first_tick(page, "#chart") == "2025-01-01 00:00"
    assert page.locator("#chart .g-xtitle text").text_content() == "time (UTC) · 1 h bins"
    # the hover and the table read the same clock: bin 7 is 07:00
    page.click("[data-tab=table]")
    assert page.locator("#values-table tbody tr").nth(7).locator("td").nth(1).text_content() == "2025-01-01 07:00"


def test_a_ratio_series_gets_its_own_axis(page: Page, services: Services, spike: str) -> None:
    page.goto(f"{services.ui}/runs/{spike}")
    page.wait_for_selector("#chart[data-ready=true]")
    page.click("[data-select=none]")
    page.wait_for_function("document.getElementById('chart').dataset.traces === '0'")
    page.check('#series-list input[value="orders@ORDERS@DEFAULT"]')
    page.check('#series-list input[value="pack_utilization@PACK_UTILIZATION@DEFAULT"]')
    page.wait_for_function("document.getElementById('chart').dataset.traces === '2'")
    assert page.get_attribute("#chart", "data-axes") == "entities / bin|ratio"
    axes: dict[str, Any] = page.evaluate("""() => {
        const gd = document.getElementById('chart');
        return {traces: gd.data.map((t) => [t.name, t.yaxis]),
                y2: gd._fullLayout.yaxis2.title.text, y: gd._fullLayout.yaxis.title.text,
                y2range: gd._fullLayout.yaxis2.range, yrange: gd._fullLayout.yaxis.range};
    }""")
    assert axes["traces"] == [["orders", "y"], ["pack_utilization", "y2"]]
    assert (axes["y"], axes["y2"]) == ("entities / bin", "ratio")
    # the ratio (peak 1.0 in hour 7) fills its own axis instead of lying flat under counts of 95
    assert axes["y2range"][1] < 1.5 and axes["yrange"][1] >= 95
    page.screenshot(path=str(SHOTS / "charts-unit-axes.png"), full_page=True)


def test_a_long_run_is_drawn_min_max_per_pixel_keeping_its_peak(page: Page, services: Services) -> None:
    values = [1.0] * 8760
    values[SPIKE_BIN] = 500.0
    values[SPIKE_BIN + 1] = -3.0
    text = ("schemaVersion: 1\nmetadata: {title: Year}\n"
            "grid: {bins: 8760, binSize: 1, binUnit: hours, start: '2025-01-01T00:00:00Z'}\n"
            f"nodes:\n  - {{id: load, kind: const, values: {values}}}\n")
    rid = services.run(text)
    page.goto(f"{services.ui}/runs/{rid}")
    page.wait_for_selector("#chart[data-ready=true]")
    drawn: dict[str, Any] = page.evaluate("""() => {
        const gd = document.getElementById('chart'), y = gd.data[0].y;
        return {n: y.length, max: Math.max(...y), min: Math.min(...y), width: gd.clientWidth,
                at: gd.data[0].x[y.indexOf(Math.max(...y))], readyMs: performance.now()};
    }""")
    # measured, not asserted: points drawn for 8,760 bins and the time from navigation to a drawn chart
    (SHOTS / "charts-timing.json").write_text(json.dumps(
        {"bins": 8760, "drawnPoints": drawn["n"], "chartWidthPx": drawn["width"],
         "navigationToReadyMs": round(drawn["readyMs"], 1)}, indent=2))
    assert drawn["n"] <= 2 * max(100, drawn["width"]) < 8760
    assert (drawn["max"], drawn["min"]) == (500.0, -3.0)
    assert drawn["at"] == "2025-07-28 11:00"  # bin 5003 = 208 days + 11 h after 2025-01-01 00:00
    assert first_tick(page, "#chart") == "2025-01-01 00:00"


def deltas(pg: Page, series: str) -> dict[str, list[float]]:
    card = f'#compare-charts .card[data-series="{series}"] .chart-sm'
    pg.wait_for_selector(f"{card}[data-ready=true]")
    out: dict[str, list[float]] = pg.evaluate(
        """(sel) => Object.fromEntries(document.querySelector(sel).data.filter((t) => t.yaxis === 'y2')
                                        .map((t) => [t.name, t.y]))""", card)
    return out


def test_three_runs_compare_with_deltas_against_the_chosen_baseline(page: Page, services: Services) -> None:
    r1, r2, r3 = (services.run(hello(v)) for v in ([10, 20, 30, 40], [12, 20, 20, 44], [10, 25, 30, 0]))
    page.goto(f"{services.ui}/runs")
    for rid in (r1, r2, r3):
        page.check(f'.run-select[value="{rid}"]')
    assert "against " + r1 in str(page.text_content("#sel-status"))
    page.click("#compare-btn")
    page.wait_for_url(re.compile(r".*/compare\?run=.*baseline=.*"))
    assert page.locator(".cmp-run").count() == 3
    assert deltas(page, "demand") == {"B − A": [2, 0, -10, 4], "C − A": [0, 5, 0, -40]}
    assert first_tick(page, '#compare-charts .card[data-series="demand"] .chart-sm') == "2025-01-01 00:00"
    page.screenshot(path=str(SHOTS / "compare-three-runs.png"), full_page=True)

    page.select_option("#baseline", r3)  # the page reloads against C
    page.wait_for_url(re.compile(rf".*baseline={r3}.*"))
    assert page.text_content("#baseline-name") == r3
    assert deltas(page, "demand") == {"A − C": [0, -5, 0, 40], "B − C": [2, -5, -10, 44]}


def test_runs_on_different_grids_are_compared_as_the_engine_states(page: Page, services: Services) -> None:
    quarter = services.run(hello([1, 2, 3, 4, 10, 10, 0, 0], 15, "minutes"))
    hourly = services.run(hello([7, 8, 9]))
    page.goto(f"{services.ui}/compare?a={quarter}&b={hourly}")
    assert page.get_attribute("#resampling", "data-resampled") == "true"
    statement = str(page.text_content("#resampling"))
    assert "2025-01-01 00:00 – 2025-01-01 02:00 UTC" in statement and "flows (entities per bin) are summed" in statement
    assert deltas(page, "demand") == {"A − B": [3, 12]}  # 1+2+3+4 - 7, 10+10+0+0 - 8


def test_runs_with_no_common_span_get_a_message_not_a_crash(page: Page, services: Services) -> None:
    a = services.run(hello([1, 2]))
    b = services.run(hello([1, 2]).replace("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
    resp = page.goto(f"{services.ui}/compare?a={a}&b={b}")
    assert resp is not None and resp.status == 409
    assert "share no time span" in str(page.text_content("#error-message"))


def test_a_generated_model_page_survives_a_reload(page: Page, services: Services) -> None:
    page.goto(f"{services.ui}/templates/commuter-rail")
    page.click("#generate")
    page.wait_for_selector("#run-form")
    assert re.search(r"/models/commuter-rail/[^/]+$", page.url)
    model_hash = page.get_attribute("#run-form input[name=hash]", "value")
    page.reload()
    page.wait_for_selector("#run-form")
    assert page.get_attribute("#run-form input[name=hash]", "value") == model_hash
    expired = page.goto(f"{services.ui}/models/commuter-rail/000000000000")
    assert expired is not None and expired.status == 404
    assert "has expired" in str(page.text_content("h1"))
    page.click("#error-back")
    page.wait_for_selector("#generate")


@pytest.mark.parametrize("where", ["runs", "run", "compare", "topology", "whatif", "analysis", "experiments"])
def test_pages_fit_a_390_pixel_screen(services: Services, spike: str, where: str) -> None:
    other = services.run((MODELS / "topology-spike.yaml").read_text().replace("values: 60}", "values: 70}"))
    url = {"runs": "/runs", "run": f"/runs/{spike}", "compare": f"/compare?a={other}&b={spike}",
           "topology": f"/runs/{spike}/topology", "whatif": f"/runs/{spike}/whatif",
           "analysis": f"/analysis/new?run={spike}", "experiments": "/experiments"}[where]
    with chromium_page(width=390, height=844) as pg:
        pg.goto(services.ui + url)
        ready = {"run": "#chart[data-ready=true]", "compare": "#compare-charts .chart-sm[data-ready=true]",
                 "topology": "#heatmap[data-painted]", "runs": "#runs-results",
                 "whatif": "#whatif-app[data-ready=true]", "analysis": "form", "experiments": "h1"}[where]
        pg.wait_for_selector(ready)
        pg.wait_for_timeout(300)  # let plotly's responsive resize settle before measuring
        width = pg.evaluate("document.documentElement.scrollWidth")
        pg.screenshot(path=str(SHOTS / f"{where}-390.png"), full_page=True)
        # what sticks out (the innermost elements), to say where an overflow comes from
        wide = pg.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > 391
                     && ![...e.children].some((c) => c.getBoundingClientRect().right > 391))
            .slice(0, 6)
            .map((e) => `${e.tagName}.${e.getAttribute('class') || ''}#${e.id} ${e.getBoundingClientRect().right}`)""")
        assert width <= 390, f"{where} is {width} px wide: {wide}"
