"""The Python surface and the evaluator's objective: specs from files or text, the cap across calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentError
from flowtime.experiments.evaluator import Evaluator
from flowtime.experiments.spec import parse_spec

BACKLOG_PATH = Path(__file__).resolve().parents[2] / "examples" / "backlog-queue.yaml"
BACKLOG = BACKLOG_PATH.read_text(encoding="utf-8")
SPEC = """\
kind: sweep
parameters: [{target: capacity, values: [15, 30]}]
metric: {series: backlog, aggregate: max}
"""


def test_a_spec_and_a_model_from_files_or_text(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC, encoding="utf-8")
    # capacity 15: backlog 0, 3, 13, 18, 11, 0, 0, 0 (arrivals 12, 18, 25, 20, 8, 4, 2, 0 minus 15 a bin)
    # capacity 30: nothing waits
    from_files = flowtime.experiment(spec_file, model=BACKLOG_PATH)
    from_text = flowtime.experiment(SPEC, model=BACKLOG)
    assert from_files.table["max(backlog)"].tolist() == from_text.table["max(backlog)"].tolist() == [18.0, 0.0]


def test_the_objective_is_batched_and_counts_against_the_cap() -> None:
    spec = parse_spec({"kind": "sweep", "limits": {"maxPoints": 5},
                       "parameters": [{"target": "capacity", "range": {"low": 1, "high": 40}}],
                       "metrics": [{"series": "backlog", "aggregate": "max"},
                                   {"series": "served", "aggregate": "sum"}]})
    ev = Evaluator(BACKLOG, spec)
    f = ev.objective()
    y = f(np.array([[15.0], [30.0], [100.0]]))
    assert y.shape == (3, 2)
    assert y.tolist() == [[18.0, 89.0], [0.0, 89.0], [0.0, 89.0]]  # everything (89) is served by the end
    f(np.array([[20.0], [25.0]]))  # 5 points: at the cap
    with pytest.raises(ExperimentError) as got:
        f(np.array([[20.0]]))
    assert got.value.problems[0].path == "limits.maxPoints" and "5" in got.value.problems[0].message


def test_batches_do_not_change_the_bits() -> None:
    spec = parse_spec({"kind": "sweep", "parameters": [{"target": "capacity", "range": {"low": 5, "high": 25}}],
                       "capture": ["backlog"]})
    x = np.linspace(5, 25, 23)[:, None]
    whole = Evaluator(BACKLOG, spec).evaluate(x)
    cut = Evaluator(BACKLOG, spec, batch_size=4).evaluate(x)  # 6 batches, the last of 3
    assert whole.series["backlog"].tobytes() == cut.series["backlog"].tobytes()


def test_lhs_and_replications_over_the_cap_are_errors() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.experiment({"kind": "sweep", "settings": {"method": "lhs", "points": 11}, "limits": {"maxPoints": 10},
                             "parameters": [{"target": "capacity", "range": {"low": 1, "high": 2}}]}, model=BACKLOG)
    assert got.value.problems[0].path == "settings.points"
    with pytest.raises(ExperimentError) as got:
        flowtime.montecarlo(BACKLOG, 11, limits={"maxPoints": 10})
    assert got.value.problems[0].path == "settings.replications"


def test_bounds_come_from_the_ranges() -> None:
    spec = parse_spec({"kind": "sweep", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 40}},
                                                       {"target": "arrivals", "name": "a", "values": [1]}]})
    with pytest.raises(ExperimentError) as got:
        Evaluator(BACKLOG, spec).bounds()
    assert [p.path for p in got.value.problems] == ["parameters[1].range"]
    spec = parse_spec({"kind": "sweep", "parameters": [{"target": "capacity", "range": {"low": 1, "high": 40}}]})
    assert Evaluator(BACKLOG, spec).bounds() == [("capacity", 1.0, 40.0)]


def test_a_metric_named_like_a_parameter_is_an_error() -> None:
    with pytest.raises(ExperimentError) as got:
        flowtime.sweep(BACKLOG, [{"target": "capacity", "values": [1]}], {"series": "served", "name": "capacity"})
    assert [p.path for p in got.value.problems] == ["metrics[0].name"]
