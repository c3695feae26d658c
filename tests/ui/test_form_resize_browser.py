"""
The template form resizes per-bin arrays when Periods changes, in headless
Chromium against a real Engine, a real Sim and the UI on loopback; and the
server does the same for a form posted without script.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).parent))

from live import serve
from tests.browser import SHOTS, chromium_page, marks

DEMAND = [120, 300, 450, 260, 150, 90]  # commuter-rail's default, one value per period

pytestmark = marks


class Services:
    def __init__(self, engine: str, sim: str, ui: str) -> None:
        self.engine, self.sim, self.ui = engine, sim, ui


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    from flowtime.api.engine import create_engine_app
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import EngineSettings, SimSettings, UiSettings
    from flowtime.ui.app import create_ui_app

    root = tmp_path_factory.mktemp("resize")
    with serve(create_engine_app(EngineSettings(data_dir=root / "engine")), "engine") as engine, \
            serve(create_sim_app(SimSettings(data_dir=root / "sim")), "sim") as sim, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=sim)), "ui") as ui:
        yield Services(engine, sim, ui)


@pytest.fixture
def page(services: Services) -> Iterator[Page]:
    with chromium_page() as pg:
        yield pg


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.split(r"[\s,]+", text.strip()) if x]


def stored_model(services: Services, model_hash: str) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"{services.sim}/api/v1/models/commuter-rail/{model_hash}").json()
    return body


def test_changing_periods_resizes_the_demand_field_and_the_model_follows(page: Page, services: Services) -> None:
    pg = page
    pg.goto(services.ui + "/templates/commuter-rail")
    assert numbers(pg.input_value("#f-demand")) == DEMAND
    assert "follow Periods:" in pg.inner_text("#bins-note")

    pg.fill("#f-bins", "12")
    assert numbers(pg.input_value("#f-demand")) == DEMAND * 2
    assert pg.inner_text("#resized-demand") == "Resized to 12 values (pattern repeated) to follow Periods."
    assert pg.locator("[data-field=demand].changed").count() == 1
    pg.screenshot(path=str(SHOTS / "resize-01-bins-12.png"), full_page=True)

    # Editable afterwards: a new pattern typed by hand is what the next resize repeats or trims.
    pg.fill("#f-demand", "10, 20, 30")
    assert pg.inner_text("#resized-demand") == ""
    pg.fill("#f-bins", "2")
    assert numbers(pg.input_value("#f-demand")) == [10, 20]
    assert pg.inner_text("#resized-demand") == "Resized to 2 values (trimmed) to follow Periods."
    pg.fill("#f-bins", "7")
    assert numbers(pg.input_value("#f-demand")) == [10, 20, 30, 10, 20, 30, 10]
    # An invalid bins leaves the values alone (the field shows its own message).
    pg.fill("#f-bins", "0")
    assert numbers(pg.input_value("#f-demand")) == [10, 20, 30, 10, 20, 30, 10]

    pg.fill("#f-bins", "12")
    assert numbers(pg.input_value("#f-demand")) == [10, 20, 30] * 4
    pg.click("#generate")
    pg.wait_for_selector("#run-form")
    assert pg.locator("#dag svg.dag").count() == 1
    code = pg.inner_text(".code")
    assert re.search(r"bins:\s*12", code)
    assert "Commuter Rail Line (bins=12, demand=[10, 20, 30, … 12 values])" in code
    pg.screenshot(path=str(SHOTS / "resize-02-model.png"), full_page=True)

    model_hash = pg.locator("#run-form input[name=hash]").get_attribute("value")
    stored = stored_model(services, str(model_hash))
    provenance = stored["provenance"]
    assert isinstance(provenance, dict) and provenance["parameters"]["demand"] == [10, 20, 30] * 4
    model = yaml.safe_load(str(stored["model"]))
    assert model["grid"]["bins"] == 12 and model["nodes"][0]["values"] == [10, 20, 30] * 4


def test_a_form_posted_without_script_gets_its_untouched_arrays_fitted(services: Services) -> None:
    with httpx.Client(base_url=services.ui, timeout=30) as ui:  # keeps the session cookie, as a browser does
        page = ui.get("/templates/commuter-rail").text
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
        form = {**hidden, "bins": "12", "binSize": "60", "demand": ", ".join(map(str, DEMAND)),
                "trains_per_period": "2", "seats_per_train": "150"}
        r = ui.post("/templates/commuter-rail/generate", data=form, follow_redirects=True)
        assert r.status_code == 200, r.text
        model_hash = re.search(r'name="hash" value="([^"]+)"', r.text)
        assert model_hash
        model = yaml.safe_load(str(stored_model(services, model_hash.group(1))["model"]))
        assert model["nodes"][0]["values"] == DEMAND * 2
        # A demand the user did change must fit: Sim's message lands at the field.
        r = ui.post("/templates/commuter-rail/generate", data={**form, "demand": "1, 2, 3"})
    assert r.status_code == 400
    assert re.search(r'id="err-demand" role="alert">Has 3 values; grid\.bins is 12: give 12 values\.<', r.text)


def test_a_prefilled_periods_fits_the_untouched_arrays_on_the_page(services: Services) -> None:
    r = httpx.get(f"{services.ui}/templates/commuter-rail", params={"bins": "3"}, timeout=30)
    assert r.status_code == 200
    assert 'value="120, 300, 450"' in r.text


def run_on_engine(services: Services, params: dict[str, object]) -> str:
    """Generate on Sim and run on the Engine with the provenance header, as the UI's Run button does."""
    generated = httpx.post(f"{services.sim}/api/v1/templates/commuter-rail/generate",
                           json={"parameters": params}, timeout=30).json()
    r = httpx.post(f"{services.engine}/v1/run", content=generated["model"].encode(), timeout=30,
                   headers={"X-Model-Provenance": json.dumps(generated["provenance"], separators=(",", ":"))})
    assert r.status_code == 200, r.text
    return str(r.json()["runId"])


