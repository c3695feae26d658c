"""Substitution on parsed YAML, model ids, provenance, embedding."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flowtime._version import __version__
from flowtime.errors import ModelValidationError, ParameterError
from flowtime.model.load import load_model
from flowtime.sim.canonical import canonical_json, parameters_hash
from flowtime.sim.catalog import Catalog
from flowtime.sim.render import render_template, substitute
from flowtime.sim.template import Template, parse_template

NOON = datetime(2025, 10, 3, 12, 0, 0, 123456, tzinfo=UTC)

TYPED = """\
metadata: {id: typed, title: Typed, version: 2.0.0}
parameters:
  - {name: bins, type: integer, default: 3}
  - {name: rate, type: number, default: 0.5}
  - {name: loads, type: array, default: [1, 2, 3]}
  - {name: sampled, type: boolean, default: false}
  - {name: label, type: string, default: "Peak: evening # 1"}
  - {name: seed, type: integer, default: 42}
grid: {bins: "${bins}", binSize: 1, binUnit: hours}
rng: {kind: pcg32, seed: "${seed}"}
nodes:
  - {id: load, kind: const, values: "${loads}", title: "${label}"}
  - {id: first, kind: const, values: ["${rate}", 1, 2]}
  - {id: scaled, kind: expr, expr: "load * ${rate} + ${bins}"}
  - id: p
    kind: pmf
    pmf: {values: [1, 2], probabilities: [0.5, 0.5], sample: "${sampled}"}
outputs:
  - {series: scaled, as: scaled.csv}
  - {series: first, as: first.csv}
  - {series: p, as: p.csv}
