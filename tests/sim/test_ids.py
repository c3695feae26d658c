"""
Sim's ids are ASCII: digits and letters of other scripts are not id characters.
Over HTTP (a real server on loopback) a malformed id is a 400 problem, a
well-formed one nothing answers to a 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.servers import serve

from flowtime.api.sim import create_sim_app
from flowtime.settings import SimSettings
from flowtime.sim.store import HASH_PREFIX, NAME, NAME_ID, VERSION_DIR
from flowtime.sim.template import SEMVER, TEMPLATE_ID, TemplateValidationError, parse_template
from flowtime.sim.workspace import MODEL_ID

ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"  # str.isdigit() and `\d` say yes to these
FULLWIDTH = "０１２３４５６７８９"


def to_script(text: str, digits: str = ARABIC_INDIC) -> str:
    return "".join(digits[int(c)] if c.isascii() and c.isdigit() else c for c in text)


def test_model_ids_take_only_ascii_digits() -> None:
    good = "model_20251003T120000Z_0123abcd"
    assert MODEL_ID.fullmatch(good)
    assert not MODEL_ID.fullmatch(to_script(good))
    assert not MODEL_ID.fullmatch(good.replace("2025", to_script("2025", FULLWIDTH)))
    assert not MODEL_ID.match(good + "\n")


@pytest.mark.parametrize("pattern", [TEMPLATE_ID, HASH_PREFIX, NAME, NAME_ID, VERSION_DIR, SEMVER])
def test_no_id_pattern_takes_non_ascii(pattern: object) -> None:
    import re

    assert isinstance(pattern, re.Pattern)
    for text in ("v١", "١.٠", "é", "model_٢", "abcdef٠١٢٣٤٥", "n_ab١٢", "ｖ1", "x\u0301"):
        assert pattern.fullmatch(text) is None, (pattern.pattern, text)


def test_a_template_version_in_other_digits_is_refused() -> None:
    with pytest.raises(TemplateValidationError, match=r"metadata\.version must look like 1\.2\.3"):
        parse_template("metadata: {id: t, version: '١.٠'}\ngrid: {bins: 1, binSize: 1, binUnit: hours}\n"
                       "nodes: [{id: a, kind: const, values: [1]}]\noutputs: [{series: a}]\n")


def test_a_parameter_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(TemplateValidationError, match="parameter name must start with a letter"):
        parse_template('metadata: {id: t}\nparameters: [{name: "n\\n", type: integer, default: 1}]\n'
                       "grid: {bins: 1, binSize: 1, binUnit: hours}\n"
                       "nodes: [{id: a, kind: const, values: [1]}]\noutputs: [{series: a}]\n")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data: Path = tmp_path_factory.mktemp("ids")
    with serve(create_sim_app(SimSettings(data_dir=data)), "sim-ids") as url, \
            httpx.Client(base_url=url, timeout=10) as c:
        yield c


def problem(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status
    return str(body["detail"])


MALFORMED = [
    ("GET", "/sim/models/" + to_script("model_20251003T120000Z_0123abcd")),
    ("GET", "/sim/models/ünïcode-name"),
    ("GET", "/sim/models/name@v٢"),
    ("GET", "/api/v1/templates/commuter-ra\u0131l"),
    ("POST", "/api/v1/templates/" + to_script("t1") + "/generate"),
    ("GET", "/api/v1/models/-leading-dash"),
    ("GET", "/api/v1/models?template=caf%C3%A9"),
    ("GET", "/api/v1/models/commuter-rail/" + to_script("0123456789ab")),
    ("GET", "/api/v1/models/commuter-rail/0123456789AB/preview.svg"),
]


@pytest.mark.parametrize(("method", "path"), MALFORMED)
def test_a_malformed_id_is_a_400_problem(client: httpx.Client, method: str, path: str) -> None:
    assert "malformed" in problem(client.request(method, path, json={}), 400)


ABSENT = [
    ("GET", "/sim/models/model_20251003T120000Z_0123abcd"),
    ("GET", "/sim/models/never-exported"),
    ("GET", "/sim/models/model_20251003T120000Z_0123ABCD"),  # not a model id, but a well-formed name
    ("GET", "/sim/models/never-exported@v2"),
    ("GET", "/api/v1/templates/no-such-template"),
    ("POST", "/api/v1/templates/no-such-template/generate"),
    ("GET", "/api/v1/models/commuter-rail"),
    ("GET", "/api/v1/models/commuter-rail/0123456789ab"),
    ("GET", "/api/v1/models/commuter-rail/0123456789ab/preview.svg"),
]


@pytest.mark.parametrize(("method", "path"), ABSENT)
def test_a_well_formed_id_nothing_answers_to_is_a_404(client: httpx.Client, method: str, path: str) -> None:
    problem(client.request(method, path, json={}), 404)
