"""Reading templates: the reference format unchanged, and every structural problem located."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowtime.errors import TemplateNotFound
from flowtime.sim.catalog import Catalog, builtin_templates
from flowtime.sim.render import check_template
from flowtime.sim.template import TemplateValidationError, parse_template

REFERENCE_DIR = Path(__file__).parent / "reference_templates"
REFERENCE_IDS = tuple(sorted(p.stem for p in REFERENCE_DIR.glob("*.yaml")))


SPEC_DIR = Path("/work/shared/spec/reference-templates")

GOOD = """\
metadata:
  id: demo
  title: Demo
  tags: [a, b]
parameters:
  - {name: n, type: integer, default: 2, minimum: 1, maximum: 9}
  - {name: demand, type: array, default: [1, 2]}
grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: d, kind: const, values: "${demand}"}
  - {id: s, kind: expr, expression: "d * ${n}"}
outputs:
  - {id: s, source: s, filename: s.csv}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(TemplateValidationError) as info:
        t = parse_template(text, "t.yaml")
        check_template(t)
    return [str(p) for p in info.value.problems if p.severity == "error"]


@pytest.mark.skipif(not SPEC_DIR.is_dir(), reason="shared spec folder not mounted")
def test_reference_templates_are_byte_identical_copies() -> None:
    for name in REFERENCE_IDS:
        assert (REFERENCE_DIR / f"{name}.yaml").read_bytes() == (SPEC_DIR / f"{name}.yaml").read_bytes()


@pytest.mark.parametrize("template_id", REFERENCE_IDS)
def test_reference_templates_load_unchanged(catalog: Catalog, template_id: str) -> None:
    t = catalog.get(template_id)
    assert t.version == "1.0"  # they carry no metadata.version
    assert t.origin.endswith(f"{template_id}.yaml")
    assert all(p.default is not None for p in t.parameters)
    assert "expression" not in str(t.body) and "source" not in str(t.body["outputs"])


def test_reference_parameters_keep_their_types_and_minimum_maximum(catalog: Catalog) -> None:
    t = catalog.get("transportation-basic")
    bins, bin_size, demand, capacity = t.parameters
    assert (bins.type, bins.default, bins.min, bins.max) == ("integer", 6, 3, 48)
    assert (bin_size.title, bin_size.default) == ("Period Duration", 60)
    assert (demand.type, demand.default, demand.min, demand.max) == ("array", [10, 15, 20, 25, 18, 12], 0, 1000)
    assert capacity.items == "number"
    assert catalog.get("manufacturing-line").parameter("qualityRate").default == 0.95


def test_authoring_spellings_become_engine_spellings() -> None:
    t = parse_template(GOOD)
    assert t.body["nodes"][1] == {"id": "s", "kind": "expr", "expr": "d * ${n}"}
    assert t.body["outputs"] == [{"id": "s", "series": "s", "as": "s.csv"}]
    assert "metadata" not in t.body and "parameters" not in t.body
    assert [(p.name, p.path, p.whole) for p in t.placeholders] == [
        ("demand", ("nodes", 0, "values"), True), ("n", ("nodes", 1, "expr"), False)]


def test_metadata_defaults_and_version() -> None:
    t = parse_template(GOOD.replace("  title: Demo\n", ""), fallback_id="ignored")
    assert (t.id, t.title, t.version, t.tags) == ("demo", "demo", "1.0", ("a", "b"))
    t = parse_template(GOOD.replace("metadata:\n  id: demo\n", "metadata:\n"), fallback_id="from-file")
    assert t.id == "from-file"
    assert parse_template(GOOD.replace("  title: Demo\n", "  version: 2.1.0\n")).version == "2.1.0"


def test_unknown_placeholder_is_an_error_with_its_line() -> None:
    found = problems(GOOD.replace("d * ${n}", "d * ${nn}"))
    assert found == ["t.yaml, line 11, column 37, nodes.s.expression: placeholder ${nn} names no declared "
                     "parameter (did you mean `n`?)"]


def test_malformed_placeholder() -> None:
    assert "malformed placeholder '${1x}'" in problems(GOOD.replace("d * ${n}", "d * ${1x} + ${n}"))[0]


