"""
A minimal in-process backend with the contract's shapes (``Batch``, ``evaluate_batch``, ``Backend.run``).

Stand-in until ``experiments.batch`` and ``experiments.backends`` (helper H)
land: the evaluator imports ``Batch``, ``evaluate_batch`` and ``InProcess``
from here, and switches to H's modules by changing that one import.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from flowtime.engine.plan import Plan, plan
from flowtime.errors import FlowTimeError
from flowtime.model.load import load_model
from flowtime.records import record

Series = npt.NDArray[np.float64]
_PLANS: dict[str, Plan] = {}


@record
class Batch:
    start: int
    sets: tuple[dict[str, Any], ...]
    seeds: tuple[int | None, ...]
    sample_pmf: bool
    outputs: tuple[str, ...]


def evaluate_batch(model_text: str, batch: Batch) -> dict[str, Series]:
    key = hashlib.sha256(model_text.encode()).hexdigest()
    p = _PLANS.get(key)
    if p is None:
        if len(_PLANS) > 64:
            _PLANS.clear()
        p = _PLANS[key] = plan(load_model(model_text).model)
    many = p.evaluate_many(seeds=list(batch.seeds), sets=list(batch.sets), sample_pmf=batch.sample_pmf)
    return {n: np.ascontiguousarray(many[n]) for n in batch.outputs}


class ExperimentCancelled(FlowTimeError):
    title = "Experiment cancelled"


class Backend(Protocol):
    name: str

    def run(self, model_text: str, batches: Sequence[Batch], *,
            on_batch: Callable[[int, dict[str, Series]], None] | None = None,
            cancel: threading.Event | None = None) -> list[dict[str, Series]]: ...


class InProcess:
    name = "inprocess"

    def run(self, model_text: str, batches: Sequence[Batch], *,
            on_batch: Callable[[int, dict[str, Series]], None] | None = None,
            cancel: threading.Event | None = None) -> list[dict[str, Series]]:
        out = []
        for i, b in enumerate(batches):
            if cancel is not None and cancel.is_set():
                raise ExperimentCancelled("the experiment was cancelled")
            got = evaluate_batch(model_text, b)
            out.append(got)
            if on_batch is not None:
                on_batch(i, got)
        return out
