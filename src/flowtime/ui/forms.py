"""
Template parameter schema -> form fields, and form text -> typed parameter values.

Sim describes each parameter as ``{name, type, title, description, default,
min, max, enum, items, minItems, maxItems}`` with ``type`` one of integer,
number, boolean, string, array. ``build_form`` turns that into fields the
Jinja macro renders (with the HTML constraints the browser checks first);
``parse_form`` is the server-side check, which collects every message, keyed by
parameter name, so each lands next to its field.

>>> params = [Parameter.from_json({"name": "bins", "type": "integer", "default": 6, "min": 3, "max": 48})]
>>> parse_form(params, {"bins": "12"})
({'bins': 12}, {})
>>> parse_form(params, {"bins": "99"})[1]
{'bins': 'Must be between 3 and 48, got 99.'}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

TYPES = ("integer", "number", "boolean", "string", "array")
_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no", ""}
_SPLIT = re.compile(r"[\s,;]+")


def fmt_number(value: Any) -> str:
    """
    A number as a person writes it: no ``.0`` on whole numbers.

    >>> fmt_number(3.0), fmt_number(0.25), fmt_number(7), fmt_number(None)
    ('3', '0.25', '7', '')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Parameter:
    """One template parameter as Sim describes it."""

    name: str
    type: str
    title: str = ""
    description: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    item_type: str = "number"
    min_items: int | None = None
    max_items: int | None = None
    unit: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Parameter:
        ptype = str(data.get("type") or "string").lower()
        if ptype not in TYPES:
            ptype = "string"
        items = data.get("items") or {}
        enum = data.get("enum")
        return cls(
            name=str(data["name"]),
            type=ptype,
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            default=data.get("default"),
            minimum=_num_or_none(data.get("min", data.get("minimum"))),
            maximum=_num_or_none(data.get("max", data.get("maximum"))),
            enum=tuple(enum) if isinstance(enum, list) and enum else None,
            item_type=str(items.get("type") or "number") if isinstance(items, dict) else "number",
            min_items=_int_or_none(data.get("minItems")),
            max_items=_int_or_none(data.get("maxItems")),
            unit=str(data.get("unit") or ""),
        )

    @property
    def label(self) -> str:
        return self.title or self.name

    @property
    def required(self) -> bool:
        return self.type != "boolean" and not (self.type == "string" and self.enum is None)

    @property
    def widget(self) -> str:
        if self.enum is not None and self.type != "array":
            return "select"
        return {"integer": "number", "number": "number", "boolean": "checkbox",
                "array": "array"}.get(self.type, "text")

    @property
    def step(self) -> str:
        whole = self.type == "integer" or (self.type == "array" and self.item_type == "integer")
        return "1" if whole else "any"

    @property
    def hint(self) -> str:
        """
        The constraint in words, shown under the field.

        >>> Parameter("n", "integer", minimum=3, maximum=48).hint
        'Whole number, 3 to 48'
        >>> Parameter("xs", "array", minimum=0, min_items=2, max_items=4).hint
        '2 to 4 numbers, comma-separated, each at least 0'
        """
        if self.type == "boolean":
            return ""
        if self.enum is not None and self.type != "array":
            return "One of: " + ", ".join(fmt_number(v) for v in self.enum)
        bounds = _bounds_text(self.minimum, self.maximum)
        if self.type == "integer":
            return "Whole number" + (f", {bounds}" if bounds else "")
        if self.type == "number":
            return "Number" + (f", {bounds}" if bounds else "")
        if self.type == "array":
            noun = "whole numbers" if self.item_type == "integer" else "numbers"
            count = ""
            if self.min_items is not None and self.max_items is not None:
                count = (f"{self.min_items} " if self.min_items == self.max_items
                         else f"{self.min_items} to {self.max_items} ")
            elif self.min_items is not None:
                count = f"at least {self.min_items} "
            elif self.max_items is not None:
                count = f"up to {self.max_items} "
            text = f"{count}{noun}, comma-separated" + (f", each {bounds}" if bounds else "")
            return text[0].upper() + text[1:]
        return ""


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
    def checked(self) -> bool:
        return self.value.strip().lower() in _TRUE

    @property
    def changed(self) -> bool:
        """True when the value differs from the template's default."""
        return self.value != to_text(self.parameter.default)


