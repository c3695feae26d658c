"""The experiment spec: both spellings, located errors, the schema file in step with the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowtime.errors import ExperimentError
from flowtime.experiments.spec import MonteCarloExperiment, SweepExperiment, experiment_schema, parse_spec

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "experiment.schema.json"


def paths(exc: ExperimentError) -> list[str]:
    return [p.path for p in exc.problems]


def test_camel_and_snake_case_give_the_same_spec() -> None:
    camel = parse_spec({"kind": "montecarlo", "samplePmf": False, "limits": {"maxPoints": 50},
                        "settings": {"replications": 10}})
    snake = parse_spec({"kind": "montecarlo", "sample_pmf": False, "limits": {"max_points": 50},
                        "settings": {"replications": 10}})
    assert camel == snake
    assert isinstance(camel, MonteCarloExperiment)
    assert camel.limits.max_points == 50 and camel.sample_pmf is False


def test_one_metric_is_a_list_of_one() -> None:
    spec = parse_spec({"kind": "sweep", "metric": {"series": "x", "aggregate": "p95"}})
    assert isinstance(spec, SweepExperiment)
    assert [m.label for m in spec.metrics] == ["p95(x)"]


def test_every_problem_is_located_at_its_spec_path() -> None:
    with pytest.raises(ExperimentError) as got:
        parse_spec({"kind": "sweep", "parameters": [{"target": "a", "values": [1]},
                                                    {"target": "b", "range": {"low": 3, "high": 1}}],
                    "metrics": [{"series": "a", "expr": "a + 1"}], "bogus": 1})
    assert paths(got.value) == ["bogus", "metrics[0]", "parameters[1].range.high"]
    with pytest.raises(ExperimentError) as got:
        parse_spec({"kind": "montecarlo", "parameters": [{"target": "a", "distribution": {"kind": "normal",
                                                                                         "mean": 1, "sd": 0}}]})
    assert paths(got.value) == ["parameters[0].distribution.sd"]


def test_an_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(ExperimentError) as got:
        parse_spec({"kind": "sweeep"})
    assert paths(got.value) == ["kind"]
    assert "sweep" in got.value.problems[0].message


def test_a_parameter_takes_one_source_of_values() -> None:
    with pytest.raises(ExperimentError) as got:
        parse_spec({"kind": "sweep", "parameters": [{"target": "a", "values": [1], "range": {"low": 0, "high": 1}}]})
    assert paths(got.value) == ["parameters[0]"]


def test_the_schema_file_is_up_to_date() -> None:
    """docs/schemas/experiment.schema.json is experiment_schema() (regenerate: python -m flowtime.experiments.spec)."""
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == experiment_schema()


def test_the_schema_uses_the_written_names() -> None:
    text = json.dumps(experiment_schema())
    assert '"samplePmf"' in text and '"maxPoints"' in text and '"sample_pmf"' not in text
