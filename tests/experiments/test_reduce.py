"""
Batches reduced where they run: only each point's metrics and the captured
series come back from a backend, with the numbers computed from whole series;
and the factoring that cuts batches into Dask tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from threading import Event
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import flowtime
from flowtime.experiments.backends import InProcess, OnBatch, ProcessPool, Result, chunked
from flowtime.experiments.batch import Batch, evaluate_batch
from flowtime.experiments.reduce import METRICS_KEY

# utilization = served / (capacity x parallelism); the queue q[t] = MAX(0, q[t-1] + 3 - cap): 1, 2, 3, 4 at cap 2
SERVICE = """\
schemaVersion: 1
grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: arrivals, kind: const, values: [3, 3, 3, 3]}
  - {id: cap, kind: const, values: 3}
  - {id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) + arrivals - cap)'}
  - {id: served, kind: expr, expr: 'arrivals + SHIFT(q, 1) - q'}
topology:
  nodes:
    - id: Svc
      kind: service
      semantics: {arrivals: arrivals, served: served, capacity: cap, parallelism: 2}
"""
SPEC: dict[str, Any] = {
    "kind": "sweep", "capture": ["q"],
    "parameters": [{"target": "cap", "values": [2, 3, 4, 1]}],
    "metrics": [{"name": "util", "series": "svc_utilization"},  # derived from the topology, on the worker
                {"name": "q_max", "series": "q", "aggregate": "max"},
                {"name": "q_mean_x2", "expr": "q * 2"}]}
# by hand: cap 2 -> served 2 each bin, util 2 / 4 = 0.5, q 1,2,3,4 (max 4, mean 2.5 -> 5);
# cap 3 -> served 3, util 0.5, q 0; cap 4 -> served 3, util 3 / 8; cap 1 -> served 1, util 1 / 2, q 2,4,6,8
EXPECTED = [[0.5, 4, 5], [0.5, 0, 0], [0.375, 0, 0], [0.5, 8, 10]]


class Recording(InProcess):
    """In-process, keeping what each batch gave back (what a worker would have sent)."""

    def __init__(self) -> None:
        self.seen: list[Result] = []

    def run(self, model_text: str, batches: Sequence[Batch], *, on_batch: OnBatch | None = None,
            cancel: Event | None = None) -> list[Result]:
        out = super().run(model_text, batches, on_batch=on_batch, cancel=cancel)
        self.seen.extend(out)
        return out


def test_a_batch_gives_back_its_metrics_and_captured_series_only() -> None:
    spy = Recording()
    r = flowtime.experiment(SPEC, model=SERVICE, backend=spy)
    assert r.metrics.tolist() == EXPECTED
    assert r.series["q"].tolist() == [[1, 2, 3, 4], [0] * 4, [0] * 4, [2, 4, 6, 8]]
    # the engine computed arrivals, served, q and the topology's inputs; only these travelled back
    assert spy.seen and all(set(result) == {METRICS_KEY, "q"} for result in spy.seen)
    assert sum(result[METRICS_KEY].shape[0] for result in spy.seen) == 4
    assert all(result[METRICS_KEY].shape[1] == 3 for result in spy.seen)


def test_a_reduced_batch_equals_its_whole_series_reduced_by_hand() -> None:
    spy = Recording()
    flowtime.experiment(SPEC, model=SERVICE, backend=spy)
    reduced = spy.seen[0]
    whole = evaluate_batch(SERVICE, Batch(0, ({"cap": 2}, {"cap": 1}), (None, None), False, ("q", "served")))
    assert whole["served"].tolist() == [[2] * 4, [1] * 4]
    assert reduced[METRICS_KEY][0].tolist() == [0.5, whole["q"][0].max(), 2 * whole["q"][0].mean()]


def test_a_process_pool_reduces_to_the_same_bytes() -> None:
    base = flowtime.experiment(SPEC, model=SERVICE)
    with ProcessPool(2) as pool:
        got = flowtime.experiment(SPEC, model=SERVICE, backend=pool)
    assert got.metrics.tobytes() == base.metrics.tobytes()
    assert got.series["q"].tobytes() == base.series["q"].tobytes()


@given(st.integers(1, 3000), st.integers(1, 16))
def test_factoring_covers_every_batch_once_longest_first(count: int, workers: int) -> None:
    runs = chunked(count, workers)
    assert [i for r in runs for i in r] == list(range(count))  # consecutive, each batch exactly once
    sizes = [len(r) for r in runs]
    assert sizes == sorted(sizes, reverse=True)  # long runs first
    assert sizes[-1] == 1  # the workers finish within about a batch of each other
    assert sizes[0] == -(-count // (2 * workers))  # the first round: half the batches among the workers
    # each round takes half of what is left: about 2 x workers x log2(count / workers) tasks, not one per batch
    assert len(runs) <= workers * (2 * max(1, int(np.ceil(np.log2(max(2, count / workers))))) + 2)


def test_factoring_by_hand() -> None:
    assert [len(r) for r in chunked(47, 2)] == [12, 12, 6, 6, 3, 3, 2, 2, 1]
    assert [len(r) for r in chunked(1, 4)] == [1]
    assert chunked(0, 2) == []
