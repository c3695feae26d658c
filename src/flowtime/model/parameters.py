"""
Template parameters: their declared types and the checks on values.

A parameter is declared in a template's ``parameters:`` list and described
as JSON by Sim's API; ``Parameter.describe`` and ``Parameter.from_description``
are the two directions of that JSON, so Sim and the UI check values with the
same ``Parameter.check``. Overrides are checked for type, range (per element
for arrays), enum membership, array length and unknown names; every problem
is collected and raised once as a ``ParameterError`` whose problems have the
path ``parameters.<name>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flowtime.errors import ParameterError, Problem
from flowtime.expr.functions import suggest

PARAM_TYPES = ("integer", "number", "boolean", "string", "array")
ITEM_TYPES = ("integer", "number")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

# Spellings seen in templates of other tools, mapped to ours.
_TYPE_ALIASES = {
    "int": "integer", "long": "integer", "float": "number", "double": "number",
    "decimal": "number", "bool": "boolean", "str": "string", "text": "string",
    "list": "array", "numberarray": "array", "numberArray": "array",
}
_ITEM_ALIASES = {"int": "integer", "long": "integer", "double": "number", "float": "number"}
# (key or None for the parameter itself, message, severity="error") -> None
_Report = Callable[..., None]
Finding = tuple[tuple[str | int, ...], str, str]  # (template path, severity, message)

KNOWN_FIELDS = frozenset({
    "name", "type", "title", "description", "default", "min", "max", "minimum", "maximum",
    "enum", "items", "arrayOf", "minItems", "maxItems", "unit",
})


@dataclass(frozen=True)
class Parameter:
    """
    One declared parameter. ``default`` is ``None`` for a required parameter.

    >>> p = Parameter("bins", "integer", default=6, min=3, max=48)
    >>> p.check(12.0), p.check(50)
    ((12, []), (50, ['`bins` must be between 3 and 48, got 50']))
    """

    name: str
    type: str
    title: str = ""
    description: str = ""
    default: Any = None
    min: float | None = None
    max: float | None = None
    enum: tuple[Any, ...] | None = None
    items: str | None = None  # element type of an array parameter
    min_items: int | None = None
    max_items: int | None = None
    unit: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    def range_text(self) -> str:
        """'3..48', '>= 0', '<= 1' or '' (for tables)."""
        if self.min is not None and self.max is not None:
            return f"{fmt_value(self.min)}..{fmt_value(self.max)}"
        if self.min is not None:
            return f">= {fmt_value(self.min)}"
        if self.max is not None:
            return f"<= {fmt_value(self.max)}"
        return ""

    def check(self, value: Any, max_array_length: int | None = None) -> tuple[Any, list[str]]:
        """The value coerced to this parameter's type, and what is wrong with it."""
        checker = _CHECKERS[self.type]
        return checker(self, value, max_array_length)

    def describe(self) -> dict[str, Any]:
        """The JSON description served by ``GET /api/v1/templates/{id}``."""
        return {
            "name": self.name,
            "type": self.type,
            "title": self.title or self.name,
            "description": self.description,
            "default": self.default,
            "required": self.required,
            "min": self.min,
            "max": self.max,
            "enum": list(self.enum) if self.enum is not None else None,
            "items": {"type": self.items} if self.type == "array" else None,
            "minItems": self.min_items,
            "maxItems": self.max_items,
            "unit": self.unit,
        }

    @classmethod
    def from_description(cls, data: Mapping[str, Any]) -> Parameter:
        """
        The parameter ``describe()`` wrote, read back from its JSON.

        Lenient, because the reader shows whatever it is sent: a type it does
        not know reads as ``string``, bounds and counts that are not numbers
        as absent, ``minimum``/``maximum`` as ``min``/``max``. A title equal to
        the name reads as no title, since ``describe()`` writes the name there.

        >>> p = Parameter("xs", "array", default=[1, 2], min=0, items="integer", max_items=4)
        >>> Parameter.from_description(p.describe()) == p
        True
        >>> Parameter.from_description({"name": "n", "type": "duration", "min": "3"})
        Parameter(name='n', type='string', title='', description='', default=None, min=None, \
max=None, enum=None, items=None, min_items=None, max_items=None, unit=None)
        """
        name = str(data["name"])
        ptype = _canonical_type(str(data.get("type") or "string"))
        items = data.get("items")
        item_type = items.get("type") if isinstance(items, Mapping) else None
        item_type = _ITEM_ALIASES.get(str(item_type), item_type)
        enum, title, unit = data.get("enum"), data.get("title"), data.get("unit")
        return cls(
            name=name,
            type=ptype if ptype in PARAM_TYPES else "string",
            title=str(title) if title and title != name else "",
            description=str(data.get("description") or ""),
            default=data.get("default"),
            min=_finite_or_none(data.get("min", data.get("minimum"))),
            max=_finite_or_none(data.get("max", data.get("maximum"))),
            enum=tuple(enum) if isinstance(enum, list) and enum else None,
            items=item_type if item_type in ITEM_TYPES else None,
            min_items=_count_or_none(data.get("minItems")),
            max_items=_count_or_none(data.get("maxItems")),
            unit=str(unit) if unit is not None else None,
        )


