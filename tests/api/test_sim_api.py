"""The Sim service on a real uvicorn server on loopback, spoken to with httpx."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from tests.servers import serve

from flowtime.api.sim import create_sim_app
from flowtime.model.load import load_model
from flowtime.settings import SimSettings
from flowtime.sim.catalog import Catalog
from flowtime.sim.workspace import Workspace

REFERENCE_DIR = Path(__file__).parents[1] / "sim" / "reference_templates"
TOKEN = "s3cret"


@contextmanager
def serve_sim(settings: SimSettings) -> Iterator[str]:
    """Start a Sim app for ``settings``; yields its base URL and stops it on exit."""
    with serve(create_sim_app(settings), "sim-server") as url:
        yield url

@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-data")


@pytest.fixture(scope="session")
def client(data_dir: Path) -> Iterator[httpx.Client]:
    settings = SimSettings(data_dir=data_dir, templates_dir=REFERENCE_DIR, max_body_bytes=64 * 1024,
                           max_array_length=500)
    with serve_sim(settings) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server with a bearer token and a tiny time-to-live swept every 50 ms."""
    settings = SimSettings(data_dir=tmp_path_factory.mktemp("guarded"), api_token=TOKEN,
                           ttl_days=0.5 / 86_400, gc_interval_seconds=0.05)
    with serve_sim(settings) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def problem_of(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = r.json()
    assert body["status"] == status
    return body


def generate(client: httpx.Client, template_id: str, params: dict[str, object] | None = None,
             **query: str) -> dict[str, object]:
    r = client.post(f"/api/v1/templates/{template_id}/generate", json={"parameters": params or {}},
                    params=query)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_healthz(client: httpx.Client, data_dir: Path) -> None:
    body = client.get("/api/v1/healthz").json()
    assert body["status"] == "ok" and body["version"] and body["dataDir"] == str(data_dir.resolve())
    assert body["templatesDir"] == str(REFERENCE_DIR.resolve()) and body["templateCount"] == 13
    assert isinstance(body["modelCount"], int)


def test_healthz_is_also_served_unversioned_like_the_references_sim(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == "ok" and body["service"] == "sim"
    assert set(body) == set(client.get("/api/v1/healthz").json())


def test_templates_list_search_and_tag(client: httpx.Client) -> None:
    items = client.get("/api/v1/templates").json()
    assert len(items) == 13 and items == sorted(items, key=lambda t: t["id"])
    first = next(t for t in items if t["id"] == "support-backlog")
    assert first == {"id": "support-backlog", "title": "Support Ticket Backlog",
                     "description": first["description"], "tags": first["tags"], "version": "1.0.0",
                     "parameterCount": 4}
    assert [t["id"] for t in client.get("/api/v1/templates", params={"tag": "healthcare"}).json()] == [
        "emergency-department"]
    found = client.get("/api/v1/templates", params={"search": "PMF"}).json()
    assert {t["id"] for t in found} == {"network-link-failures", "network-reliability"}


def test_template_detail_has_typed_defaults(client: httpx.Client) -> None:
    body = client.get("/api/v1/templates/transportation-basic").json()
    assert body["version"] == "1.0" and body["tags"][0] == "beginner"
    bins, _, demand, _ = body["parameters"]
    assert bins == {"name": "bins", "type": "integer", "title": "Time Periods",
                    "description": "Number of time periods to simulate", "default": 6, "required": False,
                    "min": 3, "max": 48, "enum": None, "items": None, "minItems": None, "maxItems": None,
                    "unit": None, "perBin": False}
    assert demand["default"] == [10, 15, 20, 25, 18, 12] and demand["items"] == {"type": "number"}
    assert demand["perBin"] is True and body["binsParameter"] == "bins"
    rate = next(p for p in client.get("/api/v1/templates/manufacturing-line").json()["parameters"]
                if p["name"] == "qualityRate")
    assert rate["default"] == 0.95 and rate["type"] == "number"


def test_unknown_template_is_404_naming_it(client: httpx.Client) -> None:
    body = problem_of(client.get("/api/v1/templates/no-such"), 404)
    assert body["detail"] == "template 'no-such' not found; 13 templates are available"
    problem_of(client.post("/api/v1/templates/no-such/generate", json={}), 404)
    problem_of(client.get("/api/v1/templates/..%2F..%2Fetc"), 404)


def test_generate_returns_model_provenance_and_where_it_is_stored(client: httpx.Client, data_dir: Path) -> None:
    body = generate(client, "support-backlog", {"agents": 6})
    assert set(body) >= {"model", "provenance", "modelId", "path", "hash", "quality", "validation"}
    prov = body["provenance"]
    assert isinstance(prov, dict) and prov["modelId"] == body["modelId"] and prov["parameters"]["agents"] == 6
    assert prov["source"] == "flowtime-sim" and prov["templateVersion"] == "1.0.0"
    model = yaml.safe_load(str(body["model"]))
    assert model["nodes"][1]["expr"] == "6 * 10" and "provenance" not in model
    assert body["path"] == str(data_dir / "models" / "support-backlog" / str(body["hash"]) / "model.yaml")
    assert Path(str(body["path"])).read_text() == body["model"]
    assert body["validation"] == {"valid": True, "problems": [], "warnings": []}
    quality = body["quality"]
    assert isinstance(quality, dict) and quality["score"] == 1.0
    assert {"name": "nodes_reach_output", "passed": True, "message": "every node feeds an output"} in \
        quality["checks"]


def test_generate_with_embedded_provenance(client: httpx.Client) -> None:
    body = generate(client, "transportation-basic", embed_provenance="true")
    loaded = load_model(str(body["model"]))
    assert loaded.provenance is not None and loaded.provenance.model_id == body["modelId"]
    assert str(body["model"]).splitlines()[2] == "provenance:"
    plain = generate(client, "transportation-basic", embed_provenance="false")
    assert "provenance" not in yaml.safe_load(str(plain["model"])) and plain["hash"] == body["hash"]


def test_generate_mode_query_overrides_the_templates_mode(client: httpx.Client) -> None:
    assert generate(client, "support-backlog")["provenance"]["mode"] == "simulation"  # type: ignore[index]
    assert generate(client, "support-backlog", mode="telemetry")["provenance"]["mode"] == "telemetry"  # type: ignore[index]
    problem_of(client.post("/api/v1/templates/support-backlog/generate", json={}, params={"mode": "replay"}), 400)


def test_generate_accepts_the_reference_flat_body_and_an_empty_one(client: httpx.Client) -> None:
    r = client.post("/api/v1/templates/support-backlog/generate", json={"agents": 9})
    assert r.status_code == 200 and r.json()["provenance"]["parameters"]["agents"] == 9
    r = client.post("/api/v1/templates/support-backlog/generate")
    assert r.status_code == 200 and r.json()["provenance"]["parameters"]["agents"] == 5


def test_bad_parameters_are_400_listing_each_problem(client: httpx.Client) -> None:
    r = client.post("/api/v1/templates/support-backlog/generate",
                    json={"parameters": {"agents": 2.5, "arrivals": [1, -2, 3, 4, 5, 6, 7, 8], "nope": 1}})
    body = problem_of(r, 400)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert [(e["path"], e["message"]) for e in errors] == [
        ("parameters.agents", "`agents` must be a whole number, got 2.5"),
        ("parameters.arrivals", "`arrivals` element 1 must be between 0 and 1000000, got -2"),
        ("parameters.nope", "unknown parameter `nope`; this template takes: bins, arrivals, agents, "
                            "tickets_per_agent"),
    ]
    assert body["title"] == "Invalid parameters"
    long = problem_of(client.post("/api/v1/templates/support-backlog/generate",
                                  json={"parameters": {"arrivals": [1] * 501}}), 400)
    assert "the limit is 500 (max_array_length)" in str(long["errors"])
    mismatch = problem_of(client.post("/api/v1/templates/support-backlog/generate",
                                      json={"parameters": {"arrivals": [1, 2]}}), 400)
    assert mismatch["errors"] == [{"path": "parameters.arrivals", "line": None, "column": None,
                                   "severity": "error",
                                   "message": "`arrivals` has 2 values; grid.bins is 8: give 8 values"}]


def test_an_earlier_model_id_still_resolves_after_regenerating(client: httpx.Client, data_dir: Path) -> None:
    # The first generation happened "earlier" (a fixed past second), through the same store.
    earlier = Workspace(Catalog.load(REFERENCE_DIR), data_dir).generate(
        "support-backlog", {"agents": 9}, now=datetime(2025, 10, 3, 12, 0, tzinfo=UTC))
    now = generate(client, "support-backlog", {"agents": 9})
    first = earlier.generated.model_id
    assert now["modelId"] != first and now["hash"] == earlier.generated.hash_prefix
    for model_id in (first, now["modelId"]):
        got = client.get(f"/sim/models/{model_id}")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["model_id"] == model_id and body["provenance"]["modelId"] == model_id
        assert body["model"] == now["model"]
    old = client.get(f"/sim/models/{first}").json()["provenance"]
    assert old["generatedAt"] == "2025-10-03T12:00:00.000Z"


def test_malformed_bodies_are_400(client: httpx.Client) -> None:
    problem_of(client.post("/api/v1/templates/support-backlog/generate", content=b"{nope",
                           headers={"content-type": "application/json"}), 400)
    problem_of(client.post("/api/v1/templates/support-backlog/generate", json=[1, 2]), 400)
    problem_of(client.post("/api/v1/templates/support-backlog/generate",
                           json={"parameters": {"agents": 1}, "extra": 1}), 400)


def test_models_list_latest_and_by_hash(client: httpx.Client) -> None:
    first = generate(client, "commuter-rail", {"trains_per_period": 3})
    second = generate(client, "commuter-rail", {"trains_per_period": 4})
    listing = client.get("/api/v1/models").json()["models"]
    mine = [m for m in listing if m["templateId"] == "commuter-rail"]
    assert [m["hash"] for m in mine] == [second["hash"], first["hash"]]
    assert set(mine[0]) >= {"templateId", "hash", "modelId", "title", "created", "path"}
    assert client.get("/api/v1/models", params={"template": "commuter-rail"}).json()["models"] == mine
    latest = client.get("/api/v1/models/commuter-rail").json()
    assert latest["hash"] == second["hash"] and latest["model"] == second["model"]
    one = client.get(f"/api/v1/models/commuter-rail/{first['hash']}").json()
    assert one["modelId"] == first["modelId"] and one["provenance"]["parameters"]["trains_per_period"] == 3
    assert one["metadata"]["template"]["id"] == "commuter-rail" and one["validation"]["valid"] is True


def test_preview_svg(client: httpx.Client) -> None:
    body = generate(client, "emergency-department")
    r = client.get(f"/api/v1/models/emergency-department/{body['hash']}/preview.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.text)
    ids = {g.get("data-id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert ids == {"patient_arrivals", "treatment_capacity", "waiting_before", "treated", "waiting",
                   "admitted", "discharged", "utilisation"}


def test_unknown_models_and_traversal_are_404_and_malformed_hashes_400(client: httpx.Client) -> None:
    problem_of(client.get("/api/v1/models/never-generated"), 404)
    problem_of(client.get("/api/v1/models/support-backlog/0123456789ab"), 404)
    problem_of(client.get("/api/v1/models/support-backlog/..%2F..%2F..%2Fetc"), 404)
    problem_of(client.get("/api/v1/models/..%2F..%2F/0123456789ab/preview.svg"), 404)
    problem_of(client.get("/api/v1/models/support-backlog/ZZZ/preview.svg"), 400)


def test_validate_yaml_and_json_models(client: httpx.Client) -> None:
    text = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n" \
           "nodes: [{id: a, kind: const, values: [1, 2]}]\noutputs: [{series: a}]\n"
    r = client.post("/api/v1/models/validate", content=text, headers={"content-type": "application/yaml"})
    body = r.json()
    assert r.status_code == 200 and body["valid"] is True and body["quality"]["score"] == 1.0
    bad = {"schemaVersion": 1, "grid": {"bins": 2, "binSize": 1, "binUnit": "hours"},
           "nodes": [{"id": "a", "kind": "const", "values": [1]}]}
    body = client.post("/api/v1/models/validate", json=bad).json()
    assert body["valid"] is False and body["quality"]["score"] == 0.0
    assert "has 1 values but grid.bins is 2" in body["problems"][0]["message"]
    problem_of(client.post("/api/v1/models/validate", content=b""), 400)


def test_body_limit_is_413(client: httpx.Client) -> None:
    big = b"x" * (64 * 1024 + 1)
    body = problem_of(client.post("/api/v1/models/validate", content=big), 413)
    assert "limit is 65536 bytes" in str(body["detail"])

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what arrives
        for _ in range(80):
            yield b"y" * 1024

    problem_of(client.post("/api/v1/models/validate", content=chunks()), 413)


def test_m26_export_get_and_validate(client: httpx.Client) -> None:
    request = {"template": "ecommerce-checkout", "name": "checkout-baseline",
               "parameters": {"peak_factor": 1.5}, "tags": ["baseline", "e-commerce"],
               "metadata": {"title": "Checkout Baseline Model", "description": "baseline"}}
    r = client.post("/sim/models/export", json=request)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["model_id"] == "checkout-baseline_31cb" and body["version"] == 1
    assert body["artifact_metadata"] == {
        "id": "checkout-baseline_31cb", "title": "Checkout Baseline Model", "version": 1,
        "created": body["artifact_metadata"]["created"], "tags": ["e-commerce", "checkout", "capacity",
                                                                  "beginner", "baseline"],
        "sim_source": "template:ecommerce-checkout", "engine_compatible": True, "quality_score": 1.0}
    assert body["validation"] == {"structure_valid": True, "engine_compatible": True, "warnings": []}
    again = client.post("/sim/models/export", json=request)
    assert again.status_code == 200 and again.json()["version"] == 1
    request["parameters"] = {"peak_factor": 2}
    assert client.post("/sim/models/export", json=request).json()["version"] == 2

    got = client.get("/sim/models/checkout-baseline_31cb").json()
    assert got["version"] == 2 and got["sim_config"]["parameters"]["peak_factor"] == 2
    assert got["artifact_metadata"]["quality_score"] == 1.0 and "grid:" in got["model"]
    assert client.get("/sim/models/checkout-baseline_31cb", params={"version": 1}).json()["version"] == 1
    by_model_id = client.get(f"/sim/models/{generate(client, 'support-backlog')['modelId']}").json()
    assert by_model_id["sim_config"]["template"] == "support-backlog"
    problem_of(client.get("/sim/models/nothing_abcd"), 404)
    problem_of(client.post("/sim/models/export", json={"template": "ecommerce-checkout"}), 422)
    problem_of(client.post("/sim/models/export", json={"template": "ecommerce-checkout", "name": "../x"}), 422)
    problem_of(client.post("/sim/models/export", json={**request, "template": "nope"}), 404)

    schema = {"grid": {"bins": 2, "binSize": 1, "binUnit": "hours"}, "schemaVersion": 1,
              "nodes": [{"id": "checkout", "kind": "pmf", "pmf": {"10": 0.5, "20": 0.5}}],
              "outputs": [{"series": "checkout", "as": "throughput.csv"}]}
    v = client.post("/sim/models/validate", json={"model_schema": schema}).json()
    assert v["structure_valid"] is True and v["engine_compatible"] is True and v["quality_score"] == 1.0


def test_bearer_token_guards_posts(guarded: httpx.Client) -> None:
    body = problem_of(guarded.post("/api/v1/templates/support-backlog/generate", json={}), 401)
    assert "Authorization: Bearer" in str(body["detail"])
    problem_of(guarded.post("/sim/models/export", json={}, headers={"Authorization": "Bearer wrong"}), 401)
    assert guarded.get("/api/v1/templates").status_code == 200
    r = guarded.post("/api/v1/templates/support-backlog/generate", json={},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_background_sweep_removes_expired_models(guarded: httpx.Client) -> None:
    r = guarded.post("/api/v1/templates/commuter-rail/generate", json={},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and Path(r.json()["path"]).exists()
    deadline = time.monotonic() + 5
    while Path(r.json()["path"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(r.json()["path"]).exists()
    assert guarded.get("/api/v1/models").json() == {"models": []}


def test_two_apps_share_nothing(tmp_path: Path) -> None:
    a = create_sim_app(SimSettings(data_dir=tmp_path / "a"))
    b = create_sim_app(SimSettings(data_dir=tmp_path / "b"))
    assert a.state.workspace is not b.state.workspace
    assert a.state.workspace.data_dir != b.state.workspace.data_dir