"""


@pytest.fixture
def typed() -> Template:
    return parse_template(TYPED, "typed.yaml")


def test_whole_placeholder_takes_the_typed_value(typed: Template) -> None:
    g = render_template(typed, {"bins": 3, "rate": 0.25})
    data = yaml.safe_load(g.model_text)
    assert data["grid"]["bins"] == 3 and isinstance(data["grid"]["bins"], int)
    assert data["rng"]["seed"] == 42 and isinstance(data["rng"]["seed"], int)
    assert data["nodes"][0]["values"] == [1, 2, 3]
    assert data["nodes"][1]["values"] == [0.25, 1, 2]  # a placeholder inside a list is one element
    assert data["nodes"][3]["pmf"]["sample"] is False
    assert "  bins: 3\n" in g.model_text and "values: [1, 2, 3]" in g.model_text  # not '3', not 3.0


def test_placeholder_inside_a_string_is_formatted_in(typed: Template) -> None:
    g = render_template(typed, {"rate": 2.0, "label": "x: y"})
    nodes = yaml.safe_load(g.model_text)["nodes"]
    assert nodes[2]["expr"] == "load * 2 + 3"
    assert nodes[0]["title"] == "x: y"  # YAML-special text survives: substitution is not textual
    assert 'expr: "load * 2 + 3"' in g.model_text


def test_generated_model_is_valid_and_starts_with_schema_version(typed: Template) -> None:
    g = render_template(typed)
    assert g.model_text.startswith("schemaVersion: 1\n")
    assert load_model(g.model_text).model.canonical() == g.loaded.model.canonical()
    data = yaml.safe_load(g.model_text)
    assert data["metadata"] == {"title": "Typed"} and "parameters" not in g.model_text


def test_substitute_leaves_the_template_untouched() -> None:
    body = {"a": ["${n}"], "b": "${n}${n}"}
    assert substitute(body, {"n": 1}) == {"a": [1], "b": "11"}
    assert body == {"a": ["${n}"], "b": "${n}${n}"}


def test_provenance_fields(typed: Template) -> None:
    g = render_template(typed, {"rate": 0.25}, now=NOON)
    p = g.provenance.to_json()
    assert list(p) == ["source", "modelId", "templateId", "templateVersion", "templateTitle", "parameters",
                       "generatedAt", "generator", "schemaVersion", "mode"]
    assert p["source"] == "flowtime-sim" and p["templateId"] == "typed" and p["mode"] == "simulation"
    assert p["templateVersion"] == "2.0.0" and p["templateTitle"] == "Typed"
    assert p["parameters"] == {"bins": 3, "rate": 0.25, "loads": [1, 2, 3], "sampled": False,
                               "label": "Peak: evening # 1", "seed": 42}  # defaults included
    assert p["generatedAt"] == "2025-10-03T12:00:00.123Z"
    assert p["generator"] == f"flowtime-sim/{__version__}" and p["schemaVersion"] == "1"
    assert re.fullmatch(r"model_20251003T120000Z_[0-9a-f]{8}", p["modelId"])


def test_model_id_hash_part_is_documented_and_deterministic(typed: Template) -> None:
    a = render_template(typed, {"rate": 0.25}, now=NOON)
    later = datetime(2026, 1, 1, tzinfo=UTC)
    b = render_template(typed, {"rate": 0.25, "bins": 3.0}, now=later)
    c = render_template(typed, {"rate": 0.3}, now=NOON)
    assert a.model_id.split("_")[2] == b.model_id.split("_")[2] != c.model_id.split("_")[2]
    doc = {"parameters": a.parameters, "templateId": "typed", "templateVersion": "2.0.0"}
    assert a.model_id.endswith(hashlib.sha256(canonical_json(doc).encode()).hexdigest()[:8])
    assert a.hash == b.hash and a.hash != c.hash and len(a.hash_prefix) == 12


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.floats(allow_nan=False,
       allow_infinity=False), st.lists(st.integers(-5, 5), max_size=4), st.booleans()), max_size=6))
def test_parameters_hash_ignores_key_order_and_float_spelling(params: dict[str, object]) -> None:
    shuffled = dict(reversed(list(params.items())))
    spelled = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53 else v
               for k, v in params.items()}
    assert parameters_hash("t", "1.0", params) == parameters_hash("t", "1.0", shuffled)
    assert parameters_hash("t", "1.0", params) == parameters_hash("t", "1.0", spelled)
    assert re.fullmatch(r"[0-9a-f]{8}", parameters_hash("t", "1.0", params))


def test_canonical_json_is_sorted_compact_and_code_point_ordered() -> None:
    assert canonical_json({"b": 1, "B": [1.0, 2.5], "ä": "ü"}) == '{"B":[1,2.5],"b":1,"ä":"ü"}'


def test_embedded_provenance_sits_after_schema_version_and_the_loader_strips_it(typed: Template) -> None:
    g = render_template(typed, now=NOON)
    embedded = g.text(embed_provenance=True)
    assert embedded.startswith("schemaVersion: 1\n\nprovenance:\n  source: flowtime-sim\n")
    assert list(yaml.safe_load(embedded))[:4] == ["schemaVersion", "provenance", "metadata", "grid"]
    loaded = load_model(embedded)
    assert loaded.provenance is not None and loaded.provenance.to_json() == g.provenance.to_json()
    assert loaded.model.canonical() == g.loaded.model.canonical()
    assert "provenance" not in g.text() and g.text() == g.model_text


def test_separate_provenance_is_plain_json(typed: Template) -> None:
    g = render_template(typed, now=NOON)
    assert json.loads(json.dumps(g.provenance.to_json()))["modelId"] == g.model_id


def test_arrays_given_with_the_wrong_length_are_each_named_with_the_length_needed(catalog: Catalog) -> None:
    t = catalog.get("transportation-basic")  # the reference's: both patterns feed const nodes
    with pytest.raises(ParameterError) as info:
        render_template(t, {"bins": 4, "demandPattern": [1, 2, 3], "capacityPattern": [1, 2, 3, 4, 5, 6]})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("parameters.capacityPattern", "`capacityPattern` has 6 values; grid.bins is 4: give 4 values"),
        ("parameters.demandPattern", "`demandPattern` has 3 values; grid.bins is 4: give 4 values"),
    ]
    g = render_template(t, {"bins": 4, "demandPattern": [1, 2, 3, 4], "capacityPattern": [2, 2, 2, 2]})
    assert g.loaded.model.grid.bins == 4 and g.warnings == ()


def test_length_problems_come_with_the_other_parameter_problems(catalog: Catalog) -> None:
    with pytest.raises(ParameterError) as info:
        render_template(catalog.get("support-backlog"), {"arrivals": [1, 2], "agents": -1, "x": 1})
    assert [p.path for p in info.value.problems] == ["parameters.agents", "parameters.arrivals", "parameters.x"]


def test_a_model_made_invalid_by_a_value_is_a_model_error() -> None:
    text = TYPED.replace('expr: "load * ${rate} + ${bins}"', 'expr: "load * ${label}"')
    t = parse_template(text.replace('default: "Peak: evening # 1"', "default: load"))
    with pytest.raises(ModelValidationError, match="unknown node 'nope'"):
        render_template(t, {"label": "nope"})


def test_a_template_whose_model_lacks_a_grid_says_which_key() -> None:
    from flowtime.sim.render import check_template
    from flowtime.sim.template import TemplateValidationError

    text = ("metadata: {id: no-grid, title: No grid}\n"
            "nodes:\n  - {id: a, kind: const, values: [1]}\n")
    with pytest.raises(TemplateValidationError) as info:
        check_template(parse_template(text, "no-grid.yaml"))
    assert [p.path for p in info.value.problems] == ["grid"], info.value.problems
