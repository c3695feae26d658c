"""
``GET /v1/experiments/{id}/events``: an experiment's progress as server-sent events (decision 0037).

    event: status    data: {"id", "status"}                          id: <change number>
    event: progress  data: {"done", "total", "rate", "etaSeconds"}   id: <change number>
    event: done | failed | cancelled   data: the experiment (as GET answers it, without the result)   id: end

The stream waits on the job's change notifications (``Job.watch``, woken from the
worker thread through ``call_soon_threadsafe``): no polling. Events carry totals,
not increments, so changes that come faster than ``MIN_GAP`` are coalesced and a
reconnecting client loses nothing and is told nothing twice: with
``Last-Event-ID`` it is sent the status only if it changed after that event,
and the progress only if it moved. A finished experiment answers its final event at once. A stream also
ends after ``STREAM_SECONDS`` without a final event (browsers' EventSource
reconnects by itself, after the ``retry`` delay): an open stream never holds a
server shutdown for longer than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import orjson

from flowtime.api.experiment_jobs import TERMINAL, Job

STREAM_SECONDS = 30.0
KEEPALIVE_SECONDS = 10.0  # a comment line, so proxies keep an idle stream open
MIN_GAP = 0.1  # at most ten progress events a second
RETRY_MS = 1000
FINAL_ID = "end"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(event: str, data: Any, event_id: str | int) -> bytes:
    """One event: ``event``, ``id`` and a one-line JSON ``data`` field."""
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), str(event_id).encode(), orjson.dumps(data))


def final_frame(body: dict[str, Any]) -> bytes:
    return frame(str(body["status"]), body, FINAL_ID)


def last_event_id(header: str | None) -> int | None:
    """
    The change number a reconnecting client saw last; anything else counts as none.

    >>> last_event_id("7"), last_event_id("end"), last_event_id(None)
    (7, None, None)
    """
    if header is None or not header.strip().isdigit():
        return None
    return int(header.strip())


async def finished(body: dict[str, Any]) -> AsyncIterator[bytes]:
    """The stream of an experiment that has ended: its final event, then the end."""
    yield b"retry: %d\n\n" % RETRY_MS
    yield final_frame(body)


async def job_events(job: Job, last_id: int | None, final: Callable[[Job], dict[str, Any]]) -> AsyncIterator[bytes]:
    """The events of ``job`` until it ends (its final event, ``final(job)``) or ``STREAM_SECONDS`` pass."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def tell() -> None:
        with suppress(RuntimeError):  # the loop closed under a worker that is still reporting
            loop.call_soon_threadsafe(wake.set)

    unwatch = job.watch(tell)
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        seen = last_id if last_id is not None else -1
        sent_status = job.status if seen >= job.status_since else None
        sent_done: int | None = job.done if seen >= job.version else None
        deadline = loop.time() + STREAM_SECONDS
        while True:
            wake.clear()
            version, status = job.version, job.status
            if status in TERMINAL:
                yield final_frame(final(job))
                return
            if status != sent_status:
                yield frame("status", {"id": job.id, "status": status}, version)
                sent_status = status
            if job.done != sent_done and status == "running":
                progress = job.progress()
                yield frame("progress", progress, version)
                sent_done = progress["done"]
                await asyncio.sleep(MIN_GAP)
                if wake.is_set():
                    continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=min(KEEPALIVE_SECONDS, remaining))
            except TimeoutError:
                yield b": keep-alive\n\n"
    finally:
        unwatch()
