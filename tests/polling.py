"""Waiting in tests for what another thread or process finishes on its own time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout_s: float = 30, what: str = "") -> None:
    """Return once `predicate()` is true; fail the test after `timeout_s`, saying `what` (what was awaited, or
    what did not happen)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s: {what or predicate}"
        time.sleep(0.05)
