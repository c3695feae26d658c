"""The UI's pages against fake Engine and Sim servers on loopback."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from conftest import Stack

MODEL_OK = """schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - id: demand
    values: [10, 20, 30, 40]
  - id: served
    kind: expr
    expr: MIN(demand, 25)
"""

StartStack = Callable[..., AbstractContextManager[Stack]]
TOKEN_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


def form_token(stack: Stack) -> str:
    """The token a page of the UI gives its forms (the client keeps the session cookie)."""
    m = TOKEN_FIELD.search(stack.http.get("/run-yaml").text)
    assert m
    return m.group(1)


def post(stack: Stack, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """A form post as the UI's own pages make it: with the page's CSRF token."""
    return stack.http.post(path, data={**(data or {}), "csrf_token": form_token(stack)}, **kwargs)


def generate(stack: Stack, **params: str) -> str:
    """Generate a transport model through the UI; returns the stored model's hash."""
    form = {"bins": "4", "demand": "10, 15, 20, 25", "capacity": "18", "unit": "hours", "surge": "false",
            **params}
    r = post(stack, "/templates/transport/generate", data=form, follow_redirects=True)
    assert r.status_code == 200, r.text
    m = re.search(r'name="hash" value="([^"]+)"', r.text)
    assert m
    return m.group(1)


def test_a_generated_model_runs_and_opens_its_what_if(stack: Stack) -> None:
    model_hash = generate(stack)
    page_text = stack.http.get(f"/models/transport/{model_hash}").text
    assert 'id="run-whatif"' in page_text and 'name="then" value="whatif"' in page_text
    r = post(stack, "/runs/new", data={"templateId": "transport", "hash": model_hash, "then": "whatif"})
    assert r.status_code == 303, r.text
    location = str(r.headers["location"])
    assert re.fullmatch(r"/runs/run_\w+/whatif", location), location
    plain = post(stack, "/runs/new", data={"templateId": "transport", "hash": model_hash})
    assert not str(plain.headers["location"]).endswith("/whatif")


def run_generated(stack: Stack, model_hash: str, seed: str = "") -> str:
    r = post(stack, "/runs/new", data={"templateId": "transport", "hash": model_hash, "seed": seed})
    assert r.status_code == 303, r.text
    return str(r.headers["location"]).rsplit("/", 1)[-1]


# ---- home and service health -----------------------------------------------------------------


def test_home_shows_both_services_and_the_counts(stack: Stack) -> None:
    r = stack.http.get("/")
    assert r.status_code == 200
    assert 'data-service="engine"' in r.text and "9.9.9-engine" in r.text and "/tmp/engine" in r.text
    assert "9.9.9-sim" in r.text
    assert re.search(r'data-count="templates"><div class="v">2<', r.text)
    assert "No runs yet" in r.text
    assert "banner-down" not in r.text


def test_engine_down_is_a_banner_on_home_and_a_503_page_elsewhere(start_stack: StartStack) -> None:
    with start_stack(engine_down=True) as stack:
        home = stack.http.get("/")
        assert home.status_code == 200
        assert 'data-banner="engine"' in home.text and "Engine is not reachable" in home.text
        assert 'data-service="sim"' in home.text and "9.9.9-sim" in home.text
        runs = stack.http.get("/runs")
        assert runs.status_code == 503
        assert 'data-banner="engine"' in runs.text and "flowtime serve engine" in runs.text
        assert "Traceback" not in runs.text


def test_sim_down_is_a_banner_on_the_template_pages(start_stack: StartStack) -> None:
    with start_stack(sim_down=True) as stack:
        r = stack.http.get("/templates")
        assert r.status_code == 503
        assert 'data-banner="sim"' in r.text and "Sim is not reachable" in r.text
        assert stack.http.get("/").status_code == 200
        assert stack.http.get("/runs").status_code == 200  # runs only need the Engine


def test_both_services_down_still_render_home(start_stack: StartStack) -> None:
    with start_stack(engine_down=True, sim_down=True) as stack:
        r = stack.http.get("/")
        assert r.status_code == 200
        assert r.text.count("banner-down") == 2
        assert r.text.count('data-status>down<') == 2


# ---- templates, forms, generation ------------------------------------------------------------------


