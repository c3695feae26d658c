"""
Where an experiment's batches are evaluated: in this process, a local process
pool, or a Dask cluster.

Every backend takes the model as text and a sequence of ``Batch``es and gives
back one result per batch, in batch order, whatever order they finished in;
``on_batch(i, result)`` is called as batch ``i`` finishes, and a set ``cancel``
event stops the run with ``ExperimentCancelled``. A batch's numbers depend only
on the batch (its seeds and overrides), so every backend gives the same bytes.

Dask is imported only when a ``DaskBackend`` starts (``pip install
'flowtime[dask]'``); workers need FlowTime importable. Decisions 0033, 0039, 0045.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from threading import Event
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from flowtime.errors import ExperimentCancelled, ExperimentError, Problem
from flowtime.experiments.batch import Batch, Series, evaluate_batch, text_key, warm

Result = dict[str, Series]
OnBatch = Callable[[int, Result], None]
ENV_ADDRESS = "FLOWTIME_DASK_ADDRESS"
RETRIES = 3  # a task that fails (or whose worker is lost) is run again this many times
# A waiting run wakes at least this often to look at its cancel event (a finished task wakes it at once).
WAIT_S = 0.05
# What a local cluster's processes do besides computing, on the cores the batches need (decision 0039):
# the statistical profiler (10 ms) and the GIL monitor (1 ms), which take the GIL to watch the task
# thread, a 20 ms event-loop watchdog, the memory monitor (a local
# cluster's workers hold a few result blocks, never enough to spill), work stealing (tasks are even
# runs of batches) and the system monitor's frequent samples.
WORKER_QUIET = {"distributed.worker.profile.enabled": False,
                "distributed.admin.system-monitor.gil.enabled": False,
                "distributed.admin.tick.interval": "1s",
                "distributed.scheduler.work-stealing": False,
                "distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False,
                "distributed.admin.system-monitor.interval": "5s"}


class Backend(Protocol):
    name: str

    def run(self, model_text: str, batches: Sequence[Batch], *, on_batch: OnBatch | None = None,
            cancel: Event | None = None) -> list[Result]: ...

    def close(self) -> None: ...


def checked(batch: Batch, start: int, result: Result) -> Result:
    """``result`` after checking it is the whole of ``batch`` (no point lost or doubled on the way)."""
    if start != batch.start:
        raise RuntimeError(f"a result for points from {start} came back for the batch from {batch.start}")
    for node, arr in result.items():
        if arr.ndim != 2 or arr.shape[0] != batch.size:
            raise RuntimeError(f"batch from {batch.start}: {node} came back with shape {arr.shape}, "
                               f"expected {batch.size} points")
    return result


def _task(model_text: str, batch: Batch) -> tuple[int, Result]:
    """One batch on a worker: its results tagged with its first point, checked when they arrive."""
    return batch.start, evaluate_batch(model_text, batch)


def _tasks(model_text: str, batches: Sequence[Batch]) -> list[tuple[int, Result]]:
    """Several batches as one Dask task, one after the other (each exactly as ``_task`` computes it)."""
    return [_task(model_text, b) for b in batches]


def chunked(count: int, workers: int) -> list[range]:
    """
    Batch indexes ``0..count-1`` as runs of consecutive batches, one Dask task
    each, by *factoring*: rounds of ``workers`` equal runs, each round's runs
    together half of what is left. The first runs are long (few tasks, few
    messages: a task costs the scheduler, a worker and the client a few
    milliseconds of CPU on the cores that compute), the last are single
    batches, so the workers finish within about one batch of each other
    however fast each turned out to be (decision 0045).

    >>> [len(r) for r in chunked(32, 2)]
    [8, 8, 4, 4, 2, 2, 1, 1, 1, 1]
    >>> [list(r) for r in chunked(3, 2)]
    [[0], [1], [2]]
    """
    out, start = [], 0
    workers = max(1, workers)
    while start < count:
        size = max(1, -(-(count - start) // (2 * workers)))
        for _ in range(workers):
            n = min(size, count - start)
            if n <= 0:
                break
            out.append(range(start, start + n))
            start += n
    return out


class _Closing:
    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class InProcess(_Closing):
    """Batches one after the other in this process (the default)."""

    name = "inprocess"

    def run(self, model_text: str, batches: Sequence[Batch], *, on_batch: OnBatch | None = None,
            cancel: Event | None = None) -> list[Result]:
        out: list[Result] = []
        for i, b in enumerate(batches):
            if cancel is not None and cancel.is_set():
                raise ExperimentCancelled(i, len(batches))
            start, result = _task(model_text, b)
            out.append(checked(b, start, result))
            if on_batch is not None:
                on_batch(i, result)
        return out


Arrived = list[tuple[int, tuple[int, Result]]]  # (batch index, (first point, result)) of batches just finished


def _collect(batches: Sequence[Batch], next_done: Callable[[], Arrived],
             stop: Callable[[], None], on_batch: OnBatch | None, cancel: Event | None) -> list[Result]:
    """The batches' results in batch order, as ``next_done`` hands them over (each exactly once)."""
    results: list[Result | None] = [None] * len(batches)
    done = 0
    while done < len(batches):
        if cancel is not None and cancel.is_set():
            stop()
            raise ExperimentCancelled(done, len(batches))
        for i, (start, result) in next_done():
            if results[i] is not None:
                raise RuntimeError(f"batch {i} came back twice")
            results[i] = checked(batches[i], start, result)
            done += 1
            if on_batch is not None:
                on_batch(i, result)
    return [r for r in results if r is not None]


