"""The experiment form generated from the spec's JSON schema: fields named by spec paths, texts back to a spec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flowtime.ui.schema_form import SpecField, kinds_of, locate, parse_text, read_spec, spec_fields

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "schemas" / "experiment.schema.json").read_text(encoding="utf-8"))


@dataclass
class P:
    path: str
    message: str


def fields(kind: str, **rows: int) -> dict[str, SpecField]:
    return {f.name: f for f in spec_fields(SCHEMA, SCHEMA["$defs"], kind, rows)}


def test_every_kind_of_the_schema_has_a_form() -> None:
    assert kinds_of(SCHEMA) == ("fit", "goalseek", "montecarlo", "optimize", "sensitivity", "sweep")
    for kind in kinds_of(SCHEMA):
        assert "parameters[0].target" in fields(kind, parameters=1)


def test_fields_are_named_by_spec_path_with_their_types_and_defaults() -> None:
    got = fields("montecarlo", parameters=2, metrics=1)
    assert got["parameters[1].range.low"].type == "number" and got["parameters[1].range.low"].required
    assert got["settings.replications"].type == "integer" and got["settings.replications"].default == "1000"
    assert got["metrics[0].aggregate"].choices == ("mean", "sum", "max", "min", "last", "p50", "p95", "p99")
    assert got["capture"].type == "texts" and got["settings.percentiles"].type == "numbers"
    assert got["samplePmf"].type == "boolean" and got["limits.maxPoints"].default == "100000"
    assert "parameters[2].target" not in got and "kind" not in got


def test_a_discriminated_union_is_a_select_and_fields_per_variant() -> None:
    got = fields("montecarlo", parameters=1)
    sel = got["parameters[0].distribution.kind"]
    assert sel.type == "enum" and set(sel.choices) == {"uniform", "normal", "triangular", "lognormal", "discrete"}
    low = got["parameters[0].distribution.low"]
    assert low.selector == sel.name and set(low.variants) == {"uniform", "triangular"}  # one input for both
    assert got["parameters[0].distribution.sd"].variants == ("normal",)


def test_rows_of_objects_nest_inside_settings() -> None:
    got = fields("optimize", parameters=1, metrics=1, **{"settings.constraints": 2})
    assert got["settings.constraints[1].op"].choices == ("<=", ">=")
    assert got["settings.constraints[0].metric"].type == "int-or-text"
    assert got["settings.constraints[0].metric"].group == "settings"


def test_posted_texts_become_the_spec_and_blank_fields_stay_out() -> None:
    f = list(fields("montecarlo", parameters=2, metrics=1).values())
    spec, errors, renames = read_spec(f, {
        "parameters[0].target": "capacity", "parameters[0].distribution.kind": "triangular",
        "parameters[0].distribution.low": "11", "parameters[0].distribution.mode": "15",
        "parameters[0].distribution.high": "17.5", "parameters[0].distribution.sd": "3",  # not a triangular field
        "metrics[0].series": "backlog", "metrics[0].aggregate": "max", "capture": ["backlog", "served"],
        "settings.percentiles": "5, 50, 95", "samplePmf": "true", "seed": "7", "settings.bins": "",
    }, "montecarlo")
    assert errors == {} and renames == {}
    assert spec == {"kind": "montecarlo", "seed": 7, "samplePmf": True, "capture": ["backlog", "served"],
                    "parameters": [{"target": "capacity", "distribution": {"kind": "triangular", "low": 11, "mode": 15,
                                                                            "high": 17.5}}],
                    "metrics": [{"series": "backlog", "aggregate": "max"}],
                    "settings": {"percentiles": [5, 50, 95]}}


def test_an_empty_row_is_dropped_and_a_problem_still_lands_on_its_row() -> None:
    f = list(fields("sweep", parameters=3).values())
    spec, errors, renames = read_spec(f, {"parameters[2].target": "capacity", "parameters[2].values": "1 2 3"},
                                      "sweep")
    assert errors == {} and spec["parameters"] == [{"target": "capacity", "values": [1, 2, 3]}]
    assert renames == {"parameters[0]": "parameters[2]"}
    per_field, general = locate([P("parameters[0].target", "unknown node 'capacity'"), P("model", "bad YAML")],
                                f, renames)
    assert per_field == {"parameters[2].target": "unknown node 'capacity'"} and general == ["model: bad YAML"]


def test_a_problem_at_an_object_lands_on_its_first_field() -> None:
    f = list(fields("sweep", parameters=1).values())
    per_field, general = locate([P("parameters[0]", "give one of values, range or distribution, not values and range"),
                                 P("parameters[0].range.high", "high (1) must be greater than low (2)"),
                                 P("settings", "x"), P("", "no path")], f, {})
    assert per_field["parameters[0].target"].startswith("give one of")
    assert per_field["parameters[0].range.high"].startswith("high (1)")
    assert per_field["settings.method"] == "x" and general == ["no path"]


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("integer", "2.5", "expects a whole number, got '2.5'"),
    ("number", "lots", "expects a number, got 'lots'"),
    ("number", "inf", "expects a number, got 'inf'"),
    ("numbers", "1, x", "'x' is not a number"),
    ("boolean", "maybe", "expects true or false"),
])
def test_texts_that_are_not_their_type_are_messages_at_the_field(kind: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_text(SpecField("f", "f", kind), text)


def test_observed_values_may_have_gaps_and_a_metric_is_an_index_or_a_name() -> None:
    assert parse_text(SpecField("f", "f", "numbers-or-null"), "1, , 3, null") == [1, None, 3, None]
    assert parse_text(SpecField("f", "f", "int-or-text"), "1") == 1
    assert parse_text(SpecField("f", "f", "int-or-text"), "max(backlog)") == "max(backlog)"
