"""
The Engine's experiment jobs: accepted, queued, running, ended (decisions 0036, 0037).

Every accepted request is written to the queue folder before the 202
(``artifacts.experiment_queue``) and removed when the job is stored, fails, or
a client cancels it; a server that stops (shut down or killed) leaves its
unfinished requests there, and the next one runs them again from the start at
``start_up``. A job tells its listeners of every change (``Job.watch``): the
event stream waits on that, never polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from flowtime.artifacts import layout
from flowtime.artifacts.experiment_index import StoredExperiment
from flowtime.artifacts.experiment_queue import ExperimentQueue, QueuedRequest, Unreadable
from flowtime.artifacts.experiments import ExperimentStore, check_experiment_id
from flowtime.errors import ExperimentCancelled, FlowTimeError
from flowtime.experiments.runner import run_experiment
from flowtime.experiments.spec import AnySpec
from flowtime.settings import EngineSettings

log = logging.getLogger("flowtime.engine.experiments")
KEPT_ENDED = 100  # failed and cancelled experiments remembered (in memory) for GET, the oldest forgotten first
TERMINAL = ("done", "failed", "cancelled")


def planned_points(spec: AnySpec) -> int | None:
    """How many points the experiment evaluates, when its kind fixes that in advance."""
    settings: Any = spec.settings
    if spec.kind == "montecarlo":
        return int(settings.replications)
    if spec.kind == "sweep":
        if settings.method == "lhs":
            return int(settings.points) if settings.points is not None else None
        total = 1
        for p in spec.parameters:
            size = len(p.values) if p.values is not None else (p.range.steps if p.range is not None else None)
            if size is None:
                return None
            total *= size
        return total
    return None


class Job:
    """One experiment in memory; ``spec`` is None for a saved request that could not be read back."""

    def __init__(self, exp_id: str, spec: AnySpec | None, text: str, title: str, m_hash: str, *,
                 kind: str | None = None, created: datetime | None = None,
                 grid: dict[str, Any] | None = None) -> None:
        self.id, self.spec, self.text, self.title, self.model_hash = exp_id, spec, text, title, m_hash
        self.grid = grid  # the model's (as runs answer it); None for a saved request that could not be read back
        self.kind = spec.kind if spec is not None else (kind or "unknown")
        self.status = "queued"
        self.done = 0
        self.total = planned_points(spec) if spec is not None else None
        self.created = created or datetime.now(UTC)
        self.started: float | None = None  # time.monotonic() when it began running
        self.cancel = threading.Event()
        self.error: dict[str, Any] | None = None
        self.future: Future[None] | None = None
        self.version = 0  # bumped by every change; the event stream's event ids
        self.status_since = 0  # the version that set the current status
        self._listeners: set[Callable[[], None]] = set()
        self._lock = threading.Lock()

    def changed(self, **fields: Any) -> None:
        """Set ``fields`` and tell every listener (from any thread)."""
        with self._lock:
            for name, value in fields.items():
                setattr(self, name, value)
            self.version += 1
            if "status" in fields:
                self.status_since = self.version
            listeners = list(self._listeners)
        for tell in listeners:
            tell()

    def watch(self, tell: Callable[[], None]) -> Callable[[], None]:
        """Call ``tell`` after every change until the returned function is called."""
        with self._lock:
            self._listeners.add(tell)
        return lambda: self._listeners.discard(tell)

    def progress(self) -> dict[str, Any]:
        """Points done of the total (None: the kind decides as it goes), the rate per second and the ETA."""
        rate = eta = None
        if self.started is not None and self.done:
            elapsed = time.monotonic() - self.started
            rate = self.done / elapsed if elapsed > 0 else None
        if rate and self.total is not None:
            eta = max(0.0, (self.total - self.done) / rate)
        return {"done": self.done, "total": self.total, "rate": rate, "etaSeconds": eta}

    def summary(self) -> StoredExperiment:
        targets = tuple(p.target for p in self.spec.parameters) if self.spec is not None else ()
        return StoredExperiment(self.id, self.kind, self.title, self.done, self.status,
                                layout.utc_iso(self.created), "", self.model_hash, targets)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.summary().to_json(), "progress": self.progress(), "grid": self.grid}
        del out["finishedUtc"]
        if self.error is not None:
            out["error"] = self.error
        return out


class Experiments:
    """The jobs of one Engine app, the queue folder that keeps them, and the store they end in."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.store = ExperimentStore(settings.data_dir)
        self.queue = ExperimentQueue(self.store.root)
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=settings.experiment_workers, thread_name_prefix="experiment")

    def accept(self, job: Job, given: dict[str, Any]) -> None:
        """
        Keep the request on disk, then queue the job (a full disk: 507, nothing queued).
        ``given`` is the spec as the client sent it (plus the seed drawn for it): checked
        again after a restart against that server's limits, not this one's.
        """
        self.queue.put(QueuedRequest(job.id, given, job.text, job.title, job.model_hash,
                                     layout.utc_iso(job.created)))
        self.submit(job)

    def submit(self, job: Job) -> None:
        with self.lock:
            self._forget_oldest_ended()
            self.jobs[job.id] = job
            if job.status == "queued":
                job.future = self.pool.submit(self._run, job)

    def _forget_oldest_ended(self) -> None:
        ended = [j.id for j in self.jobs.values() if j.status in ("failed", "cancelled")]
        for old in ended[:max(0, len(ended) - KEPT_ENDED)]:  # oldest first (insertion order)
            del self.jobs[old]

    def start_up(self, resume: Callable[[QueuedRequest], Job]) -> None:
        """
        The store checked, then every request a stopped server left queued again.
        ``resume`` checks one as a new request is checked; a request that no longer
        passes, or cannot be read, is a failed job saying why.
        """
        self.store.check()
        pending = self.queue.pending()  # in the order they were accepted (ids of one second sort at random)
        pending.sort(key=lambda r: r.submitted if isinstance(r, QueuedRequest) else "")
        for request in pending:
            if self.store._complete(request.id):  # stored before the stop, its request not yet removed
                self.queue.remove(request.id)
                continue
            if isinstance(request, Unreadable):
                job = Job(request.id, None, "", "", "", created=_created_of(request.id))
                self._fail(job, "Unreadable experiment request", request.reason)
                self.submit(job)
                continue
            try:
                job = resume(request)
            except FlowTimeError as exc:
                job = Job(request.id, None, request.model, request.title, request.model_hash,
                          kind=str(request.spec.get("kind")), created=submitted(request))
                self._fail(job, "Experiment request no longer accepted", f"after a restart: {exc}")
                self.submit(job)
                continue
            log.info("experiment %s queued again after a restart", job.id)
            self.submit(job)

    def _fail(self, job: Job, title: str, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        job.changed(status="failed", error={"title": title, "detail": detail, "errors": errors or []})

    def _run(self, job: Job) -> None:
        assert job.spec is not None
        if job.cancel.is_set():
            job.changed(status="cancelled")
            return
        job.changed(status="running", started=time.monotonic())
        try:
            result = run_experiment(job.spec, job.text, self.settings.experiment_backend, cancel=job.cancel,
                                    on_progress=lambda n: job.changed(done=n))
            if job.cancel.is_set():
                raise ExperimentCancelled(job.done, job.total or job.done)
            self.store.write(job.id, result=result, model_text=job.text, title=job.title,
                             model_hash=job.model_hash, created=job.created, grid=job.grid,
                             backend=self.settings.experiment_backend or "inprocess")
            self.queue.remove(job.id)
            with self.lock:
                self.jobs.pop(job.id, None)  # stored: read from disk from now on
            job.changed(done=result.n, status="done")
        except ExperimentCancelled:
            job.changed(status="cancelled")  # by a client (its request is gone) or by shutdown (kept)
        except FlowTimeError as exc:
            self.queue.remove(job.id)  # the same request would fail the same way again
            self._fail(job, getattr(exc, "title", type(exc).__name__), str(exc), [p.to_dict() for p in exc.problems])
        except Exception as exc:  # a bug must not leave the job "running" for ever
            log.exception("experiment %s failed", job.id)
            self.queue.remove(job.id)
            self._fail(job, "Internal error", f"{type(exc).__name__}: {exc}")

    def job(self, exp_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(check_experiment_id(exp_id))

    def live(self) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if j.status != "done"]

    def forget(self, job: Job) -> None:
        """A client cancelled or dismissed ``job``: its request is removed for good."""
        self.queue.remove(job.id)
        if job.status in ("failed", "cancelled"):
            with self.lock:
                self.jobs.pop(job.id, None)

    def close(self) -> None:
        """Shutdown: running jobs cancelled, queued ones never started; their requests stay for the next start."""
        with self.lock:
            for job in self.jobs.values():
                job.cancel.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _created_of(exp_id: str) -> datetime | None:
    return layout.created_from_id(exp_id.replace("exp_", "run_", 1))


def submitted(request: QueuedRequest) -> datetime | None:
    """When the request was first accepted (its listing place stays the same after a restart)."""
    try:
        return datetime.fromisoformat(request.submitted)
    except ValueError:
        return _created_of(request.id)