class ProcessPool(_Closing):
    """
    A local pool of ``workers`` processes (default: the CPU count), started
    with ``forkserver`` where there is one, else ``spawn``: never ``fork``,
    which copies a process whose NumPy/Numba threads may hold locks. Workers
    load and plan the model once (the pool's initializer, then batch.plan_of's
    cache); the pool lives until ``close()``.
    """

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        methods = multiprocessing.get_all_start_methods()
        self.method = "forkserver" if "forkserver" in methods else "spawn"
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self, model_text: str) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context(self.method)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=warm,
                                             initargs=(model_text,))
        return self._pool

    def run(self, model_text: str, batches: Sequence[Batch], *, on_batch: OnBatch | None = None,
            cancel: Event | None = None) -> list[Result]:
        pool = self._executor(model_text)
        pending: dict[Any, int] = {pool.submit(_task, model_text, b): i for i, b in enumerate(batches)}

        def next_done() -> Arrived:
            finished, _ = wait(list(pending), timeout=WAIT_S, return_when=FIRST_COMPLETED)
            return [(pending.pop(f), f.result()) for f in sorted(finished, key=pending.__getitem__)]

        def stop() -> None:
            for f in pending:
                f.cancel()

        return _collect(batches, next_done, stop, on_batch, cancel)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _await(finished: Any) -> None:
    """
    Sleep until a task of ``finished`` (an ``as_completed``) is done, or
    ``WAIT_S``. Its condition is notified as each result arrives; polling
    instead took the client's GIL hundreds of times a second from the
    cluster's own event loop, on the cores the workers compute on.
    """
    cond = getattr(finished, "thread_condition", None)
    if cond is None:  # a Dask without it: poll
        time.sleep(0.002)
        return
    with cond:
        if not finished.has_ready():
            cond.wait(WAIT_S)


def _distributed() -> Any:
    """``distributed``, imported on first use (an optional dependency; untyped, so held as Any)."""
    import importlib

    return importlib.import_module("distributed")


def _dask_config() -> Any:
    import importlib

    return importlib.import_module("dask.config")


TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


