"""
``file:`` series in experiments: read once on the client and written into the model text as const nodes,
so a process pool's (or Dask's) workers get values, never the client's paths.

tests/cases/file_series: arrivals.csv is 10, 4, 0, 2 (bin 2 has no row: 0), the Hub queue is served at
capacity ``cap``: q_t = max(0, q_{t-1} + a_t - cap). cap 2: 8, 10, 8, 8 (max 10); cap 3: 7, 8, 5, 4 (max 8,
the case's expected hub_queue.csv); cap 5: 5, 4, 0, 0 (max 5).
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path
from threading import Event
from typing import Any

import numpy as np
import pytest

import flowtime
from flowtime.engine.plan import plan
from flowtime.errors import SeriesFileError
from flowtime.experiments.backends import ProcessPool, Result
from flowtime.experiments.batch import Batch
from flowtime.model.load import load_model
from flowtime.series_files import beside, inline_files

CASE = Path(__file__).resolve().parents[1] / "cases" / "file_series"
SPEC = {"kind": "sweep", "parameters": [{"target": "cap", "values": [2, 3, 5]}],
        "metrics": [{"name": "peak", "series": "hub_queue", "aggregate": "max"}], "capture": ["hub_queue"]}


@pytest.fixture
def case(tmp_path: Path) -> Path:
    """The case copied under a temporary folder: its path is what must not reach a worker."""
    shutil.copytree(CASE, tmp_path / "client-only")
    return tmp_path / "client-only" / "model.yaml"


class Recording:
    """A process pool that keeps the bytes of everything it sends to its workers."""

    name = "processes"

    def __init__(self) -> None:
        self.pool = ProcessPool(2)
        self.sent: list[bytes] = []

    def run(self, model_text: str, batches: Sequence[Batch], *, on_batch: Any = None,
            cancel: Event | None = None) -> list[Result]:
        self.sent.append(pickle.dumps((model_text, list(batches))))
        return self.pool.run(model_text, batches, on_batch=on_batch, cancel=cancel)

    def close(self) -> None:
        self.pool.close()


def test_inlining_keeps_every_series_and_leaves_no_file_reference(case: Path) -> None:
    text = case.read_text(encoding="utf-8")
    inlined = inline_files(text, str(case), beside(case))
    assert "file:" not in inlined and "telemetry" not in inlined
    before = plan(load_model(text, str(case), series_files=beside(case)).model).evaluate()
    after = plan(load_model(inlined, "inlined").model).evaluate()
    assert before.series.keys() == after.series.keys()
    for name in before.series:
        np.testing.assert_array_equal(after[name], before[name])
    assert after["hub_queue"].tolist() == [7.0, 8.0, 5.0, 4.0]
    assert after["arrivals"].tolist() == [10.0, 4.0, 0.0, 2.0]  # file: and file:// of one file: one node


def test_a_model_without_file_series_comes_back_unchanged(case: Path) -> None:
    text = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, values: [1, 2]}\n"
    assert inline_files(text, "m.yaml", beside(case)) == text


def test_a_process_pool_sweep_sends_values_not_paths_and_equals_in_process(
        case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inprocess = flowtime.experiment(SPEC, model=case)
    assert inprocess.table["peak"].tolist() == [10.0, 8.0, 5.0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the workers start here: nothing of the case is reachable by a relative path
    backend = Recording()
    try:
        pooled = flowtime.experiment(SPEC, model=case, backend=backend)
    finally:
        backend.close()
    np.testing.assert_array_equal(pooled.metrics, inprocess.metrics)
    np.testing.assert_array_equal(pooled.series["hub_queue"], inprocess.series["hub_queue"])
    assert pooled.series["hub_queue"][1].tolist() == [7.0, 8.0, 5.0, 4.0]
    assert backend.sent
    for payload in backend.sent:
        assert b"file:" not in payload
        assert b"telemetry" not in payload
        assert str(tmp_path).encode() not in payload


def test_the_cli_runs_a_sweep_over_a_file_series_model_on_a_pool(case: Path) -> None:
    import json

    from tests.test_cli_experiments import cli

    spec = case.parent / "sweep.json"
    spec.write_text(json.dumps({**SPEC, "model": "model.yaml"}), encoding="utf-8")
    r = cli("sweep", str(spec), "--backend", "processes:2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["table"]["rows"] == [[2.0, 10.0], [3.0, 8.0], [5.0, 5.0]]


def test_a_file_with_a_missing_value_is_refused_naming_file_and_bin(case: Path) -> None:
    (case.parent / "telemetry" / "edge_served.csv").write_text("bin_index,value\n0,2\n1,\n2,2\n3,1\n",
                                                               encoding="utf-8")
    with pytest.raises(SeriesFileError, match=r"file:telemetry/edge_served.csv.*bin 1 \(empty or NaN\)"):
        inline_files(case.read_text(encoding="utf-8"), str(case), beside(case))
