"""
Provenance: where a model came from (template, version, parameters, time, tool).

Shared by Sim (which writes it) and Engine (which stores it with a run). Keys
are camelCase on the wire; snake_case spellings are accepted as aliases.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from flowtime.errors import ModelValidationError, Problem

HEADER = "X-Model-Provenance"
MAX_HEADER_BYTES = 64 * 1024


class Provenance(BaseModel):
    """
    A provenance record. Unknown keys are kept (``extra="allow"``) so nothing a
    client sent is lost.

    >>> Provenance.model_validate({"model_id": "model_x", "templateId": "t"}).to_json()
    {'modelId': 'model_x', 'templateId': 't'}
    """

    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="allow"
    )

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

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(by_alias=True, exclude_none=True)
        # Extras keep the client's spelling; normalise snake_case extras too.
        return {to_camel(k) if "_" in k else k: v for k, v in data.items()}


def _coerce_scalars(data: dict[str, Any]) -> dict[str, Any]:
    # YAML reads `templateVersion: 1.0` as a float; the record keeps strings.
    out = dict(data)
    for key in ("templateVersion", "template_version", "schemaVersion", "schema_version"):
        if isinstance(out.get(key), int | float) and not isinstance(out.get(key), bool):
            out[key] = str(out[key])
    return out


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
    try:
        return Provenance.model_validate(_coerce_scalars(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"]
            if err["type"] == "missing" and loc in ("modelId", "model_id"):
                msg = "modelId is required (e.g. \"modelId\": \"model_20250101T000000Z_ab12cd34\")"
            problems.append(Problem(f"{origin}.{loc}" if loc else origin, msg))
        raise ModelValidationError(problems) from None


def provenance_from_header(value: str) -> Provenance:
    """Parse the ``X-Model-Provenance`` header: a JSON object with at least ``modelId``."""
    origin = HEADER
    if len(value.encode()) > MAX_HEADER_BYTES:
        raise ModelValidationError([Problem(origin, f"header is larger than {MAX_HEADER_BYTES} bytes")])
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ModelValidationError(
            [Problem(origin, f"not valid JSON ({exc.msg} at character {exc.pos + 1}); "
                     "expected a JSON object such as {\"modelId\": \"...\", \"templateId\": \"...\"}")]
        ) from None
    return provenance_from_mapping(data, origin)
