"""Parameter declarations and the checks on override values."""

from __future__ import annotations

import pytest

from flowtime.errors import ParameterError
from flowtime.model.parameters import Parameter, parse_parameter, resolve_parameters

BINS = Parameter("bins", "integer", title="Periods", default=6, min=3, max=48)
RATE = Parameter("rate", "number", default=0.5, min=0, max=1)
DEMAND = Parameter("demand", "array", default=[1, 2, 3], min=0, max=100, items="number")
MODE = Parameter("mode", "string", default="peak", enum=("uniform", "peak", "random"))
FLAG = Parameter("flag", "boolean", default=False)
PARAMS = [BINS, RATE, DEMAND, MODE, FLAG]


def problems_of(overrides: dict[str, object], limit: int | None = None) -> dict[str, str]:
    with pytest.raises(ParameterError) as info:
        resolve_parameters(PARAMS, overrides, template_id="t", max_array_length=limit)
    return {p.path: p.message for p in info.value.problems}


def test_defaults_are_merged_in_declaration_order() -> None:
    resolved = resolve_parameters(PARAMS, {"rate": 0.25})
    assert resolved == {"bins": 6, "rate": 0.25, "demand": [1, 2, 3], "mode": "peak", "flag": False}
    assert list(resolved) == ["bins", "rate", "demand", "mode", "flag"]


def test_whole_floats_become_integers_so_one_value_has_one_spelling() -> None:
    resolved = resolve_parameters(PARAMS, {"bins": 12.0, "rate": 1.0, "demand": [4.0, 5.5]})
    assert resolved["bins"] == 12 and isinstance(resolved["bins"], int)
    assert resolved["rate"] == 1 and isinstance(resolved["rate"], int)
    assert resolved["demand"] == [4, 5.5]


def test_integer_rejects_fractions_text_and_booleans() -> None:
    assert problems_of({"bins": 2.5}) == {"parameters.bins": "`bins` must be a whole number, got 2.5"}
    assert problems_of({"bins": "6"}) == {
        "parameters.bins": "`bins` must be a whole number, got the text '6'"}
    assert problems_of({"bins": True}) == {
        "parameters.bins": "`bins` must be a whole number, got the boolean true"}


def test_range_message_names_parameter_value_and_allowed_range() -> None:
    assert problems_of({"bins": 100}) == {"parameters.bins": "`bins` must be between 3 and 48, got 100"}
    assert problems_of({"rate": -0.5}) == {"parameters.rate": "`rate` must be between 0 and 1, got -0.5"}
    only_min = Parameter("n", "number", default=1, min=0)
    with pytest.raises(ParameterError, match="`n` must be at least 0, got -1"):
        resolve_parameters([only_min], {"n": -1})


def test_number_rejects_non_finite_values() -> None:
    assert problems_of({"rate": float("nan")}) == {
        "parameters.rate": "`rate` must be a finite number, got nan"}


def test_every_array_element_problem_is_listed() -> None:
    with pytest.raises(ParameterError) as info:
        resolve_parameters(PARAMS, {"demand": [5, -1, 150, "x"]})
    messages = [p.message for p in info.value.problems]
    assert messages == [
        "`demand` element 1 must be between 0 and 100, got -1",
        "`demand` element 2 must be between 0 and 100, got 150",
        "`demand` element 3 must be a number, got the text 'x'",
    ]
    assert {p.path for p in info.value.problems} == {"parameters.demand"}


def test_array_must_be_a_list_and_integer_items_must_be_whole() -> None:
    assert problems_of({"demand": 5}) == {
        "parameters.demand": "`demand` must be a list of numbers such as [10, 20, 30], got 5"}
    counts = Parameter("counts", "array", default=[1], items="integer")
    with pytest.raises(ParameterError, match=r"`counts` element 0 must be a whole number, got 1\.5"):
        resolve_parameters([counts], {"counts": [1.5]})


def test_array_length_limit() -> None:
    assert problems_of({"demand": [1] * 11}, limit=10) == {
        "parameters.demand": "`demand` has 11 elements; the limit is 10 (max_array_length)"}


def test_enum_and_boolean() -> None:
    assert problems_of({"mode": "fast"}) == {
        "parameters.mode": "`mode` must be one of 'uniform', 'peak', 'random', got 'fast'"}
    assert problems_of({"flag": "yes"}) == {
        "parameters.flag": "`flag` must be true or false, got the text 'yes'"}


def test_unknown_names_get_a_suggestion_and_the_list_of_known_ones() -> None:
    assert problems_of({"bin": 6}) == {
        "parameters.bin": "unknown parameter `bin` (did you mean `bins`?); this template takes: "
                          "bins, rate, demand, mode, flag"}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ParameterError) as info:
        resolve_parameters(PARAMS, {"bins": 0, "rate": 2, "nope": 1, "mode": 3}, template_id="demo")
    assert [p.path for p in info.value.problems] == [
        "parameters.bins", "parameters.mode", "parameters.nope", "parameters.rate"]
    assert str(info.value).startswith("4 parameter problem(s) for template 'demo':")


def test_required_parameter_without_default() -> None:
    needed = Parameter("needed", "integer")
    with pytest.raises(ParameterError, match="`needed` is required"):
        resolve_parameters([needed], {})
    assert resolve_parameters([needed], {"needed": 3}) == {"needed": 3}


def test_declarations_accept_both_bound_spellings_and_type_aliases() -> None:
    a, found_a = parse_parameter({"name": "x", "type": "int", "minimum": 1, "maximum": 9, "default": 2}, 0)
    b, found_b = parse_parameter({"name": "y", "type": "numberArray", "arrayOf": "int", "default": [1]}, 1)
    assert a == Parameter("x", "integer", default=2, min=1, max=9) and found_a == []
    assert b is not None and b.type == "array" and b.items == "integer" and found_b == []


def test_declaration_problems_are_located() -> None:
    _, found = parse_parameter({"name": "x", "type": "integer", "min": 5, "max": 1, "default": 9}, 2)
    assert found == [
        (("parameters", 2, "max"), "error", "max (1) is below min (5)"),
        (("parameters", 2, "default"), "error", "default is invalid: `x` must be between 5 and 1, got 9"),
    ]
    _, found = parse_parameter({"name": "2x", "type": "integer"}, 0)
    assert found[0][0] == ("parameters", 0, "name")


def test_describe_gives_typed_defaults_for_the_api() -> None:
    d = DEMAND.describe()
    assert d["default"] == [1, 2, 3] and d["items"] == {"type": "number"} and d["enum"] is None
    assert d["min"] == 0 and d["max"] == 100 and d["minItems"] is None
    assert MODE.describe()["enum"] == ["uniform", "peak", "random"]


@pytest.mark.parametrize("param", [*PARAMS, Parameter("needed", "integer", unit="trains"),
                                   Parameter("counts", "array", default=[1], items="integer", min_items=1,
                                             max_items=4)])
def test_from_description_reads_back_what_describe_wrote(param: Parameter) -> None:
    assert Parameter.from_description(param.describe()) == param


def test_from_description_is_lenient_with_what_it_does_not_know() -> None:
    p = Parameter.from_description({"name": "x", "type": "duration", "minimum": 1, "max": "9", "minItems": -1})
    assert (p.type, p.min, p.max, p.min_items, p.title) == ("string", 1, None, None, "")
    assert Parameter.from_description({"name": "xs", "type": "array", "items": {"type": "int"}}).items == "integer"
    assert Parameter.from_description({"name": "xs", "type": "array"}).items is None
