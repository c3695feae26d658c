"""Generated models carry a title naming the template and what changed; the model hash ignores it."""

from __future__ import annotations

import pytest
import yaml

from flowtime.model.hashing import model_digest
from flowtime.model.load import load_model
from flowtime.sim.catalog import Catalog
from flowtime.sim.render import dump_yaml, render_template
from flowtime.sim.template import parse_template
from flowtime.sim.titles import MAX_TITLE, model_title


@pytest.fixture
def builtin() -> Catalog:
    return Catalog.load()


def title_in_yaml(text: str) -> str:
    title: str = yaml.safe_load(text)["metadata"]["title"]
    return title


def test_the_title_names_the_changed_parameters_in_declaration_order(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"seats_per_train": 200, "bins": 12})
    assert title_in_yaml(g.model_text) == "Commuter Rail Line (bins=12, seats_per_train=200)"
    assert g.loaded.model.metadata.title == g.title == "Commuter Rail Line (bins=12, seats_per_train=200)"


def test_nothing_changed_is_just_the_template_title(builtin: Catalog) -> None:
    assert title_in_yaml(render_template(builtin.get("commuter-rail")).model_text) == "Commuter Rail Line"
    # Sending a default is not a change, nor is 150.0 for 150.
    g = render_template(builtin.get("commuter-rail"), {"seats_per_train": 150.0, "trains_per_period": 2})
    assert g.title == "Commuter Rail Line"


def test_a_default_array_fitted_to_bins_is_not_a_change(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"bins": 12})
    assert g.title == "Commuter Rail Line (bins=12)"
    # The same values given back (re-generating from provenance) give the same title.
    again = render_template(builtin.get("commuter-rail"), g.parameters)
    assert again.title == "Commuter Rail Line (bins=12)"


def test_long_arrays_are_abbreviated(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"demand": [1, 2, 3, 4, 5, 6]})
    assert g.title == "Commuter Rail Line (demand=[1, 2, 3, … 6 values])"
    short = render_template(builtin.get("transportation-basic"), {"bins": 2, "demand": [5, 6.5]})
    assert short.title == "Transportation Corridor (bins=2, demand=[5, 6.5])"


def test_the_whole_title_is_bounded_and_counts_what_it_leaves_out() -> None:
    params = "\n".join(f"  - {{name: parameter_number_{i}, type: integer, default: 0}}" for i in range(12))
    uses = " + ".join(f"${{parameter_number_{i}}}" for i in range(12))
    t = parse_template(f"""\
metadata: {{id: many, title: Many Knobs}}
parameters:
{params}
grid: {{bins: 1, binSize: 1, binUnit: hours}}
nodes: [{{id: x, kind: expr, expr: "{uses}"}}]
outputs: [{{series: x}}]
""")
    title = render_template(t, {f"parameter_number_{i}": 1000 + i for i in range(12)}).title
    assert len(title) <= MAX_TITLE
    assert title == ("Many Knobs (parameter_number_0=1000, parameter_number_1=1001, parameter_number_2=1002, "
                     "+9 more)")


def test_a_very_long_template_title_is_cut() -> None:
    t = parse_template("metadata: {id: long, title: " + "Word " * 40 + "}\n"
                       "grid: {bins: 1, binSize: 1, binUnit: hours}\n"
                       "nodes: [{id: x, kind: const, values: [1]}]\noutputs: [{series: x}]\n")
    title = render_template(t).title
    assert len(title) == MAX_TITLE and title.endswith("…") and title.startswith("Word Word")


def test_model_title_of_text_values_is_one_short_line(builtin: Catalog) -> None:
    t = builtin.get("transportation-basic")
    assert model_title(t, {"binUnit": "days"}) == "Transportation Corridor (binUnit=days)"
    assert model_title(t, {"binUnit": "a\nvery long unit name that goes on"}) == (
        "Transportation Corridor (binUnit=a very long unit name t…)")


def test_the_model_hash_ignores_the_title(builtin: Catalog) -> None:
    g = render_template(builtin.get("commuter-rail"), {"seats_per_train": 200})
    untitled = dump_yaml({k: v for k, v in g.model_data.items() if k != "metadata"})
    assert "metadata" not in untitled
    assert model_digest(load_model(untitled).model) == g.hash
    assert g.hash_prefix == g.hash[:12]
