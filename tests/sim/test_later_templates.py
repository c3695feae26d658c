"""
The reference's later template form (engine-head.md §15): generator, mode, window, node source,
profile and dependencies, and the outputs added for the topology's semantics. Numbers by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from flowtime.engine import evaluate
from flowtime.errors import ParameterError, Problem
from flowtime.model.load import load_model
from flowtime.sim.render import render_template
from flowtime.sim.template import Template, TemplateValidationError, parse_template

NOON = datetime(2025, 10, 3, 12, 0, 0, tzinfo=UTC)

LATER = """\
schemaVersion: 1
generator: flowtime-sim
mode: simulation
metadata:
  id: later
  title: Later
  version: 1.0.0
  narrative: a desk and its exit
  captureKey: later-telemetry
window:
  start: 2025-03-01T06:00:00Z
  timezone: UTC
parameters:
  - {name: bins, type: integer, default: 4, minimum: 2, maximum: 8}
  - {name: feed, type: string, default: ""}
grid: {bins: "${bins}", binSize: 1, binUnit: hours}
topology:
  nodes:
    - id: Desk
      kind: serviceWithBuffer
      semantics: {arrivals: demand, served: served, queueDepth: self}
      initialCondition: {queueDepth: 0}
    - id: Exit
      kind: sink
      semantics: {arrivals: served, errors: lost}
  edges:
    - {id: desk_to_exit, from: "Desk:out", to: "Exit:in"}
nodes:
  - id: demand
    kind: pmf
    source: "${feed}"
    pmf: {values: [2, 6], probabilities: [0.5, 0.5]}
    profile: {kind: inline, weights: [1, 3, 1, 3]}
  - {id: cap, kind: const, values: [3, 3, 3, 3]}
  - {id: served, kind: expr, expr: "MIN(demand, cap)", dependencies: [cap, demand]}
  - {id: lost, kind: const, values: [0.5, 0.5, 0.5, 0.5]}
outputs:
  - {series: served}