def test_catalog_lists_templates_with_search_and_tag_filters(stack: Stack) -> None:
    r = stack.http.get("/templates")
    assert 'data-template="transport"' in r.text and 'data-template="factory"' in r.text
    assert 'data-tag="manufacturing"' in r.text
    r = stack.http.get("/templates", params={"tag": "manufacturing"})
    assert 'data-template="factory"' in r.text and 'data-template="transport"' not in r.text
    r = stack.http.get("/templates", params={"q": "capacity"})
    assert 'data-template="transport"' in r.text and 'data-template="factory"' not in r.text


def test_a_fragment_request_gets_only_the_results(stack: Stack) -> None:
    r = stack.http.get("/templates", params={"q": "line"}, headers={"X-Fragment": "1"})
    assert "<html" not in r.text and 'data-template="factory"' in r.text


def test_the_form_carries_each_parameter_s_constraints(stack: Stack) -> None:
    r = stack.http.get("/templates/transport")
    assert r.status_code == 200
    html = r.text
    assert re.search(r'<input type="number" id="f-bins" name="bins" value="4" step="1"\s+min="3"\s+max="48"', html)
    assert re.search(r'id="f-capacity"[^>]*step="any"\s+min="1"\s+max="1000"', html)
    assert re.search(r'id="f-demand"[^>]*data-kind="array" data-item-type="number"\s+data-min="0"\s+'
                     r'data-max="1000"\s+data-min-items="1"\s+data-max-items="48"', html)
    assert '<option value="hours" selected>' in html and '<option value="days" >' in html
    assert 'type="checkbox" id="f-surge" name="surge" value="true"' in html
    assert "Whole number, 3 to 48" in html


def test_the_form_is_prefilled_from_the_query_and_flags_what_no_longer_fits(stack: Stack) -> None:
    r = stack.http.get("/templates/transport", params={"bins": "99", "_from": "run_x"})
    assert 'value="99"' in r.text and "Must be between 3 and 48, got 99." in r.text
    assert "run_x" in r.text
    assert 'value="10, 15, 20, 25"' in r.text  # the rest keep their defaults, with no message


def test_invalid_parameters_are_rejected_before_sim_with_messages_at_the_fields(stack: Stack) -> None:
    r = post(stack, "/templates/transport/generate",
                        data={"bins": "99", "demand": "1, x", "capacity": "18", "unit": "hours"})
    assert r.status_code == 400
    assert re.search(r'id="err-bins" role="alert">Must be between 3 and 48, got 99\.<', r.text)
    assert re.search(r"id=\"err-demand\" role=\"alert\">Element 1 must be a number, got the text &#39;x&#39;\.<",
                     r.text)
    assert not [q for q in stack.sim_app.state.requests if q["path"].endswith("/generate")]


def test_parameters_sim_rejects_are_shown_at_their_fields(stack: Stack) -> None:
    r = post(stack, "/templates/transport/generate",
                        data={"bins": "5", "demand": "1, 2", "capacity": "18", "unit": "hours"})
    assert r.status_code == 400
    assert re.search(r'id="err-demand" role="alert">demand has 2 values; bins is 5<', r.text)


def test_generate_shows_yaml_graph_provenance_and_quality(stack: Stack) -> None:
    posted = post(stack, "/templates/transport/generate",
                  data={"bins": "4", "demand": "1, 2, 3, 4", "capacity": "3", "unit": "hours"})
    assert posted.status_code == 303  # post/redirect/get: the model page has its own URL
    assert re.fullmatch(r"/models/transport/[0-9a-f]+", posted.headers["location"])
    r = stack.http.get(posted.headers["location"])
    assert r.status_code == 200
    html = r.text
    assert '<span class="y-key">schemaVersion</span>' in html
    assert 'class="dag"' in html and 'data-node="served"' in html
    assert "model_20250101T000000Z_" in html and "flowtime-sim/fake" in html
    assert 'id="quality"' in html and "90%" in html and "no units" in html
    assert 'id="download-yaml"' in html and 'id="run"' in html
    model_hash = re.search(r'name="hash" value="([^"]+)"', html)
    assert model_hash
    dl = stack.http.get(f"/models/transport/{model_hash.group(1)}/model.yaml")
    assert dl.status_code == 200 and dl.text.startswith("schemaVersion: 1")
    assert "attachment" in dl.headers["content-disposition"]
    again = stack.http.get(f"/models/transport/{model_hash.group(1)}")
    assert again.status_code == 200 and 'data-node="unmet"' in again.text


