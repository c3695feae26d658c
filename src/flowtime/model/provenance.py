"""
Provenance: where a model came from (template, version, parameters, time, tool).

Shared by Sim (which writes it) and Engine (which stores it with a run). Keys
are camelCase on the wire; snake_case spellings are accepted as aliases.
Anything a client sends must be storable as it came: JSON that cannot be
written back (NaN, lone surrogates, nesting deeper than any JSON writer
accepts) is refused here, as a located problem, before a run is stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import field, fields
from typing import Any

from flowtime.errors import ModelValidationError, Problem
from flowtime.records import record

HEADER = "X-Model-Provenance"
MAX_HEADER_BYTES = 64 * 1024
# Deep enough for any real record, well below what JSON writers refuse (orjson: 255).
MAX_DEPTH = 32

_STR_FIELDS = ("source", "model_id", "template_id", "template_version", "template_title",
               "generated_at", "received_at", "generator", "schema_version", "derived_from")
_DICT_FIELDS = ("parameters", "links", "overrides")


def to_camel(name: str) -> str:
    """
    >>> to_camel("template_version"), to_camel("modelId")
    ('templateVersion', 'modelId')
    """
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@record(kw_only=True)
class Provenance:
    """
    A provenance record. Unknown keys are kept in ``extra`` so nothing a client
    sent is lost.

    >>> provenance_from_mapping({"model_id": "model_x", "templateId": "t"}, "header").to_json()
    {'modelId': 'model_x', 'templateId': 't'}
    """

    # Field order is the order of ``to_json`` (the reference's: sim.md 5.1).
    source: str | None = None
    model_id: str
    template_id: str | None = None
    template_version: str | None = None
    template_title: str | None = None
    parameters: dict[str, Any] | None = None
    generated_at: str | None = None
    received_at: str | None = None
    generator: str | None = None
    schema_version: str | None = None
    derived_from: str | None = None
    links: dict[str, Any] | None = None
    # What-if overrides applied to the model's const nodes on top of this record (``--set``).
    overrides: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[to_camel(f.name)] = value
        # Extras keep the client's spelling; snake_case extras are normalised too.
        out.update({to_camel(k) if "_" in k else k: v for k, v in self.extra.items() if to_camel(k) not in out})
        return out

    @classmethod
    def model_validate(cls, data: Any) -> Provenance:
        """A record from a mapping (pydantic's spelling, kept for callers of earlier releases)."""
        return provenance_from_mapping(data, "provenance")

    def with_overrides(self, overrides: dict[str, Any] | None) -> Provenance:
        from dataclasses import replace

        return replace(self, overrides=overrides or None)


_KNOWN = {to_camel(n): n for n in (*_STR_FIELDS, *_DICT_FIELDS)} | {n: n for n in (*_STR_FIELDS, *_DICT_FIELDS)}


def _coerce_scalar(value: Any) -> Any:
    # YAML reads `templateVersion: 1.0` as a float; the record keeps strings.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check_storable(data: Any, origin: str) -> None:
    """Refuse values no JSON writer can write back: NaN/infinity, lone surrogates, deep nesting."""
    stack: list[tuple[Any, int, str]] = [(data, 0, origin)]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelValidationError([Problem(where, f"nested more than {MAX_DEPTH} levels deep")])
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelValidationError([Problem(where, f"{value} is not a JSON number; use a finite number or text")])
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict):
            for k, v in value.items():
                _check_text(str(k), where)
                stack.append((v, depth + 1, f"{where}.{k}"))
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))


def _check_text(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ModelValidationError([Problem(where, f"text holds a lone surrogate (U+{ord(text[exc.start]):04X}), "
                                                   "which is not valid Unicode")]) from None


def provenance_from_mapping(data: Any, origin: str) -> Provenance:
    """
    Validate a provenance mapping from ``origin`` (header or embedded block).

    Raises ``ModelValidationError`` naming every problem.
    """
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        raise ModelValidationError(
            [Problem(origin, f"provenance must be a mapping/JSON object, got {kind}")]
        )
    _check_storable(data, origin)
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        name = _KNOWN.get(str(key))
        if name is None:
            extra[str(key)] = value
            continue
        if name in ("template_version", "schema_version"):
            value = _coerce_scalar(value)
        if value is None:
            continue
        if name in _STR_FIELDS and not isinstance(value, str):
            problems.append(Problem(f"{origin}.{key}", f"must be text, got {type(value).__name__}"))
        elif name in _DICT_FIELDS and not isinstance(value, dict):
            problems.append(Problem(f"{origin}.{key}", f"must be an object, got {type(value).__name__}"))
        else:
            known[name] = value
    if "model_id" not in known and not any(p.path.endswith(("modelId", "model_id")) for p in problems):
        problems.append(Problem(f"{origin}.modelId",
                                "modelId is required (e.g. \"modelId\": \"model_20250101T000000Z_ab12cd34\")"))
    if problems:
        raise ModelValidationError(problems)
    return Provenance(**known, extra=extra)


class _NotJsonNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJsonNumber(f"{name} is not a JSON number; use a finite number or text")


def provenance_from_header(value: str) -> Provenance:
    """
    Parse the ``X-Model-Provenance`` header: a JSON object with at least ``modelId``.

    HTTP servers hand header values over as Latin-1 text; raw UTF-8 bytes are
    read back as UTF-8 here, so ``é`` sent unescaped is stored as ``é``.
    """
    origin = HEADER
    if len(value.encode("utf-8", "surrogatepass")) > MAX_HEADER_BYTES:
        raise ModelValidationError([Problem(origin, f"header is larger than {MAX_HEADER_BYTES} bytes")])
    if not value.isascii():
        try:
            value = value.encode("latin-1").decode("utf-8")
        except UnicodeEncodeError:
            pass  # already decoded text (a client library that sent it as str)
        except UnicodeDecodeError:
            raise ModelValidationError([Problem(origin, "header is not UTF-8 text; send UTF-8 JSON or "
                                                        "escape non-ASCII characters as \\uXXXX")]) from None
    try:
        data = json.loads(value, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ModelValidationError(
            [Problem(origin, f"not valid JSON ({exc.msg} at character {exc.pos + 1}); "
                     "expected a JSON object such as {\"modelId\": \"...\", \"templateId\": \"...\"}")]
        ) from None
    except RecursionError:  # json.loads recurses once per level of nesting
        raise ModelValidationError([Problem(origin, "JSON is nested too deeply")]) from None
    except _NotJsonNumber as exc:  # NaN, Infinity: Python reads them, no JSON writer writes them back
        raise ModelValidationError([Problem(origin, str(exc))]) from None
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        raise ModelValidationError([Problem(origin, "JSON holds a number too long to read")]) from None
    return provenance_from_mapping(data, origin)
