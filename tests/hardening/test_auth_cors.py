"""
The optional bearer token (FLOWTIME_API_TOKEN) on every write endpoint of both
services, and CORS: off by default, exactly the configured UI origin when set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.hardening.servers import HELLO, ORIGIN, PROBLEM, TOKEN, engine, sim

from flowtime.settings import EngineSettings, SimSettings

WRITE_METHODS = {"post", "put", "patch", "delete"}
BAD_CREDENTIALS: dict[str, dict[str, str | bytes]] = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "token without scheme": {"Authorization": TOKEN},
    "basic scheme": {"Authorization": f"Basic {TOKEN}"},
    "token prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "empty bearer": {"Authorization": "Bearer"},
    "token in a cookie": {"Cookie": f"token={TOKEN}"},
    "non-ASCII token": {"Authorization": "Bearer t\u00f6ken".encode()},
    "token twice": {"Authorization": f"Bearer {TOKEN} {TOKEN}"},
}


@pytest.fixture(scope="module")
def guarded_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with engine(tmp_path_factory.mktemp("auth-engine"), api_token=TOKEN, cors_origin=ORIGIN) as url:
        yield url


@pytest.fixture(scope="module")
def guarded_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim(tmp_path_factory.mktemp("auth-sim"), api_token=TOKEN, cors_origin=ORIGIN) as url:
        yield url


@pytest.fixture(scope="module")
def open_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with engine(tmp_path_factory.mktemp("open-engine")) as url:
        yield url


@pytest.fixture(scope="module")
def open_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim(tmp_path_factory.mktemp("open-sim")) as url:
        yield url


def write_operations(base_url: str) -> list[tuple[str, str]]:
    """Every write operation the service documents, with its path parameters filled in."""
    schema = httpx.get(f"{base_url}/openapi.json").json()
    values = {"run_id": "run_20250101T000000Z_0123abcd", "template_id": "support-backlog",
              "exp_id": "exp_20250101T000000Z_0123abcd", "point": "0",
              "session_id": "wi_0123456789abcdef01234567"}
    ops = []
    for path, item in schema["paths"].items():
        for method in item:
            if method in WRITE_METHODS:
                filled = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
                ops.append((method.upper(), filled))
    return ops


def body_for(path: str) -> tuple[bytes, str]:
    if path.startswith("/v1/"):
        return HELLO.encode(), "application/x-yaml"
    if path == "/sim/models/export":
        return json.dumps({"template": "support-backlog", "name": "auth-test"}).encode(), "application/json"
    if path.endswith("/validate"):
        return HELLO.encode(), "application/x-yaml"
    return b"{}", "application/json"


def assert_unauthorized(resp: httpx.Response, realm: str) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["www-authenticate"] == f'Bearer realm="{realm}"'
    assert "FLOWTIME_API_TOKEN" in resp.json()["detail"]
    assert TOKEN not in resp.text


SERVICES = {
    "engine": ("guarded_engine", "flowtime", {("POST", "/v1/run"), ("POST", "/v1/graph"),
                                               ("POST", "/v1/validate"), ("POST", "/v1/artifacts/index"),
                                               ("DELETE", "/v1/runs/run_20250101T000000Z_0123abcd"),
                                               ("POST", "/v1/experiments"), ("POST", "/v1/sweep"),
                                               ("DELETE", "/v1/experiments/exp_20250101T000000Z_0123abcd"),
                                               ("POST", "/v1/whatif"),
                                               ("POST", "/v1/whatif/wi_0123456789abcdef01234567/save")}),
    "sim": ("guarded_sim", "flowtime-sim", {("POST", "/api/v1/templates/support-backlog/generate"),
                                            ("POST", "/api/v1/models/validate"),
                                            ("POST", "/sim/models/export"), ("POST", "/sim/models/validate")}),
}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_every_write_endpoint_needs_the_token(request: pytest.FixtureRequest, service: str,
                                              credentials: str) -> None:
    fixture, realm, known_writes = SERVICES[service]
    base_url: str = request.getfixturevalue(fixture)
    ops = write_operations(base_url)
    assert known_writes <= set(ops)
    with httpx.Client(base_url=base_url, timeout=30) as c:
        for method, path in ops:
            body, media = body_for(path)
            resp = c.request(method, path, content=body,
                             headers={"Content-Type": media, **BAD_CREDENTIALS[credentials]})
            assert_unauthorized(resp, realm)


@pytest.mark.parametrize("service", SERVICES)
def test_the_right_token_opens_every_write_endpoint(request: pytest.FixtureRequest,
                                                    service: str) -> None:
    fixture, _, _ = SERVICES[service]
    base_url: str = request.getfixturevalue(fixture)
    with httpx.Client(base_url=base_url, timeout=30) as c:
        for method, path in write_operations(base_url):
            body, media = body_for(path)
            for scheme in ("Bearer", "bearer"):
                resp = c.request(method, path, content=body, headers={
                    "Content-Type": media, "Authorization": f"{scheme} {TOKEN}"})
                assert resp.status_code != 401, (method, path, resp.text)
                assert resp.status_code < 500, (method, path, resp.text)


def test_reads_need_no_token(guarded_engine: str, guarded_sim: str) -> None:
    run = httpx.post(f"{guarded_engine}/v1/run", content=HELLO,
                     headers={"Content-Type": "text/yaml", "Authorization": f"Bearer {TOKEN}"})
    run_id = run.json()["runId"]
    for url in (f"{guarded_engine}/v1/healthz", f"{guarded_engine}/v1/runs",
                f"{guarded_engine}/v1/runs/{run_id}", f"{guarded_engine}/v1/artifacts",
                f"{guarded_sim}/api/v1/healthz", f"{guarded_sim}/api/v1/templates",
                f"{guarded_sim}/api/v1/models"):
        assert httpx.get(url).status_code == 200, url
    assert httpx.get(f"{guarded_engine}/v1/healthz").json()["auth"] is True
    assert httpx.get(f"{guarded_sim}/api/v1/healthz").json()["auth"] is True


def test_unauthorized_writes_do_no_work_and_read_no_body(guarded_engine: str) -> None:
    """The token is checked first: a huge body gets a 401 (not a 413) and nothing is stored."""
    before = httpx.get(f"{guarded_engine}/v1/runs").json()["total"]
    huge = HELLO.encode() + b"#" * (32 * 1024 * 1024)
    resp = httpx.post(f"{guarded_engine}/v1/run", content=huge, headers={"Content-Type": "text/yaml"})
    assert resp.status_code == 401
    assert httpx.get(f"{guarded_engine}/v1/runs").json()["total"] == before


def test_without_a_token_writes_are_open(open_engine: str, open_sim: str) -> None:
    assert httpx.get(f"{open_engine}/v1/healthz").json()["auth"] is False
    resp = httpx.post(f"{open_engine}/v1/run", content=HELLO,
                      headers={"Content-Type": "text/yaml", "Authorization": "Bearer anything"})
    assert resp.status_code == 200
    gen = httpx.post(f"{open_sim}/api/v1/templates/support-backlog/generate", json={})
    assert gen.status_code == 200


def test_one_environment_variable_sets_the_token_of_both_services(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWTIME_API_TOKEN", "from-env")
    assert EngineSettings(data_dir=tmp_path).api_token == "from-env"
    assert SimSettings(data_dir=tmp_path).api_token == "from-env"


def test_cors_origin_settings_come_from_each_service_environment(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    for key in ("FLOWTIME_CORS_ORIGIN", "FLOWTIME_SIM_CORS_ORIGIN", "FLOWTIME_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    assert EngineSettings(data_dir=tmp_path).cors_origin is None
    assert SimSettings(data_dir=tmp_path).cors_origin is None
    assert EngineSettings(data_dir=tmp_path).api_token is None
    monkeypatch.setenv("FLOWTIME_CORS_ORIGIN", ORIGIN)
    monkeypatch.setenv("FLOWTIME_SIM_CORS_ORIGIN", ORIGIN)
    assert EngineSettings(data_dir=tmp_path).cors_origin == ORIGIN
    assert SimSettings(data_dir=tmp_path).cors_origin == ORIGIN


# -- CORS ------------------------------------------------------------------------------------------


PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}


def cors_probes(c: httpx.Client, origin: str, service: str) -> list[httpx.Response]:
    """A read, a write, an error and a preflight, all from ``origin``."""
    o = {"Origin": origin}
    if service == "engine":
        return [c.get("/v1/healthz", headers=o), c.get("/v1/runs/run_20250101T000000Z_0123abcd", headers=o),
                c.post("/v1/validate", content=HELLO, headers={**o, "Content-Type": "text/yaml"}),
                c.options("/v1/run", headers={**o, **PREFLIGHT})]
    return [c.get("/api/v1/healthz", headers=o), c.get("/api/v1/templates/nope", headers=o),
            c.post("/api/v1/models/validate", content=HELLO, headers=o),
            c.options("/api/v1/templates/support-backlog/generate", headers={**o, **PREFLIGHT})]


@pytest.mark.parametrize("service", ["engine", "sim"])
def test_cors_is_off_by_default(request: pytest.FixtureRequest, service: str) -> None:
    base_url: str = request.getfixturevalue(f"open_{service}")
    with httpx.Client(base_url=base_url) as c:
        for origin in (ORIGIN, "http://evil.example", "null"):
            for resp in cors_probes(c, origin, service):
                assert not [h for h in resp.headers if h.startswith("access-control-")], resp.headers
            preflight = cors_probes(c, origin, service)[-1]
            assert preflight.status_code == 405


@pytest.mark.parametrize("service", ["engine", "sim"])
def test_cors_allows_exactly_the_configured_origin(request: pytest.FixtureRequest,
                                                   service: str) -> None:
    base_url: str = request.getfixturevalue(f"guarded_{service}")
    with httpx.Client(base_url=base_url) as c:
        allowed = cors_probes(c, ORIGIN, service)
        for resp in allowed:  # errors (404, 401) included, so the UI can read problem bodies
            assert resp.headers["access-control-allow-origin"] == ORIGIN, resp.request.url
            assert "access-control-allow-credentials" not in resp.headers
        assert allowed[1].status_code == 404 and allowed[2].status_code == 401
        preflight = allowed[-1]
        assert preflight.status_code == 200  # no token needed: browsers send none on preflight
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        for origin in ("http://evil.example", "null", ORIGIN + ".evil.example", ORIGIN.upper(),
                       ORIGIN.replace("5219", "5220"), "https://ui.example:5219", "*"):
            for resp in cors_probes(c, origin, service):
                assert "access-control-allow-origin" not in resp.headers, (origin, resp.request.url)
            assert cors_probes(c, origin, service)[-1].status_code == 400