"""


def template(text: str = LATER) -> Template:
    return parse_template(text, "later.yaml")


def errors(text: str, overrides: dict[str, object] | None = None) -> list[Problem]:
    with pytest.raises(TemplateValidationError) as info:
        render_template(parse_template(text, "later.yaml"), overrides)
    return [p for p in info.value.problems if p.severity == "error"]


def test_a_profiled_pmf_becomes_the_const_series_expected_value_times_weight() -> None:
    g = render_template(template(), now=NOON)
    node = next(n for n in g.model_data["nodes"] if n["id"] == "demand")
    # E = 2*0.5 + 6*0.5 = 4; weights [1, 3, 1, 3] over their mean 2 = [0.5, 1.5, 0.5, 1.5]
    assert node["kind"] == "const" and node["values"] == [2.0, 6.0, 2.0, 6.0]
    assert "profile" not in node and "source" not in node and "pmf" not in node
    assert "pmf expected value 4" in node["description"] and "inline" in node["description"]
    assert g.provenance.to_json()["profiles"] == {
        "demand": {"origin.kind": "pmf", "profile.kind": "inline", "profile.name": None, "pmf.expected": 4.0}}


def test_the_generated_model_runs_with_the_engines_queue_and_sink_series() -> None:
    g = render_template(template(), now=NOON)
    series = evaluate(g.loaded.model).series
    assert series["served"].tolist() == [2.0, 3.0, 2.0, 3.0]  # MIN(demand, 3)
    # the engine's queue for Desk: depth + demand - served, from 0
    assert series["desk_queue"].tolist() == [0.0, 3.0, 3.0, 6.0]
    # the engine's served series for the sink: MAX(0, served - lost)
    assert series["exit_served"].tolist() == [1.5, 2.5, 1.5, 2.5]


def test_semantics_outputs_are_appended_in_topology_then_field_order() -> None:
    g = render_template(template(), now=NOON)
    # Desk: arrivals demand, served (already an output), queueDepth desk_queue (the engine's name);
    # Exit: arrivals served (seen), served exit_served (the engine's), errors lost
    assert g.model_data["outputs"] == [{"series": "served"}, {"series": "demand"}, {"series": "desk_queue"},
                                       {"series": "exit_served"}, {"series": "lost"}]
    assert [o.series for o in g.loaded.model.outputs] == ["served", "demand", "desk_queue", "exit_served", "lost"]


def test_no_output_is_added_twice_or_where_a_wildcard_covers_it() -> None:
    text = LATER.replace("  - {series: served}\n", "  - {series: served}\n  - {series: \"de*\"}\n")
    g = render_template(template(text), now=NOON)
    assert g.model_data["outputs"] == [{"series": "served"}, {"series": "de*"}, {"series": "exit_served"},
                                       {"series": "lost"}]


def test_a_model_without_outputs_gets_none_added_since_it_writes_every_series() -> None:
    g = render_template(template(LATER.split("outputs:")[0]), now=NOON)
    assert "outputs" not in g.model_data


def test_window_start_becomes_grid_start_and_the_template_keys_are_dropped() -> None:
    g = render_template(template(), now=NOON)
    assert g.model_data["grid"] == {"bins": 4, "binSize": 1, "binUnit": "hours", "start": "2025-03-01T06:00:00Z"}
    model = yaml.safe_load(g.model_text)
    assert not {"window", "generator", "mode", "parameters"} & set(model)
    assert model["metadata"] == {"title": "Later"}
    assert all(not {"source", "profile", "dependencies"} & set(n) for n in model["nodes"])
    assert load_model(g.model_text).warnings == []  # nothing the engine would ignore


def test_a_grid_start_of_its_own_is_kept() -> None:
    text = LATER.replace('binUnit: hours}', 'binUnit: hours, start: "2024-12-31T00:00:00Z"}')
    assert render_template(template(text), now=NOON).model_data["grid"]["start"] == "2024-12-31T00:00:00Z"


def test_mode_comes_from_the_template_and_a_request_overrides_it() -> None:
    assert template().mode == "simulation"
    assert render_template(template(), now=NOON).provenance.to_json()["mode"] == "simulation"
    telemetry = render_template(template(), now=NOON, mode="telemetry")
    assert telemetry.provenance.to_json()["mode"] == "telemetry"
    assert template(LATER.replace("mode: simulation", "mode: telemetry")).mode == "telemetry"
    with pytest.raises(ParameterError) as info:
        render_template(template(), mode="replay")
    assert [p.path for p in info.value.problems] == ["mode"]


def test_our_own_form_needs_neither_generator_nor_window() -> None:
    text = "\n".join(line for line in LATER.splitlines()
                     if not line.startswith(("generator", "mode", "window", "  start", "  timezone")))
    t = template(text + "\n")
    assert (t.generator, t.mode) == (None, "simulation")
    assert "start" not in render_template(t, now=NOON).model_data["grid"]


@pytest.mark.parametrize(("old", "new", "line", "words"), [
    ("generator: flowtime-sim", "generator: other-tool", 2, "generator must start with 'flowtime-sim'"),
    ("mode: simulation", "mode: replay", 3, "mode must be one of simulation, telemetry"),
    ("  version: 1.0.0\n", "", 4, "metadata.version is required in a template with generator:"),
])
def test_later_form_shape_problems_are_located(old: str, new: str, line: int, words: str) -> None:
    with pytest.raises(TemplateValidationError) as info:
        parse_template(LATER.replace(old, new), "later.yaml")
    [p] = [p for p in info.value.problems if p.severity == "error"]
    assert p.line == line and words in p.message


@pytest.mark.parametrize(("old", "new", "path", "words"), [
    ("start: 2025-03-01T06:00:00Z", "start: 2025-03-01T08:00:00+02:00", "window.start", "offset 0"),
    ("start: 2025-03-01T06:00:00Z", 'start: "2025-03-01T06:00:00"', "window.start", "offset 0"),
    ("start: 2025-03-01T06:00:00Z", "start: tomorrow", "window.start", "ISO-8601 UTC"),
    ("timezone: UTC", "timezone: Europe/Paris", "window.timezone", "must be UTC"),
])
def test_a_window_that_is_not_utc_is_a_located_error(old: str, new: str, path: str, words: str) -> None:
    [p] = errors(LATER.replace(old, new))
    assert p.path == path and words in p.message and p.source == "later.yaml"
    assert p.line == LATER.splitlines().index("window:") + 1 + (1 if path == "window.start" else 2)


def test_dependencies_must_list_exactly_what_the_expression_reads() -> None:
    [p] = errors(LATER.replace("dependencies: [cap, demand]", "dependencies: [demand, lost]"))
    assert p.path == "nodes.served.dependencies" and "node 'served'" in p.message
    assert "missing cap" in p.message and "not read: lost" in p.message
    assert p.line == next(i for i, s in enumerate(LATER.splitlines(), 1) if "id: served" in s)


def test_a_profile_on_a_node_that_is_not_a_pmf_is_an_error() -> None:
    [p] = errors(LATER.replace("values: [3, 3, 3, 3]}", "values: [3, 3, 3, 3], profile: {name: three-shift}}"))
    assert p.path == "nodes.cap.profile" and "only for pmf nodes" in p.message


def test_inline_weights_follow_bins_or_fail_naming_the_count() -> None:
    [p] = errors(LATER, {"bins": 5})
    assert p.path == "nodes.demand.profile.weights" and "exactly grid.bins (5) values, got 4" in p.message
    assert p.line == next(i for i, s in enumerate(LATER.splitlines(), 1) if "kind: inline" in s)


def test_a_builtin_profile_follows_a_changed_bins() -> None:
    text = LATER.replace("{kind: inline, weights: [1, 3, 1, 3]}", "{kind: builtin, name: three-shift}")
    text = text.replace("[3, 3, 3, 3]", "[3, 3]").replace("[0.5, 0.5, 0.5, 0.5]", "[0.5, 0.5]")
    g = render_template(template(text), {"bins": 2}, now=NOON)
    values = next(n for n in g.model_data["nodes"] if n["id"] == "demand")["values"]
    # 288 -> 2 bins: positions 0 and 143.5 read hour 0 (0.9) and hours 11/12 (1.15, 1.12 midway: 1.135),
    # normalised to mean 1, times E = 4
    assert values == pytest.approx([4 * 0.9 / 1.0175, 4 * 1.135 / 1.0175])
    assert g.provenance.to_json()["profiles"]["demand"]["profile.name"] == "three-shift"


def test_an_unknown_builtin_profile_is_named() -> None:
    [p] = errors(LATER.replace("{kind: inline, weights: [1, 3, 1, 3]}", "{kind: builtin, name: night-owl}"))
    assert p.path == "nodes.demand.profile.name" and "night-owl" in p.message and "hub-rush-hour" in p.message


def test_unnormalised_pmf_probabilities_are_normalised_for_the_expected_value() -> None:
    text = LATER.replace("probabilities: [0.5, 0.5]", "probabilities: [1, 3]")
    values = next(n for n in render_template(template(text), now=NOON).model_data["nodes"]
                  if n["id"] == "demand")["values"]
    assert values == [2.5, 7.5, 2.5, 7.5]  # E = (2*1 + 6*3) / 4 = 5
