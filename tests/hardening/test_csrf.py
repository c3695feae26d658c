"""
Cross-site request forgery and DNS rebinding, over HTTP on real servers.

Engine and Sim refuse writes a browser sent from a page of another origin
(``Origin``, or ``Sec-Fetch-Site`` without one) with a 403 problem, before the
body is read; clients that send neither header (curl, httpx, the UI's own
server-side client) keep working. The UI refuses form posts without its signed
token or from another origin with a 403 page. All three answer only to the host
names they serve (400 otherwise). Afterwards nothing was stored.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.hardening.servers import HELLO, ORIGIN, PROBLEM, engine, sim
from tests.servers import serve

from flowtime.settings import EngineSettings, SimSettings, UiSettings
from flowtime.ui.app import create_ui_app

FOREIGN_ORIGINS = ("http://evil.example", "null", "http://127.0.0.1:1", "http://localhost.evil.example",
                   ORIGIN + ".evil.example", "https://127.0.0.1")
TOKEN_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


def raw_request(base_url: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request whose ``Host`` header is exactly the one given (httpx and http.client add their own)."""
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@dataclass
class Stack:
    engine: str
    sim: str
    ui: str
    sim_dir: Path

    def run_count(self) -> int:
        return int(httpx.get(f"{self.engine}/v1/runs").json()["total"])

    def sim_writes(self) -> int:
        """Models Sim stored: generated ones (listed) and named exports (folders)."""
        named = self.sim_dir / "named"
        listed = len(httpx.get(f"{self.sim}/api/v1/models").json()["models"])
        return listed + (len(list(named.iterdir())) if named.is_dir() else 0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("csrf")
    with engine(root / "engine", cors_origin=ORIGIN) as e, sim(root / "sim", cors_origin=ORIGIN) as s, \
            serve(create_ui_app(UiSettings(engine_url=e, sim_url=s)), "ui") as u:
        yield Stack(e, s, u, root / "sim")


def own(url: str) -> str:
    return url  # http://127.0.0.1:<port>: the origin of the service's own pages


def writes(stack: Stack) -> list[tuple[str, str, str, bytes, str]]:
    """(service, method, url, body, content type) of requests that would store something."""
    export = json.dumps({"template": "support-backlog", "name": "forged"}).encode()
    return [
        ("engine", "POST", f"{stack.engine}/v1/run", HELLO.encode(), "text/plain"),
        ("engine", "POST", f"{stack.engine}/v1/run", json.dumps({"yaml": HELLO}).encode(), "application/json"),
        ("sim", "POST", f"{stack.sim}/sim/models/export", export, "text/plain"),
        ("sim", "POST", f"{stack.sim}/api/v1/templates/support-backlog/generate", b"{}", "text/plain"),
    ]


def assert_refused(resp: httpx.Response, status: int = 403) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["status"] == status


# ---- Engine and Sim ------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_writes_from_another_origin_are_refused_and_store_nothing(stack: Stack, origin: str) -> None:
    runs, models = stack.run_count(), stack.sim_writes()
    for _, method, url, body, media in writes(stack):
        resp = httpx.request(method, url, content=body, headers={"Content-Type": media, "Origin": origin})
        assert_refused(resp)
        assert "another site" in resp.json()["detail"]
    assert (stack.run_count(), stack.sim_writes()) == (runs, models)


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_a_foreign_fetch_site_without_an_origin_is_refused(stack: Stack, site: str) -> None:
    runs = stack.run_count()
    for _, method, url, body, media in writes(stack):
        assert_refused(httpx.request(method, url, content=body,
                                     headers={"Content-Type": media, "Sec-Fetch-Site": site}))
    assert stack.run_count() == runs


def test_deletes_from_another_origin_are_refused(stack: Stack) -> None:
    run_id = httpx.post(f"{stack.engine}/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"}).json()["runId"]
    assert_refused(httpx.delete(f"{stack.engine}/v1/runs/{run_id}", headers={"Origin": "http://evil.example"}))
    assert httpx.get(f"{stack.engine}/v1/runs/{run_id}").status_code == 200


