"""Wake long-polling LeaseJob calls when a job is queued for them.

The store stays the source of truth: a woken call leases through the store like any other, and a
wake-up it misses costs at most the rest of its wait. Waiting calls hold a server thread each, so
how many may wait at once is bounded (`max_waiters`); a call over the bound answers at once and
the agent falls back to polling.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class JobBell:
    def __init__(self, max_waiters: int) -> None:
        self.max_waiters = max_waiters
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[threading.Event, frozenset[str]]]] = {}
        self._count = 0

    @contextmanager
    def listen(self, agent_id: str, backends: Iterable[str]) -> Iterator[threading.Event | None]:
        """An event set when a job this agent may run is queued; None when `max_waiters` already wait.

        Listen before looking at the store, so a job queued in between still rings."""
        entry = (threading.Event(), frozenset(backends))
        with self._lock:
            admitted = self._count < self.max_waiters
            if admitted:
                self._count += 1
                self._waiting.setdefault(agent_id, []).append(entry)
        if not admitted:
            yield None
            return
        try:
            yield entry[0]
        finally:
            with self._lock:
                self._count -= 1
                entries = self._waiting[agent_id]
                entries.remove(entry)
                if not entries:
                    del self._waiting[agent_id]

    def ring(self, target_agent_id: str | None, backend: str) -> None:
        """A job for `backend` was queued: wake its target agent, or, for any agent, every one able to run it."""
        with self._lock:
            if target_agent_id is not None:
                entries = self._waiting.get(target_agent_id, [])
            else:
                entries = [e for waiting in self._waiting.values() for e in waiting]
            for event, backends in entries:
                if backend in backends:
                    event.set()

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._count
