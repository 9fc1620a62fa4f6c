"""Training through the ControlService on a real loopback coordinator: StartTraining trains with real
local Ray on a tiny MIT-BIH slice, RecordTrainingRun stores a run trained elsewhere, restarts fail
what was in flight."""

import dataclasses
import hashlib
import importlib.util
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from coordinator.store import RESTARTED_DURING_TRAINING
from edgelab.config import Settings
from edgelab.domain import TrainingConfig, TrainingRun, TrainingState, TrainingSummary
from edgelab.errors import EdgeLabError, NotFound
from edgelab.metrics import accuracy_report

pytestmark = pytest.mark.integration

# Record 119 (DS1) trains, 100 (DS2) tests: one epoch on 256 beats takes seconds. The batch size is left
# unset (0): each pipeline's own.
TINY = TrainingConfig(split="inter-patient", epochs=1, records=["100", "119"], max_train_beats=256)


@pytest.fixture
def trainer(tmp_path: Path, mitdb_dir: Path) -> Iterator[Coordinator]:
    """A coordinator whose MIT-BIH dir is the real records."""
    for package in ("ray", "tensorflow", "tf2onnx"):  # found, not imported: the Ray workers import them
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed: pip install 'edgelab[train]'")
    running = start_coordinator(Settings(home=tmp_path / "coordinator", port=0, mitdb=mitdb_dir))
    yield running
    running.stop(grace=None)


def _wait_finished(client: ControlClient, run_ids: list[str], timeout_s: float = 300) -> list[TrainingRun]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [client.get_training_run(run_id) for run_id in run_ids]
        if all(r.state.finished for r in runs):
            return runs
        assert time.monotonic() < deadline, f"training runs did not finish: {runs}"
        time.sleep(0.5)


def test_start_training_stores_the_trained_run_and_the_failed_one_beside_it(trainer: Coordinator) -> None:
    # prepare: image-transfer needs class subfolders, which the MIT-BIH dir does not have
    client = ControlClient(trainer.address)

    # execute
    run_ids = client.start_training(["mitdb-beats-1d", "image-transfer"], TINY, seeds=[7])
    trained, failed = _wait_finished(client, run_ids)

    # assert: the good run succeeded with its summary and both artifacts in the stores
    assert trained.state is TrainingState.SUCCEEDED, trained.error
    assert trained.pipeline == "mitdb-beats-1d" and trained.origin == "coordinator"
    assert trained.config == dataclasses.replace(TINY, seed=7, batch_size=256, class_weights="balanced")  # as trained
    assert trained.created_at <= trained.started_at < trained.finished_at
    summary = trained.summary
    assert summary is not None and summary.split == "inter-patient"
    assert summary.train_beats == 256 and summary.test_beats > 2000
    assert summary.evaluation.samples == summary.test_beats == sum(summary.evaluation.confusion)
    assert [c.name for c in summary.evaluation.classes] == summary.class_names == ["N", "S", "V", "F", "Q"]
    assert summary.host_accuracy == summary.evaluation.accuracy and summary.onnx_max_abs_diff < 1e-4
    for sha in (trained.model_sha256, trained.dataset_sha256, trained.savedmodel_sha256):
        assert hashlib.sha256(trainer.artifacts.path(sha).read_bytes()).hexdigest() == sha
    stored = {ref.sha256: (ref, meta) for ref, meta in trainer.store.list_artifacts()}
    assert [stored[sha][0].format for sha in (trained.model_sha256, trained.dataset_sha256)] == ["onnx", "npz"]
    savedmodel, savedmodel_meta = stored[trained.savedmodel_sha256]
    assert savedmodel.format == "savedmodel.zip" and savedmodel_meta["pipeline"] == "mitdb-beats-1d"
    with zipfile.ZipFile(trainer.artifacts.path(trained.savedmodel_sha256)) as archive:
        assert "saved_model.pb" in archive.namelist()  # what the tensorflow backend unpacks
    metadata = {sha: meta for sha, (_, meta) in stored.items()}
    assert metadata[trained.model_sha256]["pipeline"] == "mitdb-beats-1d"
    assert metadata[trained.model_sha256]["split"] == "inter-patient"
    assert float(metadata[trained.model_sha256]["host_accuracy"]) == pytest.approx(summary.host_accuracy, abs=1e-6)
    # ... and the failing one is stored failed with the pipeline's own error
    assert failed.state is TrainingState.FAILED and failed.summary is None and failed.config.batch_size == 32
    assert failed.error.startswith("ConfigError: data_dir:") and "class subfolders" in failed.error
    assert [r.run_id for r in client.list_training_runs()] == sorted(run_ids, key=run_ids.index, reverse=True)