def test_the_refusal_comes_before_the_body_is_read(stack: Stack) -> None:
    """A forged write with a body over the limit is a 403, not a 413: nothing of it was read."""
    huge = HELLO.encode() + b"#" * (32 * 1024 * 1024)
    resp = httpx.post(f"{stack.engine}/v1/run", content=huge,
                      headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert_refused(resp)


def test_own_pages_the_cors_origin_and_non_browser_clients_may_write(stack: Stack) -> None:
    allowed = [
        {},  # curl, httpx, the UI's server-side client: no Origin, no Sec-Fetch-Site
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": ORIGIN},  # the configured CORS origin (the UI's URL)
    ]
    for service, method, url, body, media in writes(stack):
        base = stack.engine if service == "engine" else stack.sim
        for headers in [*allowed, {"Origin": own(base)}, {"Origin": own(base).upper() + "/"}]:
            resp = httpx.request(method, url, content=body, headers={"Content-Type": media, **headers})
            assert resp.status_code < 300, (url, headers, resp.text)


def test_reads_from_any_origin_are_not_refused(stack: Stack) -> None:
    for url in (f"{stack.engine}/v1/runs", f"{stack.sim}/api/v1/templates"):
        foreign = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
        assert httpx.get(url, headers=foreign).status_code == 200


# ---- DNS rebinding: the Host header --------------------------------------------------------------


def host_probes(stack: Stack) -> list[str]:
    return [f"{stack.engine}/v1/healthz", f"{stack.sim}/api/v1/healthz", f"{stack.ui}/healthz"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                  "localhost@evil.example", "", "[::2]:80", "127.0.0.2"])
def test_a_host_the_services_do_not_serve_is_a_400(stack: Stack, host: str) -> None:
    for url in host_probes(stack):
        u = urlsplit(url)
        status, headers, body = raw_request(url, "GET", u.path, headers={"Host": host})
        assert status == 400, (url, host, body)
        assert headers["content-type"] == PROBLEM
        assert "FLOWTIME_ALLOWED_HOSTS" in json.loads(body)["detail"]


def test_a_rebound_page_cannot_write_either(stack: Stack) -> None:
    """After DNS rebinding the page's origin is its own host: the Host check is what stops it."""
    runs = stack.run_count()
    port = urlsplit(stack.engine).port
    status, _, _ = raw_request(stack.engine, "POST", "/v1/run", HELLO.encode(), headers={
        "Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}", "Content-Type": "text/plain"})
    assert status == 400
    assert stack.run_count() == runs


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "localhost."])
def test_loopback_names_are_served(stack: Stack, name: str) -> None:
    for url in host_probes(stack):
        u = urlsplit(url)
        status, _, body = raw_request(url, "GET", u.path, headers={"Host": f"{name}:{u.port}"})
        assert status == 200, (url, name, body)


def test_allowed_hosts_adds_names_and_star_allows_any(tmp_path: Path) -> None:
    with engine(tmp_path / "e", allowed_hosts="flowtime.lan, box") as e, \
            sim(tmp_path / "s", host="0.0.0.0", allowed_hosts="*") as s, \
            serve(create_ui_app(UiSettings(engine_url=e, sim_url=s, allowed_hosts="ui.lan")), "ui") as u:
        for url, good, bad in ((f"{e}/v1/healthz", ["flowtime.lan:1", "BOX"], ["other.lan"]),
                               (f"{s}/api/v1/healthz", ["anything.example", "10.1.2.3:8090"], []),
                               (f"{u}/healthz", ["ui.lan:5219"], ["flowtime.lan"])):
            path = urlsplit(url).path
            for host in good:
                assert raw_request(url, "GET", path, headers={"Host": host})[0] == 200, (url, host)
            for host in bad:
                assert raw_request(url, "GET", path, headers={"Host": host})[0] == 400, (url, host)


def test_the_configured_host_is_served(tmp_path: Path) -> None:
    with engine(tmp_path / "e", host="flowtime.example") as e:
        assert raw_request(e, "GET", "/v1/healthz", headers={"Host": "flowtime.example:8080"})[0] == 200


def test_one_environment_variable_sets_the_allowed_hosts_of_all_three(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWTIME_ALLOWED_HOSTS", "flowtime.lan")
    assert EngineSettings(data_dir=tmp_path).allowed_hosts == "flowtime.lan"
    assert SimSettings(data_dir=tmp_path).allowed_hosts == "flowtime.lan"
    assert UiSettings().allowed_hosts == "flowtime.lan"


# ---- the UI's forms --------------------------------------------------------------------------------


def ui_client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.ui, timeout=30)


def token(c: httpx.Client) -> str:
    m = TOKEN_FIELD.search(c.get("/run-yaml").text)
    assert m
    return m.group(1)


def yaml_form(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"yaml": HELLO, "action": "run", **(extra or {})}


def test_the_ui_s_own_form_post_runs_the_model(stack: Stack) -> None:
    runs = stack.run_count()
    with ui_client(stack) as c:
        t = token(c)
        r = c.post("/run-yaml", data=yaml_form({"csrf_token": t}), headers={"Origin": stack.ui})
        assert r.status_code == 303 and r.headers["location"].startswith("/runs/run_")
        r = c.post("/run-yaml", data=yaml_form({"csrf_token": t}), headers={"Referer": f"{stack.ui}/run-yaml"})
        assert r.status_code == 303
    assert stack.run_count() == runs + 2