def parameters_from_schema(schema: Iterable[Mapping[str, Any]]) -> list[Parameter]:
    return [Parameter.from_json(p) for p in schema if isinstance(p, Mapping) and p.get("name")]


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
    raw = text.strip()
    if p.type == "boolean":
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"Must be true or false, got '{raw}'.")
    if p.type == "string":
        if p.enum is not None and raw not in [str(v) for v in p.enum]:
            raise ValueError(f"Must be one of {_enum_text(p.enum)}, got '{raw}'.")
        return text
    if raw == "":
        raise ValueError("A value is required.")
    if p.type == "array":
        return _parse_array(p, raw)
    value = _parse_scalar(raw, p.type)
    if p.enum is not None:
        match = [v for v in p.enum if _same(v, value)]
        if not match:
            raise ValueError(f"Must be one of {_enum_text(p.enum)}, got {fmt_number(value)}.")
        return match[0]
    _check_bounds(value, p.minimum, p.maximum, None)
    return value


def _parse_array(p: Parameter, raw: str) -> list[Any]:
    body = raw.strip().removeprefix("[").removesuffix("]").strip()
    parts = [s for s in _SPLIT.split(body) if s] if body else []
    if p.min_items is not None and len(parts) < p.min_items:
        raise ValueError(f"Needs at least {p.min_items} values, got {len(parts)}.")
    if p.max_items is not None and len(parts) > p.max_items:
        raise ValueError(f"Takes at most {p.max_items} values, got {len(parts)}.")
    if not parts:
        raise ValueError("Enter at least one value, separated by commas.")
    out: list[Any] = []
    for i, part in enumerate(parts, start=1):
        try:
            value = _parse_scalar(part, p.item_type)
        except ValueError as exc:
            raise ValueError(f"Item {i}: {str(exc)[0].lower()}{str(exc)[1:]}") from None
        _check_bounds(value, p.minimum, p.maximum, i)
        out.append(value)
    return out


def _parse_scalar(raw: str, kind: str) -> int | float:
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            as_float = float(raw)
        except ValueError:
            raise ValueError(f"Must be a whole number, got '{raw}'.") from None
        if math.isfinite(as_float) and as_float.is_integer():
            return int(as_float)
        raise ValueError(f"Must be a whole number, got '{raw}'.")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"Must be a number, got '{raw}'.") from None
    if not math.isfinite(value):
        raise ValueError(f"Must be a finite number, got '{raw}'.")
    return int(value) if value.is_integer() and "." not in raw and "e" not in raw.lower() else value


def _check_bounds(value: float, lo: float | None, hi: float | None, item: int | None) -> None:
    lead = f"Item {item} must" if item is not None else "Must"
    got = fmt_number(value)
    if lo is not None and hi is not None:
        if not lo <= value <= hi:
            raise ValueError(f"{lead} be between {fmt_number(lo)} and {fmt_number(hi)}, got {got}.")
    elif lo is not None and value < lo:
        raise ValueError(f"{lead} be at least {fmt_number(lo)}, got {got}.")
    elif hi is not None and value > hi:
        raise ValueError(f"{lead} be at most {fmt_number(hi)}, got {got}.")


def _bounds_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{fmt_number(lo)} to {fmt_number(hi)}"
    if lo is not None:
        return f"at least {fmt_number(lo)}"
    if hi is not None:
        return f"at most {fmt_number(hi)}"
    return ""


def _enum_text(enum: Sequence[Any]) -> str:
    return ", ".join(fmt_number(v) if not isinstance(v, str) else f"'{v}'" for v in enum)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str):
        return a == str(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _num_or_none(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _int_or_none(v: Any) -> int | None:
    n = _num_or_none(v)
    return int(n) if n is not None else None


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
            per_field[name] = (per_field[name] + " " + message) if name in per_field else message
        else:
            general.append(f"{path}: {message}" if path else message)
    return per_field, general