def test_the_runs_list_filtered_by_template_shows_the_parameters_that_differ(page: Page,
                                                                           services: Services) -> None:
    a = run_on_engine(services, {"bins": 12, "seats_per_train": 200})
    b = run_on_engine(services, {})
    pg = page
    pg.goto(services.ui + "/runs?template=commuter-rail")
    headers = pg.eval_on_selector_all("#runs-table th.param", "els => els.map(e => e.dataset.param)")
    assert headers == ["bins", "demand", "seats_per_train"]  # binSize, trains_per_period: the same in both

    def cells(run_id: str) -> list[str]:
        return [t.strip() for t in pg.eval_on_selector_all(
            f"#runs-table tr[data-run='{run_id}'] td.param", "els => els.map(e => e.textContent)")]

    assert cells(a) == ["12", "[120, 300, 450, … 12 values]", "200"]
    assert cells(b) == ["6", "[120, 300, 450, … 6 values]", "150"]
    full = pg.get_attribute(f"#runs-table tr[data-run='{a}'] td.param[data-param=demand]", "title")
    assert full == "demand = " + ", ".join(map(str, DEMAND * 2))
    titles = pg.eval_on_selector_all("#runs-table td.title .muted", "els => els.map(e => e.textContent.trim())")
    assert sorted(titles) == ["Commuter Rail Line", "Commuter Rail Line (bins=12, seats_per_train=200)"]
    # the run's own title: template and changed parameters (demand only followed bins: unchanged)
    named = pg.eval_on_selector_all("#runs-table .run-title", "els => els.map(e => e.textContent.trim())")
    assert sorted(named) == ["commuter-rail · bins=12, seats_per_train=200", "commuter-rail · defaults"]
    pg.screenshot(path=str(SHOTS / "resize-03-runs-parameters.png"), full_page=True)

    # Unfiltered, runs of different templates have no common parameters to compare.
    pg.goto(services.ui + "/runs")
    assert pg.locator("#runs-table tr[data-run]").count() == 2
    assert pg.locator("#runs-table th.param").count() == 0