class DaskBackend(_Closing):
    """
    A Dask cluster at ``address`` (``tcp://host:port``), or ``"local"``: a
    ``LocalCluster`` of 2 worker processes, one thread each, started here and
    closed by ``close()``. Each task is a run of batches (``chunked``: long
    runs first, single batches last; ``pure=False``, retried); the model
    text scattered to every worker once and kept while the backend lives, so
    the many small runs of a goal seek or an optimisation do not send it
    again.
    """

    name = "dask"

    def __init__(self, address: str, *, workers: int = 2, scatter: bool = True) -> None:
        self.address = address
        self.workers = workers
        self.scatter = scatter  # False: the text travels inside every task (measured in bench_experiments)
        self._client: Any = None
        self._cluster: Any = None
        self._text: tuple[str, frozenset[str], Any] | None = None  # (text's key, the workers it went to, future)

    def client(self) -> Any:
        if self._client is None:
            import logging

            dd = _distributed()
            Client, LocalCluster = dd.Client, dd.LocalCluster
            if self.address == "local":
                # Port 0 and no dashboard: Dask's fixed default port clashes with a second cluster. Dask
                # sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
                # threshold: every (K, bins) block is then a fresh mmap, and batches ran 1.7x slower (0033).
                with _dask_config().set({TRIM: None, **WORKER_QUIET}):
                    self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                 host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                 scheduler_kwargs={"dashboard": False},
                                                 silence_logs=logging.WARNING)
                self._client = Client(self._cluster)
            else:
                self._client = Client(self.address)
        return self._client

    def run(self, model_text: str, batches: Sequence[Batch], *, on_batch: OnBatch | None = None,
            cancel: Event | None = None) -> list[Result]:
        as_completed = _distributed().as_completed
        client = self.client()
        # Once to every worker, replicated, so a lost worker does not lose it (see 0033).
        threads = client.nthreads()
        text = self._scattered(client, model_text, frozenset(threads)) if self.scatter else model_text
        runs = chunked(len(batches), max(1, sum(threads.values())))
        # One graph for every task (one scheduler update, not one per task).
        futures = client.map(_tasks, [text] * len(runs), [[batches[i] for i in r] for r in runs], pure=False,
                             retries=RETRIES)
        pending: dict[Any, range] = dict(zip(futures, runs, strict=True))
        # with_results: fetched in the background as each finishes (one by one from here cost 6 ms a batch)
        finished = as_completed(futures, with_results=True)

        def next_done() -> Arrived:
            got = finished.next_batch(block=False)
            if not got:
                _await(finished)
                got = finished.next_batch(block=False)
            for _, parts in got:
                if isinstance(parts, BaseException):  # a task cancelled by the cluster (not by us)
                    raise parts
            return [(i, (int(start), {k: np.ascontiguousarray(v) for k, v in result.items()}))
                    for f, parts in got for i, (start, result) in zip(pending.pop(f), parts, strict=True)]

        def stop() -> None:
            client.cancel(list(pending))

        try:
            return _collect(batches, next_done, stop, on_batch, cancel)
        finally:
            if pending:  # stopped early: nothing left running (finished tasks need no message)
                client.cancel(list(pending))

    def _scattered(self, client: Any, model_text: str, workers: frozenset[str]) -> Any:
        """
        The model text on every worker: the copies sent for an earlier run while
        the same workers are there, else sent now (a worker that joined has no
        copy, and one that left may have taken the last).
        """
        key = text_key(model_text)
        if self._text is not None:
            held_key, held_on, held = self._text
            if held_key == key and held_on == workers and held.status == "finished":
                return held
            client.cancel([held])
        held = client.scatter(model_text, broadcast=True, hash=False)
        self._text = (key, workers, held)
        return held

    def close(self) -> None:
        self._text = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def backend_for(spec: str | None) -> InProcess | ProcessPool | DaskBackend:
    """
    The backend a ``--dask``/``backend`` value names: None (or "inprocess") is
    in-process unless ``FLOWTIME_DASK_ADDRESS`` is set; "processes" or
    "processes:N" a process pool; "local" a local Dask cluster; "tcp://host:port"
    (any ``scheme://``) a running Dask scheduler.
    """
    if spec is None:
        spec = os.environ.get(ENV_ADDRESS) or "inprocess"
    spec = spec.strip()
    if spec == "inprocess":
        return InProcess()
    if spec == "processes" or spec.startswith("processes:"):
        n = spec.partition(":")[2]
        if n and not (n.isdigit() and int(n) > 0):
            raise ExperimentError([Problem("backend", f"{spec!r}: processes:N needs a positive whole number "
                                                      "of workers")])
        return ProcessPool(int(n) if n else None)
    if spec == "local" or "://" in spec:
        return DaskBackend(spec)
    raise ExperimentError([Problem("backend", f"unknown backend {spec!r}: use inprocess, processes[:N], local "
                                              "or tcp://host:port")])
