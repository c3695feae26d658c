"""The Engine /v1 API against a real uvicorn server on loopback."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
from tests.api.engine_server import HELLO, serve_engine

from flowtime.artifacts.registry import INDEX_FILE
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model
from flowtime.settings import EngineSettings

PROBLEM = "application/problem+json"


def model(values: list[float], *, title: str = "Hello model", tags: str = "[demo, hello]",
          extra: str = "") -> str:
    return (f"schemaVersion: 1\nmetadata:\n  title: {title}\n  tags: {tags}\n"
            f"grid: {{bins: {len(values)}, binSize: 1, binUnit: hours}}\n"
            f"nodes:\n  - {{id: demand, kind: const, values: {values}}}\n"
            f"  - {{id: served, kind: expr, expr: \"MIN(demand, 25)\"}}\n{extra}")


def prov_header(**fields: Any) -> dict[str, str]:
    return {"X-Model-Provenance": json.dumps(fields)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-data")


@pytest.fixture(scope="module")
def base_url(data_dir: Path) -> Iterator[str]:
    with serve_engine(EngineSettings(data_dir=data_dir)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def post_run(client: httpx.Client, text: str = HELLO, headers: dict[str, str] | None = None,
             **params: Any) -> dict[str, Any]:
    resp = client.post("/v1/run", content=text.encode(), params=params,
                       headers={"Content-Type": "application/x-yaml", **(headers or {})})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def raw_get(base_url: str, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (httpx would normalise '..' away)."""
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# -- health and docs -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/v1/healthz"])
def test_health_reports_version_data_dir_run_count_and_limits(
        client: httpx.Client, data_dir: Path, path: str) -> None:
    body = client.get(path).json()
    assert body["status"] == "ok"
    assert body["dataDir"] == str(data_dir.resolve())
    assert isinstance(body["runCount"], int)
    assert body["limits"] == {"maxBins": 1_000_000, "maxNodes": 100_000,
                              "maxBodyBytes": 10 * 1024 * 1024, "maxExperimentPoints": 1_000_000,
                              "whatifMaxSessions": 16}
    assert body["version"]


