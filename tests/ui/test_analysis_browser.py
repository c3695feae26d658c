"""
Analysis pages end to end in headless Chromium: real Engine, Sim and UI on loopback.

From a run's page: Analyse -> a sweep of the support desk's staffing (the peak
backlog computed by hand), a Monte Carlo whose percentile bands and histogram
are the Engine's own numbers, a point opened as a run, a long experiment
cancelled from its progress page. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).parent))

from live import serve
from tests.browser import SHOTS, chromium_page, marks

pytestmark = marks
BACKLOG = Path(__file__).resolve().parents[2] / "examples" / "backlog-queue.yaml"


class Services:
    def __init__(self, engine: str, ui: str, run_id: str) -> None:
        self.engine, self.ui, self.run_id = engine, ui, run_id

    def experiment(self, exp_id: str) -> dict[str, Any]:
        got: dict[str, Any] = httpx.get(f"{self.engine}/v1/experiments/{exp_id}").json()
        return got


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    from flowtime.api.engine import create_engine_app
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import EngineSettings, SimSettings, UiSettings
    from flowtime.ui.app import create_ui_app

    root = tmp_path_factory.mktemp("analysis")
    with serve(create_engine_app(EngineSettings(data_dir=root / "engine")), "engine") as engine, \
            serve(create_sim_app(SimSettings(data_dir=root / "sim")), "sim") as sim, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=sim)), "ui") as ui:
        run = httpx.post(f"{engine}/v1/run", json={"yaml": BACKLOG.read_text(encoding="utf-8")}).json()
        yield Services(engine, ui, run["runId"])


@pytest.fixture(scope="module")
def page(services: Services) -> Iterator[Page]:
    with chromium_page() as pg:
        yield pg


def shot(pg: Page, name: str) -> None:
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def start_from_run(pg: Page, services: Services, kind: str) -> None:
    pg.goto(f"{services.ui}/runs/{services.run_id}")
    pg.click("#analyse")
    pg.wait_for_selector("#analysis-form")
    pg.click(f"#kind-tabs a[data-kind={kind}]")
    pg.wait_for_selector(f"#kind-tabs a[data-kind={kind}][aria-current=page]")


def experiment_id(pg: Page) -> str:
    pg.wait_for_url(re.compile(r".*/experiments/exp_[^/]+$"))
    return pg.url.rsplit("/", 1)[-1]


def traces(pg: Page, chart: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = pg.evaluate(
        "(name) => document.querySelector(`[data-chart=\"${name}\"]`).data.map("
        "t => ({name: t.name, x: t.x, y: t.y, type: t.type}))", chart)
    return got


def test_a_sweep_from_a_run_draws_the_engines_numbers(page: Page, services: Services) -> None:
    pg = page
    start_from_run(pg, services, "sweep")
    pg.fill("#f-parameters-0-target", "capacity")
    pg.fill("#f-parameters-0-range-low", "10")
    pg.fill("#f-parameters-0-range-high", "20")
    pg.fill("#f-parameters-0-range-steps", "3")
    pg.fill("#f-metrics-0-series", "backlog")
    pg.select_option("#f-metrics-0-aggregate", "max")
    shot(pg, "analysis-01-sweep-form")
    pg.click("#start")
    exp = experiment_id(pg)
    pg.wait_for_selector('[data-chart="sweep:max(backlog)"][data-ready=true]')
    shot(pg, "analysis-02-sweep-result")

    # Peak backlog by hand: staffing 10 -> 35, 15 -> 18, 20 -> 5 (the desk's arrivals 12, 18, 25, 20, ...).
    (line,) = traces(pg, "sweep:max(backlog)")
    assert line["x"] == [10, 15, 20] and line["y"] == [35, 18, 5]
    rows = services.experiment(exp)["result"]["table"]["rows"]
    assert [[x, y] for x, y in zip(line["x"], line["y"], strict=True)] == rows
    assert pg.locator("#points tbody tr").count() == 3

    # A point opens as an ordinary run whose staffing is the point's.
    pg.click("[data-open-point='2']")
    pg.wait_for_url(re.compile(r".*/runs/run_[^/]+$"))
    run_id = pg.url.rsplit("/", 1)[-1]
    run = httpx.get(f"{services.engine}/v1/runs/{run_id}").json()["run"]
    assert run["experiment"] == {"id": exp, "point": 2}
    assert run["overrides"] == {"capacity": 20.0}
    backlog = httpx.get(f"{services.engine}/v1/runs/{run_id}/series/backlog@BACKLOG@DEFAULT",
                        headers={"Accept": "application/json"}).json()["values"]
    assert max(backlog) == 5


def test_a_monte_carlo_shows_the_engines_bands_and_histogram(page: Page, services: Services) -> None:
    pg = page
    start_from_run(pg, services, "montecarlo")
    pg.fill("#f-parameters-0-target", "capacity")
    pg.select_option("#f-parameters-0-distribution-kind", "triangular")
    assert pg.is_visible("#f-parameters-0-distribution-mode") and not pg.is_visible("#f-parameters-0-distribution-sd")
    pg.fill("#f-parameters-0-distribution-low", "11")
    pg.fill("#f-parameters-0-distribution-mode", "15")
    pg.fill("#f-parameters-0-distribution-high", "17")
    pg.fill("#f-metrics-0-series", "backlog")
    pg.select_option("#f-metrics-0-aggregate", "max")
    pg.fill("#f-metrics-0-name", "peak")
    pg.select_option("#f-capture", ["backlog"])
    pg.fill("#f-settings-replications", "300")
    pg.fill("#f-seed", "7")
    shot(pg, "analysis-03-montecarlo-form")
    pg.click("#start")
    exp = experiment_id(pg)
    pg.wait_for_selector('[data-chart="bands:backlog"][data-ready=true]')
    pg.wait_for_selector('[data-chart="hist:peak"][data-ready=true]')
    shot(pg, "analysis-04-montecarlo-result")

    result = services.experiment(exp)["result"]
    bands = result["bands"]["backlog"]
    drawn = {t["name"]: t for t in traces(pg, "bands:backlog")}
    assert set(drawn) == {"p5", "p5–p95", "p25", "p25–p75", "p50"}
    assert drawn["p5"]["y"] == bands["p5"] and drawn["p5–p95"]["y"] == bands["p95"]
    assert drawn["p25"]["y"] == bands["p25"] and drawn["p25–p75"]["y"] == bands["p75"]
    assert drawn["p50"]["y"] == bands["p50"]
    assert drawn["p50"]["x"] == [0, 1, 2, 3, 4, 5, 6, 7]  # hours from the start: one-hour bins
    assert all(lo <= mid <= hi for lo, mid, hi in zip(bands["p5"], bands["p50"], bands["p95"], strict=True))
    (hist,) = traces(pg, "hist:peak")
    assert hist["y"] == result["histograms"]["peak"]["counts"] and sum(hist["y"]) == 300
    assert "p5–p95" in pg.inner_text('[data-chart="bands:backlog"]')


def test_a_long_experiment_shows_progress_and_cancels(page: Page, services: Services) -> None:
    pg = page
    start_from_run(pg, services, "montecarlo")
    pg.fill("#f-parameters-0-target", "capacity")
    pg.select_option("#f-parameters-0-distribution-kind", "uniform")
    pg.fill("#f-parameters-0-distribution-low", "10")
    pg.fill("#f-parameters-0-distribution-high", "20")
    pg.fill("#f-metrics-0-series", "backlog")
    pg.select_option("#f-capture", [])
    pg.fill("#f-settings-replications", "1000000")
    pg.fill("#f-limits-maxPoints", "1000000")
    pg.click("#start")
    exp = experiment_id(pg)
    pg.wait_for_selector("#progress")
    assert pg.inner_text("#progress-total") == "1000000"
    pg.wait_for_function("() => Number(document.getElementById('progress-done').textContent) > 0", timeout=60_000)
    pg.wait_for_function("() => /points\\/s/.test(document.getElementById('progress-rate').textContent)")
    shot(pg, "analysis-05-progress")
    started = time.monotonic()
    pg.click("#cancel")
    pg.wait_for_selector("#cancelled", timeout=30_000)
    print(f"cancel answered in {time.monotonic() - started:.2f} s")
    assert services.experiment(exp)["status"] == "cancelled"


def test_experiments_are_listed_beside_runs(page: Page, services: Services) -> None:
    pg = page
    pg.goto(services.ui + "/runs")
    pg.click("nav >> text=Experiments")
    pg.wait_for_selector("#experiments-table")
    listed = httpx.get(f"{services.engine}/v1/experiments").json()["experiments"]
    ids = pg.eval_on_selector_all("#experiments-table tbody tr", "rows => rows.map(r => r.dataset.experiment)")
    assert ids == [e["id"] for e in listed]
    pg.select_option("#kind", "sweep")
    pg.click("#experiments-filters button[type=submit]")
    pg.wait_for_url(re.compile(r".*kind=sweep.*"))
    kinds = pg.eval_on_selector_all("#experiments-table tbody tr td:nth-child(2)", "tds => tds.map(t => t.textContent)")
    assert kinds and set(kinds) == {"Sweep"}
    shot(pg, "analysis-06-experiments")


def test_a_two_parameter_sweep_is_a_heat_chart_and_sensitivity_a_tornado(page: Page, services: Services) -> None:
    pg = page
    start_from_run(pg, services, "sweep")
    pg.fill("#f-parameters-0-target", "capacity")
    pg.fill("#f-parameters-0-values", "10, 20")
    pg.fill("#f-parameters-0-range-low", "")
    pg.fill("#f-parameters-0-range-high", "")
    pg.fill("#f-parameters-0-range-steps", "")
    pg.fill("#f-parameters-1-target", "arrivals")
    pg.select_option("#f-parameters-1-mode", "scale")
    pg.fill("#f-parameters-1-values", "1, 2")
    pg.fill("#f-metrics-0-series", "backlog")
    pg.select_option("#f-metrics-0-aggregate", "max")
    pg.select_option("#f-capture", [])
    pg.click("#start")
    experiment_id(pg)
    pg.wait_for_selector('[data-chart="heat:max(backlog)"][data-ready=true]')
    heat = pg.evaluate("document.querySelector('[data-chart=\"heat:max(backlog)\"]').data[0]")
    # Rows are arrivals x1, x2; columns staffing 10, 20. Peak backlog by hand: x1: 35 and 5; doubled demand
    # (24, 36, 50, 40, 16, ...): staff 10 -> 14, 40, 80, 110, 116 at bin 4; staff 20 -> 4, 20, 50, 70 at bin 3.
    assert heat["type"] == "heatmap" and heat["x"] == [10, 20] and heat["y"] == [1, 2]
    assert heat["z"] == [[35, 5], [116, 70]]
    shot(pg, "analysis-07-sweep-heat")

    start_from_run(pg, services, "sensitivity")
    pg.fill("#f-parameters-0-target", "capacity")
    pg.fill("#f-parameters-0-range-low", "10")
    pg.fill("#f-parameters-0-range-high", "20")
    pg.fill("#f-parameters-1-target", "arrivals")
    pg.select_option("#f-parameters-1-mode", "scale")
    pg.fill("#f-parameters-1-range-low", "0.5")
    pg.fill("#f-parameters-1-range-high", "1.5")
    pg.fill("#f-metrics-0-series", "backlog")
    pg.select_option("#f-metrics-0-aggregate", "max")
    pg.click("#start")
    exp = experiment_id(pg)
    pg.wait_for_selector('[data-chart="tornado:max(backlog)"][data-ready=true]')
    down, up = traces(pg, "tornado:max(backlog)")
    tornado = services.experiment(exp)["result"]["answer"]["tornado"]["max(backlog)"]
    # widest swing on top: plotly draws the last category at the top, so the engine's order is reversed
    assert down["y"] == [e["parameter"] for e in reversed(tornado)] == ["capacity", "arrivals"]
    assert down["x"] == [e["low"] for e in reversed(tornado)] and up["x"] == [e["high"] for e in reversed(tornado)]
    shot(pg, "analysis-08-tornado")


def test_goal_seek_optimise_and_fit_draw_their_traces(page: Page, services: Services) -> None:
    model = BACKLOG.read_text(encoding="utf-8")
    specs = {
        "goalseek": {"kind": "goalseek", "parameters": [{"target": "capacity", "range": {"low": 10, "high": 30}}],
                     "metrics": [{"series": "backlog", "aggregate": "max"}], "settings": {"target": 5}},
        "optimize": {"kind": "optimize", "parameters": [{"target": "capacity", "range": {"low": 10, "high": 30}}],
                     "metrics": [{"series": "backlog", "aggregate": "max"}, {"series": "utilization"}],
                     "settings": {"metric": 1, "goal": "maximize",
                                  "constraints": [{"metric": 0, "op": "<=", "value": 5}]}},
        "fit": {"kind": "fit", "parameters": [{"target": "capacity", "range": {"low": 10, "high": 30}}],
                "settings": {"series": "backlog", "observed": {"values": [0, 3, 13, 18, 11, 0, 0, 0]}}},
    }
    for kind, spec in specs.items():
        exp = httpx.post(f"{services.engine}/v1/experiments", json={"spec": spec, "model": model}).json()["id"]
        page.goto(f"{services.ui}/experiments/{exp}")
        first = {"goalseek": "goalseek:metric", "optimize": "optimize:trace", "fit": "fit:series"}[kind]
        page.wait_for_selector(f'[data-chart="{first}"][data-ready=true]')
        answer = services.experiment(exp)["result"]["answer"]
        drawn = traces(page, first)
        if kind == "goalseek":
            assert drawn[0]["y"] == [p["value"] for p in answer["trace"]] and drawn[1]["y"] == [5, 5]
        elif kind == "optimize":
            assert drawn[0]["y"] == [s["objective"] for s in answer["trace"]]
            assert page.locator("#constraints tbody tr").count() == 1
        else:
            assert drawn[0]["y"] == [0, 3, 13, 18, 11, 0, 0, 0] and drawn[1]["y"] == answer["fitted"]
            assert abs(answer["parameters"]["capacity"] - 15.0) < 1e-3  # the observed backlog is staffing 15's
        shot(page, f"analysis-09-{kind}")
