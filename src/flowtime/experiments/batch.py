"""
A batch of experiment points, and its evaluation in whatever process holds it.

A ``Batch`` is the unit a backend ships: the per-point ``set=`` overrides and
seeds, which node series the engine must compute, and either those series
come back whole or (``reduce``) only each point's metrics and the captured
series (``experiments.reduce``). ``evaluate_batch`` takes the model as
text (what travels cheaply to a worker) and keeps the planned model in a small
per-process cache keyed by the text's SHA-256, so a worker loads and plans a
model once however many batches it runs (decision 0033).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.engine.plan import Plan, plan
from flowtime.errors import ModelValidationError, Problem
from flowtime.experiments.reduce import Reduction, reduced
from flowtime.model.load import load_model
from flowtime.records import record

Series = npt.NDArray[np.float64]
CACHE_SIZE = 8  # plans kept per process: an experiment uses one model; a few more cover a busy worker


@record
class Batch:
    """
    Points ``start .. start + len(sets) - 1`` of an experiment: point i uses
    ``sets[i]`` (node id -> number, or one number per bin) and ``seeds[i]``;
    ``outputs`` are the series the result holds, or (``reduce``) reads.
    """

    start: int
    sets: tuple[dict[str, Any], ...]
    seeds: tuple[int | None, ...]
    sample_pmf: bool
    outputs: tuple[str, ...]
    reduce: Reduction | None = None

    @property
    def size(self) -> int:
        return len(self.sets)

    def check(self) -> None:
        """Every point has its seed, and there is at least one point."""
        if not self.sets or len(self.seeds) != len(self.sets):
            raise ModelValidationError([Problem("batch", f"batch at {self.start} has {len(self.sets)} sets and "
                                                         f"{len(self.seeds)} seeds; give one seed per point")])


_plans: OrderedDict[str, Plan] = OrderedDict()
_lock = threading.Lock()  # a Dask worker may run several tasks in threads


def text_key(model_text: str) -> str:
    return hashlib.sha256(model_text.encode("utf-8")).hexdigest()


def plan_of(model_text: str) -> Plan:
    """The plan of ``model_text``, loaded and planned once per process (bounded LRU cache)."""
    key = text_key(model_text)
    with _lock:
        cached = _plans.get(key)
        if cached is not None:
            _plans.move_to_end(key)
            return cached
    loaded = load_model(model_text, "<experiment model>")  # no series_files: a `file:` series is an error
    built = plan(loaded.model)
    with _lock:
        _plans[key] = built
        while len(_plans) > CACHE_SIZE:
            _plans.popitem(last=False)
    return built


def evaluate_batch(model_text: str, batch: Batch) -> dict[str, Series]:
    """
    The batch's points evaluated in one ``evaluate_many`` call: output node ->
    ``(points, bins)`` float64, C-contiguous and owned (the engine's result
    blocks are pooled and reused, so they are copied out) - or, with
    ``reduce``, the points' metrics and captured series (``reduce.reduced``).
    """
    batch.check()
    p = plan_of(model_text)
    unknown = [n for n in batch.outputs if n not in p.graph.nodes]
    if unknown:
        raise ModelValidationError([Problem("outputs", f"no node {n!r} in the model") for n in unknown])
    with _lock:  # a plan's pooled blocks are not shared between threads mid-evaluation
        many = p.evaluate_many(seeds=list(batch.seeds), sets=list(batch.sets), sample_pmf=batch.sample_pmf)
        if batch.reduce is not None:
            return reduced(p.model, {n: many[n] for n in batch.outputs}, batch.size, batch.reduce)
        return {n: np.array(many[n], dtype=np.float64, order="C", copy=True) for n in batch.outputs}


def warm(model_text: str) -> str:
    """Load and plan ``model_text`` in this process (a pool's initializer); returns its key."""
    plan_of(model_text)
    return text_key(model_text)