def test_openapi_docs_are_served(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/run" in spec["paths"]
    assert "application/x-yaml" in spec["paths"]["/v1/run"]["post"]["requestBody"]["content"]


def test_unknown_route_is_a_404_problem(client: httpx.Client) -> None:
    resp = client.get("/v2/nothing")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["status"] == 404


# -- POST /v1/run ----------------------------------------------------------------------


def test_run_answers_200_with_values_and_stores_the_run(client: httpx.Client,
                                                        data_dir: Path) -> None:
    resp = client.post("/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 200
    body = resp.json()
    run_id = body["runId"]
    assert resp.headers["location"] == f"/v1/runs/{run_id}"
    assert body["grid"] == {"bins": 4, "binSize": 1, "binUnit": "hours"}
    assert body["order"] == ["demand", "served"]
    assert body["series"] == {"demand": [10, 20, 30, 40], "served": [10, 20, 25, 25]}
    assert body["artifactsPath"] == str((data_dir / run_id).resolve())
    assert body["provenance"] is None
    manifest = json.loads((data_dir / run_id / "manifest.json").read_text())
    assert body["modelHash"] == manifest["modelHash"]
    assert body["scenarioHash"] == manifest["scenarioHash"]
    assert (data_dir / run_id / "series" / "served@SERVED@DEFAULT.csv").read_text() == \
        "t,value\n0,10\n1,20\n2,25\n3,25\n"
    listed = [r["id"] for r in client.get("/v1/runs", params={"limit": 1000}).json()["runs"]]
    assert run_id in listed


@pytest.mark.parametrize("media", ["application/x-yaml", "text/yaml", "text/plain",
                                   "text/plain; charset=utf-8"])
def test_run_accepts_yaml_media_types(client: httpx.Client, media: str) -> None:
    resp = client.post("/v1/run", content=HELLO, headers={"Content-Type": media})
    assert resp.status_code == 200


def test_run_takes_overrides_as_a_json_set_or_a_query_and_records_them(client: httpx.Client,
                                                                      data_dir: Path) -> None:
    text = model([10, 20, 30, 40])
    by_json = client.post("/v1/run", json={"yaml": text, "set": {"demand": [30, 30, 30, 30]}}).json()
    assert by_json["series"]["served"] == [25, 25, 25, 25]
    assert by_json["overrides"] == {"demand": [30.0, 30.0, 30.0, 30.0]}
    by_query = post_run(client, text, set="demand=30")
    assert by_query["series"]["demand"] == [30, 30, 30, 30] and by_query["overrides"] == {"demand": 30.0}
    edited = post_run(client, model([30, 30, 30, 30]))
    assert by_json["modelHash"] == by_query["modelHash"] == edited["modelHash"]
    run = json.loads((data_dir / by_query["runId"] / "run.json").read_text())
    assert run["overrides"] == {"demand": 30.0}
    with_prov = post_run(client, text, headers=prov_header(modelId="model_a", templateId="t"), set="demand=5")
    stored = json.loads((data_dir / with_prov["runId"] / "provenance.json").read_text())
    assert stored["overrides"] == {"demand": 5.0} and stored["modelId"] == "model_a"


def test_compare_and_diff_show_the_overrides_and_the_model_difference(client: httpx.Client) -> None:
    base = post_run(client, model([10, 20, 30, 40]))
    what_if = post_run(client, model([10, 20, 30, 40]), set="demand=[10,20,35,40]")
    body = client.get("/v1/runs/compare", params={"a": what_if["runId"], "b": base["runId"]}).json()
    assert body["a"]["overrides"] == {"demand": [10.0, 20.0, 35.0, 40.0]} and body["b"]["overrides"] == {}
    assert body["modelChanges"] == [{"node": "demand", "change": "values",
                                     "detail": "1 of 4 bins, first bin 2: 30 -> 35"}]
    other_grid = post_run(client, model([1, 2, 3]).replace("title: Hello model", "title: Other"))
    shorter = client.get("/v1/runs/compare", params={"a": other_grid["runId"], "b": base["runId"]})
    assert shorter.status_code == 200 and shorter.json()["grid"]["bins"] == 3  # their common span
    diff = client.get("/v1/runs/diff", params={"a": other_grid["runId"], "b": base["runId"]})
    assert diff.status_code == 200  # any two runs: the grids need not match
    assert diff.json()["modelChanges"] == [
        {"part": "grid", "change": "grid", "detail": "4 bins of 1 hours -> 3 bins of 1 hours"},
        {"node": "demand", "change": "values", "detail": "4 values -> 3 values"},
    ]


def test_bad_overrides_are_a_400_naming_each_node(client: httpx.Client) -> None:
    before = client.get("/v1/runs").json()["total"]
    resp = client.post("/v1/run", json={"yaml": model([1, 2]), "set": {"served": 1, "demand": [1, 2, 3]}})
    assert resp.status_code == 400
    errors = {e["path"]: e["message"] for e in resp.json()["errors"]}
    assert errors == {
        "set.demand": "gives 3 values but grid.bins is 2; give one number (every bin) or one value per bin",
        "set.served": "node 'served' is an expr node; only const nodes can be set (their values are the "
                      "model's inputs)",
    }
    bad_query = client.post("/v1/run", content=model([1, 2]), params={"set": "demand"},
                            headers={"Content-Type": "text/yaml"})
    assert bad_query.status_code == 400 and bad_query.json()["errors"][0]["path"] == "set"
    not_json = client.post("/v1/run", content=model([1, 2]), params={"set": "demand=[1,"},
                           headers={"Content-Type": "text/yaml"})
    assert not_json.status_code == 400 and not_json.json()["errors"][0]["path"] == "set.demand"
    assert client.get("/v1/runs").json()["total"] == before


def test_run_accepts_a_json_envelope_with_seed_and_sample_pmf(client: httpx.Client,
                                                              data_dir: Path) -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 5, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - {id: p, kind: pmf, pmf: {values: [0, 10], probabilities: [0.5, 0.5]}}\n")
    one = client.post("/v1/run", json={"yaml": text, "seed": 7, "samplePmf": True}).json()
    two = client.post("/v1/run", json={"yaml": text, "seed": 7, "samplePmf": True}).json()
    assert one["seed"] == 7
    assert set(one["series"]["p"]) <= {0, 10}
    assert one["series"] == two["series"]
    assert one["scenarioHash"] == two["scenarioHash"]
    manifest = json.loads((data_dir / one["runId"] / "manifest.json").read_text())
    assert manifest["rng"]["seed"] == 7
    expected = client.post("/v1/run", json={"yaml": text}).json()
    assert expected["series"]["p"] == [5, 5, 5, 5, 5]


def test_run_can_leave_out_the_series(client: httpx.Client) -> None:
    body = post_run(client, series="false")
    assert "series" not in body
    assert body["order"] == ["demand", "served"]


def test_nan_and_infinity_are_null_in_json(client: httpx.Client) -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - {id: a, values: [4, -1, 1e308]}\n"
            "  - {id: r, kind: expr, expr: SQRT(a)}\n  - {id: big, kind: expr, expr: a * 10}\n")
    body = post_run(client, text)
    assert body["series"]["r"] == [2, None, 1e154]
    assert body["series"]["big"] == [40, -10, None]
    assert any("non-finite" in w["message"] for w in body["warnings"])


def test_invalid_model_is_a_400_listing_every_problem_located(client: httpx.Client) -> None:
    text = ("schemaVersion: 2\ngrid: {bins: 0, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - {id: a, kind: expr, expr: \"b + 1\"}\n")
    before = client.get("/v1/runs").json()["total"]
    resp = client.post("/v1/run", content=text, headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == 400
    assert {e["path"] for e in body["errors"]} == {"schemaVersion", "grid.bins", "nodes.a.expr"}
    assert [(e["line"], e["column"]) for e in body["errors"]][:2] == [(1, 16), (2, 14)]
    assert body["error"].startswith("3 errors in request body: ")
    assert client.get("/v1/runs").json()["total"] == before


def test_an_unknown_output_is_a_400_unless_lenient_outputs_skips_it_with_a_warning(client: httpx.Client) -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - {id: a, values: [1, 2]}\n  - {id: b, kind: expr, expr: 'a * 2'}\n"
            "outputs:\n  - series: b\n  - series: served_count\n")
    strict = client.post("/v1/run", content=text, headers={"Content-Type": "text/yaml"})
    assert strict.status_code == 400
    assert [(e["path"], e["line"]) for e in strict.json()["errors"]] == [("outputs[1].series", 8)]
    body = post_run(client, text, lenientOutputs="true")
    assert body["outputs"] == ["b"] and body["series"]["b"] == [2.0, 4.0]
    assert [(w["path"], w["severity"]) for w in body["warnings"]] == [("outputs[1].series", "warning")]
    check = client.post("/v1/validate", content=text, params={"lenientOutputs": "true"},
                        headers={"Content-Type": "text/yaml"}).json()
    assert check["valid"] is True and [p["path"] for p in check["problems"]] == ["outputs[1].series"]


def test_empty_body_is_a_400(client: httpx.Client) -> None:
    resp = client.post("/v1/run", content=b"", headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 400
    assert "empty" in resp.json()["detail"]


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b'{"yaml": 5}', "yaml"),
    (b'{"yml": "x"}', "unknown field"),
    (b'{"yaml": "x", "seed": "seven"}', "seed"),
    (b'["schemaVersion: 1"]', "object"),
])
def test_bad_json_envelope_is_a_400(client: httpx.Client, body: bytes, fragment: str) -> None:
    resp = client.post("/v1/run", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert fragment in resp.text


def test_unsupported_media_type_is_a_415(client: httpx.Client) -> None:
    resp = client.post("/v1/run", content=HELLO,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 415
    assert resp.headers["content-type"] == PROBLEM
    assert "application/x-yaml" in resp.json()["detail"]


def test_body_over_the_limit_by_content_length_is_a_413(client: httpx.Client) -> None:
    big = b"#" * (10 * 1024 * 1024 + 1)
    resp = client.post("/v1/run", content=big, headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 413
    assert "10485760" in resp.json()["detail"]


# -- provenance ------------------------------------------------------------------------

EMBEDDED = """provenance:
  modelId: model_embedded
  templateId: tmpl-embedded
  templateVersion: 1.0
  parameters: {bins: 4}
"""


def test_header_wins_over_embedded_block_without_merging(client: httpx.Client,
                                                         data_dir: Path) -> None:
    body = post_run(client, model([1, 2, 3], extra=EMBEDDED),
                    headers=prov_header(modelId="model_header"))
    folder = data_dir / body["runId"]
    stored = json.loads((folder / "provenance.json").read_text())
    assert stored["modelId"] == "model_header"
    assert "templateId" not in stored and "parameters" not in stored
    assert body["provenance"] == stored
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["provenance"] == {"hasProvenance": True, "modelId": "model_header",
                                      "templateId": None}
    assert "provenance" not in (folder / "spec.yaml").read_text()
    assert any("replaces the embedded" in w["message"] for w in body["warnings"])


def test_embedded_block_is_used_and_stripped_from_the_spec(client: httpx.Client,
                                                           data_dir: Path) -> None:
    body = post_run(client, model([1, 2, 3], extra=EMBEDDED))
    folder = data_dir / body["runId"]
    stored = json.loads((folder / "provenance.json").read_text())
    assert stored["modelId"] == "model_embedded"
    assert stored["templateId"] == "tmpl-embedded"
    assert stored["templateVersion"] == "1.0"
    assert stored["receivedAt"].endswith("Z")
    assert "provenance" not in (folder / "spec.yaml").read_text()


def test_snake_case_aliases_are_accepted_in_header_and_block(client: httpx.Client,
                                                             data_dir: Path) -> None:
    body = post_run(client, headers=prov_header(model_id="m_snake", template_id="t_snake",
                                                template_version="2"))
    stored = json.loads((data_dir / body["runId"] / "provenance.json").read_text())
    assert (stored["modelId"], stored["templateId"], stored["templateVersion"]) == \
        ("m_snake", "t_snake", "2")
    block = "provenance:\n  model_id: m_block\n  template_id: t_block\n"
    body = post_run(client, model([1], extra=block))
    assert body["provenance"]["modelId"] == "m_block"
    assert body["provenance"]["templateId"] == "t_block"


@pytest.mark.parametrize("value, fragment", [
    ("{not json", "not valid JSON"),
    ('"model_x"', "JSON object"),
    ("123", "JSON object"),
    ('{"templateId": "t"}', "modelId is required"),
    ("", "empty"),
])
def test_malformed_provenance_header_is_a_400_naming_it(client: httpx.Client, value: str,
                                                        fragment: str) -> None:
    before = client.get("/v1/runs").json()["total"]
    resp = client.post("/v1/run", content=HELLO, headers={
        "Content-Type": "text/yaml", "X-Model-Provenance": value})
    assert resp.status_code == 400
    body = resp.json()
    assert body["errors"][0]["path"].startswith("X-Model-Provenance")
    assert fragment in body["detail"]
    assert client.get("/v1/runs").json()["total"] == before


def test_malformed_embedded_provenance_is_a_400(client: httpx.Client) -> None:
    resp = client.post("/v1/run", content=model([1], extra="provenance: just-a-string\n"),
                       headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["path"] == "provenance"


def test_provenance_queries_match_template_and_model_ids_exactly(client: httpx.Client) -> None:
    a = post_run(client, headers=prov_header(modelId="model_q1", templateId="tmpl-query"))
    b = post_run(client, headers=prov_header(modelId="model_q2", templateId="tmpl-query"))
    post_run(client, headers=prov_header(modelId="model_q3", templateId="tmpl-query-other"))

    def ids(**params: str) -> list[str]:
        return [r["id"] for r in client.get("/v1/artifacts", params=params).json()["artifacts"]]

    assert ids(templateId="tmpl-query") == [b["runId"], a["runId"]]
    assert ids(templateId="TMPL-QUERY") == []
    assert ids(templateId="tmpl") == []
    assert ids(modelId="model_q1") == [a["runId"]]
    assert ids(templateId="tmpl-query", modelId="model_q2") == [b["runId"]]
    art = client.get(f"/v1/artifacts/{a['runId']}").json()
    assert (art["templateId"], art["modelId"]) == ("tmpl-query", "model_q1")
    assert art["provenance"]["modelId"] == "model_q1"


# -- listing, search, paging -----------------------------------------------------------


def test_search_is_case_insensitive_over_title_id_tags_and_template(
        client: httpx.Client) -> None:
    a = post_run(client, model([1], title="Zebra Crossing Study", tags="[alpha]"))
    b = post_run(client, model([1], title="Other", tags="[ZebraTag]"))
    c = post_run(client, model([1], title="Third"),
                 headers=prov_header(modelId="m", templateId="zebra-template"))

    def found(text: str) -> set[str]:
        page = client.get("/v1/artifacts", params={"search": text, "limit": 1000}).json()
        return {r["id"] for r in page["artifacts"]}

    assert found("zEbRa") >= {a["runId"], b["runId"], c["runId"]}
    assert found("crossing study") == {a["runId"]}
    assert found(a["runId"][-8:]) == {a["runId"]}
    assert found("no-such-text-anywhere") == set()


def test_tags_filter_matches_any_of_a_comma_list(client: httpx.Client) -> None:
    a = post_run(client, model([1], tags="[tag-one]"))
    b = post_run(client, model([1], tags="[tag-two, misc]"))
    post_run(client, model([1], tags="[tag-three]"))
    got = client.get("/v1/artifacts", params={"tags": "tag-one,tag-two"}).json()
    assert {r["id"] for r in got["artifacts"]} == {a["runId"], b["runId"]}
    assert got["artifacts"][0]["tags"] == ["tag-two", "misc"]


def test_paging_gives_the_right_total_and_pages(client: httpx.Client) -> None:
    made = [post_run(client, headers=prov_header(modelId=f"m{i}", templateId="tmpl-paging"))
            ["runId"] for i in range(7)]
    newest_first = made[::-1]
    seen: list[str] = []
    for skip in (0, 3, 6):
        page = client.get("/v1/artifacts", params={"templateId": "tmpl-paging", "limit": 3,
                                                   "skip": skip}).json()
        assert page["total"] == 7
        assert page["count"] == len(page["artifacts"]) == min(3, 7 - skip)
        seen += [r["id"] for r in page["artifacts"]]
    assert seen == newest_first
    runs = client.get("/v1/runs", params={"templateId": "tmpl-paging", "limit": 2, "skip": 6})
    assert runs.json()["total"] == 7 and runs.json()["count"] == 1
    asc = client.get("/v1/artifacts", params={"templateId": "tmpl-paging", "sortOrder": "asc"})
    assert [r["id"] for r in asc.json()["artifacts"]] == made
    by_id = client.get("/v1/artifacts", params={"templateId": "tmpl-paging", "sortBy": "id",
                                                "sortOrder": "asc"}).json()
    assert [r["id"] for r in by_id["artifacts"]] == sorted(made)


def test_limit_is_capped_and_bad_parameters_are_rejected(client: httpx.Client) -> None:
    assert client.get("/v1/artifacts", params={"limit": 5000}).status_code == 200
    for params in ({"limit": -1}, {"sortBy": "colour"}, {"createdAfter": "yesterday"}):
        resp = client.get("/v1/artifacts", params=params)
        assert resp.status_code == 422
        assert resp.headers["content-type"] == PROBLEM


def test_created_bounds_are_inclusive(client: httpx.Client) -> None:
    body = post_run(client, headers=prov_header(modelId="m", templateId="tmpl-created"))
    created = client.get(f"/v1/artifacts/{body['runId']}").json()["created"]

    def count(**params: str) -> int:
        got = client.get("/v1/artifacts", params={"templateId": "tmpl-created", **params})
        total: int = got.json()["total"]
        return total

    assert count(createdAfter=created, createdBefore=created) == 1
    assert count(createdAfter="2999-01-01") == 0
    assert count(createdBefore="2000-01-01T00:00:00Z") == 0


# -- one run ---------------------------------------------------------------------------


def test_run_details_index_and_series(client: httpx.Client, data_dir: Path) -> None:
    run_id = post_run(client, headers=prov_header(modelId="m_detail"))["runId"]
    detail = client.get(f"/v1/runs/{run_id}").json()
    assert detail["runId"] == run_id
    assert detail["run"]["runId"] == run_id
    assert detail["manifest"]["seriesHashes"].keys() == {"demand@DEMAND@DEFAULT",
                                                         "served@SERVED@DEFAULT"}
    assert detail["provenance"]["modelId"] == "m_detail"
    index = client.get(f"/v1/runs/{run_id}/index").json()
    assert [s["id"] for s in index["series"]] == ["demand@DEMAND@DEFAULT", "served@SERVED@DEFAULT"]

    for sid in ("served@SERVED@DEFAULT", "served"):
        csv = client.get(f"/v1/runs/{run_id}/series/{sid}")
        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text == "t,value\n0,10\n1,20\n2,25\n3,25\n"
        digest = "sha256:" + hashlib.sha256(csv.content).hexdigest()
        assert digest == detail["manifest"]["seriesHashes"]["served@SERVED@DEFAULT"]
    js = client.get(f"/v1/runs/{run_id}/series/served",
                    headers={"Accept": "application/json"}).json()
    assert js == {"id": "served@SERVED@DEFAULT", "nodeId": "served", "points": 4,
                  "values": [10, 20, 25, 25]}


@pytest.mark.parametrize("path", [
    "/v1/runs/run_20200101T000000Z_00000000",
    "/v1/runs/run_20200101T000000Z_00000000/index",
    "/v1/runs/run_20200101T000000Z_00000000/series/served",
    "/v1/artifacts/run_20200101T000000Z_00000000",
    "/v1/artifacts/run_20200101T000000Z_00000000/files",
])
def test_unknown_runs_are_404_problems(client: httpx.Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM
    assert "not found" in resp.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/runs/not-a-run-id", "/v1/runs/run_20200101T000000Z_0000000g/index",
                                  "/v1/runs/run_\u0662\u0660\u0662\u0665\u0660\u0661\u0660\u0661T000000Z_ab12cd34"])
def test_malformed_run_ids_are_400_problems(client: httpx.Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    assert "is not a run id" in resp.json()["detail"]


def test_unknown_series_is_a_404(client: httpx.Client) -> None:
    run_id = post_run(client)["runId"]
    resp = client.get(f"/v1/runs/{run_id}/series/nothing")
    assert resp.status_code == 404
    assert "series 'nothing' not found" in resp.json()["detail"]


def test_export_in_three_formats(client: httpx.Client) -> None:
    run_id = post_run(client)["runId"]
    csv = client.get(f"/v1/runs/{run_id}/export", params={"format": "csv"})
    assert csv.headers["content-disposition"] == f'attachment; filename="{run_id}.csv"'
    lines = csv.text.splitlines()
    assert lines[0] == "time_bin,offset_minutes,series,value"
    assert lines[1:5] == ["0,0,demand,10", "1,60,demand,20", "2,120,demand,30", "3,180,demand,40"]
    assert lines[8] == "3,180,served,25"
    assert len(lines) == 9
    nd = client.get(f"/v1/runs/{run_id}/export", params={"format": "ndjson"})
    rows = [json.loads(line) for line in nd.text.splitlines()]
    assert rows[5] == {"time_bin": 1, "offset_minutes": 60, "series": "served", "value": 20}
    pq_resp = client.get(f"/v1/runs/{run_id}/export", params={"format": "parquet"})
    assert pq_resp.headers["content-disposition"].endswith(f'filename="{run_id}.parquet"')
    table = pq.read_table(io.BytesIO(pq_resp.content)).to_pylist()
    assert table[6] == {"time_bin": 2, "offset_minutes": 120, "series": "served", "value": 25.0}
    assert client.get(f"/v1/runs/{run_id}/export", params={"format": "xml"}).status_code == 422


def test_delete_removes_folder_and_listing(client: httpx.Client, data_dir: Path) -> None:
    run_id = post_run(client)["runId"]
    resp = client.delete(f"/v1/runs/{run_id}")
    assert resp.status_code == 204
    assert not (data_dir / run_id).exists()
    assert not [p for p in data_dir.iterdir() if run_id in p.name]
    assert client.get(f"/v1/runs/{run_id}").status_code == 404
    listed = client.get("/v1/runs", params={"limit": 1000}).json()["runs"]
    assert run_id not in [r["id"] for r in listed]
    assert client.delete(f"/v1/runs/{run_id}").status_code == 404


# -- artifacts and files ---------------------------------------------------------------


def test_artifact_row_has_every_column(client: httpx.Client) -> None:
    body = post_run(client, headers=prov_header(modelId="m_cols", templateId="t_cols"))
    art = client.get(f"/v1/artifacts/{body['runId']}").json()
    assert {k: art[k] for k in ("id", "type", "title", "tags", "templateId", "modelId",
                                "scenarioHash", "seed", "bins", "binSize", "binUnit",
                                "seriesCount")} == {
        "id": body["runId"], "type": "run", "title": "Hello model", "tags": ["demo", "hello"],
        "templateId": "t_cols", "modelId": "m_cols", "scenarioHash": body["scenarioHash"],
        "seed": None, "bins": 4, "binSize": 1, "binUnit": "hours", "seriesCount": 2}
    assert art["totalSize"] == sum(f["size"] for f in art["files"])
    assert art["created"].endswith("Z")
    listed = client.get("/v1/artifacts", params={"modelId": "m_cols", "type": "run"}).json()
    assert listed["artifacts"][0] == {k: v for k, v in art.items()
                                      if k not in ("files", "provenance")}
    assert client.get("/v1/artifacts", params={"modelId": "m_cols", "type": "model"}).json()[
        "total"] == 0


def test_files_are_listed_and_downloadable(client: httpx.Client, data_dir: Path) -> None:
    run_id = post_run(client)["runId"]
    files = client.get(f"/v1/artifacts/{run_id}/files").json()
    assert [f["name"] for f in files] == [
        "manifest.json", "run.json", "spec.yaml", "series/demand@DEMAND@DEFAULT.csv",
        "series/index.json", "series/served@SERVED@DEFAULT.csv"]
    for f in files:
        resp = client.get(f"/v1/artifacts/{run_id}/files/{f['name']}")
        assert resp.status_code == 200
        assert resp.content == (data_dir / run_id / f["name"]).read_bytes()
        assert len(resp.content) == f["size"]
    spec = client.get(f"/v1/artifacts/{run_id}/files/spec.yaml")
    assert spec.headers["content-type"] == "application/x-yaml"
    encoded = client.get(f"/v1/artifacts/{run_id}/files/series%2Fserved@SERVED@DEFAULT.csv")
    assert encoded.text.startswith("t,value")


TRAVERSALS = [
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "..%5c..%5cetc%5cpasswd",
    "%2fetc%2fpasswd",
    "series/../manifest.json",
    "series/..%2f..%2f..%2fetc%2fpasswd",
    "series/%2e%2e",
    ".",
    "series",
    "series/",
    "spec.yaml/",
    "spec.yaml%00.json",
]


@pytest.fixture(scope="module")
def one_run(client: httpx.Client) -> str:
    run_id: str = post_run(client)["runId"]
    return run_id


@pytest.mark.parametrize("name", TRAVERSALS)
def test_file_names_outside_the_run_folder_are_rejected(base_url: str, one_run: str,
                                                        name: str) -> None:
    status, body = raw_get(base_url, f"/v1/artifacts/{one_run}/files/{name}")
    assert status == 404, body
    assert b"root:" not in body


@pytest.mark.parametrize("run_part", ["..", "..%2f..%2fetc", "%2e%2e", "run_x%2f..%2f.."])
def test_run_ids_that_are_paths_are_rejected(base_url: str, run_part: str) -> None:
    # Malformed ids (`..`) are 400s; paths that no longer match a route are 404s; never 2xx or 5xx.
    status, _ = raw_get(base_url, f"/v1/artifacts/{run_part}/files/passwd")
    assert status in (400, 404)
    status, _ = raw_get(base_url, f"/v1/runs/{run_part}/series/passwd")
    assert status in (400, 404)


def test_symlinks_inside_a_run_are_never_served(client: httpx.Client, data_dir: Path,
                                                tmp_path: Path) -> None:
    run_id = post_run(client)["runId"]
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (data_dir / run_id / "link.json").symlink_to(secret)
    (data_dir / run_id / "series" / "link.csv").symlink_to(secret)
    names = [f["name"] for f in client.get(f"/v1/artifacts/{run_id}/files").json()]
    assert "link.json" not in names and "series/link.csv" not in names
    for name in ("link.json", "series/link.csv"):
        resp = client.get(f"/v1/artifacts/{run_id}/files/{name}")
        assert resp.status_code == 404
        assert "top secret" not in resp.text


def test_rebuild_index_picks_up_runs_written_behind_its_back(client: httpx.Client,
                                                             data_dir: Path) -> None:
    loaded = load_model(HELLO)
    record = write_run(loaded, evaluate(loaded.model), data_dir, deterministic_id=True)
    assert record.run_id.startswith("run_deterministic_")
    resp = client.post("/v1/artifacts/index")
    assert resp.status_code == 200
    assert resp.json()["indexed"] >= 1
    got = client.get(f"/v1/artifacts/{record.run_id}").json()
    assert got["id"] == record.run_id
    (data_dir / ".tmp-half-written").mkdir()
    (data_dir / "run_20200101T000000Z_0000abcd").mkdir()  # no manifest: not a run
    client.post("/v1/artifacts/index")
    ids = [r["id"] for r in client.get("/v1/artifacts", params={"limit": 1000}).json()[
        "artifacts"]]
    assert record.run_id in ids
    assert not [i for i in ids if i.startswith(".tmp") or i.endswith("0000abcd")]


# -- compare ---------------------------------------------------------------------------


def test_compare_checks_numbers_by_hand(client: httpx.Client) -> None:
    a = post_run(client, model([12, 20, 20, 44]), headers=prov_header(modelId="ma"))["runId"]
    b_text = model([10, 20, 30, 40], extra="  - {id: extra, kind: const, values: [1, 1, 1, 1]}\n")
    b = post_run(client, b_text, headers=prov_header(modelId="mb"))["runId"]
    resp = client.get("/v1/runs/compare", params={"a": a, "b": b})
    assert resp.status_code == 200
    body = resp.json()
    assert body["a"]["runId"] == a and body["b"]["runId"] == b
    assert body["a"]["provenance"]["modelId"] == "ma"
    assert body["b"]["provenance"]["modelId"] == "mb"
    assert body["a"]["title"] == "Hello model"
    assert body["grid"]["bins"] == 4
    demand, served = body["series"]
    assert demand["id"] == "demand"
    assert demand["a"] == [12, 20, 20, 44] and demand["b"] == [10, 20, 30, 40]
    assert demand["delta"] == [2, 0, -10, 4]
    assert demand["relDelta"] == [0.2, 0, -1 / 3, 0.1]
    assert (demand["sumDelta"], demand["meanDelta"], demand["maxAbsDelta"]) == (-4, -1, 10)
    # served = MIN(demand, 25): a = [12, 20, 20, 25], b = [10, 20, 25, 25]
    assert served["delta"] == [2, 0, -5, 0]
    assert (served["sumDelta"], served["meanDelta"], served["maxAbsDelta"]) == (-3, -0.75, 5)
    assert [r["id"] for r in body["ranking"]] == ["demand", "served"]
    assert body["ranking"][0] == {"id": "demand", "maxAbsDelta": 10, "sumDelta": -4,
                                  "meanDelta": -1}
    assert body["onlyInA"] == [] and body["onlyInB"] == ["extra"]


def test_compare_of_different_lengths_uses_the_common_span_and_says_so(client: httpx.Client) -> None:
    a = post_run(client, model([1, 2, 3, 4]))["runId"]
    b = post_run(client, model([1, 2, 5]))["runId"]
    resp = client.get("/v1/runs/compare", params={"a": a, "b": b})
    assert resp.status_code == 200
    demand = resp.json()["series"][0]
    assert (demand["a"], demand["b"], demand["delta"]) == ([1, 2, 3], [1, 2, 5], [0, 0, -2])
    assert resp.json()["resampling"]["resampled"] is True
    assert "bins 0–2 of 4" in resp.json()["resampling"]["statement"]
    missing = client.get("/v1/runs/compare", params={"a": a, "b": "run_20200101T000000Z_00000000"})
    assert missing.status_code == 404
    assert client.get("/v1/runs/compare", params={"a": a}).status_code == 400


# -- graph and validate ----------------------------------------------------------------


def test_graph_describes_nodes_edges_and_order(client: httpx.Client) -> None:
    text = ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n"
            "  - {id: demand, values: [1, 2, 3]}\n"
            "  - {id: backlog, kind: expr, expr: \"MAX(0, SHIFT(backlog, 1) + demand - 1)\"}\n")
    before = client.get("/v1/runs").json()["total"]
    resp = client.post("/v1/graph", content=text, headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 200
    g = resp.json()
    assert g["order"] == ["demand", "backlog"]
    assert g["nodes"][1]["id"] == "backlog" and g["nodes"][1]["kind"] == "expr"
    assert g["nodes"][1]["expr"] == "MAX(0, SHIFT(backlog, 1) + demand - 1)"
    assert {"from": "demand", "to": "backlog", "lag": 0} in g["edges"]
    assert client.get("/v1/runs").json()["total"] == before
    bad = client.post("/v1/graph", content="nodes: [", headers={"Content-Type": "text/yaml"})
    assert bad.status_code == 400


def test_validate_reports_every_problem_without_running(client: httpx.Client) -> None:
    ok = client.post("/v1/validate", content=HELLO, headers={"Content-Type": "text/yaml"})
    assert ok.json()["valid"] is True and ok.json()["problems"] == []  # the tiers' keys: tests/api/test_validate.py
    text = ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hourz}\nnodes:\n"
            "  - {id: a, kind: expr, expr: \"SHFT(b, 1)\"}\n  - {id: a, values: [1]}\n")
    resp = client.post("/v1/validate", content=text, headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["valid"] is False
    paths = [p["path"] for p in body["problems"]]
    assert "grid.binUnit" in paths and "nodes.a.id" in paths and "nodes.a.expr" in paths
    assert all(p["line"] is not None and p["severity"] == "error" for p in body["problems"])
    js = client.post("/v1/validate", json={"yaml": "grid: 5"}).json()
    assert js["valid"] is False
    assert client.post("/v1/validate", content=b"").json()["valid"] is False


# -- many at once ----------------------------------------------------------------------


def test_fifty_concurrent_runs_are_all_stored_and_verify(base_url: str, data_dir: Path) -> None:
    def one(i: int) -> str:
        with httpx.Client(base_url=base_url, timeout=60) as c:
            run_id: str = post_run(c, model([i, i + 1, i + 2]), headers=prov_header(
                modelId=f"m{i}", templateId="tmpl-concurrent"), series="false")["runId"]
            return run_id

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(one, range(50)))
    assert len(set(ids)) == 50
    with httpx.Client(base_url=base_url) as c:
        page = c.get("/v1/runs", params={"templateId": "tmpl-concurrent", "limit": 100}).json()
    assert page["total"] == 50
    assert {r["id"] for r in page["runs"]} == set(ids)
    for run_id in ids:
        manifest = json.loads((data_dir / run_id / "manifest.json").read_text())
        assert len(manifest["seriesHashes"]) == 2
        for sid, expected in manifest["seriesHashes"].items():
            data = (data_dir / run_id / "series" / f"{sid}.csv").read_bytes()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == expected
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".tmp-run_")]


