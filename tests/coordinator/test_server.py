"""Starting the coordinator: a port another coordinator holds is refused, not shared."""

import gc
from pathlib import Path

import pytest

from coordinator.client import ControlClient
from coordinator.server import Coordinator, freeze_startup_heap, start_coordinator
from edgelab.config import Settings
from edgelab.errors import ConfigError

pytestmark = pytest.mark.integration


def test_a_second_coordinator_on_a_taken_port_is_refused_and_the_first_keeps_serving(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    second = Settings(home=tmp_path / "second", host="127.0.0.1", port=coordinator.port)

    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{coordinator.port}"):
        start_coordinator(second)

    assert ControlClient(coordinator.address).list_agents() == []


def test_freeze_startup_heap_hides_what_is_alive_from_the_collector() -> None:
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()

    assert frozen > 1000  # at least the imported modules' objects
