"""
Input limits, over HTTP on both services: each one is enforced before any work
starts and answered with an application/problem+json 4xx - 413 for the request
body, 400 for a model or parameters over a limit (see SECURITY.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.hardening.servers import HELLO, PROBLEM, engine, sim

from flowtime.errors import ExpressionError, LimitExceeded
from flowtime.expr.parser import parse_expression
from flowtime.model.limits import Limits
from flowtime.model.load import load_model
from flowtime.model.yamltext import MAX_DEPTH
from flowtime.settings import EngineSettings, SimSettings

YAML = {"Content-Type": "application/x-yaml"}
BODY_LIMIT = 4 * 1024 * 1024
ENGINE_MODEL_ROUTES = ("/v1/run", "/v1/graph", "/v1/validate")
SIM_VALIDATE_ROUTES = ("/api/v1/models/validate", "/sim/models/validate")

BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
) + "\n"


def model(*, bins: int = 4, nodes: str = "  - {id: a, kind: const, values: 1}\n",
          outputs: str = "") -> str:
    return f"schemaVersion: 1\ngrid: {{bins: {bins}, binSize: 1, binUnit: hours}}\nnodes:\n{nodes}{outputs}"


def expr_model(expr: str) -> str:
    return model(nodes=f'  - {{id: x, kind: const, values: 1}}\n  - {{id: a, kind: expr, expr: "{expr}"}}\n')


def const_nodes(n: int) -> str:
    return "".join(f"  - {{id: n{i}, kind: const, values: 1}}\n" for i in range(n))


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits-engine")


@pytest.fixture(scope="module")
def eng(engine_dir: Path) -> Iterator[httpx.Client]:
    with engine(engine_dir, max_body_bytes=BODY_LIMIT, max_bins=1000, max_nodes=50) as url, \
            httpx.Client(base_url=url, timeout=60, headers=YAML) as client:
        yield client


@pytest.fixture(scope="module")
def simc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with sim(tmp_path_factory.mktemp("limits-sim"), max_body_bytes=BODY_LIMIT,
             max_array_length=100) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["detail"] and body["error"]
    return body


def report(resp: httpx.Response) -> list[str]:
    """A validate endpoint's answer to a bad model: 200, valid false, the problem messages."""
    assert resp.status_code == 200, resp.text[:500]
    body = resp.json()
    assert body.get("valid", body.get("structure_valid")) is False
    return [p["message"] for p in body["problems"]]


def run_count(eng: httpx.Client) -> int:
    total: int = eng.get("/v1/runs").json()["total"]
    return total


