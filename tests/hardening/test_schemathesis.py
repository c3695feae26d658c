"""
Schemathesis against the live Engine and Sim: every operation of each OpenAPI
schema, with schema-valid (positive) and schema-violating (negative) requests.
No response may be a 5xx, and every response must conform to the schema:
documented status code, content type, headers and body schema.

Schemathesis' pytest integration (``schema.parametrize()``) does not work with
pytest 9 (it sets ``Item._nodeid``, which pytest 9 removed), so each test walks
the operations itself with ``operation.as_strategy()`` and Hypothesis' ``given``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from tests.hardening.servers import HELLO, engine, sim

from flowtime.api.engine import create_engine_app
from flowtime.api.sim import create_sim_app
from flowtime.settings import EngineSettings, SimSettings

# Examples per operation and generation mode: 29 operations x 2 modes x 25 keeps the
# module well under a minute on 2 cores. HARDENING_EXAMPLES raises it for a deeper run.
EXAMPLES = int(os.environ.get("HARDENING_EXAMPLES", "25"))

# Left out on every operation: "schema-valid request accepted". The schemas cannot
# say what makes model YAML valid (it is a string), nor which parameters a template
# takes or which run ids exist, so a schema-valid request may rightly get a 400 or
# 404 problem. Everything else - no 5xx, status codes, content types, headers,
# response bodies, rejecting schema-violating input (negative mode) - is checked.
EXCLUDED_CHECKS: list[Callable[..., Any]] = [positive_data_acceptance]
# Left out on the three validate operations only: "schema-violating request
# rejected". Their body is model text, and their answer to any text - even `[]`,
# which schemathesis counts as "an array, not a string" - is a 200 report with
# valid: false; on the wire it is a string like any other.
VALIDATE_OPERATIONS = frozenset({"POST /v1/validate", "POST /api/v1/models/validate",
                                 "POST /sim/models/validate"})


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("schemathesis-engine")
    with engine(data) as url:
        # One real run, so that list and query endpoints return rows, not only empty pages.
        requests.post(f"{url}/v1/run", data=HELLO.encode(), timeout=30,
                      headers={"Content-Type": "application/x-yaml"}).raise_for_status()
        yield url


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim(tmp_path_factory.mktemp("schemathesis-sim")) as url:
        requests.post(f"{url}/api/v1/templates/support-backlog/generate", json={}, timeout=30
                      ).raise_for_status()
        yield url


def fuzz(base_url: str, mode: GenerationMode) -> list[str]:
    """Run every operation of the schema at ``base_url``; one line per failing operation."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=30)
    failures: list[str] = []
    seen = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            seen += 1
            excluded = EXCLUDED_CHECKS + (
                [negative_data_rejection] if operation.label in VALIDATE_OPERATIONS else [])
            try:
                _property(operation, mode, base_url, session, excluded)()
            except Unsatisfiable:
                # Negative mode only: nothing in the operation can be made schema-violating
                # (no parameters, or only free-form strings); the positive pass covers it.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # collected so that one report lists every operation
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert seen == len(_labels(schema.raw_schema)), "an operation was skipped"
    return failures


def _property(operation: Any, mode: GenerationMode, base_url: str, session: requests.Session,
              excluded: list[Callable[..., Any]]) -> Callable[[], None]:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, session=session, timeout=30,
                               excluded_checks=excluded)

    return check  # type: ignore[no-any-return]


def _labels(openapi: dict[str, Any]) -> set[str]:
    methods = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
    return {f"{m.upper()} {p}" for p, ops in openapi["paths"].items() for m in ops if m in methods}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_engine_api_conforms_to_its_schema_and_never_answers_5xx(engine_url: str,
                                                                 mode: GenerationMode) -> None:
    failures = fuzz(engine_url, mode)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_sim_api_conforms_to_its_schema_and_never_answers_5xx(sim_url: str,
                                                              mode: GenerationMode) -> None:
    failures = fuzz(sim_url, mode)
    assert not failures, "\n\n".join(failures)


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router (FastAPI >= 0.16x)
        if inner is not None:
            yield from _api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def test_every_operation_is_in_the_schemas_the_fuzzer_walks(tmp_path: Path) -> None:
    """No route is hidden from the schema (``include_in_schema=False``), so none escapes the fuzzer."""
    apps = [create_engine_app(EngineSettings(data_dir=tmp_path / "engine")),
            create_sim_app(SimSettings(data_dir=tmp_path / "sim"))]
    for app in apps:
        routes = list(_api_routes(app.routes))
        assert routes and all(r.include_in_schema for r in routes)
        served = sum(len(r.methods - {"HEAD"}) for r in routes)
        assert served == len(_labels(app.openapi()))
