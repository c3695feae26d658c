"""POST /v1/validate by tier and POST /v1/run?strict=true, against a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.engine_server import HELLO, serve_engine

from flowtime.settings import EngineSettings

PROBLEM = "application/problem+json"
YAML = {"Content-Type": "application/x-yaml"}

# A desk that serves more than arrives in bins 1 and 3: served_exceeds_arrivals, worst ratio 15 / 10 = 1.5.
OVER_SERVED = """schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: arrivals, values: [10, 10, 10, 10]}
  - {id: served, values: [8, 12, 10, 15]}
topology:
  nodes:
    - id: Desk
      kind: service
      semantics: {arrivals: arrivals, served: served}
"""
# The same desk, never serving more than arrives: no warning (infos about undeclared series may remain).
CLEAN = OVER_SERVED.replace("[8, 12, 10, 15]", "[8, 10, 10, 9]")
# Right shape, wrong reference: passes the schema tier, fails the compile tier.
BAD_REF = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n" \
          "  - {id: a, values: [1, 2]}\n  - {id: b, kind: expr, expr: 'aa * 2'}\n"
# Wrong shape: fails at once.
BAD_SHAPE = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1, 2, 3]}\n"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("validate-data")


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[httpx.Client]:
    with serve_engine(EngineSettings(data_dir=data_dir)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def validate(client: httpx.Client, text: str, **params: str) -> dict[str, object]:
    resp = client.post("/v1/validate", content=text, headers=YAML, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def run_count(client: httpx.Client) -> int:
    total: int = client.get("/v1/runs").json()["total"]
    return total


def test_the_default_tier_is_analyse_and_every_key_is_there(client: httpx.Client) -> None:
    body = validate(client, HELLO)
    assert body == {"tier": "analyse", "valid": True, "isValid": True, "problems": [], "errors": [],
                    "warnings": []}


def test_the_schema_tier_checks_shape_only(client: httpx.Client) -> None:
    assert validate(client, BAD_REF, tier="schema")["valid"] is True
    body = validate(client, BAD_SHAPE, tier="SCHEMA")
    assert body["tier"] == "schema" and body["valid"] is False and body["isValid"] is False
    [error] = body["errors"]  # type: ignore[misc]
    assert (error["path"], error["line"]) == ("nodes.a.values", 4) and "has 3 values" in error["message"]
    assert set(error) == {"message", "path", "line", "column"}


def test_the_compile_tier_resolves_references_with_each_problem_located(client: httpx.Client) -> None:
    body = validate(client, BAD_REF, tier="compile")
    assert body["valid"] is False
    [problem] = body["problems"]  # type: ignore[misc]
    assert (problem["path"], problem["line"], problem["severity"]) == ("nodes.b.expr", 5, "error")
    assert "unknown node 'aa'" in problem["message"]
    assert validate(client, OVER_SERVED, tier="compile") == {
        "tier": "compile", "valid": True, "isValid": True, "problems": [], "errors": [], "warnings": []}


def test_the_analyse_tier_returns_findings_located_and_the_model_stays_valid(client: httpx.Client) -> None:
    body = validate(client, OVER_SERVED)
    assert body["valid"] is True and body["errors"] == []
    [w] = [w for w in body["warnings"] if w["code"] == "served_exceeds_arrivals"]  # type: ignore[union-attr]
    # served > arrivals in bins 1 (12 > 10) and 3 (15 > 10); the worst ratio is 15 / 10
    assert (w["severity"], w["nodeId"], w["bins"], w["binCount"], w["value"]) == ("warning", "Desk", [1, 3], 2, 1.5)
    assert w["hint"] and w["message"]
    clean = validate(client, CLEAN)
    assert not [w for w in clean["warnings"] if w["severity"] != "info"]  # type: ignore[union-attr]


def test_the_reference_json_body_and_the_query_tier(client: httpx.Client) -> None:
    resp = client.post("/v1/validate", json={"yaml": BAD_REF, "tier": "schema"})
    assert resp.status_code == 200 and resp.json()["tier"] == "schema" and resp.json()["isValid"] is True
    # ?tier= wins over the body's tier
    resp = client.post("/v1/validate", json={"yaml": BAD_REF, "tier": "schema"}, params={"tier": "compile"})
    assert resp.json()["tier"] == "compile" and resp.json()["isValid"] is False
    # the run options of the JSON body shape the analyse tier's evaluation: set the desk back to clean
    resp = client.post("/v1/validate", json={"yaml": OVER_SERVED, "set": {"served": 10}})
    assert not [w for w in resp.json()["warnings"] if w["code"] == "served_exceeds_arrivals"]


def test_an_unknown_tier_is_a_400_naming_the_tiers(client: httpx.Client) -> None:
    for resp in (client.post("/v1/validate", content=HELLO, headers=YAML, params={"tier": "lint"}),
                 client.post("/v1/validate", json={"yaml": HELLO, "tier": "deep"})):
        assert resp.status_code == 400 and resp.headers["content-type"] == PROBLEM
        assert "schema, compile, analyse" in resp.json()["detail"]


def test_bad_input_an_invalid_model_is_200_with_valid_false(client: httpx.Client) -> None:
    for text in ("nodes: [", "", "5"):
        body = validate(client, text, tier="analyse")
        assert body["valid"] is False and body["isValid"] is False and body["errors"]
    resp = client.post("/v1/validate", json={"yaml": HELLO, "tierr": "schema"})
    assert resp.status_code == 400 and "tier" in resp.json()["errors"][0]["message"]


def test_overrides_that_do_not_fit_the_model_are_errors_of_the_analyse_tier(client: httpx.Client) -> None:
    resp = client.post("/v1/validate", json={"yaml": HELLO, "set": {"served": 3}})
    body = resp.json()
    assert resp.status_code == 200 and body["valid"] is False
    assert body["errors"][0]["path"] == "set.served"


def test_a_strict_run_with_a_warning_is_a_422_listing_findings_and_stores_nothing(client: httpx.Client) -> None:
    before = run_count(client)
    resp = client.post("/v1/run", content=OVER_SERVED, headers=YAML, params={"strict": "true"})
    assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
    body = resp.json()
    [f] = [f for f in body["findings"] if f["code"] == "served_exceeds_arrivals"]
    assert f["nodeId"] == "Desk" and f["bins"] == [1, 3]
    assert all(f["severity"] in ("warning", "error") for f in body["findings"])
    assert any(e["path"] == "topology.nodes.Desk" for e in body["errors"])
    assert run_count(client) == before
    # the JSON body's flag does the same
    assert client.post("/v1/run", json={"yaml": OVER_SERVED, "strict": True}).status_code == 422
    assert run_count(client) == before


def test_a_strict_run_without_warnings_is_stored_and_a_lax_run_with_them_too(client: httpx.Client) -> None:
    before = run_count(client)
    ok = client.post("/v1/run", content=CLEAN, headers=YAML, params={"strict": "true"})
    assert ok.status_code == 200 and ok.json()["runId"].startswith("run_")
    lax = client.post("/v1/run", content=OVER_SERVED, headers=YAML)
    assert lax.status_code == 200
    assert run_count(client) == before + 2


def test_a_loader_warning_a_finding_reports_is_said_once_by_the_finding(client: httpx.Client) -> None:
    text = CLEAN + ("    - {id: Back, kind: service, semantics: {arrivals: served, served: served}}\n"
                    "  edges:\n    - {from: Desk, to: Back, lag: 1}\n")
    warnings = validate(client, text)["warnings"]
    lagged = [w for w in warnings if "edge_behavior_violation_lag" in (w["code"] or w["message"])]  # type: ignore[union-attr]
    assert [(w["code"], w["nodeId"]) for w in lagged] == [("edge_behavior_violation_lag", "Desk")]
    # the compile tier has no findings: there the loader's warning is the one that says it
    [loader] = validate(client, text, tier="compile")["warnings"]  # type: ignore[misc]
    assert loader["code"] is None and loader["message"].startswith("edge_behavior_violation_lag:")
    assert loader["path"] == "topology.edges[0].lag"
