"""
The reference's Sim -> Engine integration flow, against our real servers on loopback.

The reference's script generates ``transportation-basic`` with the flat body
``{"bins": 6, "binSize": 1, "binUnit": "hours"}``, takes ``model`` and
``provenance`` from the answer, posts the model YAML to the Engine's
``POST /v1/run`` with ``X-Model-Provenance: <compact JSON>`` (``jq -c``), and
checks the answer's fields and both health endpoints. Sim and Engine never
talk to each other: this test carries the model between them, as the script does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.servers import serve

from flowtime.api.engine import create_engine_app
from flowtime.api.sim import create_sim_app
from flowtime.settings import EngineSettings, SimSettings

REFERENCE_BODY = {"bins": 6, "binSize": 1, "binUnit": "hours"}


class Services:
    def __init__(self, sim: httpx.Client, engine: httpx.Client) -> None:
        self.sim, self.engine = sim, engine


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("reference-clients")
    with serve(create_engine_app(EngineSettings(data_dir=root / "engine")), "engine") as engine_url, \
            serve(create_sim_app(SimSettings(data_dir=root / "sim")), "sim") as sim_url, \
            httpx.Client(base_url=sim_url, timeout=30) as sim, \
            httpx.Client(base_url=engine_url, timeout=30) as engine:
        yield Services(sim, engine)


def generate(services: Services, body: dict[str, object]) -> dict[str, object]:
    r = services.sim.post("/api/v1/templates/transportation-basic/generate", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, object] = r.json()
    return answer


def run(services: Services, model: str, provenance: object) -> httpx.Response:
    compact = json.dumps(provenance, separators=(",", ":"))  # what `jq -c` sends
    return services.engine.post("/v1/run", content=model.encode("utf-8"),
                                headers={"Content-Type": "application/x-yaml", "X-Model-Provenance": compact})


def test_both_services_answer_healthz(services: Services) -> None:
    for client in (services.sim, services.engine):
        r = client.get("/healthz")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ok"


def test_the_reference_generate_body_makes_a_valid_model(services: Services) -> None:
    answer = generate(services, REFERENCE_BODY)
    provenance = answer["provenance"]
    assert isinstance(provenance, dict)
    assert provenance["templateId"] == "transportation-basic" and provenance["source"] == "flowtime-sim"
    assert {k: provenance["parameters"][k] for k in REFERENCE_BODY} == REFERENCE_BODY
    validation = answer["validation"]
    assert isinstance(validation, dict) and validation["valid"] is True and validation["warnings"] == []
    assert "binUnit: hours" in str(answer["model"]) and "bins: 6" in str(answer["model"])


def test_the_reference_sim_to_engine_flow(services: Services) -> None:
    answer = generate(services, REFERENCE_BODY)
    model, provenance = answer["model"], answer["provenance"]
    assert isinstance(model, str) and isinstance(provenance, dict)
    r = run(services, model, provenance)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"grid", "order", "series", "runId", "artifactsPath", "modelHash"} <= set(body)
    assert body["grid"]["bins"] == 6 and body["grid"]["binSize"] == 1 and body["grid"]["binUnit"] == "hours"
    # Riders [40, 90, 130, 110, 60, 30] against 100 places; who finds none waits one period.
    assert body["series"]["carried"] == [40, 90, 100, 100, 100, 30]
    assert body["series"]["waiting"] == [0, 0, 30, 40, 0, 0]
    assert body["modelHash"] == answer["modelHash"]

    stored = json.loads((Path(body["artifactsPath"]) / "provenance.json").read_text(encoding="utf-8-sig"))
    received = stored.pop("receivedAt")
    assert isinstance(received, str) and received
    assert stored == provenance


def test_a_generated_run_is_listed_under_its_title(services: Services) -> None:
    answer = generate(services, {"bins": 4, "binUnit": "days"})
    assert isinstance(answer["model"], str)
    r = run(services, answer["model"], answer["provenance"])
    assert r.status_code == 200, r.text
    run_id = r.json()["runId"]
    listed = services.engine.get("/v1/runs", params={"templateId": "transportation-basic"}).json()["runs"]
    titles = {row["id"]: row["title"] for row in listed}
    assert titles[run_id] == "Transportation Corridor (bins=4, binUnit=days)"
    one = services.engine.get(f"/v1/runs/{run_id}")
    assert one.status_code == 200 and "Transportation Corridor (bins=4, binUnit=days)" in one.text
