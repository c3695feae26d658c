"""
The analysis pages over HTTP against the real Engine and Sim on loopback: forms for every kind, the Engine's
located problems at their fields, a goal seek's answer, a model Sim rendered as the source, the status poll.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.servers import serve

BACKLOG = Path(__file__).resolve().parents[2] / "examples" / "backlog-queue.yaml"
KINDS = ("sweep", "montecarlo", "sensitivity", "goalseek", "optimize", "fit")


class Stack:
    def __init__(self, engine: str, sim: str, ui: str, run_id: str) -> None:
        self.engine, self.sim, self.ui, self.run_id = engine, sim, ui, run_id
        self.http = httpx.Client(base_url=ui, headers={"Origin": ui}, follow_redirects=False, timeout=30)

    def form(self, kind: str, **query: str) -> tuple[str, dict[str, str]]:
        """The form page and what a browser would post from it as it is (text inputs and selected options)."""
        params = {"run": self.run_id, "kind": kind, **query}
        page = self.http.get("/analysis/new", params=params)
        assert page.status_code == 200, page.text[:500]
        body = page.text
        data = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)}  # type: ignore[union-attr]
        data |= {k: html.unescape(v) for k, v in re.findall(r'<input type="(?:text|hidden)"[^>]*?name="([^"]+)" '
                                                             r'value="([^"]*)"', body) if k != "csrf_token"}
        return body, data

    def experiments(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = httpx.get(f"{self.engine}/v1/experiments").json()["experiments"]
        return got

    def finished(self, exp_id: str) -> dict[str, Any]:
        for _ in range(200):
            got: dict[str, Any] = httpx.get(f"{self.engine}/v1/experiments/{exp_id}").json()
            if got["status"] not in ("queued", "running"):
                return got
            time.sleep(0.05)
        raise AssertionError(f"{exp_id} did not finish")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from flowtime.api.engine import create_engine_app
    from flowtime.api.sim import create_sim_app
    from flowtime.settings import EngineSettings, SimSettings, UiSettings
    from flowtime.ui.app import create_ui_app

    root = tmp_path_factory.mktemp("analysis-pages")
    with serve(create_engine_app(EngineSettings(data_dir=root / "engine")), "engine") as engine, \
            serve(create_sim_app(SimSettings(data_dir=root / "sim")), "sim") as sim, \
            serve(create_ui_app(UiSettings(engine_url=engine, sim_url=sim)), "ui") as ui:
        run = httpx.post(f"{engine}/v1/run", json={"yaml": BACKLOG.read_text(encoding="utf-8")}).json()
        got = Stack(engine, sim, ui, run["runId"])
        with got.http:
            yield got


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_form_with_the_runs_parameters_offered(stack: Stack, kind: str) -> None:
    body, data = stack.form(kind)
    # The first const node is proposed with a range around its mean: arrivals average 89 / 8 = 11.125.
    assert data["parameters[0].target"] == "arrivals"
    assert re.search(r'<option value="capacity">capacity \(now 15\)</option>', body)
    if kind == "montecarlo":
        assert (data["parameters[0].distribution.low"], data["parameters[0].distribution.high"]) == ("8.9", "13.35")
    else:
        assert (data["parameters[0].range.low"], data["parameters[0].range.high"]) == ("5.5625", "16.6875")
    assert 'aria-current=page' in body and f'data-kind="{kind}"' in body


def test_the_engines_located_problem_is_shown_at_its_field(stack: Stack) -> None:
    _, data = stack.form("sweep")
    data["parameters[0].target"] = "staff"
    before = len(stack.experiments())
    got = stack.http.post("/analysis/new", data=data)
    assert got.status_code == 400
    field = re.search(r'data-spec-field="parameters\[0\]\.target".*?role="alert">([^<]*)<', got.text, re.S)
    assert field is not None and "unknown node" in html.unescape(field.group(1)) and "staff" in field.group(1)
    assert 'value="staff"' in got.text  # what was typed is kept
    assert len(stack.experiments()) == before


def test_a_text_that_is_no_number_is_refused_before_the_engine_is_asked(stack: Stack) -> None:
    _, data = stack.form("sweep")
    data["parameters[0].range.steps"] = "five"
    before = len(stack.experiments())
    got = stack.http.post("/analysis/new", data=data)
    assert got.status_code == 400 and "expects a whole number, got &#39;five&#39;" in got.text
    assert len(stack.experiments()) == before


def test_a_goal_seek_from_the_form_finds_the_staffing_and_opens_it_as_a_run(stack: Stack) -> None:
    _, data = stack.form("goalseek")
    data |= {"parameters[0].target": "capacity", "parameters[0].range.low": "10", "parameters[0].range.high": "30",
             "metrics[0].series": "backlog", "metrics[0].aggregate": "max", "settings.target": "5"}
    got = stack.http.post("/analysis/new", data=data)
    assert got.status_code == 303
    exp_id = got.headers["location"].rsplit("/", 1)[-1]
    answer = stack.finished(exp_id)["result"]["answer"]
    assert answer["converged"] and abs(answer["x"] - 20.0) < 1e-6  # peak backlog 5 needs 20 staff (by hand)
    page = stack.http.get(f"/experiments/{exp_id}").text
    assert "<dt>value found</dt>" in page and "open-answer" in page
    point = re.search(r'action="/experiments/[^/]+/points/(\d+)/run"[^>]*>.{0,200}id="open-answer"', page, re.S)
    assert point is not None
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    opened = stack.http.post(f"/experiments/{exp_id}/points/{point.group(1)}/run", data={"csrf_token": token})
    assert opened.status_code == 303 and re.match(r"^/runs/run_", opened.headers["location"])
    run = httpx.get(f"{stack.engine}/v1/runs/{opened.headers['location'].rsplit('/', 1)[-1]}").json()["run"]
    assert run["overrides"] == {"capacity": answer["x"]}


def test_the_status_poll_carries_progress_not_the_result(stack: Stack) -> None:
    _, data = stack.form("sweep")
    data |= {"parameters[0].target": "capacity", "parameters[0].range.low": "10", "parameters[0].range.high": "20",
             "parameters[0].range.steps": "3", "metrics[0].series": "backlog"}
    exp_id = stack.http.post("/analysis/new", data=data).headers["location"].rsplit("/", 1)[-1]
    stack.finished(exp_id)
    status = stack.http.get(f"/experiments/{exp_id}/status.json").json()
    assert status["status"] == "done" and status["progress"] == {"done": 3, "total": 3} and "result" not in status
    embedded = re.search(r'id="experiment-data">(.*?)</script>', stack.http.get(f"/experiments/{exp_id}").text, re.S)
    assert embedded is not None
    chart = json.loads(embedded.group(1))
    assert chart["grid"] == {"bins": 8, "binSize": 1, "binUnit": "hours", "binMinutes": 60,  # clock time on the charts
                             "startTimeUtc": None}
    assert [r[0] for r in chart["table"]["rows"]] == [10, 15, 20] and "series" not in chart


def test_a_model_sim_rendered_is_a_source_too(stack: Stack) -> None:
    made = httpx.post(f"{stack.sim}/api/v1/templates/commuter-rail/generate", json={"parameters": {}}).json()
    page = stack.http.get("/analysis/new", params={"template": "commuter-rail", "hash": made["hash"],
                                                   "kind": "sensitivity"})
    assert page.status_code == 200
    assert "of template commuter-rail" in page.text and '<datalist id="targets"><option value=' in page.text
    shown = stack.http.get(f"/models/commuter-rail/{made['hash']}").text
    assert f'href="/analysis/new?template=commuter-rail&hash={made["hash"]}" id="analyse"' in shown


def test_an_analysis_without_a_source_is_not_found(stack: Stack) -> None:
    assert stack.http.get("/analysis/new").status_code == 404
