"""
Paths and ids from URLs never reach outside the data directories.

Every run id, file name, template id, hash, model id and named-model id is
matched against its pattern before a path is built from it. These tests send
traversal attempts byte for byte (no client-side normalisation) to every route
that takes one, on both services, with a secret file and decoy run/model
folders planted just outside the data directories: no answer may be a 2xx or a
5xx, and none may contain the secret.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from tests.hardening.servers import HELLO, PROBLEM, engine, raw_request, sim

from flowtime.artifacts import layout
from flowtime.artifacts.registry import Registry
from flowtime.errors import InvalidRunId, ModelNotFound, RunNotFound
from flowtime.sim.store import NAME, NAME_ID, ModelStore, NamedStore

SECRET = "HARDENING-SECRET-7f3a"
DECOY_RUN = "run_20250101T000000Z_deadbeef"

# Each one stands where an id or a file name goes in a URL.
VARIANTS: dict[str, str] = {
    "dot-dot": "..",
    "dot-dot-slash": "../../secret.txt",
    "encoded slash": "..%2f..%2fsecret.txt",
    "encoded dots": "%2e%2e",
    "encoded dots and slashes": "%2e%2e%2f%2e%2e%2fsecret.txt",
    "upper-case encoding": "%2E%2E%2F%2E%2E%2Fsecret.txt",
    "double-encoded dots": "%252e%252e%252fsecret.txt",
    "double-encoded slash": "..%252f..%252fsecret.txt",
    "backslashes": "..\\..\\secret.txt",
    "encoded backslashes": "..%5c..%5csecret.txt",
    "absolute path": "/etc/passwd",
    "encoded absolute path": "%2fetc%2fpasswd",
    "NUL byte": f"{DECOY_RUN}%00",
    "NUL then traversal": "%00..%2f..%2fsecret.txt",
    "raw NUL byte": "spec.yaml\x00.json",
    "two-dot leader": "%E2%80%A5%2fsecret.txt",
    "fullwidth dots": "%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.txt",
    "raw fullwidth dots": "\uff0e\uff0e\uff0fsecret.txt",
    "overlong UTF-8 dots": "%C0%AE%C0%AE%C0%AFsecret.txt",
    "dot segment after an id": f"{DECOY_RUN}%2f..",
    "semicolon path parameter": "..;/..;/secret.txt",
    "decoy run beside the data dir": f"..%2f{DECOY_RUN}",
    "decoy model beside the data dir": "..%2f..%2fdecoy",
    "trailing dot": f"{DECOY_RUN}.",
    "tilde": "~root",
    "overlong name": "a" * 5000,
    "overlong run id": "run_20250101T000000Z_" + "a" * 4096,
}


@dataclass(frozen=True)
class Site:
    root: Path
    engine_url: str
    sim_url: str
    run_id: str
    template_id: str
    hash: str
    named_id: str


def _plant_decoys(root: Path) -> None:
    """A secret file, a complete-looking run and a complete-looking model, all outside the data dirs."""
    (root / "secret.txt").write_text(SECRET)
    run = root / DECOY_RUN
    (run / "series").mkdir(parents=True)
    for name in ("manifest.json", "run.json", "series/index.json", "provenance.json"):
        (run / name).write_text(json.dumps({"secret": SECRET, "series": [], "seriesHashes": {}}))
    (run / "spec.yaml").write_text(f"# {SECRET}\n")
    for model in (root / "decoy", root / "sim" / "decoy", root / "sim" / "models" / "decoy"):
        model.mkdir(parents=True, exist_ok=True)
        (model / "metadata.json").write_text(json.dumps({"secret": SECRET}))
        for name in ("model.yaml", "provenance.json", "validation.json", "preview.svg"):
            (model / name).write_text(json.dumps({"secret": SECRET}))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("traversal")
    _plant_decoys(root)
    with engine(root / "engine") as e, sim(root / "sim") as s:
        run_id = httpx.post(f"{e}/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"},
                            timeout=30).json()["runId"]
        gen = httpx.post(f"{s}/api/v1/templates/support-backlog/generate", json={}, timeout=30).json()
        named = httpx.post(f"{s}/sim/models/export", timeout=30,
                           json={"template": "support-backlog", "name": "baseline"}).json()
        yield Site(root, e, s, run_id, "support-backlog", gen["hash"], named["model_id"])


def assert_refused(base_url: str, method: str, path: str, body: bytes | None = None) -> None:
    try:
        status, headers, data = raw_request(base_url, method, path, body,
                                            {"Content-Type": "application/json"} if body else None)
    except ConnectionResetError:
        # uvicorn answers a request line h11 cannot parse (raw NUL, raw non-ASCII) with 400
        # and closes at once; the close may overtake the answer. Refused either way.
        return
    assert 400 <= status < 500, (method, path, status, data[:300])
    assert SECRET.encode() not in data and b"root:" not in data, (method, path)
    if status in (400, 404, 422) and headers.get("content-type", "").startswith("application/"):
        assert headers["content-type"] == PROBLEM, (method, path)


def engine_paths(x: str, run_id: str) -> list[tuple[str, str]]:
    """Every Engine route, with ``x`` where an id or a file name goes."""
    return [
        ("GET", f"/v1/runs/{x}"),
        ("GET", f"/v1/runs/{x}/index"),
        ("GET", f"/v1/runs/{x}/series/served"),
        ("GET", f"/v1/runs/{x}/export"),
        ("GET", f"/v1/runs/compare?a={x}&b={run_id}"),
        ("GET", f"/v1/artifacts/{x}"),
        ("GET", f"/v1/artifacts/{x}/files"),
        ("GET", f"/v1/artifacts/{x}/files/manifest.json"),
        ("DELETE", f"/v1/runs/{x}"),
        ("GET", f"/v1/artifacts/{run_id}/files/{x}"),
        ("GET", f"/v1/artifacts/{run_id}/files/series/{x}"),
        ("GET", f"/v1/runs/{run_id}/series/{x}"),
        ("GET", f"/v1/runs/{run_id}/series/{x}?format=json"),
    ]


def sim_paths(x: str, site: Site) -> list[tuple[str, str]]:
    """Every Sim route, with ``x`` where an id goes."""
    return [
        ("GET", f"/api/v1/templates/{x}"),
        ("POST", f"/api/v1/templates/{x}/generate"),
        ("GET", f"/api/v1/models/{x}"),
        ("GET", f"/api/v1/models/{x}/{site.hash}"),
        ("GET", f"/api/v1/models/{site.template_id}/{x}"),
        ("GET", f"/api/v1/models/{x}/{x}"),
        ("GET", f"/api/v1/models/{x}/{site.hash}/preview.svg"),
        ("GET", f"/api/v1/models/{site.template_id}/{x}/preview.svg"),
        ("GET", f"/sim/models/{x}"),
        ("GET", f"/sim/models/{x}?version=1"),
        ("GET", f"/sim/models/{site.named_id}%2f{x}"),
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_engine_refuses_traversal_in_every_id_and_file_name(site: Site, variant: str) -> None:
    for method, path in engine_paths(VARIANTS[variant], site.run_id):
        assert_refused(site.engine_url, method, path)


@pytest.mark.parametrize("variant", VARIANTS)
def test_sim_refuses_traversal_in_every_id(site: Site, variant: str) -> None:
    x = VARIANTS[variant]
    for method, path in sim_paths(x, site):
        assert_refused(site.sim_url, method, path, b"{}" if method == "POST" else None)
    listing = httpx.get(f"{site.sim_url}/api/v1/models", params={"template": x})
    if listing.status_code == 200:  # shaped like a template id: simply no models of it
        assert listing.json() == {"models": []}
    else:  # not a template id at all
        assert listing.status_code == 400 and listing.headers["content-type"] == PROBLEM, listing.text
        assert SECRET not in listing.text


@pytest.mark.parametrize("variant", VARIANTS)
def test_sim_export_refuses_traversal_in_model_names(site: Site, variant: str) -> None:
    name = VARIANTS[variant]
    resp = httpx.post(f"{site.sim_url}/sim/models/export",
                      json={"template": "support-backlog", "name": name})
    named = site.root / "sim" / "named"
    if NAME.fullmatch(name):  # a plain name such as "run_..._deadbeef." is no traversal
        assert resp.status_code == 201, resp.text
        assert Path(resp.json()["path"]).parent.parent == named
    else:
        assert resp.status_code == 422, resp.text
    assert all(NAME_ID.fullmatch(p.name) for p in named.iterdir())


def test_nothing_outside_the_data_dirs_was_touched_or_deleted(site: Site) -> None:
    for variant in VARIANTS.values():
        raw_request(site.engine_url, "DELETE", f"/v1/runs/{variant}")
    assert (site.root / "secret.txt").read_text() == SECRET
    assert (site.root / DECOY_RUN / "manifest.json").is_file()
    assert httpx.get(f"{site.engine_url}/v1/runs/{site.run_id}").status_code == 200
    assert [r["id"] for r in httpx.get(f"{site.engine_url}/v1/runs").json()["runs"]] == [site.run_id]


# -- the pattern checks themselves, without HTTP ---------------------------------------------------


DECODED = [
    "..", "../..", "../secret.txt", "/etc/passwd", "..\\..\\x", "run_x/../..", f"{DECOY_RUN}/..",
    f"{DECOY_RUN}\x00", "\u2025", "\uff0e\uff0e", f"{DECOY_RUN}.", f"./{DECOY_RUN}", f" {DECOY_RUN}",
    f"\n{DECOY_RUN}", "run_20250101T000000Z_" + "a" * 4096, "", "~root",
]


@pytest.mark.parametrize("bad", DECODED)
def test_run_ids_are_checked_before_any_path_is_built(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RunNotFound):
        layout.run_dir(tmp_path, bad)
    with pytest.raises(RunNotFound):
        Registry(tmp_path).run_path(bad)


def test_a_trailing_newline_does_not_pass_the_patterns() -> None:
    assert not layout.is_run_id(f"{DECOY_RUN}\n")


def test_sim_ids_with_a_trailing_newline_do_not_pass_the_patterns(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        ModelStore(tmp_path).get("support-backlog\n", "0123456789ab")
    with pytest.raises(ModelNotFound):
        ModelStore(tmp_path).get("support-backlog", "0123456789ab\n")
    with pytest.raises(ModelNotFound):
        NamedStore(tmp_path / "named").get("baseline_0000\n")


@pytest.mark.parametrize("bad", [*DECODED, "series/../manifest.json", "series/x/y.csv", "series/",
                                 ".manifest.json", "x" * 300])
def test_file_names_are_checked_before_any_path_is_built(tmp_path: Path, bad: str) -> None:
    registry = Registry(tmp_path)
    run = tmp_path / DECOY_RUN
    (run / "series").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    with pytest.raises(RunNotFound):
        registry.file_path(DECOY_RUN, bad)


@pytest.mark.parametrize("bad", DECODED)
def test_sim_store_ids_are_checked_before_any_path_is_built(tmp_path: Path, bad: str) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(ModelNotFound):
        store.get(bad, "0123456789ab")
    with pytest.raises(ModelNotFound):
        store.get("support-backlog", bad)
    with pytest.raises(ModelNotFound):
        NamedStore(tmp_path / "named").get(bad)


# -- symbolic links inside the data directories -----------------------------------------------------


def _new_run(site: Site) -> str:
    resp = httpx.post(f"{site.engine_url}/v1/run", content=HELLO, headers={"Content-Type": "text/yaml"})
    run_id: str = resp.json()["runId"]
    return run_id


def _engine_answers(site: Site, run_id: str) -> list[httpx.Response]:
    e = site.engine_url
    files = [f"/v1/artifacts/{run_id}/files/{n}" for n in (
        "manifest.json", "run.json", "spec.yaml", "provenance.json", "series/index.json",
        "series/served@SERVED@DEFAULT.csv")]
    return [httpx.get(e + p) for p in (
        f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/index", f"/v1/runs/{run_id}/series/served",
        f"/v1/runs/{run_id}/series/served?format=json", f"/v1/runs/{run_id}/export",
        f"/v1/artifacts/{run_id}", f"/v1/artifacts/{run_id}/files", *files,
        f"/v1/runs/compare?a={run_id}&b={site.run_id}", "/v1/runs?limit=1000",
        f"/v1/runs?search={SECRET}")]


def _assert_no_secret_and_no_5xx(answers: list[httpx.Response]) -> None:
    for resp in answers:
        assert resp.status_code < 500, (resp.request.url, resp.text[:300])
        assert SECRET not in resp.text, (resp.request.url, resp.status_code)


def test_a_symlinked_run_folder_is_not_a_run(site: Site) -> None:
    link_id = "run_20250102T000000Z_5e1b0001"  # run-id shaped (hex), so only the link is wrong
    (site.root / "engine" / link_id).symlink_to(site.root / DECOY_RUN, target_is_directory=True)
    assert httpx.post(f"{site.engine_url}/v1/artifacts/index").status_code == 200
    answers = _engine_answers(site, link_id)
    _assert_no_secret_and_no_5xx(answers)
    assert answers[0].status_code == 404
    assert link_id not in httpx.get(f"{site.engine_url}/v1/runs?limit=1000").text
    (site.root / "engine" / link_id).unlink()


@pytest.mark.parametrize("name", ["manifest.json", "run.json", "provenance.json", "spec.yaml",
                                  "series/index.json", "series/served@SERVED@DEFAULT.csv", "series"])
def test_symlinks_inside_a_run_folder_are_never_followed(site: Site, name: str) -> None:
    run_id = _new_run(site)
    target = site.root / "engine" / run_id / name
    outside = site.root / DECOY_RUN / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(outside, target_is_directory=outside.is_dir())
    httpx.post(f"{site.engine_url}/v1/artifacts/index")
    _assert_no_secret_and_no_5xx(_engine_answers(site, run_id))


def test_symlinked_sim_folders_and_files_are_never_followed(site: Site) -> None:
    models = site.root / "sim" / "models" / site.template_id
    fake_hash = "0123456789ab"
    (models / fake_hash).symlink_to(site.root / "decoy", target_is_directory=True)
    linked_template = site.root / "sim" / "models" / "linked-template"
    linked_template.symlink_to(site.root / "sim" / "models" / "decoy", target_is_directory=True)
    named_link = site.root / "sim" / "named" / "linked_0000"
    named_link.mkdir()
    (named_link / "v1").symlink_to(site.root / "decoy", target_is_directory=True)
    real = models / site.hash
    for name in ("model.yaml", "provenance.json"):
        (real / name).unlink()
        (real / name).symlink_to(site.root / "decoy" / name)
    s = site.sim_url
    answers = [httpx.get(s + p) for p in (
        f"/api/v1/models/{site.template_id}/{fake_hash}", f"/api/v1/models/{site.template_id}",
        f"/api/v1/models/{site.template_id}/{site.hash}",
        f"/api/v1/models/{site.template_id}/{site.hash}/preview.svg", "/api/v1/models",
        "/api/v1/models/linked-template", "/sim/models/linked_0000", "/api/v1/healthz")]
    _assert_no_secret_and_no_5xx(answers)
    assert answers[0].status_code == 404
    assert fake_hash not in answers[4].text


def test_a_run_id_shaped_symlink_to_a_file_is_not_listed(site: Site) -> None:
    link = site.root / "engine" / "run_20250103T000000Z_5e1b0002"
    os.symlink(site.root / "secret.txt", link)
    assert httpx.post(f"{site.engine_url}/v1/artifacts/index").status_code == 200
    _assert_no_secret_and_no_5xx(_engine_answers(site, link.name))
    link.unlink()


def test_quoted_paths_of_real_files_still_work(site: Site) -> None:
    """The checks refuse only what they must: a percent-encoded slash in a series file name is fine."""
    name = quote("series/served@SERVED@DEFAULT.csv", safe="")
    status, _, data = raw_request(site.engine_url, "GET", f"/v1/artifacts/{site.run_id}/files/{name}")
    assert status == 200 and data.startswith(b"t,value")


# -- run ids are ASCII; text that is not one is a 400 ---------------------------------------------

NOT_ASCII_RUN_IDS = [
    "run_\u0662\u0660\u0662\u0665\u0660\u0661\u0660\u0661T000000Z_ab12cd34",  # Arabic-Indic digits
    "run_20250101T000000Z_ab12cd3\uff14",  # a fullwidth 4
    "run_\U0001d7ce0250101T000000Z_ab12cd34",  # a mathematical bold 2
    "run_deterministic_ab12cd3\u0664",
]


@pytest.mark.parametrize("bad", NOT_ASCII_RUN_IDS)
def test_run_ids_are_ascii_only(tmp_path: Path, bad: str) -> None:
    assert not layout.is_run_id(bad)
    with pytest.raises(InvalidRunId, match=r"is not a run id; run ids look like run_20250101T000000Z_ab12cd34"):
        layout.run_dir(tmp_path, bad)


@pytest.mark.parametrize("bad", ["series/\uff41.csv", "\u00e9t\u00e9.json", "series/a\u0661.csv"])
def test_file_names_are_ascii_only(tmp_path: Path, bad: str) -> None:
    assert not layout.FILE_NAME.match(bad.rsplit("/", 1)[-1])
    run = tmp_path / DECOY_RUN
    (run / "series").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (run / bad).write_text("x")
    with pytest.raises(RunNotFound, match="not found"):
        Registry(tmp_path).file_path(DECOY_RUN, bad)
    assert bad not in [f["name"] for f in Registry(tmp_path).files(DECOY_RUN)]


@pytest.mark.parametrize("path", [
    "/v1/runs/{bad}", "/v1/runs/{bad}/index", "/v1/runs/{bad}/series/served", "/v1/runs/{bad}/export",
    "/v1/artifacts/{bad}", "/v1/artifacts/{bad}/files", "/v1/artifacts/{bad}/files/spec.yaml",
    "/v1/runs/compare?a={bad}&b={good}",
])
def test_text_that_is_not_a_run_id_is_a_400_and_an_absent_run_a_404(site: Site, path: str) -> None:
    for bad in [*NOT_ASCII_RUN_IDS, "not-a-run-id", "run_20250101T000000Z_ABCDEF12"]:
        resp = httpx.get(site.engine_url + path.format(bad=quote(bad), good=site.run_id))
        assert resp.status_code == 400, (path, bad, resp.text)
        assert resp.headers["content-type"] == PROBLEM
        assert "is not a run id; run ids look like run_" in resp.json()["detail"]
    absent = httpx.get(site.engine_url + path.format(bad="run_20200101T000000Z_00000000", good=site.run_id))
    assert absent.status_code == 404 and absent.headers["content-type"] == PROBLEM
    deleted = httpx.delete(f"{site.engine_url}/v1/runs/{quote(NOT_ASCII_RUN_IDS[0])}")
    assert deleted.status_code == 400
