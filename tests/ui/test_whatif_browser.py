"""
The live what-if page in headless Chromium, against a real Engine and the UI on loopback (both serving
WebSockets under uvicorn).

On the topology spike (tests/ui/models/topology-spike.yaml): move Pack's capacity with the keyboard and
with fill, see Pack's painted utilization and queue become the engine core's numbers for that point, scrub,
read the warnings, save the point as a run and open it. The timing test moves a slider 50 times on a
50-node x 288-bin chain and writes the slider-event -> repaint p50/p95 to test-artifacts/ui/whatif-timing.json
(reported, not asserted: the budget is 50 ms).
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

from flowtime.engine import plan
from flowtime.model.load import load_model

pytestmark = marks

ROOT = Path(__file__).resolve().parents[2]
SPIKE = (Path(__file__).parent / "models" / "topology-spike.yaml").read_text()
PACK = "input[data-knob='topology.Pack.capacity']"


Services = EngineAndUi


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with started(tmp_path_factory.mktemp("engine"), Services) as services:
        yield services


def core(overrides: dict[str, float]) -> Any:
    """The spike evaluated by the engine core at a point (what the page must show)."""
    return plan(load_model(SPIKE).model).evaluate(set=overrides)


def answered(pg: Page, after: int) -> int:
    """Until an answer newer than ``after`` is painted; its seq."""
    pg.wait_for_function("n => (window.FT_WHATIF && FT_WHATIF.answered > n)", arg=after, timeout=20_000)
    return int(pg.evaluate("FT_WHATIF.answered"))


def settle(pg: Page) -> int:
    """Until nothing is in flight or pending, then the last painted seq."""
    seq = int(pg.evaluate("FT_WHATIF.answered"))
    while True:
        pg.wait_for_timeout(150)
        now = int(pg.evaluate("FT_WHATIF.answered"))
        if now == seq:
            return now
        seq = now


def node(pg: Page, node_id: str) -> dict[str, Any]:
    info: dict[str, Any] = pg.eval_on_selector(f".tnode[data-node='{node_id}']", """g => ({
        value: g.dataset.value, text: g.querySelector('.tnode-value').textContent, band: g.dataset.band})""")
    return info


def test_moving_pack_capacity_repaints_pack_with_the_engines_numbers_and_saves_the_point(
        services: Services) -> None:
    run_id = services.run(SPIKE)
    with chromium_page() as pg:
        pg.goto(f"{services.ui}/runs/{run_id}")
        pg.click("#whatif-link")
        pg.wait_for_selector("#whatif-app[data-ready=true]")
        pg.wait_for_selector("#topology[data-ready=true]")
        seq = answered(pg, 0)
        # The stored point at hour 0: Pack serves 40 of its 60.
        assert float(node(pg, "Pack")["value"]) == pytest.approx(40 / 60)
        assert pg.get_attribute(PACK, "aria-valuetext") == "60 entities/bin"
        assert "Pack capacity" in (pg.get_attribute(PACK, "aria-label") or "")

        # Keyboard: End takes the slider to its top, 180 (three times 60).
        pg.focus(PACK)
        pg.keyboard.press("End")
        seq = answered(pg, seq)
        seq = settle(pg)
        assert pg.input_value(PACK) == "180"
        want = core({"pack_cap": 180.0})
        assert float(node(pg, "Pack")["value"]) == want["pack_served"][0] / 180 == pytest.approx(40 / 180)
        assert node(pg, "Pack")["text"] == "22.2 %"

        # fill: capacity 80, then scrub to hour 7, where 95 arrive - Pack serves 80 and keeps 15.
        pg.fill(PACK, "80")
        seq = answered(pg, seq)
        pg.focus("#scrub-range")
        for _ in range(7):
            pg.keyboard.press("ArrowRight")
        pg.wait_for_function("() => FT.view.bin === 7 && FT_WHATIF.answered > 0")
        seq = settle(pg)
        pg.wait_for_selector("#topology svg[data-bin='7']")
        want = core({"pack_cap": 80.0})
        assert want["pack_served"][7] == 80.0
        assert float(node(pg, "Pack")["value"]) == 1.0  # 80 / 80
        pg.select_option("#metric-select", "queue")
        assert node(pg, "Pack")["text"] == "15 items"
        pg.select_option("#metric-select", "utilization")
        # The chart draws this point's series; the warnings list carries the analyser's findings for it.
        pg.select_option("#whatif-series", "pack_served")
        pg.wait_for_function("() => document.querySelector('#whatif-chart').dataset.series === 'pack_served'")
        seq = settle(pg)
        ys = pg.evaluate("(() => { const u = document.querySelector('#whatif-chart').uplot; "
                         "return u.data[u.series.findIndex(s => s.label === 'this point')]; })()")
        assert ys == want["pack_served"].tolist()
        codes = pg.eval_on_selector_all("#whatif-warnings li", "ls => ls.map(l => [l.dataset.code, l.dataset.node])")
        assert ["served_exceeds_capacity", "Ship"] in codes  # hour 8: Ship ships 55 with capacity 50
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / "whatif.png"), full_page=True)

        # A value out of the slider's range (typed into the socket by a script) is refused, located; the
        # session survives and the sliders stay at the point on screen.
        pg.evaluate("""() => { const i = document.querySelector("input[data-knob='topology.Pack.capacity']");
            i.min = '0'; i.max = '1000'; i.value = '999'; i.dispatchEvent(new Event('input', {bubbles: true})); }""")
        pg.wait_for_selector("#whatif-error li[data-path='set.topology.Pack.capacity']")
        assert pg.input_value(PACK) == "80"

        pg.click("#whatif-save")
        pg.wait_for_selector("#whatif-saved-link")
        saved_id = pg.inner_text("#whatif-saved-link")
        assert "topology.Pack.capacity = 80" in pg.inner_text("#whatif-saved")
        pg.click("#whatif-saved-link")
        pg.wait_for_selector("#run-id")
        assert pg.inner_text("#run-id") == saved_id
    detail = httpx.get(f"{services.engine}/v1/runs/{saved_id}").json()
    assert detail["run"]["overrides"] == {"pack_cap": 80.0}
    assert detail["provenance"]["whatif"]["parameters"] == {"topology.Pack.capacity": 80.0}
    stored = httpx.get(f"{services.engine}/v1/runs/{saved_id}/series/pack_served",
                       headers={"accept": "application/json"}).json()
    assert stored["values"] == want["pack_served"].tolist()


# ---- timing: 50 nodes x 288 bins, 50 moves ------------------------------------------------------------

# In the page: move one slider through ``values``, one at a time, each to its repaint.
MOVES = """async ([selector, values]) => {
  const input = document.querySelector(selector);
  const done = (seq) => new Promise((resolve) => {
    const tick = () => (FT_WHATIF.answered >= seq ? resolve() : setTimeout(tick, 0));
    tick();
  });
  FT_WHATIF.timings.length = 0;
  let seq = FT_WHATIF.answered;
  for (const v of values) {
    input.value = String(v);
    input.dispatchEvent(new Event('input', { bubbles: true }));
    seq += 1;
    await done(seq);
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  }
  return FT_WHATIF.timings.map((t) => ({ ms: t.ms, paintMs: t.paintMs, frameMs: t.frameMs, evalMs: t.evalMs }));
}"""


def summary(xs: list[float]) -> dict[str, float]:
    ordered = sorted(xs)
    return {"p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2), "max": round(ordered[-1], 2)}


def test_slider_to_repaint_is_measured_on_50_nodes_by_288_bins(services: Services) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_state import chain_model

    text = chain_model(50, 288)
    run_id = services.run(text)
    with chromium_page() as pg:
        pg.goto(f"{services.ui}/runs/{run_id}/whatif")
        pg.wait_for_selector("#whatif-app[data-ready=true]")
        pg.wait_for_selector("#topology[data-ready=true]")
        settle(pg)
        assert pg.locator(".tnode:not(.tnode-free)").count() == 50
        slider = "input[data-knob='topology.Stage7.capacity']"
        base = float(pg.get_attribute(slider, "max") or "nan") / 3  # the model's value: the range is 0..3x
        values = [round(base * (0.5 + i / 40), 1) for i in range(50)]  # whole steps of 0.1 (the slider's step)
        timings = pg.evaluate(MOVES, [slider, values])
        settle(pg)
        # The last move's answer is painted: Stage7's utilization at bin 0 is the core's.
        last = values[-1]
        results = plan(load_model(text).model).evaluate(set={"cap_7": last})
        want = results["served_7"][0] / last
        assert float(node(pg, "Stage7")["value"]) == pytest.approx(want, rel=1e-12)
    assert len(timings) == 50
    report = {
        "nodes": 50, "bins": 288, "moves": len(timings),
        "sliderToRepaintMs": summary([t["ms"] for t in timings]),
        "answerToRepaintMs": summary([t["paintMs"] for t in timings]),
        "sliderToNextFrameMs": summary([t["frameMs"] for t in timings if t.get("frameMs") is not None]),
        "engineEvaluationMs": summary([t["evalMs"] for t in timings]),
        "budgetMs": 50,
        "note": "ms: the slider's input event to the end of the repaint (topology, chart, warnings, sliders: DOM "
                "updated), through browser -> UI -> Engine sockets and back; frameMs: to the next animation frame; "
                "engineEvaluationMs: the Engine's evaluation and analysis of the point (its evalMs). One move in "
                "flight at a time (each waits for its answer). answerToRepaintMs: the page's share (the answer's "
                "arrival to the end of the repaint).",
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "whatif-timing.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\nwhat-if timing:", json.dumps(report, indent=2))