def test_default_out_of_range_is_an_error() -> None:
    found = problems(GOOD.replace("default: 2, minimum: 1", "default: 20, minimum: 1"))
    assert found == ["t.yaml, line 6, column 39, parameters[0].default: default is invalid: "
                     "`n` must be between 1 and 9, got 20"]


def test_duplicate_parameter_is_an_error() -> None:
    text = GOOD.replace("  - {name: demand", "  - {name: n, type: number, default: 1}\n  - {name: demand")
    assert problems(text) == ["t.yaml, line 7, column 12, parameters[1].name: parameter `n` is declared "
                              "twice (first as parameter 1)"]


def test_unknown_type_and_both_bound_spellings() -> None:
    found = problems(GOOD.replace("type: integer, default: 2, minimum: 1",
                                  "type: integr, default: 2, min: 0, minimum: 1"))
    assert any("unknown type 'integr'" in p and "did you mean `integer`" in p for p in found)
    found = problems(GOOD.replace("default: 2, minimum: 1", "default: 2, min: 0, minimum: 1"))
    assert any("give either `min` or `minimum`, not both" in p for p in found)


def test_unused_parameter_is_a_warning_not_an_error() -> None:
    t = parse_template(GOOD.replace("  - {name: demand", "  - {name: spare, type: number, default: 1}\n"
                                                         "  - {name: demand"))
    assert t.unused_parameters == ["spare"]
    assert [w.message for w in t.warnings] == ["parameter `spare` is declared but never used"]


def test_generated_model_is_validated_by_the_shared_schema() -> None:
    found = problems(GOOD.replace("d * ${n}", "dd * ${n}"))
    assert len(found) == 1
    assert "the model generated from the defaults is invalid: unknown node 'dd'" in found[0]


def test_default_array_must_fit_the_default_grid() -> None:
    found = problems(GOOD.replace("default: [1, 2]", "default: [1, 2, 3]"))
    assert found == ["t.yaml, parameters.demand: with the defaults: `demand` has 3 values; "
                     "grid.bins is 2: give 2 values"]


def test_not_yaml_is_a_template_error_with_position() -> None:
    found = problems("metadata: {id: x\nnodes: [")
    assert found and found[0].startswith("t.yaml, line")


def test_both_expression_and_expr_is_an_error() -> None:
    found = problems(GOOD.replace('expression: "d * ${n}"', 'expression: "d", expr: "d * ${n}"'))
    assert found[0].endswith("both `expression` and `expr` are given; keep one")


def test_builtin_library_has_at_least_eight_documented_templates() -> None:
    library = builtin_templates()
    assert len(library) >= 8
    for t in library:
        assert t.version.count(".") == 2, t.id  # semver
        assert t.description and t.title != t.id
        assert not t.warnings, (t.id, t.warnings)
        for p in t.parameters:
            assert p.title and p.description, (t.id, p.name)
    tags = {tag for t in library for tag in t.tags}
    for domain in ("transportation", "manufacturing", "microservices", "supply-chain", "network",
                   "healthcare", "e-commerce", "backlog"):
        assert domain in tags


def test_templates_dir_wins_over_builtin_and_broken_files_are_kept_aside(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(GOOD.replace("id: demo", "id: support-backlog"))
    (tmp_path / "broken.yaml").write_text(GOOD.replace("id: demo", "id: broken-one").replace("${n}", "${q}"))
    (tmp_path / "notes.txt").write_text("ignored")
    catalog = Catalog.load(tmp_path)
    assert catalog.get("support-backlog").title == "Demo"
    assert sorted(catalog.broken) == ["broken-one"]
    with pytest.raises(TemplateValidationError, match=r"placeholder \$\{q\} names no declared parameter"):
        catalog.get("broken-one")


def test_unknown_template_names_itself_and_suggests() -> None:
    catalog = Catalog.load()
    with pytest.raises(TemplateNotFound, match="template 'support-backlogg' not found "
                                                r"\(did you mean `support-backlog`\?\)"):
        catalog.get("support-backlogg")
    with pytest.raises(TemplateNotFound, match=r"template '\.\./etc' not found"):
        catalog.get("../etc")


def test_select_by_search_and_tag(catalog: Catalog) -> None:
    assert [t.id for t in catalog.select(tag="HEALTHCARE")] == ["emergency-department"]
    assert "ecommerce-checkout" in [t.id for t in catalog.select(search="payment")]
    assert catalog.select(search="payment", tag="network") == []
