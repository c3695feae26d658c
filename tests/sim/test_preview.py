"""preview.svg: valid SVG, every node drawn and labelled, edges as paths."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowtime.model.load import load_model
from flowtime.sim.catalog import Catalog, builtin_templates
from flowtime.sim.preview import layout, render_svg
from flowtime.sim.render import render_template
from flowtime.sim.topology import topology

REFERENCE_DIR = Path(__file__).parent / "reference_templates"
REFERENCE_IDS = tuple(sorted(p.stem for p in REFERENCE_DIR.glob("*.yaml")))


SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("template_id", [t.id for t in builtin_templates()] + list(REFERENCE_IDS))
def test_preview_is_valid_svg_with_every_node_id(catalog: Catalog, template_id: str) -> None:
    model = render_template(catalog.get(template_id)).loaded.model
    root = ET.fromstring(render_svg(model, title=template_id))
    assert root.tag == f"{SVG}svg"
    groups = {g.get("data-id"): g for g in root.iter(f"{SVG}g")}
    assert set(groups) == set(model.node_ids)
    for node_id, g in groups.items():
        assert g.find(f"{SVG}rect") is not None
        assert node_id in [t.text for t in g.iter(f"{SVG}text")]
    edges = sum(len(ins) for ins in topology(model).inputs.values())
    assert len([p for p in root.iter(f"{SVG}path") if p.get("marker-end")]) == edges


def test_boxes_are_coloured_by_kind_and_laid_out_left_to_right() -> None:
    model = load_model("""schemaVersion: 1
grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: c, kind: const, values: [1, 2]}
  - {id: p, kind: pmf, pmf: {values: [1], probabilities: [1]}}
  - {id: e, kind: expr, expr: "c + p"}
  - {id: q, kind: expr, expr: "SHIFT(q, 1) + e"}
outputs: [{series: q}]
""").model
    root = ET.fromstring(render_svg(model))
    rects = {g.get("data-id"): g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")}
    fills = {k: r.get("fill") for k, r in rects.items() if r is not None}
    assert fills["c"] != fills["e"] != fills["p"] and fills["e"] == fills["q"]
    xs = {k: float(r.get("x", 0)) for k, r in rects.items() if r is not None}
    assert xs["c"] == xs["p"] < xs["e"] < xs["q"]
    assert [[s for s in col if "\x00" not in s] for col in layout(topology(model)).columns] == [
        ["c", "p"], ["e"], ["q"]]


def test_node_ids_are_escaped() -> None:
    model = load_model("""schemaVersion: 1
grid: {bins: 1, binSize: 1, binUnit: hours}
nodes: [{id: a.b-c, kind: const, values: [1]}]
""").model
    title = ET.fromstring(render_svg(model, title="<&>")).find(f"{SVG}title")
    assert title is not None and title.text == "<&>"