def test_the_session_cookie_is_strict_and_not_readable_by_scripts(stack: Stack) -> None:
    r = httpx.get(f"{stack.ui}/run-yaml")
    cookie = r.headers["set-cookie"]
    assert re.match(r"flowtime_csrf_\d+=[A-Za-z0-9_-]{43};", cookie)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    with ui_client(stack) as c:
        c.get("/run-yaml")
        assert "set-cookie" not in c.get("/runs").headers  # given once, then kept


def forged_posts(stack: Stack, c: httpx.Client, model_hash: str, run_id: str) -> list[tuple[str, httpx.Response]]:
    """Posts of every UI form that do not come from the UI's own page, each a different way."""
    t = token(c)
    stolen_cookie = dict(c.cookies)
    new_run = {"templateId": "support-backlog", "hash": model_hash}
    out: list[tuple[str, httpx.Response]] = []
    for path, data in (("/run-yaml", yaml_form()), ("/runs/new", new_run), (f"/runs/{run_id}/delete", {}),
                       ("/templates/support-backlog/generate", {})):
        out += [
            (f"{path} without a token", c.post(path, data=data)),
            (f"{path} with a wrong token", c.post(path, data={**data, "csrf_token": "0" * 64})),
            (f"{path} from another origin", c.post(path, data={**data, "csrf_token": t},
                                                     headers={"Origin": "http://127.0.0.1:1"})),
            (f"{path} from another site's page", c.post(path, data={**data, "csrf_token": t},
                                                          headers={"Referer": "http://evil.example/x"})),
            (f"{path} with Sec-Fetch-Site cross-site", c.post(path, data={**data, "csrf_token": t},
                                                               headers={"Sec-Fetch-Site": "cross-site"})),
        ]
        # A page on another port of this host can set the cookie, but not sign it.
        with httpx.Client(base_url=stack.ui, timeout=30) as other:
            name = next(iter(stolen_cookie))
            chosen = secrets.token_urlsafe(32)
            other.cookies.set(name, chosen)
            out.append((f"{path} with a planted cookie", other.post(path, data={**data, "csrf_token": chosen})))
            out.append((f"{path} with another session's token",
                        other.post(path, data={**data, "csrf_token": t})))
    assert httpx.get(f"{stack.engine}/v1/runs/{run_id}").status_code == 200
    return out


def test_forged_form_posts_are_403_pages_and_change_nothing(stack: Stack) -> None:
    model_hash = httpx.post(f"{stack.sim}/api/v1/templates/support-backlog/generate",
                            json={"parameters": {"agents": 7}}).json()["hash"]
    run_id = httpx.post(f"{stack.engine}/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"}).json()["runId"]
    runs, models = stack.run_count(), stack.sim_writes()
    with ui_client(stack) as c:
        for what, resp in forged_posts(stack, c, model_hash, run_id):
            assert resp.status_code == 403, what
            assert 'id="error"' in resp.text and "Request refused" in resp.text, what
    assert (stack.run_count(), stack.sim_writes()) == (runs, models)


def test_with_an_api_token_the_ui_still_refuses_forged_posts(tmp_path: Path) -> None:
    """The UI holds the token: without the form check it would write for any page."""
    with engine(tmp_path / "e", api_token="tok") as e, sim(tmp_path / "s", api_token="tok") as s, \
            serve(create_ui_app(UiSettings(engine_url=e, sim_url=s, api_token="tok")), "ui") as u, \
            httpx.Client(base_url=u) as c:
        assert c.post("/run-yaml", data=yaml_form(), headers={"Origin": "http://evil.example"}).status_code == 403
        assert c.post("/run-yaml", data=yaml_form()).status_code == 403
        assert httpx.get(f"{e}/v1/runs").json()["total"] == 0
        assert c.post("/run-yaml", data=yaml_form({"csrf_token": token(c)})).status_code == 303
        assert httpx.get(f"{e}/v1/runs").json()["total"] == 1


def test_a_form_loaded_before_a_ui_restart_must_be_reloaded(tmp_path: Path, stack: Stack) -> None:
    """The signing secret is per process: a second UI (a restart) refuses the first one's token."""
    with ui_client(stack) as c:
        t = token(c)
        with serve(create_ui_app(UiSettings(engine_url=stack.engine, sim_url=stack.sim)), "ui2") as u2:
            port = urlsplit(u2).port
            cookies = {f"flowtime_csrf_{port}": v for v in c.cookies.values()}
            r = httpx.post(f"{u2}/run-yaml", data=yaml_form({"csrf_token": t}), cookies=cookies)
            assert r.status_code == 403 and "Reload the page" in r.text