# -- request body: 413 on both services, declared or streamed -----------------------------------


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked transfer), so only the bytes received count."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
def test_a_body_over_the_limit_is_a_413_on_every_engine_write_route(eng: httpx.Client,
                                                                     streamed: bool) -> None:
    big = ("# padding\n" * (BODY_LIMIT // 10 + 1) + HELLO).encode()
    before = run_count(eng)
    # POST /v1/artifacts/index reads no body: only a declared size can be refused there.
    for route in (*ENGINE_MODEL_ROUTES, *([] if streamed else ["/v1/artifacts/index"])):
        body = problem(eng.post(route, content=chunks(big) if streamed else big), 413)
        assert body["title"] == "Request body too large"
        assert "FLOWTIME_MAX_BODY_BYTES" in body["detail"] and str(BODY_LIMIT) in body["detail"]
    assert run_count(eng) == before


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
def test_a_body_over_the_limit_is_a_413_on_every_sim_write_route(simc: httpx.Client,
                                                                  streamed: bool) -> None:
    big = json.dumps({"parameters": {"pad": "x" * BODY_LIMIT}}).encode()
    for route in ("/api/v1/templates/support-backlog/generate", "/sim/models/export",
                  *SIM_VALIDATE_ROUTES):
        resp = simc.post(route, content=chunks(big) if streamed else big,
                         headers={"Content-Type": "application/json"})
        body = problem(resp, 413)
        assert "FLOWTIME_SIM_MAX_BODY_BYTES" in body["detail"]
    assert simc.get("/api/v1/models").json()["models"] == []


def test_a_body_at_the_limit_is_accepted(eng: httpx.Client) -> None:
    text = HELLO.encode()
    padded = text + b"#" * (BODY_LIMIT - len(text))
    assert len(padded) == BODY_LIMIT
    assert eng.post("/v1/validate", content=padded).json()["valid"] is True


# -- grid bins, nodes, outputs -------------------------------------------------------------------


def test_bins_over_the_limit_are_a_400_before_anything_is_allocated(eng: httpx.Client) -> None:
    """A billion bins would need 8 GB per series: refused in milliseconds, naming the limit."""
    text = expr_model("x * 2").replace("bins: 4", "bins: 1000000000")
    for route in ("/v1/run", "/v1/graph"):
        body = problem(eng.post(route, content=text), 400)
        assert "bins must be between 1 and 1000 (limit max_bins), got 1000000000" in body["detail"]
    assert any("limit max_bins" in m for m in report(eng.post("/v1/validate", content=text)))


def test_bins_at_the_limit_run(eng: httpx.Client) -> None:
    resp = eng.post("/v1/run", content=expr_model("x * 2").replace("bins: 4", "bins: 1000"),
                    params={"series": "false"})
    assert resp.status_code == 200, resp.text


def test_nodes_over_the_limit_are_a_400_on_every_engine_model_route(eng: httpx.Client) -> None:
    before = run_count(eng)
    for route in ENGINE_MODEL_ROUTES:
        body = problem(eng.post(route, content=model(nodes=const_nodes(51))), 400)
        assert body["limit"] == "max_nodes"
        assert "51 nodes; the limit is 50" in body["detail"]
    assert run_count(eng) == before
    assert eng.post("/v1/validate", content=model(nodes=const_nodes(50))).json()["valid"] is True


def scalar_list(key: str, n: int) -> str:
    """A list of ``n`` items that costs little to parse: the count is checked before the items."""
    return f"{key}: [{', '.join(['0'] * n)}]\n"


def test_nodes_over_the_default_limit_are_a_400_on_sim(simc: httpx.Client) -> None:
    """Sim validates with the default model limits (100,000 nodes)."""
    text = "schemaVersion: 1\ngrid: {bins: 4, binSize: 1, binUnit: hours}\n" + scalar_list("nodes", 100_001)
    body = problem(simc.post("/api/v1/models/validate", content=text), 400)
    assert body["limit"] == "max_nodes"
    assert "100001 nodes; the limit is 100000" in body["detail"]


def test_outputs_over_the_limit_are_a_400_on_both_services(eng: httpx.Client,
                                                           simc: httpx.Client) -> None:
    """The default output limit is 100,000 (Limits.max_outputs)."""
    text = model() + scalar_list("outputs", 100_001)
    for resp in (eng.post("/v1/run", content=text), eng.post("/v1/validate", content=text),
                 simc.post("/sim/models/validate", content=text)):
        body = problem(resp, 400)
        assert body["limit"] == "max_outputs"
        assert "100001 outputs; the limit is 100000" in body["detail"]


# -- expressions: length and nesting --------------------------------------------------------------


DEEP = {
    "parentheses": "(" * 10_000 + "1" + ")" * 10_000,
    "unary minus": "-" * 10_000 + "1",
    "mixed signs": "+-" * 5_000 + "1",
}


@pytest.mark.parametrize("name", DEEP)
def test_ten_thousand_deep_expressions_are_a_clean_400(eng: httpx.Client, simc: httpx.Client,
                                                       name: str) -> None:
    text = expr_model(DEEP[name])
    for route in ("/v1/run", "/v1/graph"):
        body = problem(eng.post(route, content=text), 400)
        assert body["errors"][0]["path"] == "nodes.a.expr"
    assert report(eng.post("/v1/validate", content=text))
    for route in SIM_VALIDATE_ROUTES:
        assert report(simc.post(route, content=text))
    assert eng.get("/v1/healthz").status_code == 200


@pytest.mark.parametrize("name", DEEP)
def test_deep_expressions_hit_the_nesting_limit_whatever_the_length_limit(name: str) -> None:
    """With the length limit out of the way, the nesting check still comes first: no RecursionError."""
    with pytest.raises(ExpressionError, match="nests 10000 levels deep; the limit is 200"):
        parse_expression(DEEP[name], max_length=10**6)


def test_nesting_over_the_limit_is_a_400_naming_depth_and_limit(eng: httpx.Client) -> None:
    at_limit = expr_model("(" * 200 + "x" + ")" * 200)
    assert eng.post("/v1/run", content=at_limit, params={"series": "false"}).status_code == 200
    over = expr_model("(" * 201 + "x" + ")" * 201)
    body = problem(eng.post("/v1/run", content=over), 400)
    assert "expression nests 201 levels deep; the limit is 200" in body["detail"]


def test_expressions_over_the_length_limit_are_a_400(eng: httpx.Client, simc: httpx.Client) -> None:
    long = "+".join(["x"] * 5_001)  # 10,001 characters; the limit is 10,000
    body = problem(eng.post("/v1/run", content=expr_model(long)), 400)
    assert "expression is 10001 characters long; the limit is 10000" in body["detail"]
    messages = report(simc.post("/api/v1/models/validate", content=expr_model(long)))
    assert any("the limit is 10000" in m for m in messages)


def test_the_core_limits_are_configurable() -> None:
    tight = Limits(max_expression_length=20, max_expression_nesting=3, max_outputs=1, max_nodes=2)
    with pytest.raises(Exception, match="the limit is 20"):
        load_model(expr_model("x + x + x + x + x + x + x"), limits=tight)
    with pytest.raises(Exception, match="the limit is 3"):
        load_model(expr_model("((((x))))"), limits=tight)
    with pytest.raises(LimitExceeded, match="the limit is 1"):
        load_model(model(outputs="outputs: [{series: a}, {series: a}]\n"), limits=tight)
    with pytest.raises(LimitExceeded, match="the limit is 2"):
        load_model(model(nodes=const_nodes(3)), limits=tight)


# -- template parameters -----------------------------------------------------------------------------


def test_template_array_parameters_over_the_limit_are_a_400(simc: httpx.Client) -> None:
    too_long = {"arrivals": list(range(101))}  # the server's max_array_length is 100
    gen = simc.post("/api/v1/templates/support-backlog/generate", json={"parameters": too_long})
    body = problem(gen, 400)
    assert body["errors"][0]["path"] == "parameters.arrivals"
    assert "101 elements; the limit is 100 (max_array_length)" in body["errors"][0]["message"]
    export = simc.post("/sim/models/export", json={"template": "support-backlog",
                                                   "name": "too-long", "parameters": too_long})
    assert "101 elements; the limit is 100" in problem(export, 400)["detail"]
    assert simc.get("/api/v1/models").json()["models"] == []


def test_template_array_parameters_at_the_limit_are_accepted(simc: httpx.Client) -> None:
    ok = simc.post("/api/v1/templates/support-backlog/generate",
                   json={"parameters": {"arrivals": list(range(100)), "bins": 100}})
    assert ok.status_code == 200, ok.text


# -- YAML: alias bombs, deep nesting, unsafe tags ---------------------------------------------------


def test_yaml_alias_bombs_are_a_400_on_both_services(eng: httpx.Client, simc: httpx.Client) -> None:
    for resp in (*(eng.post(r, content=BOMB) for r in ENGINE_MODEL_ROUTES),
                 *(simc.post(r, content=BOMB) for r in SIM_VALIDATE_ROUTES),
                 simc.post("/api/v1/models/validate", json={"model": BOMB})):
        body = problem(resp, 400)
        assert body["limit"] == "yaml_alias_expansion"
        assert "possible YAML bomb" in body["detail"]


def test_merge_key_chains_are_refused_as_bombs(eng: httpx.Client) -> None:
    """Each `<<: *prev` copies every key before it: quadratic growth, refused before merging."""
    chain = "\n".join(["m0: &m0 {k0: 1}"] + [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: 1}}"
                                              for i in range(1, 3000)])
    assert problem(eng.post("/v1/run", content=chain), 400)["limit"] == "yaml_alias_expansion"


