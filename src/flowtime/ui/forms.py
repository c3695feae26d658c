"""
Template parameters -> form fields, and form text -> typed parameter values.

Sim describes each parameter as JSON (``Parameter.describe``); the UI reads it
back with ``Parameter.from_description`` and checks values with the same
``Parameter.check`` Sim runs. What belongs to the form lives here: each
field's label, widget, step and hint (``FormField``), and the reading of field
text (numbers, comma- or space-separated lists, checkbox spellings).
``parse_form`` is the server-side check, text -> value -> ``Parameter.check``;
it collects every message, keyed by parameter name, so each lands next to its
field.

>>> params = parameters_from_schema([{"name": "bins", "type": "integer", "default": 6, "min": 3, "max": 48}])
>>> parse_form(params, {"bins": "12"})
({'bins': 12}, {})
>>> parse_form(params, {"bins": "99"})[1]
{'bins': 'Must be between 3 and 48, got 99.'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from flowtime.model.parameters import Parameter, fit_to_length, fmt_value

_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no", ""}
_SPLIT = re.compile(r"[\s,;]+")


def fmt_number(value: Any) -> str:
    """
    A value as a person reads it: numbers as in messages, no quotes on text.

    >>> fmt_number(3.0), fmt_number(0.25), fmt_number(7), fmt_number(None), fmt_number("days")
    ('3', '0.25', '7', '', 'days')
    """
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return fmt_value(value)
    return str(value)


@dataclass(frozen=True)
class FormField:
    """A parameter with the text currently in its input and its message, if any."""

    parameter: Parameter
    value: str
    error: str | None = None

    @property
    def name(self) -> str:
        return self.parameter.name

    @property
    def label(self) -> str:
        return self.parameter.title or self.parameter.name

    @property
    def item_type(self) -> str:
        return self.parameter.items or "number"

    @property
    def widget(self) -> str:
        p = self.parameter
        if p.enum is not None and p.type != "array":
            return "select"
        return {"integer": "number", "number": "number", "boolean": "checkbox",
                "array": "array"}.get(p.type, "text")

    @property
    def step(self) -> str:
        p = self.parameter
        whole = p.type == "integer" or (p.type == "array" and p.items == "integer")
        return "1" if whole else "any"

    @property
    def hint(self) -> str:
        """
        The constraint in words, shown under the field.

        >>> FormField(Parameter("n", "integer", min=3, max=48), "").hint
        'Whole number, 3 to 48'
        >>> FormField(Parameter("xs", "array", min=0, min_items=2, max_items=4), "").hint
        '2 to 4 numbers, comma-separated, each at least 0'
        """
        p = self.parameter
        if p.type == "boolean":
            return ""
        if p.enum is not None and p.type != "array":
            return "One of: " + ", ".join(fmt_number(v) for v in p.enum)
        bounds = _bounds_text(p.min, p.max)
        if p.type == "integer":
            return "Whole number" + (f", {bounds}" if bounds else "")
        if p.type == "number":
            return "Number" + (f", {bounds}" if bounds else "")
        if p.type == "array":
            noun = "whole numbers" if p.items == "integer" else "numbers"
            count = ""
            if p.min_items is not None and p.max_items is not None:
                count = (f"{p.min_items} " if p.min_items == p.max_items
                         else f"{p.min_items} to {p.max_items} ")
            elif p.min_items is not None:
                count = f"at least {p.min_items} "
            elif p.max_items is not None:
                count = f"up to {p.max_items} "
            text = f"{count}{noun}, comma-separated" + (f", each {bounds}" if bounds else "")
            return text[0].upper() + text[1:]
        return ""

    @property
    def checked(self) -> bool:
        return self.value.strip().lower() in _TRUE

    @property
    def changed(self) -> bool:
        """True when the value differs from the template's default."""
        return self.value != to_text(self.parameter.default)


