"""
Experiments over a Sim template: ``template: {id, parameters}`` plus ``template.<name>`` parameters, rendered at
the edge (the CLI, the Python API) through the Sim library and evaluated by the engine core; the Engine's HTTP
API takes models only.

support-backlog (8 days, arrivals 40, 55, 70, 65, 30, 20, 45, 50; capacity = agents x tickets_per_agent; the
backlog b_t = max(0, b_{t-1} + a_t - capacity)). With 10 tickets per agent:
  agents 4 (40/day): 0, 15, 45, 70, 60, 40, 45, 55 -> peak 70
  agents 5 (50/day): 0, 5, 25, 40, 20, 0, 0, 0     -> peak 40
  agents 6 (60/day): 0, 0, 10, 15, 0, 0, 0, 0      -> peak 15
Arrivals scaled by 1.2 (48, 66, 84, 78, 36, 24, 54, 60) with agents 5: 0, 16, 50, 78, 64, 38, 42, 52 -> peak 78.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.api.engine_server import serve_engine
from tests.test_cli_experiments import cli

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.runner import run_experiment
from flowtime.settings import EngineSettings
from flowtime.sim.catalog import Catalog
from flowtime.sim.render import render_template
from flowtime.template_sources import TemplateModels, template_source

SPEC = {"kind": "sweep", "template": {"id": "support-backlog", "parameters": {"tickets_per_agent": 10}},
        "parameters": [{"target": "template.agents", "values": [4, 5, 6]},
                       {"target": "arrivals", "mode": "scale", "values": [1.0, 1.2]}],
        "metrics": [{"name": "peak", "series": "backlog", "aggregate": "max"}], "capture": ["backlog"]}


class Counting(TemplateModels):
    """Counts the renders an experiment asks for."""

    renders = 0

    def render(self, values: Mapping[str, float]) -> str:
        Counting.renders += 1
        return super().render(values)


def test_a_template_sweep_equals_separately_rendered_and_run_models_point_for_point() -> None:
    got = flowtime.experiment(SPEC)
    assert got.table.columns.tolist() == ["template.agents", "arrivals", "peak"]
    # hand-computed above; agents 4 with arrivals x 1.2: 8, 34, 78, 116, 112, 96, 110, 130 -> 130
    assert got.table["peak"].tolist()[:5] == [70.0, 130.0, 40.0, 78.0, 15.0]
    template = Catalog.load().get("support-backlog")
    for k, (agents, scale) in enumerate(got.points.tolist()):
        text = render_template(template, {"tickets_per_agent": 10, "agents": int(agents)}).model_text
        alone = flowtime.experiment({"kind": "sweep", "parameters": [{"target": "arrivals", "mode": "scale",
                                                                      "values": [scale]}],
                                     "metrics": SPEC["metrics"], "capture": ["backlog"]}, model=text)
        assert alone.metrics[0].tolist() == got.metrics[k].tolist()
        np.testing.assert_array_equal(alone.series["backlog"][0], got.series["backlog"][k])
    assert got.series["backlog"][2].tolist() == [0, 5, 25, 40, 20, 0, 0, 0]


def test_points_sharing_template_values_share_one_render_and_the_provenance_names_the_template() -> None:
    renderer = Counting(Catalog.load().get("support-backlog"), {"tickets_per_agent": 10})
    Counting.renders = 0
    got = run_experiment(SPEC, renderer.base_text, renderer=renderer)
    assert got.n == 6
    assert Counting.renders == 3  # agents 4, 5, 6: each rendered once for its two arrivals scales
    source = got.to_json()["source"]["template"]
    assert (source["id"], source["version"], source["parameters"]["tickets_per_agent"]) == (
        "support-backlog", "1.0.0", 10)
    assert got.to_json()["spec"]["template"] == {"id": "support-backlog", "parameters": {"tickets_per_agent": 10}}


def test_a_template_sweep_on_a_process_pool_equals_in_process() -> None:
    inprocess = flowtime.experiment(SPEC)
    pooled = flowtime.experiment(SPEC, backend="processes:2")
    np.testing.assert_array_equal(pooled.metrics, inprocess.metrics)
    np.testing.assert_array_equal(pooled.series["backlog"], inprocess.series["backlog"])


def test_an_unknown_template_parameter_is_an_error_at_the_parameter() -> None:
    spec = {**SPEC, "parameters": [{"target": "template.agnts", "values": [4]}]}
    with pytest.raises(ExperimentError, match=r"no parameter 'agnts'.*agents") as e:
        flowtime.experiment(spec)
    assert [p.path for p in e.value.problems] == ["parameters[0].target"]


def test_a_bad_base_value_is_an_error_at_the_template_parameters() -> None:
    with pytest.raises(ExperimentError) as e:
        template_source({"template": {"id": "support-backlog", "parameters": {"agents": -3}}}, None)
    assert [p.path for p in e.value.problems] == ["template.parameters.agents"]


def test_a_template_value_the_template_refuses_is_an_error_naming_the_value() -> None:
    spec = {**SPEC, "parameters": [{"target": "template.agents", "values": [5, 20000]}]}
    with pytest.raises(ExperimentError, match=r"template\.agents = 20000") as e:
        flowtime.experiment(spec)
    assert [p.path for p in e.value.problems] == ["parameters[0]"]


def test_a_template_parameter_without_a_template_is_refused() -> None:
    model = render_template(Catalog.load().get("support-backlog"), {}).model_text
    with pytest.raises(ExperimentError, match="Engine takes models") as e:
        flowtime.experiment({**SPEC, "template": None}, model=model)
    assert [p.path for p in e.value.problems] == ["parameters[0].target"]


def test_the_cli_sweeps_a_template_given_with_template_and_set(tmp_path: Path) -> None:
    spec = {k: v for k, v in SPEC.items() if k != "template"}
    spec["parameters"] = [{"target": "template.agents", "values": [2, 3]}]
    (tmp_path / "sweep.json").write_text(json.dumps(spec), encoding="utf-8")
    # 20 tickets per agent: 2 agents are 40/day (peak 70), 3 agents 60/day (peak 15)
    r = cli("sweep", str(tmp_path / "sweep.json"), "--template", "support-backlog", "--set", "tickets_per_agent=20",
            "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["table"]["rows"] == [[2.0, 70.0], [3.0, 15.0]]
    assert body["source"]["template"]["parameters"]["tickets_per_agent"] == 20


def test_the_cli_exits_1_on_an_unknown_template_parameter(tmp_path: Path) -> None:
    (tmp_path / "sweep.json").write_text(json.dumps({**SPEC, "parameters": [{"target": "template.agnts",
                                                                             "values": [4]}]}), encoding="utf-8")
    r = cli("sweep", str(tmp_path / "sweep.json"))
    assert r.returncode == 1 and r.stdout == ""
    assert "parameters[0].target" in r.stderr and "agnts" in r.stderr


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = EngineSettings(data_dir=tmp_path_factory.mktemp("template-experiments"))
    with serve_engine(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def test_the_engine_refuses_a_template_spec_with_a_400_at_the_template(client: httpx.Client) -> None:
    for body in ({"spec": SPEC}, {"spec": SPEC, "model": "schemaVersion: 1"}, SPEC):
        r = client.post("/v1/experiments", json=body)
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("application/problem+json")
        [err] = r.json()["errors"]
        assert err["path"] == "template"
        assert "Engine takes models" in err["message"] and "CLI" in err["message"] and "UI" in err["message"]


def test_the_engine_refuses_a_template_parameter_in_a_synchronous_sweep(client: httpx.Client) -> None:
    model = render_template(Catalog.load().get("support-backlog"), {}).model_text
    r = client.post("/v1/sweep", json={"yaml": model, "paramId": "template.agents", "values": [4, 5]})
    assert r.status_code == 400
    [err] = r.json()["errors"]
    assert err["path"] == "paramId" and "Engine takes models" in err["message"]