def fit_to_length(values: Sequence[Any], n: int) -> list[Any]:
    """
    ``values`` repeated, then cut, to ``n`` items: how a per-bin array left at
    its default follows a changed ``bins`` (Sim and the UI's form use this one rule).

    >>> fit_to_length([1, 2, 3], 7), fit_to_length([1, 2, 3], 2), fit_to_length([5], 3)
    ([1, 2, 3, 1, 2, 3, 1], [1, 2], [5, 5, 5])
    """
    if not values:
        raise ValueError("nothing to repeat")
    return [values[i % len(values)] for i in range(n)]


def fmt_value(v: Any, limit: int = 60) -> str:
    """
    A value as it reads in a message: numbers without a trailing ``.0``.

    >>> fmt_value(3.0), fmt_value(0.25), fmt_value("x"), fmt_value([1.0, 2.5]), fmt_value(True)
    ('3', '0.25', "'x'", '[1, 2.5]', 'true')
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        text = "[" + ", ".join(fmt_value(x, limit) for x in v[:20]) + (", ..." if len(v) > 20 else "") + "]"
    elif v is None:
        text = "null"
    else:
        text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean {fmt_value(v)}"
    if isinstance(v, str):
        return f"the text {fmt_value(v)}"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return fmt_value(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite_or_none(v: Any) -> float | None:
    return v if _is_number(v) and math.isfinite(v) else None


def _count_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _range_problem(p: Parameter, v: float, what: str) -> str | None:
    low = p.min is not None and v < p.min
    high = p.max is not None and v > p.max
    if not (low or high):
        return None
    if p.min is not None and p.max is not None:
        allowed = f"between {fmt_value(p.min)} and {fmt_value(p.max)}"
    elif p.min is not None:
        allowed = f"at least {fmt_value(p.min)}"
    else:
        allowed = f"at most {fmt_value(p.max)}"
    return f"{what} must be {allowed}, got {fmt_value(v)}"


def _enum_problem(p: Parameter, v: Any) -> str | None:
    if p.enum is None or v in p.enum:
        return None
    options = ", ".join(fmt_value(e) for e in p.enum)
    return f"`{p.name}` must be one of {options}, got {fmt_value(v)}"


def _number(p: Parameter, v: Any, whole: bool, what: str) -> tuple[Any, str | None]:
    if not _is_number(v):
        expected = "a whole number" if whole else "a number"
        return v, f"{what} must be {expected}, got {_kind(v)}"
    if isinstance(v, float) and not math.isfinite(v):
        return v, f"{what} must be a finite number, got {fmt_value(v)}"
    if whole and isinstance(v, float):
        if not v.is_integer():
            return v, f"{what} must be a whole number, got {fmt_value(v)}"
        v = int(v)
    elif isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        v = int(v)  # one spelling per value: 2.0 and 2 name the same model
    return v, _range_problem(p, v, what)


def _check_integer(p: Parameter, v: Any, _limit: int | None) -> tuple[Any, list[str]]:
    return _check_scalar(p, v, whole=True)


def _check_number(p: Parameter, v: Any, _limit: int | None) -> tuple[Any, list[str]]:
    return _check_scalar(p, v, whole=False)


def _check_scalar(p: Parameter, v: Any, *, whole: bool) -> tuple[Any, list[str]]:
    v, problem = _number(p, v, whole, f"`{p.name}`")
    if problem:
        return v, [problem]
    e = _enum_problem(p, v)
    return v, [e] if e else []


def _check_boolean(p: Parameter, v: Any, _limit: int | None) -> tuple[Any, list[str]]:
    if not isinstance(v, bool):
        return v, [f"`{p.name}` must be true or false, got {_kind(v)}"]
    return v, []


def _check_string(p: Parameter, v: Any, _limit: int | None) -> tuple[Any, list[str]]:
    if not isinstance(v, str):
        return v, [f"`{p.name}` must be text, got {_kind(v)}"]
    e = _enum_problem(p, v)
    return v, [e] if e else []


def _check_array(p: Parameter, v: Any, limit: int | None) -> tuple[Any, list[str]]:
    if not isinstance(v, list | tuple):
        return v, [f"`{p.name}` must be a list of numbers such as [10, 20, 30], got {_kind(v)}"]
    n = len(v)
    if limit is not None and n > limit:
        return v, [f"`{p.name}` has {n} elements; the limit is {limit} (max_array_length)"]
    problems: list[str] = []
    if p.min_items is not None and n < p.min_items:
        problems.append(f"`{p.name}` needs at least {p.min_items} elements, got {n}")
    if p.max_items is not None and n > p.max_items:
        problems.append(f"`{p.name}` takes at most {p.max_items} elements, got {n}")
    out: list[Any] = []
    whole = p.items == "integer"
    for i, item in enumerate(v):
        item, problem = _number(p, item, whole, f"`{p.name}` element {i}")
        if problem:
            problems.append(problem)
        out.append(item)
    return out, problems


_CHECKERS = {
    "integer": _check_integer,
    "number": _check_number,
    "boolean": _check_boolean,
    "string": _check_string,
    "array": _check_array,
}


def resolve_parameters(
    params: Sequence[Parameter],
    overrides: Mapping[str, Any],
    *,
    template_id: str = "",
    max_array_length: int | None = None,
) -> dict[str, Any]:
    """
    Defaults merged with ``overrides``, every value checked and typed, in
    declaration order. Raises ``ParameterError`` listing every problem.

    >>> ps = [Parameter("bins", "integer", default=6, min=3, max=48)]
    >>> resolve_parameters(ps, {"bins": 12.0})
    {'bins': 12}
    """
    resolved, problems = check_parameters(params, overrides, max_array_length=max_array_length)
    if problems:
        raise ParameterError(problems, template_id)
    return resolved


def check_parameters(
    params: Sequence[Parameter], overrides: Mapping[str, Any], *, max_array_length: int | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """
    The values that passed their checks (defaults merged in) and a problem per
    failure, so a caller can add checks of its own before raising once.
    """
    by_name = {p.name: p for p in params}
    problems: list[Problem] = []
    for name in overrides:
        if name in by_name:
            continue
        hint = suggest(str(name), list(by_name))
        known = ", ".join(by_name) or "(none)"
        problems.append(Problem(f"parameters.{name}",
                                f"unknown parameter `{name}`{hint}; this template takes: {known}"))
    resolved: dict[str, Any] = {}
    for p in params:
        if p.name in overrides:
            raw = overrides[p.name]
        elif p.required:
            problems.append(Problem(f"parameters.{p.name}",
                                    f"`{p.name}` is required (the template gives no default)"))
            continue
        else:
            raw = p.default
        typed, messages = p.check(raw, max_array_length)
        if messages:
            problems.extend(Problem(f"parameters.{p.name}", m) for m in messages)
        else:
            resolved[p.name] = typed
    return resolved, problems


def parse_parameter(raw: Any, index: int) -> tuple[Parameter | None, list[Finding]]:
    """
    A ``Parameter`` from its template mapping, plus (path, severity, message)
    findings. Paths are relative to the template (``parameters[2].max``).
    """
    base: tuple[str | int, ...] = ("parameters", index)
    found: list[Finding] = []

    def err(key: str | None, message: str, severity: str = "error") -> None:
        found.append(((*base, key) if key else base, severity, message))

    if not isinstance(raw, dict):
        err(None, f"each parameter must be a mapping with name and type, got {_kind(raw)}")
        return None, found
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        err("name", "parameter name must start with a letter or '_' and use only letters, digits "
            f"and '_', got {_kind(name)}")
        return None, found
    for key in raw:
        if key not in KNOWN_FIELDS:
            err(str(key), f"parameter field '{key}' is ignored{suggest(str(key), sorted(KNOWN_FIELDS))}",
                "warning")

    ptype = _param_type(raw, err)
    if ptype is None:
        return None, found
    low = _bound(raw, "min", "minimum", err)
    high = _bound(raw, "max", "maximum", err)
    if low is not None and high is not None and low > high:
        err("max", f"max ({fmt_value(high)}) is below min ({fmt_value(low)})")
    items = _items_type(raw, ptype, err)
    min_items = _count(raw, "minItems", err)
    max_items = _count(raw, "maxItems", err)
    enum = raw.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum
                             or any(isinstance(e, dict | list) for e in enum)):
        err("enum", "enum must be a non-empty list of allowed values")
        enum = None
    title, description, unit = (raw.get(k) for k in ("title", "description", "unit"))
    param = Parameter(
        name=name, type=ptype,
        title=str(title) if title is not None else "",
        description=str(description) if description is not None else "",
        default=None, min=low, max=high,
        enum=tuple(enum) if enum is not None else None,
        items=items, min_items=min_items, max_items=max_items,
        unit=str(unit) if unit is not None else None,
    )
    default = raw.get("default")
    if default is not None:
        typed, messages = param.check(default)
        for m in messages:
            err("default", f"default is invalid: {m}")
        if not messages:
            param = replace(param, default=typed)
    return param, found


def _param_type(raw: dict[Any, Any], err: _Report) -> str | None:
    ptype = raw.get("type")
    if ptype is None:
        default = raw.get("default")
        inferred = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
        ptype = inferred.get(type(default))
        if ptype is None:
            err("type", f"type is required: one of {', '.join(PARAM_TYPES)}")
        return ptype
    if not isinstance(ptype, str):
        err("type", f"type must be one of {', '.join(PARAM_TYPES)}, got {_kind(ptype)}")
        return None
    ptype = _canonical_type(ptype)
    if ptype not in PARAM_TYPES:
        err("type", f"unknown type {raw.get('type')!r}; use one of {', '.join(PARAM_TYPES)}"
            f"{suggest(str(raw.get('type')), PARAM_TYPES)}")
        return None
    return ptype


def _canonical_type(ptype: str) -> str:
    return _TYPE_ALIASES.get(ptype, _TYPE_ALIASES.get(ptype.lower(), ptype.lower()))


def _bound(raw: dict[Any, Any], short: str, long: str, err: _Report) -> float | None:
    if short in raw and long in raw:
        err(long, f"give either `{short}` or `{long}`, not both")
    key = short if short in raw else long
    v = _finite_or_none(raw.get(key))
    if v is None:
        if raw.get(key) is not None:
            err(key, f"{key} must be a number, got {_kind(raw.get(key))}")
        return None
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v


def _items_type(raw: dict[Any, Any], ptype: str, err: _Report) -> str | None:
    if ptype != "array":
        return None
    spec = raw.get("items", raw.get("arrayOf", "number"))
    if isinstance(spec, dict):
        spec = spec.get("type", "number")
    spec = _ITEM_ALIASES.get(str(spec), str(spec))
    if spec not in ITEM_TYPES:
        err("items", f"array elements must be integer or number, got {spec!r}")
        return "number"
    return spec


def _count(raw: dict[Any, Any], key: str, err: _Report) -> int | None:
    v = _count_or_none(raw.get(key))
    if v is None and raw.get(key) is not None:
        err(key, f"{key} must be a whole number >= 0, got {_kind(raw.get(key))}")
    return v
