"""
End to end in headless Chromium: real Engine, real Sim and the UI on loopback.

Generate a model from a template with a changed parameter, run it, find it in
the runs list filtered by template, open it (chart with one point per bin,
provenance with the changed value), run a second variant, compare the two.
Screenshots of each page go to ``test-artifacts/``.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).parent))

from live import serve
from tests.browser import SHOTS, chromium_page, marks

TEMPLATE = "commuter-rail"
PARAM = "seats_per_train"

pytestmark = marks


class Services:
    def __init__(self, engine: str, sim: str, ui: str, engine_dir: Path, sim_dir: Path) -> None:
        self.engine, self.sim, self.ui, self.engine_dir, self.sim_dir = engine, sim, ui, engine_dir, sim_dir

    def run_count(self) -> int:
        return int(httpx.get(f"{self.engine}/v1/runs").json()["total"])

    def sim_writes(self) -> int:
        """Models Sim stored: generated ones (listed) and named exports (folders)."""
        named = self.sim_dir / "named"
        listed = len(httpx.get(f"{self.sim}/api/v1/models").json()["models"])
        return listed + (len(list(named.iterdir())) if named.is_dir() else 0)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    from flowtime.api.engine import create_engine_app
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import EngineSettings, SimSettings, UiSettings
    from flowtime.ui.app import create_ui_app

    root = tmp_path_factory.mktemp("up")
    engine_dir, sim_dir = root / "engine", root / "sim"
    with serve(create_engine_app(EngineSettings(data_dir=engine_dir)), "engine") as engine, \
            serve(create_sim_app(SimSettings(data_dir=sim_dir)), "sim") as sim, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=sim)), "ui") as ui:
        yield Services(engine, sim, ui, engine_dir, sim_dir)


@pytest.fixture(scope="module")
def page(services: Services) -> Iterator[Page]:
    with chromium_page() as pg:
        yield pg


def shot(pg: Page, name: str) -> None:
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def generate_and_run(pg: Page, services: Services, value: str, prefix: str) -> tuple[str, str]:
    """On the template form: set PARAM, generate, run. Returns (run id, Sim's model hash)."""
    pg.fill(f"#f-{PARAM}", value)
    shot(pg, f"{prefix}-template-form")
    pg.click("#generate")
    pg.wait_for_selector("#run-form")
    assert pg.locator("#dag svg.dag").count() == 1
    assert pg.locator("#quality").count() == 1
    model_hash = pg.locator("#run-form input[name=hash]").get_attribute("value")
    shot(pg, f"{prefix}-generated-model")
    pg.click("#run")
    pg.wait_for_url(re.compile(r".*/runs/run_[^/]+$"))
    pg.wait_for_selector("#chart[data-ready=true]")
    run_id = pg.url.rsplit("/", 1)[-1]
    return run_id, str(model_hash)


def test_generate_run_browse_inspect_and_compare(page: Page, services: Services) -> None:
    pg = page
    pg.goto(services.ui + "/")
    assert pg.locator("[data-service=engine] [data-status]").inner_text() == "up"
    assert pg.locator("[data-service=sim] [data-status]").inner_text() == "up"
    shot(pg, "01-home")

    pg.click("nav >> text=Templates")
    pg.wait_for_selector(f"a[data-template={TEMPLATE}]")
    shot(pg, "02-templates")
    pg.click(f"a[data-template={TEMPLATE}]")
    pg.wait_for_selector(f"#f-{PARAM}")
    bins = int(pg.input_value("#f-bins"))

    # Client-side validation puts the message next to the field and keeps the form.
    pg.fill(f"#f-{PARAM}", "0")
    pg.click("#generate")
    assert "Must be between 1 and 5000, got 0." in pg.inner_text(f"#err-{PARAM}")
    shot(pg, "03-template-form-invalid")

    run_a, hash_a = generate_and_run(pg, services, "120", "04")
    # The chart has one point per bin; the provenance panel shows the changed parameter.
    assert pg.get_attribute("#chart", "data-points") == str(bins)
    plotted = pg.evaluate("document.getElementById('chart').data[0].y.length")
    assert plotted == bins
    assert pg.inner_text(f"#provenance tr[data-param={PARAM}] td.mono") == "120"
    shot(pg, "05-run")
    pg.click("button[data-tab=table]")
    assert pg.locator("#values-table tbody tr").count() == bins
    shot(pg, "06-run-table")

    # The Engine stored exactly the provenance Sim produced, received via the header.
    sim_prov = httpx.get(f"{services.sim}/api/v1/models/{TEMPLATE}/{hash_a}").json()["provenance"]
    stored = json.loads((services.engine_dir / run_a / "provenance.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in stored.items() if k != "receivedAt"} == sim_prov
    assert sim_prov["parameters"][PARAM] == 120

    # Second variant through "re-generate": the form comes back pre-filled with 120.
    pg.click("#regenerate")
    pg.wait_for_selector(f"#f-{PARAM}")
    assert pg.input_value(f"#f-{PARAM}") == "120"
    run_b, _ = generate_and_run(pg, services, "100", "07")

    # The runs list, filtered by template, shows both runs; a template no run used shows none.
    pg.goto(services.ui + "/runs")
    pg.select_option("#template", TEMPLATE)
    pg.wait_for_function(
        "() => location.search.includes('template=') && document.querySelectorAll('.run-select').length === 2")
    rows = pg.eval_on_selector_all(".run-select", "els => els.map(e => e.value)")
    assert sorted(rows) == sorted([run_a, run_b])
    shot(pg, "08-runs-filtered")

    pg.check(f".run-select[value={run_a}]")
    pg.check(f".run-select[value={run_b}]")
    assert pg.is_enabled("#compare-btn")
    pg.click("#compare-btn")
    pg.wait_for_selector("#ranking")
    pg.wait_for_selector("#compare-charts .chart-sm[data-ready=true]")
    diff_row = pg.locator(f"#provenance-compare tr.diff[data-param={PARAM}]")
    assert diff_row.count() == 1
    # The models differ in the one node the parameter feeds, shown node by node.
    changed = pg.locator("#model-changes tr[data-node=seat_capacity]")
    assert changed.count() == 1 and "->" in changed.inner_text()
    assert int(pg.inner_text("#changed-count")) >= 1
    top_delta = float(pg.inner_text("#ranking tbody tr:first-child td.num").replace(",", ""))
    assert top_delta > 0
    shot(pg, "09-compare")


def test_run_yaml_shows_located_problems(page: Page, services: Services) -> None:
    pg = page
    pg.goto(services.ui + "/run-yaml")
    pg.fill("#yaml", "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n"
            "  - id: a\n    kind: expr\n    expr: b + 1\n")
    pg.click("#run")
    pg.wait_for_selector("#result")
    assert pg.locator(".code .ln.err").count() >= 1
    shot(pg, "10-run-yaml-invalid")


def test_a_service_that_is_down_is_a_banner(page: Page, services: Services) -> None:
    from live import closed_port_url

    from flowtime.settings import UiSettings
    from flowtime.ui.app import create_ui_app

    with serve(create_ui_app(UiSettings(engine_url=closed_port_url(), sim_url=services.sim)), "ui-down") as ui:
        page.goto(ui + "/")
        assert page.locator("[data-banner=engine]").is_visible()
        assert page.locator("[data-service=engine] [data-status]").inner_text() == "down"
        shot(page, "11-engine-down-home")
        page.goto(ui + "/runs")
        assert "Engine is not reachable" in page.inner_text("#error")
        shot(page, "12-engine-down-runs")


# ---- forms that work, forms that are forged ------------------------------------------------------------

HELLO = ("schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\nnodes:\n"
         "  - {id: demand, kind: const, values: [10, 20, 30, 40]}\n")


def test_delete_works_with_the_script_and_without_it(page: Page, services: Services) -> None:
    """The Delete link posts a form app.js builds (token added on submit); the confirm page works without JS."""
    pg = page
    pg.goto(services.ui + "/run-yaml")
    pg.fill("#yaml", HELLO)
    pg.click("#run")
    pg.wait_for_url(re.compile(r".*/runs/run_[^/]+$"))
    run_id = pg.url.rsplit("/", 1)[-1]
    pg.once("dialog", lambda d: d.accept())
    pg.click(f"a[data-delete='{run_id}']")
    pg.wait_for_selector("#deleted-note")
    assert httpx.get(f"{services.engine}/v1/runs/{run_id}").status_code == 404

    made = httpx.post(f"{services.engine}/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"})
    run_id = made.json()["runId"]
    browser = pg.context.browser
    assert browser is not None
    no_js = browser.new_context(java_script_enabled=False)
    try:
        other = no_js.new_page()
        other.goto(f"{services.ui}/runs/{run_id}/delete")
        other.click("#confirm-delete")
        other.wait_for_selector("#deleted-note")
    finally:
        no_js.close()
    assert httpx.get(f"{services.engine}/v1/runs/{run_id}").status_code == 404


def attacker_page(services: Services) -> str:
    """A page of another origin that tries to write to all three services, as a browser allows it to."""
    yaml_field = html.escape(HELLO + "#", quote=True)
    export_field = html.escape('{"template": "support-backlog", "name": "forged", "tags": ["', quote=True)
    forms = [
        f'<form method="post" action="{services.engine}/v1/run" enctype="text/plain">'
        f'<input name="{yaml_field}" value=""></form>',
        f'<form method="post" action="{services.sim}/sim/models/export" enctype="text/plain">'
        f'<input name="{export_field}" value=\'"]}}\'></form>',
        f'<form method="post" action="{services.sim}/api/v1/templates/support-backlog/generate" enctype="text/plain">'
        f'<input name=\'{{"parameters": {{"agents": 9, "x": "\' value=\'"}}}}\'></form>',
        f'<form method="post" action="{services.ui}/run-yaml"><textarea name="yaml">{html.escape(HELLO)}</textarea>'
        '<input name="action" value="run"></form>',
        f'<form method="post" action="{services.ui}/templates/support-backlog/generate">'
        '<input name="agents" value="9"></form>',
    ]
    frames = "".join(f'<iframe srcdoc="{html.escape(f + "<script>document.forms[0].submit()</script>")}"></iframe>'
                     for f in forms)
    fetches = json.dumps([
        [f"{services.engine}/v1/run", HELLO],
        [f"{services.sim}/sim/models/export", json.dumps({"template": "support-backlog", "name": "forged2"})],
        [f"{services.ui}/run-yaml", "yaml=x&action=run"],
    ])
    return f"""<!doctype html><title>attacker</title>{frames}
<script>
window.fetched = Promise.all({fetches}.map(([url, body]) => fetch(url, {{
  mode: "no-cors", method: "POST", body, headers: {{"Content-Type": "text/plain"}}, credentials: "include",
}}).then(() => "sent", (e) => String(e))));
</script>"""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # another port of the same site; another site
def test_pages_of_another_origin_cannot_write_to_any_service(page: Page, services: Services, host: str) -> None:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    pg = page
    pg.goto(services.ui + "/runs")  # the browser holds the UI's session cookie, as a user's would
    runs, models = services.run_count(), services.sim_writes()
    body = attacker_page(services)
    evil = Starlette(routes=[Route("/", lambda request: HTMLResponse(body))])
    with serve(evil, "attacker") as url:
        pg.goto(url.replace("127.0.0.1", host) + "/")
        assert pg.evaluate("window.fetched") == ["sent"] * 3  # the browser did send them
        # Every forged form was submitted and answered: each frame now shows another origin's response.
        pg.wait_for_function("[...document.querySelectorAll('iframe')].every((f) => f.contentDocument === null)")
    assert services.run_count() == runs
    assert services.sim_writes() == models