def test_runs_are_titled_by_template_and_changed_parameters(stack: Stack) -> None:
    changed = run_generated(stack, generate(stack, capacity="12"))
    plain = run_generated(stack, generate(stack))
    html = stack.http.get("/runs").text
    row = re.search(rf'data-run="{changed}">.*?</tr>', html, re.S)
    assert row and '<span class="run-title">transport · capacity=12</span>' in row.group(0)
    row = re.search(rf'data-run="{plain}">.*?</tr>', html, re.S)
    assert row and '<span class="run-title">transport · defaults</span>' in row.group(0)


def test_an_expired_generated_model_says_so_and_links_to_the_form(stack: Stack) -> None:
    r = stack.http.get("/models/transport/0123456789ab")
    assert r.status_code == 404
    assert "This generated model has expired" in r.text
    assert 'id="error-back" href="/templates/transport">Generate again<' in r.text


# ---- running ------------------------------------------------------------------------------------


def test_run_sends_the_model_with_its_provenance_header(stack: Stack) -> None:
    model_hash = generate(stack, capacity="21")
    run_generated(stack, model_hash, seed="7")
    (posted,) = stack.engine_requests("POST", "/v1/run")
    sent = json.loads(posted["headers"]["x-model-provenance"])
    assert sent == stack.sim_app.state.generated[-1]
    assert list(sent["parameters"]) == ["bins", "demand", "capacity", "unit", "surge"]
    assert sent["parameters"]["capacity"] == 21


def test_the_api_token_is_forwarded_to_engine_and_sim(start_stack: StartStack) -> None:
    with start_stack(api_token="s3cret") as stack:
        run_generated(stack, generate(stack))
        auth = {r["headers"].get("authorization") for r in stack.engine_app.state.requests}
        auth |= {r["headers"].get("authorization") for r in stack.sim_app.state.requests}
        assert auth == {"Bearer s3cret"}


def test_without_a_token_no_authorization_header_is_sent(stack: Stack) -> None:
    stack.http.get("/")
    assert all("authorization" not in r["headers"] for r in stack.engine_app.state.requests)


def test_run_yaml_runs_pasted_text_and_opens_the_run(stack: Stack) -> None:
    r = post(stack, "/run-yaml", data={"yaml": MODEL_OK, "seed": "3", "action": "run"})
    assert r.status_code == 303 and r.headers["location"].startswith("/runs/run_")


def test_run_yaml_accepts_an_uploaded_file(stack: Stack) -> None:
    r = post(stack, "/run-yaml", data={"action": "run"},
                        files={"file": ("m.yaml", MODEL_OK.encode(), "application/x-yaml")})
    assert r.status_code == 303


def test_an_invalid_model_is_shown_with_its_located_problems(stack: Stack) -> None:
    bad = MODEL_OK.replace("MIN(demand, 25)", "MIN(demnd, 25)")
    r = post(stack, "/run-yaml", data={"yaml": bad, "action": "run"})
    assert r.status_code == 400
    assert 'class="problems"' in r.text and "demnd" in r.text
    assert '<span class="loc">line 8, column 15, nodes.served.expr</span>' in r.text
    assert 'class="ln err" id="L8"' in r.text


def test_check_validates_without_running(stack: Stack) -> None:
    r = post(stack, "/run-yaml", data={"yaml": MODEL_OK, "action": "validate"})
    assert r.status_code == 200 and "The model is valid." in r.text
    assert not stack.engine_requests("POST", "/v1/run")


def test_a_bad_seed_or_empty_model_is_a_message_not_a_crash(stack: Stack) -> None:
    r = post(stack, "/run-yaml", data={"yaml": MODEL_OK, "seed": "x", "action": "run"})
    assert r.status_code == 400 and "Seed must be a whole number, got &#39;x&#39;." in r.text
    r = post(stack, "/run-yaml", data={"yaml": "  ", "action": "run"})
    assert r.status_code == 400 and "Paste a model or choose a file." in r.text
    r = post(stack, "/run-yaml", data={"yaml": MODEL_OK, "provenance": "[1]", "action": "run"})
    assert r.status_code == 400 and "Provenance must be a JSON object." in r.text


# ---- runs list, run page, compare, delete -------------------------------------------------------------


def test_runs_list_passes_filters_sort_and_paging_to_the_engine(stack: Stack) -> None:
    run_generated(stack, generate(stack))
    r = stack.http.get("/runs", params={"template": "transport", "q": "Model", "sort": "title",
                                        "order": "asc", "page": "2", "size": "25", "after": "2025-01-02",
                                        "before": "not-a-date", "tags": "a, b"})
    assert r.status_code == 200
    (listing,) = [q for q in stack.engine_app.state.requests if q["path"] == "/v1/artifacts"][-1:]
    assert listing
    r = stack.http.get("/runs", params={"template": "transport"})
    assert r.text.count('class="run-select"') == 1
    r = stack.http.get("/runs", params={"template": "factory"})
    assert "No runs match these filters" in r.text


