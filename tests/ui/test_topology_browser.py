"""
The run topology page in headless Chromium, against a real Engine and the UI on loopback.

A three-service line (tests/ui/models/topology-spike.yaml) whose Pack saturates in hour 7: switch the metric,
scrub to bin 7 and find Pack in the top colour band with the value the Engine's /state gives; warning badges,
chips, pinning and selection; a keyboard-only walk through the scrubber and the nodes. The slow test times
first paint and scrub steps on a 50-node x 8,760-bin run in a registry of 10,000 runs and writes the numbers
to test-artifacts/ui/topology-timing.json (reported, not asserted).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import EngineAndUi, started
from playwright.sync_api import Page
from tests.browser import SHOTS, chromium_page, marks

pytestmark = marks

ROOT = Path(__file__).resolve().parents[2]
SPIKE = (Path(__file__).parent / "models" / "topology-spike.yaml").read_text()
QUEUE = (ROOT / "examples" / "service-queue.yaml").read_text()


class Services(EngineAndUi):
    def state(self, run_id: str, bin_: int, mode: str = "operational") -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.engine}/v1/runs/{run_id}/state",
                                         params={"bin": bin_, "mode": mode}).json()
        return body


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with started(tmp_path_factory.mktemp("engine"), Services) as services:
        yield services


@pytest.fixture(scope="module")
def spike(services: Services) -> str:
    return services.run(SPIKE)


def open_topology(pg: Page, services: Services, run_id: str) -> None:
    pg.goto(f"{services.ui}/runs/{run_id}/topology")
    pg.wait_for_selector("#topology[data-ready=true]")
    wait_exact(pg, 0)


def wait_exact(pg: Page, bin_: int) -> None:
    """Until the topology shows the Engine's exact values for the bin (from /state)."""
    pg.wait_for_selector(f"#topology svg[data-exact-bin='{bin_}'][data-bin='{bin_}']")


def node(pg: Page, node_id: str) -> dict[str, Any]:
    info: dict[str, Any] = pg.eval_on_selector(f".tnode[data-node='{node_id}']", """g => ({
        cls: g.getAttribute('class'), band: g.dataset.band, value: g.dataset.value,
        text: g.querySelector('.tnode-value').textContent, label: g.getAttribute('aria-label'),
        pressed: g.getAttribute('aria-pressed'), fill: g.querySelector('.tnode-box').style.fill})""")
    return info


def engine_value(state: dict[str, Any], node_id: str, metric: str) -> float | None:
    (n,) = [n for n in state["nodes"] if n["id"] == node_id]
    merged = {**n["metrics"], **n["derived"]}
    value = merged.get(metric)
    return None if value is None else float(value)


