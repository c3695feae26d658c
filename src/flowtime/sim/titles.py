"""
The title a generated model carries: the template's title and what changed.

``Commuter Rail Line (bins=12, seats_per_train=200)``; just the template's
title when every parameter is at its default. Runs are listed by this title
(the Engine reads ``metadata.title``), so it has to tell variants apart while
staying one readable line: long arrays are abbreviated and the whole is
bounded by ``MAX_TITLE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowtime.sim.template import Template

MAX_TITLE = 100
_ARRAY_SHOWN = 3  # values shown of a longer array
_TEXT_SHOWN = 24
_ELLIPSIS = "…"


def show_value(value: Any) -> str:
    """
    A parameter value as a title shows it.

    >>> show_value(2.0), show_value(True), show_value([1, 2, 3]), show_value([10, 20, 30, 40, 50])
    ('2', 'true', '[1, 2, 3]', '[10, 20, 30, … 5 values]')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        if len(value) <= _ARRAY_SHOWN + 1:
            return "[" + ", ".join(show_value(v) for v in value) + "]"
        head = ", ".join(show_value(v) for v in value[:_ARRAY_SHOWN])
        return f"[{head}, {_ELLIPSIS} {len(value)} values]"
    text = " ".join(str(value).split())  # one line
    return text if len(text) <= _TEXT_SHOWN else text[: _TEXT_SHOWN - 1] + _ELLIPSIS


def changed_parameters(template: Template, values: Mapping[str, Any],
                       defaults: Mapping[str, Any] | None = None) -> list[str]:
    """
    Names whose value differs from the default, in declaration order.
    ``defaults`` replaces a parameter's declared default (a per-bin array
    fitted to the grid counts as unchanged).
    """
    defaults = defaults or {}
    out = []
    for p in template.parameters:
        if p.name not in values:
            continue
        default = defaults.get(p.name, p.default)
        if p.required or values[p.name] != default:
            out.append(p.name)
    return out


def model_title(template: Template, values: Mapping[str, Any],
                defaults: Mapping[str, Any] | None = None, *, limit: int = MAX_TITLE) -> str:
    """
    ``<template title> (<name>=<value>, ...)``, at most ``limit`` characters.

    Parameters that do not fit are counted (``+2 more``) rather than cut mid-value.
    """
    base = " ".join(template.title.split()) or template.id
    if len(base) > limit:
        return base[: limit - 1] + _ELLIPSIS
    names = changed_parameters(template, values, defaults)
    if not names:
        return base
    parts: list[str] = []
    for i, name in enumerate(names):
        part = f"{name}={show_value(values[name])}"
        rest = len(names) - i - 1
        tail = f", +{rest} more" if rest else ""
        if len(_joined(base, [*parts, part])) + len(tail) > limit:
            more = f"+{len(names) - i} more"
            while parts and len(_joined(base, [*parts, more])) > limit:
                parts.pop()
                more = f"+{len(names) - len(parts)} more"
            candidate = _joined(base, [*parts, more])
            return candidate if len(candidate) <= limit else base
        parts.append(part)
    return _joined(base, parts)


def _joined(base: str, parts: list[str]) -> str:
    return f"{base} ({', '.join(parts)})"
