"""Parameter schema -> form fields, and the server-side check of what comes back."""

from __future__ import annotations

from typing import Any

import pytest

from flowtime.model.parameters import Parameter
from flowtime.ui.forms import (
    BinsLink,
    FormField,
    build_form,
    field_message,
    follow_bins,
    parameters_from_schema,
    parse_form,
    parse_value,
    prefill_url,
    split_upstream_errors,
    texts_from_values,
)


def param(**kw: Any) -> Parameter:
    return Parameter.from_description({"name": "x", **kw})


def field(**kw: Any) -> FormField:
    return FormField(param(**kw), "")


# ---- schema -> fields --------------------------------------------------------------------------


@pytest.mark.parametrize(("ptype", "widget", "step"), [
    ("integer", "number", "1"),
    ("number", "number", "any"),
    ("boolean", "checkbox", "any"),
    ("string", "text", "any"),
    ("array", "array", "any"),
])
def test_each_type_gets_its_widget(ptype: str, widget: str, step: str) -> None:
    f = field(type=ptype)
    assert (f.widget, f.step) == (widget, step)


def test_an_enum_becomes_a_select_whatever_its_type() -> None:
    assert field(type="string", enum=["a", "b"]).widget == "select"
    assert field(type="integer", enum=[1, 2]).widget == "select"


def test_an_unknown_type_is_treated_as_text() -> None:
    assert field(type="duration").widget == "text"


def test_bounds_are_read_from_min_max_or_minimum_maximum() -> None:
    assert (param(type="integer", min=3, max=48).min, param(type="integer", min=3, max=48).max) == (3, 48)
    p = param(type="integer", minimum=1, maximum=9)
    assert (p.min, p.max) == (1, 9)


def test_array_items_type_and_length_bounds_are_kept() -> None:
    f = field(type="array", items={"type": "integer"}, minItems=2, maxItems=5, min=0, max=10)
    assert (f.item_type, f.parameter.min_items, f.parameter.max_items, f.step) == ("integer", 2, 5, "1")
    assert f.hint == "2 to 5 whole numbers, comma-separated, each 0 to 10"


@pytest.mark.parametrize(("kw", "hint"), [
    ({"type": "integer", "min": 3, "max": 48}, "Whole number, 3 to 48"),
    ({"type": "number", "min": 0}, "Number, at least 0"),
    ({"type": "number", "max": 1.5}, "Number, at most 1.5"),
    ({"type": "number"}, "Number"),
    ({"type": "string", "enum": ["a", "b"]}, "One of: a, b"),
    ({"type": "boolean"}, ""),
    ({"type": "array", "maxItems": 3}, "Up to 3 numbers, comma-separated"),
    ({"type": "array", "min": 0}, "Numbers, comma-separated, each at least 0"),
])
def test_hints_describe_the_constraint_in_words(kw: dict[str, Any], hint: str) -> None:
    assert field(**kw).hint == hint


def test_fields_show_defaults_in_schema_order_and_texts_override_them() -> None:
    params = parameters_from_schema([
        {"name": "bins", "type": "integer", "default": 6},
        {"name": "xs", "type": "array", "default": [1, 2.5]},
        {"name": "on", "type": "boolean", "default": True},
    ])
    fields = build_form(params, {"bins": "12"}, {"bins": "too big"})
    assert [(f.name, f.value, f.error) for f in fields] == [
        ("bins", "12", "too big"), ("xs", "1, 2.5", None), ("on", "true", None)]
    assert fields[0].changed and not fields[1].changed
    assert fields[2].checked


def test_schema_entries_without_a_name_are_skipped() -> None:
    assert [p.name for p in parameters_from_schema([{"type": "integer"}, {"name": "a"}])] == ["a"]


# ---- server-side validation ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("12", 12), (" 7 ", 7), ("3.0", 3), ("1e1", 10)])
def test_integers_parse(text: str, value: int) -> None:
    assert parse_value(param(type="integer"), text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("abc", "Must be a whole number, got the text 'abc'."),
    ("2.5", "Must be a whole number, got 2.5."),
    ("", "A value is required."),
])
def test_bad_integers_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_value(param(type="integer"), text)


