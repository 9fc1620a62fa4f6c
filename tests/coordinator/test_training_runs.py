"""Training runs in the results store: queued -> running -> succeeded/failed, recorded runs, restarts."""

from pathlib import Path

import numpy as np
import pytest

from coordinator.store import RESTARTED_DURING_TRAINING, Store
from edgelab.domain import ArtifactRef, TrainingConfig, TrainingRun, TrainingState, TrainingSummary
from edgelab.errors import NotFound
from edgelab.metrics import accuracy_report
from tests.factories import Clock

MODEL, DATASET, SAVEDMODEL = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Store:
    s = Store(tmp_path / "edgelab.sqlite", clock=clock)
    s.add_artifact(ArtifactRef(MODEL, 10, "onnx", "m.onnx"))
    s.add_artifact(ArtifactRef(DATASET, 20, "npz", "d.npz"))
    s.add_artifact(ArtifactRef(SAVEDMODEL, 30, "savedmodel.zip", "m-savedmodel.zip"))
    return s


def summary(split: str = "random") -> TrainingSummary:
    names = ["N", "S", "V"]
    report = accuracy_report(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), names)
    return TrainingSummary(
        split=split,
        host_accuracy=report.accuracy,
        evaluation=report,
        class_names=names,
        train_beats=400,
        test_beats=5,
        params=1234,
        train_seconds=3.5,
        onnx_max_abs_diff=2e-7,
        notes=["inter-patient needs DS1 and DS2 records: fell back to random"],
    )


def test_a_run_goes_from_queued_to_succeeded_with_its_summary_and_artifacts(store: Store, clock: Clock) -> None:
    # prepare
    config = TrainingConfig(split="inter-patient", epochs=1, seed=2, records=["100", "119"], max_train_beats=64)
    (run_id,) = store.add_training_runs([("mitdb-beats-1d", config)])
    queued = store.get_training_run(run_id)
    clock.now += 1
    store.start_training_runs([run_id])
    running = store.get_training_run(run_id)
    clock.now += 10

    # execute
    store.finish_training_run(
        run_id, summary=summary(), model_sha256=MODEL, dataset_sha256=DATASET, savedmodel_sha256=SAVEDMODEL
    )

    # assert
    run = store.get_training_run(run_id)
    assert (queued.state, running.state, run.state) == (
        TrainingState.QUEUED,
        TrainingState.RUNNING,
        TrainingState.SUCCEEDED,
    )
    assert (run.created_at, run.started_at, run.finished_at) == (1_000.0, 1_001.0, 1_011.0)
    assert run.config == config and run.origin == "coordinator"
    assert run.summary == summary() and run.summary.split == "random"  # the split actually made
    assert run.summary.evaluation.confusion_matrix() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert (run.model_sha256, run.dataset_sha256, run.savedmodel_sha256) == (MODEL, DATASET, SAVEDMODEL)
    assert run.error == ""


def test_a_failed_run_keeps_its_error_and_no_summary(store: Store) -> None:
    # prepare
    ids = store.add_training_runs([("mitdb-beats-1d", TrainingConfig(seed=s)) for s in (0, 1)])
    store.start_training_runs(ids)

    # execute
    store.finish_training_run(ids[0], error="ConfigError: records: 999 not found")
    store.finish_training_run(ids[1], summary=summary(), model_sha256=MODEL, dataset_sha256=DATASET)

    # assert
    failed, succeeded = (store.get_training_run(i) for i in ids)
    assert failed.state is TrainingState.FAILED and failed.summary is None
    assert failed.error == "ConfigError: records: 999 not found"
    assert succeeded.state is TrainingState.SUCCEEDED and succeeded.config.seed == 1


def test_finishing_refuses_unknown_runs_and_artifacts(store: Store) -> None:
    # prepare
    (run_id,) = store.add_training_runs([("mitdb-beats-1d", TrainingConfig())])

    # execute / assert
    with pytest.raises(NotFound, match="unknown training run"):
        store.finish_training_run("nope", error="x")
    with pytest.raises(NotFound, match="upload it before"):
        store.finish_training_run(run_id, summary=summary(), model_sha256="d" * 64)
    with pytest.raises(ValueError, match="summary or an error"):
        store.finish_training_run(run_id)
    assert store.get_training_run(run_id).state is TrainingState.QUEUED


def test_a_recorded_run_keeps_the_trainers_times_and_origin(store: Store) -> None:
    # prepare
    run = TrainingRun(
        run_id="",
        pipeline="mitdb-beats-1d",
        config=TrainingConfig(seed=3),
        state=TrainingState.SUCCEEDED,
        origin="cli@lab-pc",
        created_at=500.0,
        started_at=501.0,
        finished_at=530.0,
        summary=summary(),
        model_sha256=MODEL,
        dataset_sha256=DATASET,
        savedmodel_sha256=SAVEDMODEL,
    )

    # execute
    run_id = store.record_training_run(run)

    # assert
    stored = store.get_training_run(run_id)
    assert stored == TrainingRun(**{**run.__dict__, "run_id": run_id})
    with pytest.raises(ValueError, match="finished"):
        store.record_training_run(TrainingRun("", "p", TrainingConfig(), TrainingState.RUNNING))
    with pytest.raises(ValueError, match="error"):
        store.record_training_run(TrainingRun("", "p", TrainingConfig(), TrainingState.FAILED))


def test_restart_fails_runs_left_queued_or_running_and_keeps_finished_ones(tmp_path: Path) -> None:
    # prepare
    path = tmp_path / "edgelab.sqlite"
    before = Store(path)
    done, running, queued = before.add_training_runs([("mitdb-beats-1d", TrainingConfig(seed=s)) for s in range(3)])
    before.start_training_runs([done, running])
    before.finish_training_run(done, error="ValueError: boom")
    before.close()

    # execute
    after = Store(path)
    count = after.fail_interrupted_training_runs()

    # assert
    assert count == 2
    runs = {r.run_id: r for r in after.list_training_runs()}
    assert runs[done].error == "ValueError: boom"
    assert runs[running].state is runs[queued].state is TrainingState.FAILED
    assert runs[running].error == runs[queued].error == RESTARTED_DURING_TRAINING
    assert runs[running].started_at > 0 and runs[queued].started_at == 0
    assert list(runs) == [queued, running, done]  # newest first (same second: insertion order)
