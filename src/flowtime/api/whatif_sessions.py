"""
The Engine's open what-if sessions: capped in number, dropped after an idle time.

A session holds one planned model (``experiments.whatif.WhatIf``) and its base
(``artifacts.whatif.Base``). Sessions live in memory only: a restart forgets
them (a client opens a new one; nothing stored is lost - a saved point is a run).
Expired sessions are dropped whenever the store is used; one with an open
WebSocket never expires while it is open.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flowtime.artifacts.whatif import Base
from flowtime.errors import SessionNotFound, SessionsFull
from flowtime.experiments.whatif import WhatIf

SESSION_ID = re.compile(r"^wi_[0-9a-f]{24}\Z", re.ASCII)


@dataclass(eq=False)
class Session:
    id: str
    whatif: WhatIf
    base: Base
    used: float  # the clock's time of the last use
    series: list[str] | None = None  # the series answers carry (None: every node's)
    sockets: int = 0  # open WebSockets
    lock: threading.Lock = field(default_factory=threading.Lock)  # one evaluation at a time


class Sessions:
    """Open sessions by id (``max_sessions`` at most; idle ones dropped after ``idle_seconds``)."""

    def __init__(self, max_sessions: int, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _purge(self) -> None:
        now = self._clock()
        for sid in [s.id for s in self._items.values() if not s.sockets and now - s.used > self.idle_seconds]:
            del self._items[sid]

    def add(self, whatif: WhatIf, base: Base, series: list[str] | None = None) -> Session:
        with self._lock:
            self._purge()
            if len(self._items) >= self.max_sessions:
                raise SessionsFull(f"{len(self._items)} what-if sessions are open, the most this Engine keeps "
                                   f"(FLOWTIME_WHATIF_MAX_SESSIONS); close one (DELETE /v1/whatif/{{id}}) or wait "
                                   f"until one has been idle for {self.idle_seconds:g} s "
                                   "(FLOWTIME_WHATIF_IDLE_SECONDS)")
            session = Session(f"wi_{secrets.token_hex(12)}", whatif, base, self._clock(), series)
            self._items[session.id] = session
            return session

    def get(self, session_id: str) -> Session:
        """The session (its idle time restarts), or ``SessionNotFound``."""
        with self._lock:
            self._purge()
            found = self._items.get(session_id) if SESSION_ID.match(session_id) else None
            if found is None:
                raise SessionNotFound(f"no what-if session '{session_id[:60]}': it was never opened, was closed, "
                                      f"or expired after {self.idle_seconds:g} s idle; open a new one with "
                                      "POST /v1/whatif")
            found.used = self._clock()
            return found

    def remove(self, session_id: str) -> None:
        self.get(session_id)
        with self._lock:
            self._items.pop(session_id, None)

    def attach(self, session: Session, delta: int) -> None:
        """A WebSocket opened (+1) or closed (-1) on ``session``."""
        with self._lock:
            session.sockets += delta
            session.used = self._clock()

    def __len__(self) -> int:
        with self._lock:
            self._purge()
            return len(self._items)