def test_numbers_parse_and_reject_non_finite() -> None:
    assert parse_value(param(type="number"), "0.25") == 0.25
    assert parse_value(param(type="number"), "4") == 4
    with pytest.raises(ValueError, match="Must be a finite number, got inf"):
        parse_value(param(type="number"), "inf")
    with pytest.raises(ValueError, match="Must be a number, got the text 'x'"):
        parse_value(param(type="number"), "x")


@pytest.mark.parametrize(("kw", "text", "message"), [
    ({"min": 3, "max": 48}, "2", "Must be between 3 and 48, got 2."),
    ({"min": 3, "max": 48}, "49", "Must be between 3 and 48, got 49."),
    ({"min": 0}, "-1", "Must be at least 0, got -1."),
    ({"max": 1}, "1.5", "Must be at most 1, got 1.5."),
])
def test_bounds_are_inclusive_and_messages_name_value_and_range(kw: dict[str, Any], text: str,
                                                                 message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_value(param(type="number", **kw), text)
    assert str(info.value) == message


def test_bounds_themselves_are_accepted() -> None:
    p = param(type="integer", min=3, max=48)
    assert (parse_value(p, "3"), parse_value(p, "48")) == (3, 48)


def test_enums_accept_listed_values_with_their_type() -> None:
    assert parse_value(param(type="string", enum=["hours", "days"]), "days") == "days"
    assert parse_value(param(type="integer", enum=[15, 60]), "60") == 60
    with pytest.raises(ValueError, match="Must be one of 'hours', 'days', got 'weeks'"):
        parse_value(param(type="string", enum=["hours", "days"]), "weeks")
    with pytest.raises(ValueError, match="Must be one of 15, 60, got 30"):
        parse_value(param(type="integer", enum=[15, 60]), "30")


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("on", True), ("1", True), ("false", False), ("", False), ("off", False)])
def test_booleans_accept_checkbox_and_query_spellings(text: str, value: bool) -> None:
    assert parse_value(param(type="boolean"), text) is value


def test_an_unticked_checkbox_is_false() -> None:
    assert parse_form([param(type="boolean")], {}) == ({"x": False}, {})


def test_strings_are_kept_as_typed() -> None:
    assert parse_value(param(type="string"), " a b ") == " a b "


@pytest.mark.parametrize(("text", "value"), [
    ("1, 2, 3", [1, 2, 3]), ("[1,2.5]", [1, 2.5]), ("4 5\t6", [4, 5, 6]), ("7;8", [7, 8])])
def test_arrays_accept_commas_spaces_semicolons_and_brackets(text: str, value: list[float]) -> None:
    assert parse_value(param(type="array"), text) == value


