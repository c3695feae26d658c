"""
``modelHash`` and ``scenarioHash``: what identifies a model and a scenario.

One implementation for Engine (run manifests) and Sim (its store's model
hash), so the same model carries the same hash wherever it is shown.

``modelHash`` is SHA-256 over the canonical JSON of ``Model.canonical()``:
comments, key order, number spelling, expression spacing, metadata and
provenance do not count. ``scenarioHash`` adds the run options that change the
numbers - the seed and the sampling flag, only when something was sampled.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

from flowtime.model.schema import Model


def sha256_text(data: bytes) -> str:
    """
    >>> sha256_text(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """
    Sorted keys, no whitespace, UTF-8, floats in shortest round-trip form.

    >>> canonical_json({"b": 1.0, "a": [1, "x"]})
    b'{"a":[1,"x"],"b":1.0}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# A model is immutable, so its canonical JSON is computed once per model object.
# Kept here, by id, rather than on the (frozen, slotted) model, so it can never
# take part in ``==`` nor be carried over by ``dataclasses.replace``.
_JSON: dict[int, bytes] = {}


def _model_json(model: Model) -> bytes:
    key = id(model)
    cached = _JSON.get(key)
    if cached is None:
        cached = canonical_json(model.canonical())
        _JSON[key] = cached
        weakref.finalize(model, _JSON.pop, key, None)  # forget it with the model (ids are reused)
    return cached


def model_digest(model: Model) -> str:
    """The hex SHA-256 of ``model_hash``, without the ``sha256:`` label."""
    return hashlib.sha256(_model_json(model)).hexdigest()


def model_hash(model: Model) -> str:
    """
    >>> from flowtime.model.load import load_model
    >>> a = load_model("schemaVersion: 1\\ngrid: {bins: 1, binSize: 1, binUnit: hours}\\n"
    ...                "nodes: [{id: a, kind: expr, expr: '1+2'}]  # a comment").model
    >>> b = load_model("grid: {binUnit: HOURS, bins: 1, binSize: 1}\\nschemaVersion: 1\\n"
    ...                "nodes: [{kind: expr, id: a, expr: '(1) + 2'}]").model
    >>> model_hash(a) == model_hash(b)
    True
    """
    return sha256_text(_model_json(model))


def scenario_hash(model: Model, seed: int | None, sampled: bool) -> str:
    """
    The model plus the run options that change its numbers. The seed counts only
    when something was sampled, since otherwise it cannot change any value.
    """
    # Built around the cached model JSON; the bytes equal canonical_json of
    # {"model": ...} (plus "samplePmf" and "seed", in sorted key order).
    body = b'{"model":' + _model_json(model)
    if sampled:
        body += b',"samplePmf":true,"seed":' + canonical_json(seed)
    return sha256_text(body + b"}")