def test_run_page_shows_grid_series_provenance_and_regenerate_link(stack: Stack) -> None:
    run_id = run_generated(stack, generate(stack, capacity="12"), seed="5")
    r = stack.http.get(f"/runs/{run_id}")
    html = r.text
    assert r.status_code == 200
    assert 'id="grid">4 × 1 hours<' in html and 'id="seed">5<' in html
    data = json.loads(re.search(r'<script type="application/json" id="run-data">(.*?)</script>', html, re.S)
                      .group(1))  # type: ignore[union-attr]
    served = next(s for s in data["series"] if s["label"] == "served")
    assert served["values"] == [10, 12, 12, 12]
    assert 'data-param="capacity"><td>capacity</td><td class="mono">12<' in html
    assert "/templates/transport?bins=4&amp;demand=10%2C+15%2C+20%2C+25&amp;capacity=12" in html
    assert 'data-node="served"' in html
    assert f'/runs/{run_id}/series/served@SERVED@DEFAULT.csv' in html


def test_series_and_exports_download_through_the_ui(stack: Stack) -> None:
    run_id = run_generated(stack, generate(stack))
    csv = stack.http.get(f"/runs/{run_id}/series/served@SERVED@DEFAULT.csv")
    assert csv.status_code == 200 and csv.text.startswith("t,value\n0,10")
    assert "attachment" in csv.headers["content-disposition"]
    js = stack.http.get(f"/runs/{run_id}/series/served@SERVED@DEFAULT.json")
    assert js.json()["values"] == [10, 15, 18, 18]
    long_csv = stack.http.get(f"/runs/{run_id}/export/csv")
    assert long_csv.status_code == 200
    assert long_csv.text.startswith("time_bin,offset_minutes,series,value\n0,0,demand,10")
    assert long_csv.headers["content-disposition"] == f'attachment; filename="{run_id}.csv"'
    assert stack.http.get(f"/runs/{run_id}/export/parquet").content.startswith(b"PAR1")
    assert stack.http.get(f"/runs/{run_id}/export/xlsx").status_code == 404
    z = stack.http.get(f"/runs/{run_id}/download.zip")
    assert z.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(z.content))
    assert not stack.engine_requests("GET", f"/v1/runs/{run_id}/series/demand")  # one export, not a request per series
    names = archive.namelist()
    assert names == [f"{run_id}/spec.yaml", f"{run_id}/run.json", f"{run_id}/series/demand@DEMAND@DEFAULT.csv",
                     f"{run_id}/series/served@SERVED@DEFAULT.csv", f"{run_id}/series/unmet@UNMET@DEFAULT.csv"]
    # Each series file of the zip is the series' own CSV, though the zip is built from one export.
    for sid in ("demand@DEMAND@DEFAULT", "served@SERVED@DEFAULT", "unmet@UNMET@DEFAULT"):
        assert archive.read(f"{run_id}/series/{sid}.csv") == stack.http.get(f"/runs/{run_id}/series/{sid}.csv").content