def parameters_from_schema(schema: Iterable[Mapping[str, Any]]) -> list[Parameter]:
    """Sim's parameter descriptions -> parameters; entries without a name are skipped."""
    return [Parameter.from_description(p) for p in schema if isinstance(p, Mapping) and p.get("name")]


@dataclass(frozen=True)
class BinsLink:
    """
    Which field holds the number of bins and which array fields need one value
    per bin (Sim's ``binsParameter`` and ``perBin``): those follow the bins field.
    """

    bins: str | None = None
    arrays: tuple[str, ...] = ()

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> BinsLink:
        """
        >>> BinsLink.from_template({"binsParameter": "bins", "parameters": [
        ...     {"name": "bins", "type": "integer"}, {"name": "xs", "type": "array", "perBin": True}]})
        BinsLink(bins='bins', arrays=('xs',))
        >>> BinsLink.from_template({"parameters": [{"name": "xs", "type": "array", "perBin": True}]})
        BinsLink(bins=None, arrays=())
        """
        params = [p for p in template.get("parameters") or [] if isinstance(p, Mapping)]
        names = {str(p.get("name")) for p in params}
        bins = template.get("binsParameter")
        if not isinstance(bins, str) or bins not in names:
            return cls()
        arrays = tuple(str(p["name"]) for p in params
                       if p.get("perBin") is True and p.get("type") == "array" and p.get("name") != bins)
        return cls(bins, arrays)


def follow_bins(parameters: Sequence[Parameter], texts: Mapping[str, str], link: BinsLink) -> dict[str, str]:
    """
    ``texts`` with each per-bin field that still holds its default fitted to
    the bins field (pattern repeated, or trimmed), as the page's script does
    while the user types; a field the user changed is left for Sim to check.

    >>> ps = parameters_from_schema([{"name": "bins", "type": "integer", "default": 3},
    ...                              {"name": "xs", "type": "array", "default": [1, 2, 3]}])
    >>> follow_bins(ps, {"bins": "5", "xs": "1, 2, 3"}, BinsLink("bins", ("xs",)))["xs"]
    '1, 2, 3, 1, 2'
    >>> follow_bins(ps, {"bins": "5", "xs": "7, 8"}, BinsLink("bins", ("xs",)))["xs"]
    '7, 8'
    """
    out = dict(texts)
    by_name = {p.name: p for p in parameters}
    if link.bins not in by_name:
        return out
    try:
        bins = parse_value(by_name[link.bins], out.get(link.bins, to_text(by_name[link.bins].default)))
    except ValueError:
        return out  # the bins field shows its own message
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        return out
    for name in link.arrays:
        p = by_name.get(name)
        if p is None or not isinstance(p.default, list) or not p.default or len(p.default) == bins:
            continue
        try:
            current = parse_value(p, out.get(name, to_text(p.default)))
        except ValueError:
            continue
        if current == p.default:
            out[name] = to_text(fit_to_length(p.default, bins))
    return out


def to_text(value: Any) -> str:
    """
    A typed parameter value as the text a field shows.

    >>> to_text([10, 15.5, 20]), to_text(True), to_text(None)
    ('10, 15.5, 20', 'true', '')
    """
    if isinstance(value, list | tuple):
        return ", ".join(fmt_number(v) for v in value)
    return fmt_number(value)


