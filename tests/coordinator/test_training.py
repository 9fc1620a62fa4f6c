"""Starting Ray: a local node that times out starting is tried again; a cluster that is unreachable is an error."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator import training
from edgelab.errors import EdgeLabError


class FlakyRay:
    """The slice of the `ray` module init_ray uses; the first `failures` starts time out like Ray's node does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inits: list[dict[str, Any]] = []
        self.shutdowns = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: Any) -> None:
        self.inits.append(kwargs)
        if len(self.inits) <= self.failures:
            raise Exception("The current node timed out during startup.")

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_local_node_that_times_out_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = FlakyRay(failures=2)
    monkeypatch.setattr(training, "import_ray", lambda: ray)

    training.init_ray()

    assert len(ray.inits) == 3 and ray.shutdowns == 2


def test_giving_up_names_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    local, cluster = FlakyRay(failures=9), FlakyRay(failures=9)

    monkeypatch.setattr(training, "import_ray", lambda: local)
    with pytest.raises(EdgeLabError, match=r"local Ray node \(3 attempt\(s\)\): The current node timed out"):
        training.init_ray()
    monkeypatch.setattr(training, "import_ray", lambda: cluster)
    with pytest.raises(EdgeLabError, match="Ray cluster at ray://lab:10001"):
        training.init_ray("ray://lab:10001")

    assert len(cluster.inits) == 1  # a cluster address is not retried: it is there or it is not
