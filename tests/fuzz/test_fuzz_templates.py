"""
Fuzzing templates: random parameters for the built-in templates and edited
template text give a model that evaluates or a located FlowTimeError.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.harness import checked, fuzz_settings
from tests.fuzz.inputs import HASHABLE_JUNK, JUNK, YAML_PIECES, mutated

from flowtime.engine import Results, compile_model, evaluate
from flowtime.model.parameters import Parameter
from flowtime.sim.catalog import builtin_templates
from flowtime.sim.render import check_template, render_template
from flowtime.sim.template import Template, parse_template

TEMPLATES = builtin_templates()


def _texts() -> list[str]:
    library = resources.files("flowtime.sim") / "library"
    return [e.read_text(encoding="utf-8") for e in sorted(library.iterdir(), key=lambda e: e.name)
            if e.name.endswith((".yaml", ".yml"))]


TEMPLATE_TEXTS = _texts()


def plausible(p: Parameter) -> st.SearchStrategy[Any]:
    """Values near what the parameter accepts: in range, at the edges, just outside."""
    lo = p.min if p.min is not None else -1e6
    hi = p.max if p.max is not None else 1e9
    edges = st.sampled_from([lo, hi, lo - 1, hi + 1, 0, -1])
    if p.type == "integer":
        return st.one_of(st.integers(int(lo), int(min(hi, lo + 500))), edges, st.floats(lo, hi))
    if p.type == "number":
        return st.one_of(st.floats(lo, hi), edges, st.integers(int(lo), int(min(hi, lo + 500))))
    if p.type == "array":
        item = st.one_of(st.floats(lo, hi), edges)
        return st.lists(item, max_size=12)
    if p.enum:
        return st.sampled_from(p.enum)
    return st.one_of(st.booleans(), st.text(max_size=6))


@st.composite
def overrides(draw: st.DrawFn, template: Template) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for p in template.parameters:
        if draw(st.integers(0, 2)) == 0:
            # Three in four values are plausible. (Not one_of(plausible, plausible, JUNK): one_of
            # merges equal branches, and whether two fresh strategies are equal depends on
            # Hypothesis's strategy cache, which makes generation flaky.)
            out[p.name] = draw(JUNK if draw(st.integers(0, 3)) == 0 else plausible(p))
    if draw(st.integers(0, 9)) == 0:
        out[draw(HASHABLE_JUNK)] = draw(JUNK)
    return copy.deepcopy(out)


def _render_and_run(template: Template, values: dict[Any, Any]) -> Results:
    generated = render_template(template, values, max_array_length=10_000)
    return evaluate(compile_model(generated.loaded.model))


@fuzz_settings(400)
@given(st.sampled_from(TEMPLATES).flatmap(lambda t: st.tuples(st.just(t), overrides(t))))
def test_builtin_templates_with_random_parameters_run_or_give_located_errors(case: tuple[Template, dict[Any, Any]]
                                                                           ) -> None:
    template, values = case
    checked(lambda: _render_and_run(template, values))


def _parse_check_run(text: str) -> Results | None:
    template = parse_template(text, "fuzz-template.yaml")
    check_template(template, max_array_length=10_000)
    if any(p.required for p in template.parameters):
        return None
    return _render_and_run(template, {})


@fuzz_settings(400)
@given(mutated(st.sampled_from(TEMPLATE_TEXTS), YAML_PIECES))
def test_edited_template_text_parses_renders_and_runs_or_gives_located_errors(text: str) -> None:
    checked(lambda: _parse_check_run(text))


def test_every_builtin_template_renders_its_defaults_and_runs() -> None:
    for template in TEMPLATES:
        assert isinstance(_render_and_run(template, {}), Results), template.id