def test_compare_shows_ranking_deltas_and_differing_parameters(stack: Stack) -> None:
    a = run_generated(stack, generate(stack, capacity="18"))
    b = run_generated(stack, generate(stack, capacity="12"))
    r = stack.http.get("/compare", params=[("run", a), ("run", b)])
    assert r.status_code == 200
    html = r.text
    assert re.search(r'<tr class="diff" data-param="capacity"><td class="mono small">capacity</td>'
                     r'<td class="mono small">18</td><td class="mono small">12</td>', html)
    assert '<tr class="" data-param="bins">' in html
    assert re.search(r'data-series="served@SERVED@DEFAULT">.*?<td class="num">6</td>', html, re.S)
    data = json.loads(re.search(r'id="compare-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    served = next(s for s in data["series"] if s["label"] == "served")
    assert served["deltas"] == {a: [0, 3, 6, 6]} and data["baseline"] == b


def test_compare_pages_through_the_series_the_engine_caps(stack: Stack) -> None:
    """The Engine compares one page of series per request; the page links to the others."""
    a = run_generated(stack, generate(stack, capacity="18"))
    b = run_generated(stack, generate(stack, capacity="12"))
    stack.engine_app.state.compare_limit = 2
    first = stack.http.get("/compare", params={"a": a, "b": b})
    assert first.status_code == 200
    assert "Showing common series 1–2 of 3" in first.text and "3 common series" in first.text
    assert f'href="/compare?a={a}&amp;b={b}&amp;offset=2">Next' in first.text and 'rel="prev"' not in first.text
    second = stack.http.get("/compare", params={"a": a, "b": b, "offset": "2"})
    assert "Showing common series 3–3 of 3" in second.text
    assert f'href="/compare?a={a}&amp;b={b}&amp;offset=0">← Previous' in second.text and 'rel="next"' not in second.text
    data = json.loads(re.search(r'id="compare-data">(.*?)</script>', second.text, re.S).group(1))  # type: ignore[union-attr]
    assert [s["label"] for s in data["series"]] == ["unmet"]
    stack.engine_app.state.compare_limit = 200
    whole = stack.http.get("/compare", params={"a": a, "b": b})
    assert 'id="compare-paging"' not in whole.text


def test_compare_needs_exactly_two_different_runs(stack: Stack) -> None:
    assert stack.http.get("/compare", params={"run": "run_a"}).status_code == 400
    assert stack.http.get("/compare", params={"a": "run_a", "b": "run_a"}).status_code == 400


def test_compare_of_an_unknown_run_is_the_engine_s_404(stack: Stack) -> None:
    r = stack.http.get("/compare", params={"a": "run_a", "b": "run_b"})
    assert r.status_code == 404 and "run run_a not found" in r.text


def test_delete_asks_then_deletes(stack: Stack) -> None:
    run_id = run_generated(stack, generate(stack))
    confirm = stack.http.get(f"/runs/{run_id}/delete")
    assert confirm.status_code == 200 and 'id="confirm-delete"' in confirm.text
    r = post(stack, f"/runs/{run_id}/delete")
    assert r.status_code == 303 and r.headers["location"] == f"/runs?deleted={run_id}"
    assert stack.http.get(f"/runs/{run_id}").status_code == 404


def test_unknown_and_malformed_ids_are_404_pages(stack: Stack) -> None:
    r = stack.http.get("/runs/run_nope")
    assert r.status_code == 404 and 'id="error"' in r.text
    r = stack.http.get("/runs/..%2Fetc")
    assert r.status_code == 404
    r = stack.http.get("/templates/unknown")
    assert r.status_code == 404 and "no template" in r.text


# ---- assets ---------------------------------------------------------------------------------------


def test_plotly_and_assets_are_served_locally(stack: Stack) -> None:
    js = stack.http.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and "plotly" in js.text[:2000].lower()
    assert stack.http.get("/static/app.css").status_code == 200
    assert stack.http.get("/static/charts.js").status_code == 200
    run_id = run_generated(stack, generate(stack))
    for path in ("/", "/templates", f"/runs/{run_id}"):
        html = stack.http.get(path).text
        assert not re.search(r'(src|href)="(https?:)?//', html), path


def test_every_page_reports_its_server_time(stack: Stack) -> None:
    r = stack.http.get("/runs")
    assert re.fullmatch(r"app;dur=\d+\.\d", r.headers["server-timing"])


def test_a_service_asking_for_a_token_gets_a_hint(start_stack: StartStack) -> None:
    with start_stack(engine_token="s3cret") as stack:
        r = stack.http.get("/runs")
        assert r.status_code == 502
        assert "missing bearer token" in r.text and "FLOWTIME_API_TOKEN" in r.text


def test_a_class_part_is_named_by_its_node_and_class_and_a_total_by_its_node() -> None:
    from flowtime.ui.pages.run_detail import _label

    total = {"id": "hub_in@HUB_IN@DEFAULT", "nodeId": "hub_in", "class": "DEFAULT", "classKind": "fallback"}
    part = {"id": "hub_in@HUB_IN@Airport", "nodeId": "hub_in", "class": "Airport", "classKind": "specific"}
    assert (_label(total), _label(part)) == ("hub_in", "hub_in@Airport")


def test_a_derived_metric_is_named_by_its_series_not_by_the_topology_node_it_describes() -> None:
    from flowtime.ui.pages.run_detail import _label

    entry = {"id": "hub_latency_min@HUB_LATENCY_MIN@DEFAULT", "nodeId": "Hub", "kind": "derived",
             "metric": "latencyMinutes", "class": "DEFAULT", "classKind": "fallback"}
    assert _label(entry) == "hub_latency_min"