def test_bad_pipeline_names_and_configs_are_refused_before_anything_is_queued(coordinator: Coordinator) -> None:
    # prepare
    client = ControlClient(coordinator.address)

    # execute / assert
    with pytest.raises(NotFound, match=r"unknown pipeline\(s\) no-such; known: .*mitdb-beats-1d"):
        client.start_training(["mitdb-beats-1d", "no-such"], TrainingConfig())
    with pytest.raises(EdgeLabError, match="split: 'sideways' is not one of inter-patient, random") as bad:
        client.start_training(["mitdb-beats-1d"], TrainingConfig(split="sideways"))
    with pytest.raises(EdgeLabError, match=r"epochs: -1 is outside \[0, "):
        client.start_training(["mitdb-beats-1d"], TrainingConfig(epochs=-1))
    with pytest.raises(EdgeLabError, match="at least one pipeline"):
        client.start_training([], TrainingConfig())
    with pytest.raises(NotFound, match="unknown training run"):
        client.get_training_run("nope")
    assert not isinstance(bad.value, NotFound)  # INVALID_ARGUMENT, not NOT_FOUND
    assert client.list_training_runs() == []


def test_a_coordinator_without_its_data_dir_says_so(tmp_path: Path) -> None:
    # prepare
    running = start_coordinator(Settings(home=tmp_path / "coordinator", port=0, mitdb=tmp_path / "no-mitdb"))

    # execute / assert
    try:
        with pytest.raises(NotFound, match=r"data dir .*no-mitdb does not exist: set `mitdb`"):
            ControlClient(running.address).start_training(["mitdb-beats-1d"], TrainingConfig())
        assert running.store.list_training_runs() == []
    finally:
        running.stop(grace=None)


def test_a_run_trained_elsewhere_is_recorded_with_its_uploaded_artifacts(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    # prepare
    client = ControlClient(coordinator.address)
    model = client.upload(onnx_model, format="onnx", metadata={"pipeline": "mitdb-beats-1d"})
    dataset = client.upload(test_set, format="npz")
    report = accuracy_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["N", "V"])
    summary = TrainingSummary("random", report.accuracy, report, ["N", "V"], 30, 3, 99, 1.5, 1e-7, ["fell back"])
    run = TrainingRun(
        "",
        "mitdb-beats-1d",
        TrainingConfig(seed=4),
        TrainingState.SUCCEEDED,
        "cli@lab-pc",
        100.0,
        101.0,
        102.5,
        summary=summary,
        model_sha256=model.sha256,
        dataset_sha256=dataset.sha256,
    )

    # execute
    run_id = client.record_training_run(run)

    # assert
    assert client.get_training_run(run_id) == TrainingRun(**{**run.__dict__, "run_id": run_id})
    with pytest.raises(NotFound, match="upload it before recording"):
        client.record_training_run(TrainingRun(**{**run.__dict__, "model_sha256": "f" * 64}))
    with pytest.raises(EdgeLabError, match="only a finished run"):
        client.record_training_run(TrainingRun(**{**run.__dict__, "state": TrainingState.RUNNING}))


def test_a_restarted_coordinator_fails_the_runs_it_was_training(tmp_path: Path) -> None:
    # prepare: runs the previous process queued and started, then it stopped
    settings = Settings(home=tmp_path / "coordinator", port=0)
    before = start_coordinator(settings)
    running, queued = before.store.add_training_runs([("mitdb-beats-1d", TrainingConfig(seed=s)) for s in (0, 1)])
    before.store.start_training_runs([running])
    before.stop(grace=None)

    # execute
    after = start_coordinator(settings)
    try:
        runs = {r.run_id: r for r in ControlClient(after.address).list_training_runs()}
    finally:
        after.stop(grace=None)

    # assert
    assert {r.state for r in runs.values()} == {TrainingState.FAILED}
    assert runs[running].error == runs[queued].error == RESTARTED_DURING_TRAINING