def shot(pg: Page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def test_metric_switch_and_scrub_colour_pack_in_the_top_band_with_the_engines_value(
        services: Services, spike: str) -> None:
    with chromium_page() as pg:
        open_topology(pg, services, spike)
        options = pg.eval_on_selector_all("#metric-select option", "os => os.map(o => o.value)")
        # What the run has: no errors series, no flow latency without processing times.
        assert options[0] == "utilization"
        assert {"utilization", "queue", "arrivals", "served", "throughputRatio"} <= set(options)
        assert "errors" not in options
        assert pg.input_value("#metric-select") == "utilization"
        # Hour 0: Pack at 40/60 = 0.667 -> (0.667 - 0.2) / (1.0 - 0.2) = 0.58 of the scale: band 5.
        pack = node(pg, "Pack")
        assert pack["band"] == "5" and "band-5" in pack["cls"].split()
        assert pack["text"] == "66.7 %"

        # Queue depth: the legend and the values follow the metric.
        pg.select_option("#metric-select", "queue")
        assert pg.inner_text("#legend .legend-caption") == "Queue depth:"
        assert node(pg, "Pack")["text"] == "0 items"
        assert node(pg, "Intake")["band"] == "none"  # a service without a queue: no value, grey
        assert node(pg, "Intake")["text"] == "no value"
        pg.select_option("#metric-select", "utilization")

        # Scrub to hour 7 with the slider's keys: Pack saturates (60/60 = 1.0, the run's 99th percentile).
        pg.focus("#scrub-range")
        for _ in range(7):
            pg.keyboard.press("ArrowRight")
        wait_exact(pg, 7)
        state = services.state(spike, 7)
        pack = node(pg, "Pack")
        assert "band-9" in pack["cls"].split() and pack["band"] == "9"
        assert float(pack["value"]) == engine_value(state, "Pack", "utilization") == 1.0
        assert pack["text"] == "100 %"
        assert "Pack, serviceWithBuffer: Utilization 100 %, band 10 of 10" in pack["label"]
        # Every node shows the Engine's value at the bin; Intake 95/200 and Ship 60/200 stay low.
        for node_id, band in (("Intake", "3"), ("Ship", "1")):
            shown = node(pg, node_id)
            assert shown["band"] == band
            assert float(shown["value"]) == engine_value(state, node_id, "utilization")
        assert pg.inner_text("#scrub-time") == "2025-01-01 07:00 UTC · bin 7 of 12 · 1 h bins"
        # Edges: width from the flow at the bin (Intake -> Pack carries 95, Pack -> Ship 60).
        flows = pg.eval_on_selector_all(".edge[data-edge]", "es => Object.fromEntries(es.map(e => "
                                        "[e.dataset.edge, [Number(e.dataset.flow), parseFloat(e.style.strokeWidth)]]))")
        assert flows["intake_to_pack"][0] == 95.0 and flows["pack_to_ship"][0] == 60.0
        assert flows["intake_to_pack"][1] > flows["pack_to_ship"][1]
        shot(pg, "topology-spike")  # docs/screenshots/topology.png is a copy (tests never write the docs)


def test_warning_badges_chips_pins_and_selection(services: Services, spike: str) -> None:
    with chromium_page() as pg:
        open_topology(pg, services, spike)
        # Ship: two model findings (info) and served_exceeds_capacity (warning) at bin 8.
        badge = pg.locator(".tnode[data-node='Ship'] .tbadge")
        assert "sev-warning" in (badge.get_attribute("class") or "").split()
        assert badge.locator("text").text_content() == "▲3"
        assert "served_exceeds_capacity" in (badge.locator("title").text_content() or "")
        assert "served_exceeds_capacity (warning)" in node(pg, "Ship")["label"]
        assert pg.locator(".tnode[data-node='Pack'] .tbadge").count() == 0
        pg.evaluate("FT.setBin(8)")
        wait_exact(pg, 8)
        assert "3 active at this bin" in node(pg, "Ship")["label"]
        pg.evaluate("FT.setBin(7)")
        wait_exact(pg, 7)
        assert "2 active at this bin" in node(pg, "Ship")["label"]  # the model findings hold in every bin

        # Pack's computed inputs are chips with their values at the bin (from /state?mode=full).
        pg.click(".tnode[data-node='Pack'] [data-toggle]")
        full = {n["id"]: n["metrics"].get("values") for n in services.state(spike, 7, "full")["nodes"]}
        chips = pg.eval_on_selector_all(".tnode[data-node='Pack'] .chip", "cs => Object.fromEntries(cs.map(c => "
                                        "[c.dataset.chip, c.querySelector('.chip-value').textContent]))")
        assert set(chips) == {"pack_cap", "pack_served", "pack_queue"}
        assert chips == {k: f"{full[k]:g}" for k in chips}
        assert chips["pack_queue"] == "35"

        # Click pins (and unpins); hover selects; other views' pins and selections show here.
        pg.click(".tnode[data-node='Intake'] .tnode-box")
        assert pg.evaluate("FT.view.pinned") == ["Intake"]
        assert node(pg, "Intake")["pressed"] == "true" and "pinned" in node(pg, "Intake")["cls"].split()
        pg.hover(".tnode[data-node='Ship'] .tnode-box")
        assert pg.evaluate("FT.view.selected") == "Ship"
        pg.evaluate("FT.select('Pack'); FT.pin('Ship')")
        assert "selected" in node(pg, "Pack")["cls"].split()
        assert "pinned" in node(pg, "Ship")["cls"].split()
        pg.click(".tnode[data-node='Intake'] .tnode-box")
        assert pg.evaluate("FT.view.pinned") == ["Ship"]
        shot(pg, "topology-pins-chips")


def test_keyboard_only_scrubber_and_node_walkthrough(services: Services, spike: str) -> None:
    with chromium_page() as pg:
        open_topology(pg, services, spike)
        # The graph is one tab stop (roving tabindex): Tab from the metric selector lands on the first node in
        # flow order, the arrows walk the flow, and the next Tab leaves for the scrubber.
        pg.focus("#metric-select")
        pg.keyboard.press("Tab")
        focused = lambda: pg.evaluate("document.activeElement.dataset.node || document.activeElement.id")  # noqa: E731
        assert focused() == "Intake" and pg.evaluate("FT.view.selected") == "Intake"
        pg.keyboard.press("ArrowRight")
        assert focused() == "Pack"
        pg.keyboard.press("ArrowRight")
        assert focused() == "Ship" and pg.evaluate("FT.view.selected") == "Ship"
        assert pg.evaluate("[...document.querySelectorAll('#topology .tnode')]"
                           ".filter(n => n.tabIndex === 0).map(n => n.dataset.node)") == ["Ship"]
        pg.keyboard.press("Tab")
        assert focused() == "scrub-prev"
        rng = "#scrub-range"
        valuetext = lambda: pg.get_attribute(rng, "aria-valuetext")  # noqa: E731
        pg.keyboard.press("ArrowRight")
        pg.keyboard.press("ArrowRight")
        assert pg.evaluate("FT.view.bin") == 2
        pg.keyboard.press("Tab")  # play
        pg.keyboard.press("Tab")  # next
        pg.keyboard.press("Enter")
        assert pg.evaluate("FT.view.bin") == 3
        pg.keyboard.press("Tab")
        assert pg.evaluate("document.activeElement.id") == "scrub-range"
        assert pg.get_attribute(rng, "aria-label") == "Time bin"
        assert valuetext() == "2025-01-01 03:00 UTC · bin 3 of 12 · 1 h bins"
        pg.keyboard.press("End")
        assert pg.evaluate("FT.view.bin") == 11 and pg.input_value(rng) == "11"
        pg.keyboard.press("ArrowLeft")
        assert pg.evaluate("FT.view.bin") == 10
        pg.keyboard.press("Home")
        assert pg.evaluate("FT.view.bin") == 0
        pg.keyboard.press("PageUp")  # a tenth of the run: 1 bin of 12
        assert pg.evaluate("FT.view.bin") == 1
        wait_exact(pg, 1)
        # Space plays (one bin per tick) and pauses.
        pg.keyboard.press(" ")
        assert pg.get_attribute("#scrub-play", "aria-pressed") == "true"
        pg.wait_for_function("FT.view.bin >= 3")
        pg.keyboard.press(" ")
        assert pg.get_attribute("#scrub-play", "aria-pressed") == "false"
        stopped = pg.evaluate("FT.view.bin")
        pg.wait_for_timeout(600)
        assert pg.evaluate("FT.view.bin") == stopped
        # Another view moving the bin moves the scrubber.
        pg.evaluate("FT.setBin(9)")
        assert pg.input_value(rng) == "9" and pg.inner_text("#scrub-time").startswith("2025-01-01 09:00 UTC")

        # Nodes: arrows follow the flow, Enter pins, Home/End jump.
        pg.focus(".tnode[data-node='Intake']")
        pg.keyboard.press("ArrowRight")
        assert pg.evaluate("document.activeElement.dataset.node") == "Pack"
        pg.keyboard.press("ArrowRight")
        assert pg.evaluate("document.activeElement.dataset.node") == "Ship"
        pg.keyboard.press("Enter")
        assert pg.evaluate("FT.view.pinned") == ["Ship"]
        pg.keyboard.press("Home")
        assert pg.evaluate("document.activeElement.dataset.node") == "Intake"
        assert pg.evaluate("FT.view.selected") == "Intake"  # focus selects, as hover does
        pg.keyboard.press("ArrowLeft")  # nothing upstream of the first node: it stays
        assert pg.evaluate("document.activeElement.dataset.node") == "Intake"
        shot(pg, "topology-keyboard")


def test_a_grid_without_a_start_shows_offsets_from_it(services: Services) -> None:
    run_id = services.run(QUEUE)
    with chromium_page(width=390, height=844) as pg:
        open_topology(pg, services, run_id)
        pg.evaluate("FT.setBin(3)")
        assert pg.inner_text("#scrub-time") == "+03:00 · bin 3 of 6 · 1 h bins"
        # 390 px wide: the network scrolls inside its box; nothing of the topology page reaches past the screen.
        past = pg.evaluate("[...document.querySelectorAll('#topology-app *')].filter(e => !e.closest('svg') && "
                           "e.getBoundingClientRect().right > window.innerWidth + 0.5).map(e => e.id || e.tagName)")
        assert past == []
        shot(pg, "topology-390px")


# ---- performance: 50 nodes x 8,760 bins, 10,000 runs in the registry -------------------------------------

@pytest.mark.slow
def test_first_paint_and_scrub_steps_on_a_year_of_hours_are_measured(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_registry import build
    from bench_state import chain_model

    data = tmp_path / "engine"
    data.mkdir()
    build(data, 10_000)
    with started(data, Services) as services:
        run_id = services.run(chain_model(50, 8760))
        assert httpx.get(f"{services.engine}/v1/runs", params={"limit": 1}).json()["total"] == 10_001
        with chromium_page() as pg:
            firsts = []
            for _ in range(3):
                open_topology(pg, services, run_id)
                firsts.append(float(pg.get_attribute("#topology-app", "data-first-paint-ms") or "nan"))
            assert pg.locator(".tnode:not(.tnode-free)").count() == 50
            assert pg.evaluate("FT.view.data.window.downsampled !== null")
            steps = pg.evaluate(STEP_TIMES, list(range(100, 8760, 437)))
            shot(pg, "topology-8760")
            # The painted values are the Engine's at the last bin stepped to.
            last = steps["bins"][-1]
            state = services.state(run_id, last)
            assert float(node(pg, "Stage7")["value"]) == engine_value(state, "Stage7", "utilization")
        report = {
            "nodes": 50, "bins": 8760, "runsInRegistry": 10_001,
            "firstPaintMs": {"runs": firsts, "median": statistics.median(firsts)},
            "scrubStepMs": {
                "immediate": summary(steps["immediate"]),
                "exact": summary(steps["exact"]),
                "steps": len(steps["bins"]),
            },
            "targets": {"firstPaintMs": 2000, "scrubStepMs": 100},
            "note": "immediate: FT.setBin to the repaint from the whole-run window (downsampled); exact: to the "
                    "repaint with /state?bin=N values (one Engine round trip through the UI).",
        }
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "topology-timing.json").write_text(json.dumps(report, indent=2) + "\n")
        print("\ntopology timing:", json.dumps(report, indent=2))


def summary(xs: list[float]) -> dict[str, float]:
    ordered = sorted(xs)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1]}


# In the page: for each bin, the time from FT.setBin to the synchronous repaint and to the exact repaint.
STEP_TIMES = """async (bins) => {
  const svg = () => document.querySelector('#topology svg');
  const out = { immediate: [], exact: [], bins: [] };
  for (const b of bins) {
    const t0 = performance.now();
    FT.setBin(b);
    out.immediate.push(performance.now() - t0);
    if (svg().dataset.exactBin !== String(b)) {
      await new Promise((done, fail) => {
        const late = setTimeout(() => { watch.disconnect(); fail(new Error(`bin ${b} was never painted exactly`)); },
          15000);
        const watch = new MutationObserver(() => {
          if (svg().dataset.exactBin === String(b)) { clearTimeout(late); watch.disconnect(); done(); }
        });
        watch.observe(svg(), { attributes: true, attributeFilter: ['data-exact-bin'] });
      });
    }
    out.exact.push(performance.now() - t0);
    out.bins.push(b);
  }
  return out;
}"""
