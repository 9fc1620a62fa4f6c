"""Starting Ray: a local node that times out starting is tried again; a cluster that is unreachable is an error;
the coordinator's training thread outlives a Ray it cannot import."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator import training
from coordinator.artifacts import ArtifactStore
from coordinator.store import Store
from edgelab.domain import TrainingConfig, TrainingState
from edgelab.errors import ConfigError, EdgeLabError, MissingExtraError


class FlakyRay:
    """The slice of the `ray` module init_ray uses; the first `failures` starts time out like Ray's node does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inits: list[dict[str, Any]] = []
        self.shutdowns = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: Any) -> None:
        self.inits.append({**kwargs, "gcs_wait": os.environ.get(training.RAY_GCS_WAIT_VARIABLE)})
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


def test_a_local_node_gets_longer_than_rays_30_s_to_start_its_gcs(monkeypatch: pytest.MonkeyPatch) -> None:
    local, cluster = FlakyRay(failures=0), FlakyRay(failures=0)
    monkeypatch.setattr(training, "import_ray", lambda: local)
    monkeypatch.setenv(training.RAY_GCS_WAIT_VARIABLE, "45")  # teardown also undoes init_ray's setdefault
    training.init_ray()
    monkeypatch.delenv(training.RAY_GCS_WAIT_VARIABLE)
    training.init_ray()
    monkeypatch.delenv(training.RAY_GCS_WAIT_VARIABLE)
    monkeypatch.setattr(training, "import_ray", lambda: cluster)
    training.init_ray("ray://lab:10001")

    assert [i["gcs_wait"] for i in local.inits] == ["45", str(training.LOCAL_RAY_GCS_WAIT_S)]  # a user's own wins
    assert cluster.inits[0]["gcs_wait"] is None  # a cluster's GCS is already running


def test_a_stored_config_becomes_the_pipelines_own_with_its_loss_weighting(tmp_path: Path) -> None:
    # execute
    balanced = training.to_train_config(TrainingConfig(epochs=2, batch_size=8, class_weights="balanced"), tmp_path)
    plain = training.to_train_config(TrainingConfig(epochs=2, batch_size=8, class_weights="none"), tmp_path)

    # assert: an unset or unknown weighting (within_budget resolves the unset one first) is refused
    assert (balanced.class_weights, plain.class_weights) == (True, False)
    assert (plain.data_dir, plain.epochs, plain.batch_size) == (tmp_path, 2, 8)
    for wrong in ("", "heavy"):
        with pytest.raises(ConfigError, match=f"class_weights: '{wrong}' is not one of balanced, none"):
            training.to_train_config(TrainingConfig(epochs=2, batch_size=8, class_weights=wrong), tmp_path)


def test_the_coordinators_runner_stores_runs_failed_when_ray_is_missing_and_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare: the `ray` import fails as it does without the train extra
    def missing() -> Any:
        raise MissingExtraError("ray", "train")

    monkeypatch.setattr(training, "import_ray", missing)
    store = Store(tmp_path / "edgelab.sqlite")
    runner = training.TrainingRunner(store, ArtifactStore(tmp_path / "artifacts"))
    config = TrainingConfig(epochs=1, batch_size=64, class_weights="balanced")
    first, second = (store.add_training_runs([("mitdb-beats-1d", config)])[0] for _ in range(2))

    # execute: two batches, one after the other
    try:
        for run_id in (first, second):
            runner.submit([training.QueuedRun(run_id, "mitdb-beats-1d", training.to_train_config(config, tmp_path))])
            deadline = time.monotonic() + 10
            while not store.get_training_run(run_id).state.finished:
                assert time.monotonic() < deadline, "the run was not stored as finished"
                time.sleep(0.02)
    finally:
        runner.stop()

    # assert
    for run_id in (first, second):
        run = store.get_training_run(run_id)
        assert run.state is TrainingState.FAILED and run.started_at > 0
        assert run.error == "MissingExtraError: ray is not installed: pip install 'edgelab[train]'"
