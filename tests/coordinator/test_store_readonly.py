"""The dashboard's read-only view of the results store: it reads what the coordinator writes, while it
writes, and can neither write nor hold the write lock itself."""

import hashlib
import sqlite3
from pathlib import Path

import pytest

from coordinator.store import Store
from edgelab.errors import NotFound
from tests.factories import CAPS


def test_a_readonly_store_reads_live_data_and_refuses_writes(tmp_path: Path) -> None:
    # prepare: a coordinator's store, closed cleanly (no -wal / -shm left), then reopened by it
    path = tmp_path / "edgelab.sqlite"
    Store(path).close()
    coordinator = Store(path, busy_timeout_s=0)
    first, _ = coordinator.register_agent("pi", CAPS)

    # execute
    view = Store(path, readonly=True, heartbeat_interval_s=1000.0)
    seen_before = [a.name for a in view.list_agents()]
    coordinator.register_agent("nano", CAPS)  # no busy wait allowed: the reader must hold no lock
    seen_after = [a.name for a in view.list_agents()]

    # assert
    assert seen_before == ["pi"] and seen_after == ["pi", "nano"]
    assert view.get_agent(first).status == "online"  # its own heartbeat interval, not the default
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        view.register_agent("intruder", CAPS)
    assert [a.name for a in coordinator.list_agents()] == ["pi", "nano"]
    view.close()
    coordinator.close()


def test_opening_readonly_creates_nothing_and_changes_no_byte(tmp_path: Path) -> None:
    # prepare
    path = tmp_path / "edgelab.sqlite"
    store = Store(path)
    store.register_agent("pi", CAPS)
    store.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    # execute
    view = Store(path, readonly=True)
    agents = view.list_agents()
    view.close()

    # assert
    assert [a.name for a in agents] == ["pi"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with pytest.raises(NotFound, match="no results store"):
        Store(tmp_path / "missing" / "edgelab.sqlite", readonly=True)
    assert not (tmp_path / "missing").exists()