# -- restarts, auth, CORS (servers of their own) ---------------------------------------


def _listing(url: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url) as c:
        runs: list[dict[str, Any]] = c.get("/v1/runs", params={"limit": 1000}).json()["runs"]
    return runs


def test_restart_loses_nothing_and_a_deleted_index_is_rebuilt(tmp_path: Path) -> None:
    settings = EngineSettings(data_dir=tmp_path)
    with serve_engine(settings) as url, httpx.Client(base_url=url) as c:
        for i in range(3):
            post_run(c, model([i]), headers=prov_header(modelId=f"m{i}", templateId="t"))
        before = _listing(url)
    assert len(before) == 3
    with serve_engine(settings) as url:
        assert _listing(url) == before
    (tmp_path / INDEX_FILE).unlink()
    with serve_engine(settings) as url:
        assert _listing(url) == before
        with httpx.Client(base_url=url) as c:
            assert c.get("/v1/artifacts", params={"templateId": "t"}).json()["total"] == 3


def test_start_up_cleans_temp_folders_and_syncs_the_index(tmp_path: Path) -> None:
    settings = EngineSettings(data_dir=tmp_path)
    with serve_engine(settings) as url, httpx.Client(base_url=url) as c:
        kept, gone = post_run(c)["runId"], post_run(c)["runId"]
    loaded = load_model(HELLO)
    offline = write_run(loaded, evaluate(loaded.model), tmp_path).run_id
    shutil.rmtree(tmp_path / gone)
    stale, fresh = tmp_path / ".tmp-run_x-1234", tmp_path / ".tmp-run_y-5678"
    stale.mkdir()
    fresh.mkdir()  # may be another worker's write in progress
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    with serve_engine(settings) as url:
        assert {r["id"] for r in _listing(url)} == {kept, offline}
    assert not stale.exists()
    assert fresh.exists()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = EngineSettings(data_dir=tmp_path_factory.mktemp("guarded"), api_token="s3cret",
                              cors_origin="http://ui.example:5219", max_body_bytes=4096)
    with serve_engine(settings) as url:
        yield url


