"""
A fit's observed CSV: a missing cell, a non-numeric cell or a short column is an error at its file, line and
column - from the Python API and the CLI (exit 1), and over HTTP (inline ``observed.csv``: a 400 problem body).

The model (QUEUE, 6 bins): arrivals 10 and capacity c give the backlog (10 - c) t after bin t; the good CSV
is the backlog of c = 7.5 (2.5, 5, ..., 15) with bin 2 left empty (a missing observation).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.engine_server import serve_engine
from tests.api.test_experiments import wait
from tests.test_cli_experiments import cli
from typer.testing import CliRunner

import flowtime
from flowtime.cli import app
from flowtime.errors import ExperimentError
from flowtime.experiments.observed import parse_observed_csv
from flowtime.settings import EngineSettings

QUEUE = (Path(__file__).parent / "queue.yaml").read_text(encoding="utf-8")  # hand-checked queue
GOOD = "bin_index,value\n0,2.5\n1,5\n2,\n3,10\n4,12.5\n5,15\n"
# (what is wrong, the CSV, line, column, words the message must hold)
BAD = [
    ("missing cell", "bin_index,value\n0,2.5\n1,5\n2\n3,10\n4,12.5\n5,15\n", 4, 2, "missing cell"),
    ("empty bin index", "bin_index,value\n0,2.5\n1,5\n,7\n3,10\n4,12.5\n5,15\n", 4, 1, "missing cell"),
    ("non-numeric cell", "bin_index,value\n0,2.5\n1,five\n2,\n3,10\n4,12.5\n5,15\n", 3, 2, "'five'"),
    ("non-integer index", "bin_index,value\n0,2.5\n1.5,5\n2,\n3,10\n4,12.5\n5,15\n", 3, 1, "'1.5'"),
    ("short column", "bin_index,value\n0,2.5\n1,5\n2,\n3,10\n", 6, 1, "no row for bins 4, 5"),
]
SPEC = {"kind": "fit", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 10}}],
        "settings": {"series": "backlog", "observed": {"file": "seen.csv"}}}


def test_a_good_observed_csv_gives_one_value_per_bin_with_none_where_missing() -> None:
    assert parse_observed_csv(GOOD, "seen.csv", 6, "p") == [2.5, 5.0, None, 10.0, 12.5, 15.0]


@pytest.mark.parametrize(("what", "csv", "line", "column", "words"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_observed_file_is_located_at_its_file_line_and_column(tmp_path: Path, what: str, csv: str,
                                                                    line: int, column: int, words: str) -> None:
    (tmp_path / "seen.csv").write_text(csv, encoding="utf-8")
    (tmp_path / "fit.yaml").write_text(json.dumps(SPEC), encoding="utf-8")
    with pytest.raises(ExperimentError, match=words) as e:
        flowtime.experiment(tmp_path / "fit.yaml", model=QUEUE)
    [p] = e.value.problems
    assert (p.path, p.source, p.line, p.column) == ("settings.observed.file", "seen.csv", line, column)


@pytest.mark.parametrize(("what", "csv", "line", "column", "words"), BAD, ids=[b[0] for b in BAD])
def test_the_cli_exits_1_naming_file_line_and_column(tmp_path: Path, what: str, csv: str, line: int,
                                                     column: int, words: str) -> None:
    (tmp_path / "seen.csv").write_text(csv, encoding="utf-8")
    (tmp_path / "model.yaml").write_text(QUEUE, encoding="utf-8")
    (tmp_path / "fit.yaml").write_text(json.dumps({**SPEC, "model": "model.yaml"}), encoding="utf-8")
    r = cli("fit", str(tmp_path / "fit.yaml"))  # a real process: main() turns the error into exit 1
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: ")
    assert f"seen.csv, line {line}, column {column}, settings.observed.file" in r.stderr
    assert words in r.stderr


def test_the_cli_fits_a_good_observed_file(tmp_path: Path) -> None:
    (tmp_path / "seen.csv").write_text(GOOD, encoding="utf-8")
    (tmp_path / "model.yaml").write_text(QUEUE, encoding="utf-8")
    (tmp_path / "fit.yaml").write_text(json.dumps({**SPEC, "model": "model.yaml"}), encoding="utf-8")
    r = CliRunner().invoke(app, ["fit", str(tmp_path / "fit.yaml"), "--json"], env={"FLOWTIME_DASK_ADDRESS": ""})
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["answer"]["parameters"]["capacity"] == pytest.approx(7.5, abs=1e-6)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = EngineSettings(data_dir=tmp_path_factory.mktemp("observed-csv"))
    with serve_engine(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def _inline(csv: str) -> dict[str, object]:
    return {**SPEC, "settings": {"series": "backlog", "observed": {"csv": csv}}}


@pytest.mark.parametrize(("what", "csv", "line", "column", "words"), BAD, ids=[b[0] for b in BAD])
def test_an_inline_observed_csv_over_http_is_a_located_400(client: httpx.Client, what: str, csv: str, line: int,
                                                           column: int, words: str) -> None:
    r = client.post("/v1/experiments", json={"spec": _inline(csv), "model": QUEUE})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    [err] = r.json()["errors"]
    assert (err["path"], err["line"], err["column"]) == ("settings.observed.csv", line, column)
    assert words in err["message"]


def test_an_inline_observed_csv_over_http_is_fitted(client: httpx.Client) -> None:
    r = client.post("/v1/experiments", json={"spec": _inline(GOOD), "model": QUEUE})
    assert r.status_code == 202, r.text
    got = wait(client, r.headers["location"])
    assert got["status"] == "done", got
    assert got["result"]["answer"]["parameters"]["capacity"] == pytest.approx(7.5, abs=1e-6)
