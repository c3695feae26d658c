"""
Canonical JSON and the hashes Sim derives from it.

One dump feeds every Sim hash, so equal inputs always give equal bytes:
keys sorted by Unicode code point, no whitespace, UTF-8, non-ASCII kept
as is, NaN/infinity refused. Floats that hold a whole number are written as
integers (``2.0`` -> ``2``) so that ``peak_factor=2`` and ``peak_factor=2.0``
name the same model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_MAX_EXACT_INT = 2**53


def normalise_numbers(value: Any) -> Any:
    """
    ``value`` with whole floats turned into ints, recursively.

    >>> normalise_numbers({"a": 2.0, "b": [1.5, 3.0], "c": True})
    {'a': 2, 'b': [1.5, 3], 'c': True}
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise_numbers(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """
    The canonical text of JSON-like data.

    Python sorts ``str`` keys by code point, which is the documented order.

    >>> canonical_json({"b": 1, "a": [2.0, "é"], "B": None})
    '{"B":null,"a":[2,"é"],"b":1}'
    """
    return json.dumps(
        normalise_numbers(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def sha256_hex(text: str) -> str:
    """
    Lowercase hex SHA-256 of ``text`` encoded as UTF-8.

    >>> sha256_hex("")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parameters_hash(template_id: str, template_version: str, parameters: dict[str, Any]) -> str:
    """
    The 8-hex part of a model id: SHA-256 over the canonical JSON of
    ``{"parameters": ..., "templateId": ..., "templateVersion": ...}``.

    >>> parameters_hash("t", "1.0", {"b": 2.0}) == parameters_hash("t", "1.0", {"b": 2})
    True
    """
    doc = {"parameters": parameters, "templateId": template_id, "templateVersion": template_version}
    return sha256_hex(canonical_json(doc))[:8]