AUTH = {"Authorization": "Bearer s3cret", "Content-Type": "text/yaml"}


def test_token_is_required_on_post_and_delete_only(guarded: str) -> None:
    with httpx.Client(base_url=guarded) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            resp = c.post("/v1/run", content=HELLO, headers={"Content-Type": "text/yaml",
                                                             **headers})
            assert resp.status_code == 401
            assert resp.headers["content-type"] == PROBLEM
            assert resp.headers["www-authenticate"].startswith("Bearer")
        run_id = c.post("/v1/run", content=HELLO, headers=AUTH).json()["runId"]
        assert c.get(f"/v1/runs/{run_id}").status_code == 200
        assert c.get("/v1/artifacts").status_code == 200
        assert c.delete(f"/v1/runs/{run_id}").status_code == 401
        assert c.post("/v1/artifacts/index").status_code == 401
        assert c.delete(f"/v1/runs/{run_id}", headers=AUTH).status_code == 204


def test_body_limit_checks_declared_and_streamed_sizes(guarded: str) -> None:
    big = ("# padding\n" * 500 + HELLO).encode()
    with httpx.Client(base_url=guarded) as c:
        declared = c.post("/v1/run", content=big, headers=AUTH)
        assert declared.status_code == 413
        assert "4096" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
            for i in range(0, len(big), 1000):
                yield big[i:i + 1000]

        streamed = c.post("/v1/run", content=chunks(), headers=AUTH)
        assert streamed.status_code == 413
        assert streamed.headers["content-type"] == PROBLEM
        small = c.post("/v1/run", content=iter([HELLO.encode()]), headers=AUTH)
        assert small.status_code == 200