@pytest.mark.parametrize(("kw", "text", "message"), [
    ({"items": {"type": "integer"}}, "1, 2.5", "Element 1 must be a whole number, got 2.5."),
    ({}, "1, x", "Element 1 must be a number, got the text 'x'."),
    ({"min": 0, "max": 10}, "1, 11", "Element 1 must be between 0 and 10, got 11."),
    ({"minItems": 3}, "1, 2", "Needs at least 3 elements, got 2."),
    ({"maxItems": 2}, "1, 2, 3", "Takes at most 2 elements, got 3."),
    ({}, "[]", "Enter at least one value, separated by commas."),
])
def test_array_problems_name_the_element(kw: dict[str, Any], text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_value(param(type="array", **kw), text)
    assert str(info.value) == message


def test_parse_form_collects_every_message() -> None:
    params = parameters_from_schema([
        {"name": "a", "type": "integer", "min": 0}, {"name": "b", "type": "number"},
        {"name": "c", "type": "integer"}])
    values, errors = parse_form(params, {"a": "-1", "b": "x", "c": "4"})
    assert values == {"c": 4}
    assert errors == {"a": "Must be at least 0, got -1.", "b": "Must be a number, got the text 'x'."}


# ---- round trips and upstream messages --------------------------------------------------------


def test_typed_values_become_field_texts_that_parse_back() -> None:
    params = parameters_from_schema([
        {"name": "n", "type": "integer"}, {"name": "xs", "type": "array"}, {"name": "f", "type": "boolean"},
        {"name": "r", "type": "number"}])
    values = {"n": 6, "xs": [1, 2.5, 3], "f": True, "r": 0.1}
    assert parse_form(params, texts_from_values(values)) == (values, {})


def test_prefill_url_encodes_every_parameter() -> None:
    assert prefill_url("commuter-rail", {"bins": 6, "demand": [1, 2]}) == \
        "/templates/commuter-rail?bins=6&demand=1%2C+2"
    assert prefill_url("t", {}) == "/templates/t"


def test_sim_problems_are_placed_at_their_fields() -> None:
    class P:
        def __init__(self, path: str, message: str) -> None:
            self.path, self.message = path, message

    per_field, general = split_upstream_errors(
        [P("parameters.bins", "bins = 99 is outside 3..48"), P("parameters.demand[2]", "negative"),
         P("parameters.nope", "unknown parameter"), P("", "template failed")], ["bins", "demand"])
    assert per_field == {"bins": "bins = 99 is outside 3..48", "demand": "negative"}
    assert general == ["parameters.nope: unknown parameter", "template failed"]


def test_every_array_problem_is_shown_at_the_field() -> None:
    with pytest.raises(ValueError) as info:
        parse_value(param(type="array", min=0, maxItems=2), "-1, 2, x")
    assert str(info.value) == ("Takes at most 2 elements, got 3. Element 0 must be at least 0, got -1. "
                               "Element 2 must be a number, got the text 'x'.")


def test_form_and_sim_messages_read_the_same_at_the_field() -> None:
    """The shared check's messages lose the parameter name the field already shows."""
    p = param(type="integer", min=3, max=48)
    _, errors = parse_form([p], {"x": "99"})
    assert field_message("x", p.check(99)[1][0]) == errors["x"] == "Must be between 3 and 48, got 99."

    class P:
        def __init__(self, path: str, message: str) -> None:
            self.path, self.message = path, message

    per_field, _ = split_upstream_errors([P("parameters.x", "`x` must be between 3 and 48, got 99")], ["x"])
    assert per_field == errors


# ---- per-bin arrays follow bins ---------------------------------------------------------------

SCHEMA = {"binsParameter": "days", "parameters": [
    {"name": "days", "type": "integer", "default": 4, "min": 1, "max": 30},
    {"name": "load", "type": "array", "default": [1, 2, 3, 4], "perBin": True},
    {"name": "weights", "type": "array", "default": [0.5, 0.5], "perBin": False},
]}
PARAMS = parameters_from_schema(SCHEMA["parameters"])
LINK = BinsLink.from_template(SCHEMA)


def test_the_bins_link_comes_from_sims_description() -> None:
    assert BinsLink.from_template(SCHEMA) == BinsLink("days", ("load",))
    assert BinsLink.from_template({"binsParameter": "nope", "parameters": SCHEMA["parameters"]}) == BinsLink()
    assert BinsLink.from_template({"parameters": SCHEMA["parameters"]}) == BinsLink()


@pytest.mark.parametrize(("days", "load"), [("6", "1, 2, 3, 4, 1, 2"), ("2", "1, 2"), ("4", "1, 2, 3, 4")])
def test_an_untouched_per_bin_field_follows_days(days: str, load: str) -> None:
    texts = follow_bins(PARAMS, {"days": days, "load": "1, 2, 3, 4", "weights": "0.5, 0.5"}, LINK)
    assert texts == {"days": days, "load": load, "weights": "0.5, 0.5"}
    assert parse_form(PARAMS, texts)[1] == {}


def test_a_changed_or_unreadable_field_is_left_as_typed() -> None:
    assert follow_bins(PARAMS, {"days": "6", "load": "9, 9"}, LINK)["load"] == "9, 9"
    assert follow_bins(PARAMS, {"days": "6", "load": "1, x"}, LINK)["load"] == "1, x"
    assert follow_bins(PARAMS, {"days": "many", "load": "1, 2, 3, 4"}, LINK)["load"] == "1, 2, 3, 4"
    assert follow_bins(PARAMS, {"days": "6", "load": "1, 2, 3, 4"}, BinsLink())["load"] == "1, 2, 3, 4"


def test_a_field_missing_from_the_texts_is_filled_at_the_new_length() -> None:
    assert follow_bins(PARAMS, {"days": "5"}, LINK)["load"] == "1, 2, 3, 4, 1"