def texts_from_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Typed values (e.g. provenance parameters) -> field texts, for pre-filling a form."""
    return {k: to_text(v) for k, v in values.items()}


def prefill_url(template_id: str, parameters: Mapping[str, Any], **extra: str) -> str:
    """
    The template form pre-filled with ``parameters`` (typed values).

    >>> prefill_url("t", {"bins": 6, "xs": [1, 2]}, _from="run_1")
    '/templates/t?bins=6&xs=1%2C+2&_from=run_1'
    """
    query = urlencode({**texts_from_values(parameters), **extra})
    return f"/templates/{quote(template_id, safe='')}" + (f"?{query}" if query else "")


def build_form(parameters: Sequence[Parameter], texts: Mapping[str, str] | None = None,
               errors: Mapping[str, str] | None = None) -> list[FormField]:
    """Fields in schema order; ``texts`` overrides defaults (query string, posted form)."""
    texts = texts or {}
    errors = errors or {}
    return [
        FormField(p, texts[p.name] if p.name in texts else to_text(p.default), errors.get(p.name))
        for p in parameters
    ]


def parse_form(parameters: Sequence[Parameter],
               texts: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values and per-field messages; values only for fields without a message."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in parameters:
        text = texts.get(p.name)
        if text is None and p.type == "boolean":
            text = "false"  # an unticked checkbox is not sent
        if text is None:
            text = ""
        try:
            values[p.name] = parse_value(p, text)
        except ValueError as exc:
            errors[p.name] = str(exc)
    return values, errors


def parse_value(p: Parameter, text: str) -> Any:
    """One field's text -> a typed value, or ``ValueError`` with the message to show."""
    value, messages = p.check(read_text(p, text))
    if messages:
        raise ValueError(" ".join(field_message(p.name, m) for m in messages))
    return value


def read_text(p: Parameter, text: str) -> Any:
    """
    The value a field's text spells, before any check. Text that spells no
    value of the parameter's type is passed on as text, for ``Parameter.check``
    to name; only an empty number or list field is refused here.

    >>> xs = Parameter("xs", "array")
    >>> read_text(xs, "[1, 2.5; x]"), read_text(Parameter("on", "boolean"), "on")
    ([1, 2.5, 'x'], True)
    """
    raw = text.strip()
    if p.type == "boolean":
        low = raw.lower()
        return True if low in _TRUE else False if low in _FALSE else raw
    if p.type == "string":
        return raw if p.enum is not None else text
    if raw == "":
        raise ValueError("A value is required.")
    if p.type == "array":
        body = raw.removeprefix("[").removesuffix("]").strip()
        parts = [s for s in _SPLIT.split(body) if s]
        if not parts:
            raise ValueError("Enter at least one value, separated by commas.")
        return [_number(s) for s in parts]
    return _number(raw)


def field_message(name: str, message: str) -> str:
    """
    A problem with parameter ``name`` as its field shows it: the field already
    names the parameter, so a leading `` `name` `` is dropped and the rest made
    a sentence. Other messages are shown as they are.

    >>> field_message("bins", "`bins` must be between 3 and 48, got 99")
    'Must be between 3 and 48, got 99.'
    >>> field_message("bins", "too big")
    'too big'
    """
    prefix = f"`{name}` "
    if not message.startswith(prefix):
        return message
    text = message.removeprefix(prefix)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _bounds_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{fmt_number(lo)} to {fmt_number(hi)}"
    if lo is not None:
        return f"at least {fmt_number(lo)}"
    if hi is not None:
        return f"at most {fmt_number(hi)}"
    return ""


def split_upstream_errors(problems: Iterable[Any],
                          names: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """
    Sim's located problems (``path`` = ``parameters.<name>``) -> messages per
    field, plus the ones that belong to no field.

    >>> class P:
    ...     def __init__(self, path, message): self.path, self.message = path, message
    >>> split_upstream_errors([P("parameters.bins", "too big"), P("", "bad")], ["bins"])
    ({'bins': 'too big'}, ['bad'])
    """
    known = set(names)
    per_field: dict[str, str] = {}
    general: list[str] = []
    for prob in problems:
        path = str(getattr(prob, "path", "") or "")
        message = str(getattr(prob, "message", "") or "")
        name = path.removeprefix("parameters.").split(".", 1)[0].split("[", 1)[0]
        if path.startswith("parameters.") and name in known:
            message = field_message(name, message)
            per_field[name] = (per_field[name] + " " + message) if name in per_field else message
        else:
            general.append(f"{path}: {message}" if path else message)
    return per_field, general