def test_cors_allows_only_the_configured_origin(guarded: str, base_url: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-model-provenance"}
    with httpx.Client(base_url=guarded) as c:
        ok = c.options("/v1/run", headers={"Origin": "http://ui.example:5219", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://ui.example:5219"
        other = c.options("/v1/run", headers={"Origin": "http://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        get = c.get("/v1/healthz", headers={"Origin": "http://ui.example:5219"})
        assert get.headers["access-control-allow-origin"] == "http://ui.example:5219"
    with httpx.Client(base_url=base_url) as c:
        off = c.get("/v1/healthz", headers={"Origin": "http://ui.example:5219"})
        assert "access-control-allow-origin" not in off.headers


def test_settings_default_to_port_8080_ten_megabytes_no_token_no_cors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("FLOWTIME_")]:
        monkeypatch.delenv(key)
    s = EngineSettings()
    assert (s.port, s.max_body_bytes, s.api_token, s.cors_origin) == (
        8080, 10 * 1024 * 1024, None, None)


# -- flow classes ----------------------------------------------------------------------------------

CLASS_MODEL = """schemaVersion: 1
grid: {bins: 2, binSize: 1, binUnit: hours}
classes: [{id: Order}, {id: Refund}]
traffic:
  arrivals:
    - {nodeId: ingest, classId: Order, pattern: {kind: constant, ratePerBin: 20}}
    - {nodeId: ingest, classId: Refund, pattern: {kind: constant, ratePerBin: 5}}
nodes:
  - {id: ingest, kind: const, values: [10, 20]}
  - {id: served, kind: expr, expr: ingest * 0.8}
"""


def test_a_run_with_classes_lists_and_serves_its_class_series(client: httpx.Client) -> None:
    body = post_run(client, CLASS_MODEL)
    assert body["classCoverage"] == "full"
    assert body["classSeries"]["served"] == {"Order": [6.4, 12.8], "Refund": [1.6, 3.2]}
    index = client.get(f"/v1/runs/{body['runId']}/index").json()
    by_id = {s["id"]: s for s in index["series"]}
    assert by_id["served@SERVED@Order"]["class"] == "Order"
    assert by_id["served@SERVED@Order"]["classKind"] == "specific"
    assert by_id["served@SERVED@DEFAULT"]["classKind"] == "fallback"
    got = client.get(f"/v1/runs/{body['runId']}/series/served@SERVED@Refund",
                     headers={"Accept": "application/json"}).json()
    assert got["values"] == [1.6, 3.2]
    # a node id still names its total
    total = client.get(f"/v1/runs/{body['runId']}/series/served", headers={"Accept": "application/json"}).json()
    assert total["values"] == [8, 16]