DEEP_YAML = {
    "flow sequences": "[" * 100_000,
    "closed flow sequences": "[" * 100_000 + "]" * 100_000,
    "flow mappings": "{a: " * 100_000,
    "block sequences": "- " * 100_000 + "x",
    "under a key": "nodes: " + "[" * 100_000,
}


@pytest.mark.parametrize("name", DEEP_YAML)
def test_deeply_nested_yaml_is_a_clean_error_not_a_crash(eng: httpx.Client, simc: httpx.Client,
                                                         name: str) -> None:
    text = DEEP_YAML[name]
    for route in ("/v1/run", "/v1/graph"):
        body = problem(eng.post(route, content=text), 400)
        assert "nesting deeper than 200 levels" in body["detail"]
    assert report(eng.post("/v1/validate", content=text)) == ["nesting deeper than 200 levels"]
    for route in SIM_VALIDATE_ROUTES:
        assert report(simc.post(route, content=text)) == ["nesting deeper than 200 levels"]
    assert eng.get("/v1/healthz").status_code == 200
    assert simc.get("/api/v1/healthz").status_code == 200


def test_deeply_nested_yaml_does_not_crash_the_parser_process() -> None:
    """
    In a child process, so that a regression shows up as a failed test rather than
    a segfault of the test worker (libyaml's composer recurses on the C stack).
    """
    script = (
        "from flowtime.model.load import load_model\n"
        "from flowtime.errors import ModelSyntaxError\n"
        "for text in ['[' * 200_000, '- ' * 200_000, '{a: ' * 200_000, 'a:\\n' + ' [' * 200_000]:\n"
        "    try:\n"
        "        load_model(text)\n"
        "    except ModelSyntaxError as exc:\n"
        "        assert 'nesting deeper than 200 levels' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('accepted')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


def test_nesting_within_the_limit_is_parsed() -> None:
    loaded = load_model("metadata: {x: " + "[" * 190 + "1" + "]" * 190 + "}\n" + model())
    assert list(loaded.model.node_ids) == ["a"]


def test_unsafe_yaml_tags_never_run_code(eng: httpx.Client, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    for text in (f"!!python/object/apply:os.system ['touch {canary}']\n",
                 f"a: !!python/object/apply:os.system ['touch {canary}']\n",
                 f"schemaVersion: !!python/object/apply:os.system ['touch {canary}']\n"
                 "grid: {bins: 1, binSize: 1, binUnit: hours}\nnodes: []\n",
                 "a: !!python/name:os.system\n"):
        problem(eng.post("/v1/run", content=text), 400)
    assert not canary.exists()


# -- JSON nesting (json.loads recurses) ------------------------------------------------------------


def test_deeply_nested_json_bodies_are_a_400(eng: httpx.Client, simc: httpx.Client) -> None:
    deep = '{"yaml": ' + "[" * 100_000 + "]" * 100_000 + "}"
    problem(eng.post("/v1/run", content=deep, headers={"Content-Type": "application/json"}), 400)
    deep_params = '{"parameters": {"bins": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    for route, body in (("/api/v1/templates/support-backlog/generate", deep_params),
                        ("/sim/models/export", deep_params),
                        ("/api/v1/models/validate", '{"model": ' + "[" * 100_000 + "}"),
                        ("/sim/models/validate", "[" * 100_000)):
        problem(simc.post(route, content=body, headers={"Content-Type": "application/json"}), 400)


def test_a_deeply_nested_provenance_header_is_a_400(eng: httpx.Client) -> None:
    header = "[" * 8_000 + "]" * 8_000
    body = problem(eng.post("/v1/run", content=HELLO, headers={"X-Model-Provenance": header}), 400)
    assert body["errors"][0]["path"] == "X-Model-Provenance"


# -- the documentation -----------------------------------------------------------------------------


def test_security_md_states_every_limit_with_its_setting_and_default(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("FLOWTIME_")]:
        monkeypatch.delenv(key)
    text = (Path(__file__).parents[2] / "SECURITY.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]

    def row(*names: str) -> str:
        found = [r for r in rows if any(f"`{n}`" in r for n in names)]
        assert len(found) == 1, names
        return found[0]

    for settings, prefix in ((EngineSettings(data_dir=tmp_path), "FLOWTIME_"),
                             (SimSettings(data_dir=tmp_path), "FLOWTIME_SIM_")):
        for name in type(settings).model_fields:
            if name.startswith("max_"):
                assert str(getattr(settings, name)) in row(prefix + name.upper()), name
    for field in dataclasses.fields(Limits):
        value = getattr(Limits(), field.name)
        assert str(value) in row(f"Limits.{field.name}", f"FLOWTIME_{field.name.upper()}"), field.name
    assert str(MAX_DEPTH) in row("flowtime.model.yamltext.MAX_DEPTH")
    for env in ("FLOWTIME_API_TOKEN", "FLOWTIME_CORS_ORIGIN", "FLOWTIME_SIM_CORS_ORIGIN"):
        assert f"`{env}`" in text


# -- inputs that used to escape as 5xx or hang ---------------------------------------------------------


RECURSIVE_ALIASES = ["a: &x [*x]\n", "&a {b: *a}\n", "a: &x {b: [1, {c: *x}]}\n"]


@pytest.mark.parametrize("text", RECURSIVE_ALIASES)
def test_a_recursive_alias_is_a_400_at_once(eng: httpx.Client, simc: httpx.Client, text: str) -> None:
    """An alias inside its own anchor would expand forever (memory grows until the process dies)."""
    for resp in (*(eng.post(route, content=text) for route in ENGINE_MODEL_ROUTES),
                 *(simc.post(route, content=text) for route in SIM_VALIDATE_ROUTES)):
        assert problem(resp, 400)["limit"] == "yaml_alias_expansion"


JSON = {"Content-Type": "application/json"}
SURROGATE = '"\\ud800"'


def test_lone_surrogates_in_json_bodies_are_a_400(eng: httpx.Client, simc: httpx.Client) -> None:
    """``"\\ud800"`` is valid JSON but not Unicode: it could never be written out as UTF-8."""
    hello = json.dumps(HELLO)
    for resp in (
        eng.post("/v1/run", content=f'{{"yaml": {hello}, {SURROGATE}: 1}}', headers=JSON),
        eng.post("/v1/run", content=f'{{"yaml": {hello[:-1]}# \\udfff\\n"}}', headers=JSON),
        simc.post("/api/v1/templates/support-backlog/generate",
                  content=f'{{"parameters": {{{SURROGATE}: 1}}}}', headers=JSON),
        simc.post("/sim/models/export", headers=JSON, content=(
            f'{{"template": "support-backlog", "name": "lone", "tags": [{SURROGATE}]}}')),
        simc.post("/sim/models/export", headers=JSON, content=(
            f'{{"template": "support-backlog", "name": "lone", "metadata": {{"title": {SURROGATE}}}}}')),
    ):
        problem(resp, 400)
    for route in SIM_VALIDATE_ROUTES:
        resp = simc.post(route, content=f'{{"model": {SURROGATE}}}', headers=JSON)
        assert resp.status_code in (200, 400), resp.text
    assert simc.get("/sim/models/lone").status_code == 404
    # A surrogate *pair* is an ordinary character.
    ok = simc.post("/sim/models/export", headers=JSON, content=(
        '{"template": "support-backlog", "name": "pair", "tags": ["\\ud83d\\ude00"]}'))
    assert ok.status_code == 201 and ok.json()["artifact_metadata"]["tags"][-1] == "\U0001f600"


def test_numbers_longer_than_python_reads_are_a_400(eng: httpx.Client, simc: httpx.Client) -> None:
    """Integers over sys.get_int_max_str_digits() (4300) make int() raise a bare ValueError."""
    big = "9" * 5000
    for text in (expr_model("x").replace("bins: 4", f"bins: {big}"),
                 model(nodes=f"  - {{id: a, kind: const, values: [{big}]}}\n")):
        body = problem(eng.post("/v1/run", content=text), 400)
        assert "too long" in body["detail"]
    problem(eng.post("/v1/run", content=f'{{"yaml": {json.dumps(HELLO)}, "seed": {big}}}',
                     headers=JSON), 400)
    problem(eng.post("/v1/run", content=HELLO, headers={"X-Model-Provenance": f'{{"modelId": {big}}}'}),
            400)
    problem(simc.post("/api/v1/templates/support-backlog/generate",
                      content=f'{{"parameters": {{"bins": {big}}}}}', headers=JSON), 400)


REFUSED_SCALARS = {
    "merge key of a scalar": "schemaVersion: 1\ngrid: {<<: 1}\n",
    "merge key of scalars": "schemaVersion: 1\ngrid: {<<: [1, 2]}\n",
    "control character": "schemaVersion: 1\nmetadata: {title: a\x07b}\n",
    "impossible date": "schemaVersion: 1\nmetadata: {title: 2001-02-29}\n",
    "badly tagged scalar": "schemaVersion: 1\nmetadata: {title: !!float x}\n",
}


@pytest.mark.parametrize("name", REFUSED_SCALARS)
def test_yaml_that_pyyaml_refuses_late_is_a_located_400(eng: httpx.Client, name: str) -> None:
    """Errors PyYAML raises while building values (not while parsing) are located problems, not 500s."""
    body = problem(eng.post("/v1/run", content=REFUSED_SCALARS[name]), 400)
    assert body["errors"] and body["errors"][0]["line"] == 2, body


_BASE = "schemaVersion: 1\ngrid: {bins: 1, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, kind: const, values: [1]}\n"
LATE_CONVERSIONS = {
    "schemaVersion of 5000 digits in quotes": _BASE.replace("schemaVersion: 1", f"schemaVersion: '{'9' * 5000}'"),
    "seed of 5000 digits in quotes": _BASE + f"rng: {{seed: '{'9' * 5000}'}}\n",
    "pmf key too large for a float": _BASE + "  - {id: p, kind: pmf, pmf: {" + "9" * 400 + ": 1}}\n",
    "schemaVersion of non-ASCII digits": _BASE.replace("schemaVersion: 1", "schemaVersion: '\u00b2'"),
}


@pytest.mark.parametrize("name", LATE_CONVERSIONS)
def test_values_the_loader_converts_late_are_a_400(eng: httpx.Client, name: str) -> None:
    """Text the loader turns into numbers itself (int(), float()) - these were 500s once."""
    body = problem(eng.post("/v1/run", content=LATE_CONVERSIONS[name]), 400)
    assert body["errors"] and body["errors"][0]["path"], body


# -- work bounded up front (issue 10's hostile review) ---------------------------------------------------


def test_nodes_times_bins_is_bounded_before_any_array_is_built(tmp_path: Path) -> None:
    """1,000 consts x 1,000,000 bins is 39 KB of YAML but 8 GB of series: refused at once, naming the limit."""
    text = ("schemaVersion: 1\ngrid: {bins: 1000000, binSize: 1, binUnit: minutes}\nnodes:\n"
            + "".join(f"  - {{id: c{i}, values: 1}}\n" for i in range(1000)))
    assert len(text) < 40_000
    with engine(tmp_path) as url, httpx.Client(base_url=url, timeout=60, headers=YAML) as c:
        for route in ENGINE_MODEL_ROUTES:
            body = problem(c.post(route, content=text), 400)
            assert body["limit"] == "max_cells"
            assert "1000 nodes x 1000000 bins = 1000000000 values; the limit is 20000000" in body["detail"]
        assert c.get("/v1/runs").json()["total"] == 0
        at_limit = ("schemaVersion: 1\ngrid: {bins: 5000, binSize: 1, binUnit: minutes}\nnodes:\n"
                    + "".join(f"  - {{id: c{i}, values: 1}}\n" for i in range(4)))
        assert c.post("/v1/run", content=at_limit, params={"series": "false"}).status_code == 200
    with pytest.raises(LimitExceeded, match="max_cells"):
        load_model(at_limit, limits=Limits(max_cells=19_999))
    assert load_model(at_limit, limits=Limits(max_cells=20_000)).model.grid.bins == 5000


def test_the_expressions_of_a_model_are_bounded_together(tmp_path: Path) -> None:
    """1,000 expressions of 10,000 characters cost minutes of CPU: the total is refused before parsing."""
    long = "+".join(["a*1"] * 2500)
    nodes = "  - {id: a, values: 1}\n" + "".join(f"  - {{id: x{i}, kind: expr, expr: '{long}'}}\n" for i in range(30))
    text = f"schemaVersion: 1\ngrid: {{bins: 2, binSize: 1, binUnit: hours}}\nnodes:\n{nodes}"
    with engine(tmp_path) as url, httpx.Client(base_url=url, timeout=60, headers=YAML) as c:
        for route in ENGINE_MODEL_ROUTES:
            body = problem(c.post(route, content=text), 400)
            assert body["limit"] == "max_expression_total"
            assert f"the expressions hold {30 * len(long)} characters together; the limit is 250000" in body["detail"]


def test_the_values_answered_inline_are_bounded(tmp_path: Path) -> None:
    text = model(bins=600, nodes="  - {id: a, values: 1}\n  - {id: b, kind: expr, expr: a * 2}\n")
    with engine(tmp_path, max_response_values=1000) as url, \
            httpx.Client(base_url=url, timeout=60, headers=YAML) as c:
        body = problem(c.post("/v1/run", content=text), 400)
        assert body["limit"] == "max_response_values" and "?series=false" in body["detail"]
        assert c.get("/v1/runs").json()["total"] == 0  # refused before anything was computed or stored
        ok = c.post("/v1/run", content=text, params={"series": "false"})
        assert ok.status_code == 200 and "series" not in ok.json()
        run_id = ok.json()["runId"]
        values = c.get(f"/v1/runs/{run_id}/series/b", params={"format": "json"}).json()["values"]
        assert values == [2] * 600


# -- provenance headers that used to answer 500 ------------------------------------------------------------


@pytest.mark.parametrize("header", [
    '{"modelId": "m", "templateTitle": "\\ud800"}',                     # a lone surrogate
    '{"modelId": "m", "x": ' + "[" * 300 + "]" * 300 + "}",             # deeper than JSON writers go
    '{"modelId": "m", "parameters": {"p": NaN}}',                        # not JSON, read by Python
    '{"modelId": "m", "parameters": {"p": Infinity}}',
    '{"modelId": "m", "n": 1' + "0" * 5000 + "}",                        # an integer too long to read
], ids=["lone surrogate", "deep nesting", "NaN", "Infinity", "long integer"])
def test_unstorable_provenance_headers_are_a_400_and_store_nothing(tmp_path: Path, header: str) -> None:
    with engine(tmp_path) as url, httpx.Client(base_url=url, timeout=60, headers=YAML) as c:
        body = problem(c.post("/v1/run", content=HELLO, headers={"X-Model-Provenance": header}), 400)
        assert body["errors"][0]["path"].startswith("X-Model-Provenance")
        assert c.get("/v1/runs").json()["total"] == 0
        assert c.get("/v1/healthz").status_code == 200


def test_raw_utf8_in_the_provenance_header_is_stored_as_utf8(tmp_path: Path) -> None:
    """Servers read header bytes as Latin-1; unescaped UTF-8 must not come back garbled."""
    raw = '{"modelId": "model_x", "templateTitle": "Café 需求"}'.encode()
    with engine(tmp_path) as url, httpx.Client(base_url=url, timeout=60) as c:
        resp = c.post("/v1/run", content=HELLO, headers=[(b"Content-Type", b"text/yaml"),
                                                         (b"X-Model-Provenance", raw)])
        assert resp.status_code == 200, resp.text
        assert resp.json()["provenance"]["templateTitle"] == "Café 需求"
        stored = c.get(f"/v1/runs/{resp.json()['runId']}").json()["provenance"]
        assert stored["templateTitle"] == "Café 需求"
        latin1 = c.post("/v1/run", content=HELLO, headers=[(b"Content-Type", b"text/yaml"),
                                                           (b"X-Model-Provenance", b'{"modelId": "caf\xe9"}')])
        assert problem(latin1, 400)["errors"][0]["path"] == "X-Model-Provenance"
