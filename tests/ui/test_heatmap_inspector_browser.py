"""
The topology page's heatmap and inspector in headless Chromium, against a real Engine and UI on loopback.

The small run is ``models/pipeline.yaml`` (every value there by hand). A cell click
moves the time and pins its node; the card shows the Engine's own numbers at that
bin and explains each derived metric with them; cards close, link to their inputs,
and follow the selection. The heatmap is walked with the keyboard alone. A
50-node x 8,760-bin run checks fit-to-width (a one-bin peak survives) and writes the
measured paint times to ``test-artifacts/ui/heatmap-timing.json`` (reported, not asserted).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import EngineAndUi, engine_and_ui
from playwright.sync_api import Page
from tests.browser import SHOTS, chromium_page, marks

pytestmark = marks
MODELS = Path(__file__).parent / "models"
PEAK_BIN = 5003  # not a multiple of any column width the heatmap picks: a stride would step over it


class Services(EngineAndUi):
    def state(self, run_id: str, bin_: int) -> dict[str, Any]:
        r = httpx.get(f"{self.engine}/v1/runs/{run_id}/state", params={"bin": bin_, "mode": "full"})
        assert r.status_code == 200, r.text
        return {n["id"]: n for n in r.json()["nodes"]}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with engine_and_ui(tmp_path_factory.mktemp("heatmap") / "engine") as (engine, ui):
        yield Services(engine, ui)


@pytest.fixture(scope="module")
def pipeline(services: Services) -> str:
    return services.run((MODELS / "pipeline.yaml").read_text())


@pytest.fixture()
def page() -> Iterator[Page]:
    with chromium_page() as pg:
        yield pg


def open_topology(pg: Page, services: Services, run_id: str, metric: str) -> None:
    pg.goto(f"{services.ui}/runs/{run_id}/topology")
    pg.wait_for_function("document.getElementById('heatmap').dataset.painted")
    pg.evaluate("m => FT.setMetric(m)", metric)
    pg.wait_for_function("m => FT.heatmap.metric === m", arg=metric)


def cell_point(pg: Page, row: int, col: int) -> tuple[float, float]:
    """The page coordinates of the middle of a heatmap cell."""
    g = pg.evaluate("FT.heatmap.geometry")
    box = pg.locator("#heatmap .heatmap-overlay").bounding_box()
    assert box is not None
    return (box["x"] + g["gutter"] + (col + 0.5) * g["colW"], box["y"] + g["top"] + (row + 0.5) * g["rowH"])


def card(pg: Page, node: str) -> Any:
    return pg.locator(f'#inspector .inspector-card[data-node="{node}"]')


def calcs(pg: Page, node: str) -> list[str]:
    return [t.strip() for t in card(pg, node).locator("li.calc").all_inner_texts()]


def wait_bin(pg: Page, bin_: int) -> None:
    pg.wait_for_function("b => document.getElementById('inspector').dataset.bin === String(b)", arg=bin_)


def test_rows_sort_topologically_by_id_or_by_a_statistic_of_the_metric(page: Page, services: Services,
                                                                      pipeline: str) -> None:
    """Ship is declared first but is downstream of Packing; by max served Ship's 16 ties Packing's and comes first."""
    open_topology(page, services, pipeline, "served")
    assert page.evaluate("FT.heatmap.rows") == ["Intake", "Packing", "Ship"]
    page.select_option("#heatmap .heatmap-sort", "max")  # Intake 20, then Ship and Packing 16 (declaration order)
    assert page.evaluate("FT.heatmap.rows") == ["Intake", "Ship", "Packing"]
    page.evaluate("FT.setMetric('utilization')")  # Ship has no capacity: no utilization, sorted last
    page.select_option("#heatmap .heatmap-sort", "mean")  # Intake (1+.75+.9+1+1+.25)/6 = 0.817 < Packing's 1
    assert page.evaluate("FT.heatmap.rows") == ["Packing", "Intake", "Ship"]
    assert "2 of 3 nodes report utilization" in page.inner_text("#heatmap .heatmap-note")
    assert "One column per bin" in page.inner_text("#heatmap .heatmap-note")


def test_a_cell_click_moves_the_time_pins_the_node_and_its_card_shows_the_engines_values(
        page: Page, services: Services, pipeline: str) -> None:
    open_topology(page, services, pipeline, "utilization")
    page.mouse.move(*cell_point(page, 0, 2))
    tip = page.inner_text("#heatmap .heatmap-tip")
    assert tip == "Intake, 2025-01-01 02:00 UTC, bin 2, utilization 0.9"
    assert page.evaluate("FT.view.selected") == "Intake"  # hover selects
    page.mouse.click(*cell_point(page, 0, 2))
    assert page.evaluate("[FT.view.bin, FT.view.pinned]") == [2, ["Intake"]]
    wait_bin(page, 2)
    engine = services.state(pipeline, 2)["Intake"]
    shown = {td.get_attribute("data-metric"): td.inner_text()
             for td in card(page, "Intake").locator("td[data-metric]").all()}
    assert shown == {k: str(v).removesuffix(".0") for k, v in engine["metrics"].items()}
    assert shown == {"arrivals": "18", "served": "18", "capacity": "20"}
    # utilization = served / capacity = 18 / 20 = 0.9, the Engine's own result
    assert engine["derived"]["utilization"] == 0.9
    assert "utilization = served / capacity = 18 / 20 = 0.9" in calcs(page, "Intake")
    assert "throughputRatio = served / arrivals, clamped to [0, 1] = 18 / 18 = 1" in calcs(page, "Intake")
    assert card(page, "Intake").locator(".kind").inner_text() == "service · service"
    roles = card(page, "Intake").locator("table.semantics").inner_text()
    assert roles.split() == ["arrivals", "orders", "served", "intake_served", "capacity", "intake_capacity"]


def test_two_cards_explain_their_metrics_follow_the_bin_and_close(page: Page, services: Services,
                                                                   pipeline: str) -> None:
    open_topology(page, services, pipeline, "utilization")
    page.mouse.click(*cell_point(page, 0, 2))
    page.mouse.click(*cell_point(page, 1, 2))
    assert page.evaluate("FT.view.pinned") == ["Intake", "Packing"]
    wait_bin(page, 2)
    page.wait_for_function("document.querySelectorAll('#inspector li.calc').length > 4")
    # queueTimeMs = queue / served x binMs = 5 / 16 x 3,600,000 = 1,125,000 ms; / 60,000 = 18.75 minutes
    packing = calcs(page, "Packing")
    assert "queueTimeMs = queue / served × binMs = 5 / 16 × 3600000 = 1125000" in packing
    assert "latencyMinutes = queueTimeMs / 60000 = 1125000 / 60000 = 18.75" in packing
    assert "utilization = served / capacity = 16 / 16 = 1" in packing
    assert "throughputRatio = served / arrivals, clamped to [0, 1] = 16 / 18 = 0.888889" in packing
    assert any(c.startswith("kingmanWqMs") and c.endswith("undefined (utilization not strictly between 0 and 1)")
               for c in packing)
    page.screenshot(path=str(SHOTS / "heatmap-inspector.png"), full_page=True)  # docs/screenshots has a copy

    # Ship pulls its flow latency from Packing over the packing-ship edge: 0 + (16 x 1125000) / (16)
    page.evaluate("FT.pin('Ship')")
    page.wait_for_function("document.querySelector('#inspector [data-node=Ship] li.calc')")
    assert ("flowLatencyMs = cycleTimeMs + (flow Packing × flowLatencyMs Packing) / (flow Packing) = "
            "0 + (16 × 1125000) / (16) = 1125000") in calcs(page, "Ship")
    page.evaluate("FT.unpin('Ship')")

    # A finding's bin moves the time; the card follows: at bin 4 Packing's queue is 13 (13 / 16 x 3,600,000)
    findings = card(page, "Packing").locator("ul.warnings").inner_text()
    assert "backlog_growth_streak" in findings and "bins 2, 3, 4" in findings
    card(page, "Packing").locator("button.bin-link", has_text="4").first.click()
    assert page.evaluate("FT.view.bin") == 4
    wait_bin(page, 4)
    assert "queueTimeMs = queue / served × binMs = 13 / 16 × 3600000 = 2925000" in calcs(page, "Packing")
    assert card(page, "Packing").locator("svg.spark line.now").first.get_attribute("x1") == "4"

    # Selection both ways: hovering a card selects its node, selecting a node highlights its card
    card(page, "Intake").hover()
    assert page.evaluate("FT.view.selected") == "Intake"
    page.evaluate("FT.select('Packing')")
    assert card(page, "Packing").get_attribute("class") == "inspector-card selected"
    assert card(page, "Intake").get_attribute("class") == "inspector-card"

    page.click('#inspector button[aria-label="Close Intake"]')
    assert page.evaluate("FT.view.pinned") == ["Packing"]
    assert card(page, "Intake").count() == 0


def test_an_input_link_pins_that_node_with_its_expression_and_value(page: Page, services: Services,
                                                                     pipeline: str) -> None:
    open_topology(page, services, pipeline, "utilization")
    page.evaluate("FT.setBin(2); FT.pin('Packing')")
    card(page, "Packing").locator("table.semantics button", has_text="pack_served").click()
    assert page.evaluate("FT.view.pinned") == ["Packing", "pack_served"]
    served = card(page, "pack_served")
    served.locator(".expr").wait_for()
    assert served.locator(".expr").inner_text() == \
        "pack_served = MIN(pack_capacity, intake_served + SHIFT(pack_queue, 1))"
    assert served.locator(".expr button").all_inner_texts() == ["pack_capacity", "intake_served", "pack_queue"]
    wait_bin(page, 2)
    page.wait_for_function("document.querySelector('#inspector [data-node=pack_served] td[data-metric]')")
    assert served.locator('td[data-metric="values"]').inner_text() == "16"  # MIN(16, 18 + 3)
    assert services.state(pipeline, 2)["pack_served"]["metrics"]["values"] == 16.0
    served.locator(".expr button", has_text="pack_capacity").click()
    assert page.evaluate("FT.view.pinned") == ["Packing", "pack_served", "pack_capacity"]
    # its sparkline came from the relayed full-mode window of that one node
    card(page, "pack_capacity").locator("svg.spark").wait_for()


def test_the_heatmap_is_usable_with_the_keyboard_alone(page: Page, services: Services, pipeline: str) -> None:
    open_topology(page, services, pipeline, "utilization")
    for _ in range(40):  # Tab from the top of the page to the heatmap
        if page.evaluate("document.activeElement.classList.contains('heatmap-plot')"):
            break
        page.keyboard.press("Tab")
    plot = page.locator("#heatmap .heatmap-plot")
    assert plot.get_attribute("role") == "application"
    assert plot.get_attribute("aria-label") == "Heatmap of utilization: 3 nodes by 6 bins"
    live = page.locator("#heatmap .heatmap-live")
    assert live.get_attribute("aria-live") == "polite"
    assert live.inner_text() == "Intake, 2025-01-01 00:00 UTC, bin 0, utilization 1"
    for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
        page.keyboard.press(key)
    assert live.inner_text() == "Packing, 2025-01-01 02:00 UTC, bin 2, utilization 1"
    assert page.evaluate("FT.view.selected") == "Packing"
    page.keyboard.press("ArrowDown")
    assert live.inner_text() == "Ship, 2025-01-01 02:00 UTC, bin 2, no utilization for this node"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    assert page.evaluate("[FT.view.bin, FT.view.pinned]") == [2, ["Packing"]]
    page.keyboard.press("End")
    assert live.inner_text() == "Packing, 2025-01-01 05:00 UTC, bin 5, utilization 1"
    page.keyboard.press("Home")
    page.keyboard.press("ArrowUp")
    assert live.inner_text() == "Intake, 2025-01-01 00:00 UTC, bin 0, utilization 1"
    page.keyboard.press("Escape")
    assert page.evaluate("FT.view.selected") is None
    page.screenshot(path=str(SHOTS / "heatmap-keyboard.png"), full_page=True)
    for _ in range(40):  # on to the card, and close it from the keyboard
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Close Packing":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("FT.view.pinned") == []


def long_model(nodes: int = 50, bins: int = 8760) -> str:
    """A chain of services over a year of hours; stage 0 sees a one-bin peak of 1000 at PEAK_BIN."""
    demand = [round(60 + 30 * ((b * 7919) % 97) / 97, 3) for b in range(bins)]
    demand[PEAK_BIN] = 1000
    lines = ["schemaVersion: 1", "metadata: {title: A year of fifty stages}",
             f'grid: {{bins: {bins}, binSize: 1, binUnit: hours, start: "2025-01-01T00:00:00Z"}}', "nodes:",
             f"  - {{id: demand, kind: const, values: [{', '.join(map(str, demand))}]}}"]
    for i in range(nodes):
        source = "demand" if i == 0 else f"s{i - 1}_served"
        lines += [f"  - {{id: s{i}_cap, kind: const, values: {2000 if i == 0 else 85 - i % 7}}}",
                  f'  - {{id: s{i}_served, kind: expr, expr: "MIN({source}, s{i}_cap)"}}']
    lines += ["topology:", "  nodes:"]
    for i in range(nodes):
        source = "demand" if i == 0 else f"s{i - 1}_served"
        lines.append(f"    - {{id: S{i}, kind: service, semantics: {{arrivals: {source}, served: s{i}_served, "
                     f"capacity: s{i}_cap}}}}")
    lines.append("  edges:")
    lines += [f"    - {{from: S{i - 1}, to: S{i}}}" for i in range(1, nodes)]
    lines += ["outputs:", '  - series: "*"']
    return "\n".join(lines) + "\n"


def test_a_year_of_fifty_nodes_fits_the_width_keeps_its_peak_and_reports_paint_times(services: Services) -> None:
    run_id = services.run(long_model())
    with chromium_page() as pg:
        open_topology(pg, services, run_id, "served")
        hm = pg.evaluate("({...FT.heatmap})")
        window = pg.evaluate("FT.view.data.window.downsampled")
        assert len(hm["rows"]) == 50 and hm["rows"][:3] == ["S0", "S1", "S2"]
        per = hm["per"]
        assert per > 1 and per % window["bucketBins"] == 0 and hm["columns"] == -(-8760 // per)
        note = pg.inner_text("#heatmap .heatmap-note")
        assert f"Each column = {per} bins, showing the max" in note
        col = PEAK_BIN // per
        pg.mouse.move(*cell_point(pg, 0, col))
        first, last = col * per, col * per + per - 1
        assert f"bins {first}–{last}, max served 1000" in pg.inner_text("#heatmap .heatmap-tip")
        pg.mouse.click(*cell_point(pg, 0, col))
        assert pg.evaluate("[FT.view.bin, FT.view.pinned]") == [first, ["S0"]]  # downsampled: the column's start
        steps = pg.evaluate("""() => {
            const out = [];
            for (let b = 0; b < 8760; b += 438) {
              const t = performance.now(); FT.setBin(b); out.push(performance.now() - t);
            }
            return out;
        }""")
        timing = {"nodes": 50, "bins": 8760, "columns": hm["columns"], "binsPerColumn": per,
                  "firstPaintMsSinceNavigation": round(hm["firstPaintAt"], 1),
                  "lastPaintMs": round(pg.evaluate("FT.heatmap.paintMs"), 1),
                  "binStepMsMax": round(max(steps), 2), "binStepMsMean": round(sum(steps) / len(steps), 2)}
        pg.screenshot(path=str(SHOTS / "heatmap-year.png"), full_page=True)
    out = SHOTS / "heatmap-timing.json"
    out.write_text(json.dumps(timing, indent=2) + "\n")
    print(f"\nheatmap timing: {json.dumps(timing)}")


def test_the_ui_relays_a_window_of_chosen_nodes_for_the_inspector(services: Services, pipeline: str) -> None:
    """A computed node's card fetches its own full-mode window: only that node, not the whole run."""
    r = httpx.get(f"{services.ui}/runs/{pipeline}/state/state_window.json",
                  params={"mode": "full", "nodes": "pack_capacity"})
    assert r.status_code == 200
    assert [n["id"] for n in r.json()["nodes"]] == ["pack_capacity"]
    assert r.json()["nodes"][0]["series"]["values"] == [16.0] * 6
