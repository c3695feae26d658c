"""Per-bin arrays follow a changed bins: defaults are repeated or trimmed (with a warning), given ones must fit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtime.errors import ParameterError
from flowtime.sim.catalog import Catalog, builtin_templates
from flowtime.sim.render import render_template
from flowtime.sim.template import Template, parse_template
from flowtime.sim.workspace import Workspace


def flowtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowtime", *args], capture_output=True, text=True, check=False)


RAIL_DEMAND = [120, 300, 450, 260, 150, 90]

# Not a built-in and no parameter called bins: the rule reads the grid, not the names.
CUSTOM = """\
metadata: {id: custom, title: Custom}
parameters:
  - {name: periods, type: integer, default: 3, min: 1, max: 50}
  - {name: load, type: array, default: [1, 2, 3]}
  - {name: weights, type: array, default: [0.5, 0.5]}
grid: {bins: "${periods}", binSize: 1, binUnit: days}
nodes:
  - {id: l, kind: const, values: "${load}"}
  - {id: p, kind: pmf, pmf: {values: [1, 2], probabilities: "${weights}"}}
  - {id: x, kind: expr, expr: "l * p"}
outputs:
  - {series: x}
"""


@pytest.fixture
def builtin() -> Catalog:
    return Catalog.load()


def test_a_default_array_is_repeated_to_a_larger_bins_with_a_warning(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"bins": 12})
    assert g.loaded.model.grid.bins == 12
    assert g.loaded.model.node("passenger_demand").values.tolist() == RAIL_DEMAND * 2
    assert g.parameters["demand"] == RAIL_DEMAND * 2  # provenance records what was used
    assert [(w.path, w.severity, w.message) for w in g.warnings] == [
        ("parameters.demand", "warning", "`demand` was left at its default of 6 values and grid.bins is 12: "
                                         "repeated to 12 values; give 12 values to choose them")]


def test_a_default_array_is_trimmed_to_a_smaller_bins(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"bins": 4})
    assert g.loaded.model.node("passenger_demand").values.tolist() == [120, 300, 450, 260]
    assert g.warnings[0].message.endswith("trimmed to its first 4 values; give 4 values to choose them")
    one = render_template(builtin.get("commuter-rail"), {"bins": 1})
    assert one.loaded.model.node("passenger_demand").values.tolist() == [120]
    assert "trimmed to its first 1 value;" in one.warnings[0].message


def test_an_array_that_is_not_a_multiple_is_repeated_then_cut(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"bins": 8})
    assert g.loaded.model.node("passenger_demand").values.tolist() == [*RAIL_DEMAND, 120, 300]


def test_a_given_array_of_the_wrong_length_is_an_error_naming_the_length_needed(builtin: Catalog) -> None:
    with pytest.raises(ParameterError) as info:
        render_template(builtin.get("commuter-rail"), {"bins": 12, "demand": RAIL_DEMAND})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("parameters.demand", "`demand` has 6 values; grid.bins is 12: give 12 values")]


def test_every_mismatched_given_array_is_named_at_once(builtin: Catalog) -> None:
    with pytest.raises(ParameterError) as info:
        render_template(builtin.get("transportation-basic"), {"bins": 3, "demand": [1], "capacity": [1, 2]})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("parameters.capacity", "`capacity` has 2 values; grid.bins is 3: give 3 values"),
        ("parameters.demand", "`demand` has 1 value; grid.bins is 3: give 3 values"),
    ]


def test_a_given_array_of_the_right_length_is_used_as_is_and_others_follow(builtin: Catalog) -> None:
    g = render_template(builtin.get("transportation-basic"), {"bins": 3, "demand": [7, 8, 9]})
    model = g.loaded.model
    assert model.node("riders").values.tolist() == [7, 8, 9]
    assert model.node("places").values.tolist() == [100, 100, 100]
    assert [w.path for w in g.warnings] == ["parameters.capacity"]


def test_the_rule_is_generic_and_only_for_const_values() -> None:
    t = parse_template(CUSTOM, "custom.yaml")
    assert t.bins_parameter == "periods" and t.per_bin_arrays == ("load",)
    g = render_template(t, {"periods": 5})
    assert g.loaded.model.node("l").values.tolist() == [1, 2, 3, 1, 2]
    assert g.parameters["weights"] == [0.5, 0.5]  # a PMF's probabilities are not per bin
    assert [w.path for w in g.warnings] == ["parameters.load"]


def test_a_fitted_default_still_meets_its_declared_limits() -> None:
    t = parse_template(CUSTOM.replace("default: [1, 2, 3]}", "default: [1, 2, 3], maxItems: 4}"), "c.yaml")
    with pytest.raises(ParameterError) as info:
        render_template(t, {"periods": 5})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("parameters.load", "`load` left at its default cannot be fitted to grid.bins 5: "
                            "`load` takes at most 4 elements, got 5")]


def test_the_workspace_reports_what_was_fitted_and_stores_it(workspace: Workspace) -> None:
    gen = workspace.generate("commuter-rail", {"bins": 12})
    assert [w.path for w in gen.report.warnings] == ["parameters.demand"]
    body = gen.response()
    assert body["validation"]["warnings"][0]["message"].startswith("`demand` was left at its default")
    assert body["provenance"]["parameters"]["demand"] == RAIL_DEMAND * 2


def test_the_cli_generates_with_a_changed_bins_and_warns_on_stderr(tmp_path: Path) -> None:
    proc = flowtime("sim", "generate", "commuter-rail", "--param", "bins=12", "--no-store",
                    "--data-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "bins: 12" in proc.stdout and f"values: {RAIL_DEMAND * 2}" in proc.stdout
    assert proc.stderr == ("warning: parameters.demand: `demand` was left at its default of 6 values and "
                           "grid.bins is 12: repeated to 12 values; give 12 values to choose them\n")


def _bins_range(t: Template) -> tuple[int, int]:
    p = t.parameter(t.bins_parameter or "")
    return int(p.min if p.min is not None else 1), int(p.max if p.max is not None else 1000)


BINS_TEMPLATES = [t for t in builtin_templates() if t.bins_parameter]


def test_every_builtin_with_arrays_lets_bins_change() -> None:
    assert len(BINS_TEMPLATES) == len(builtin_templates())  # each built-in exposes bins
    assert all(t.per_bin_arrays for t in BINS_TEMPLATES if t.id != "network-link-failures")


@pytest.mark.parametrize("template", BINS_TEMPLATES, ids=lambda t: t.id)
def test_every_builtin_generates_at_its_smallest_and_largest_bins(template: Template) -> None:
    for bins in _bins_range(template):
        g = render_template(template, {template.bins_parameter or "": bins})
        assert g.loaded.model.grid.bins == bins
        for name in template.per_bin_arrays:
            assert len(g.parameters[name]) == bins


@pytest.mark.parametrize("template", BINS_TEMPLATES, ids=lambda t: t.id)
@given(data=st.data())
def test_every_builtin_generates_with_any_allowed_bins(template: Template, data: st.DataObject) -> None:
    lo, hi = _bins_range(template)
    bins = data.draw(st.integers(lo, hi), label="bins")
    g = render_template(template, {template.bins_parameter or "": bins})
    assert g.loaded.model.grid.bins == bins
    assert [len(g.parameters[name]) for name in template.per_bin_arrays] == [bins] * len(template.per_bin_arrays)
