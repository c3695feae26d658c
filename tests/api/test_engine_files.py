"""`file:` series over HTTP: read only inside the telemetry root, never without one (a real server on loopback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.engine_server import serve_engine

from flowtime.settings import EngineSettings

PROBLEM = "application/problem+json"
YAML = {"Content-Type": "text/yaml"}


def model(ref: str) -> str:
    return ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - {id: cap, values: [2, 2, 2]}\n"
            "topology:\n  nodes:\n    - id: Hub\n      kind: serviceWithBuffer\n"
            f"      semantics: {{arrivals: '{ref}', served: cap}}\n")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("telemetry")
    (top / "root" / "tele").mkdir(parents=True)
    (top / "root" / "tele" / "arrivals.csv").write_text("bin_index,value\n0,5\n1,1\n2,0\n")
    (top / "secret.csv").write_text("bin_index,value\n0,1\n")
    os.symlink(top / "secret.csv", top / "root" / "link.csv")
    return top


@pytest.fixture(scope="module")
def with_root(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = EngineSettings(data_dir=tmp_path_factory.mktemp("engine-data"), telemetry_root=root / "root")
    with serve_engine(settings) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def without_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with serve_engine(EngineSettings(data_dir=tmp_path_factory.mktemp("engine-data"))) as url, \
            httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_files_inside_the_root_are_read_relative_to_it(with_root: httpx.Client) -> None:
    for ref in ("file:tele/arrivals.csv", "file://tele/arrivals.csv"):
        resp = with_root.post("/v1/run", content=model(ref), headers=YAML)
        assert resp.status_code == 200, resp.text
        assert resp.json()["series"]["arrivals"] == [5, 1, 0]
        assert resp.json()["series"]["hub_queue"] == [3, 2, 0]


@pytest.mark.parametrize("ref", ["file:../secret.csv", "file:tele/../../secret.csv", "file:link.csv",
                                 "file:{top}/secret.csv", "file://{top}/secret.csv"])  # ..., symlink, absolute, file:///abs
def test_a_path_that_escapes_the_root_is_a_400(with_root: httpx.Client, root: Path, ref: str) -> None:
    resp = with_root.post("/v1/run", content=model(ref.format(top=root)), headers=YAML)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    [error] = resp.json()["errors"]
    assert error["path"] == "topology.nodes.Hub.semantics.arrivals"
    assert error["line"] == 9
    assert "is outside the telemetry root" in error["message"]
    assert str(root / "root") not in error["message"]  # the server's own paths are not told


def test_a_malformed_file_is_a_400_naming_its_line_relative_to_the_root(with_root: httpx.Client,
                                                                       root: Path) -> None:
    (root / "root" / "bad.csv").write_text("bin_index,value\n0,1\n0,2\n")
    resp = with_root.post("/v1/validate", content=model("file:bad.csv"), headers=YAML)
    assert resp.status_code == 200
    [problem] = resp.json()["problems"]
    assert problem["message"].endswith("`file:bad.csv`: bad.csv line 3: bin_index 0 is given twice "
                                       "(first on line 2)")


def test_without_a_telemetry_root_no_file_is_read_and_the_400_says_how_to_allow_it(
        without_root: httpx.Client) -> None:
    resp = without_root.post("/v1/run", content=model("file:tele/arrivals.csv"), headers=YAML)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    [error] = resp.json()["errors"]
    assert "FLOWTIME_TELEMETRY_ROOT" in error["message"] and "--telemetry-root" in error["message"]
