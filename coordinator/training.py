"""Training as Ray tasks: the one module that knows about Ray.

Pipelines are plain functions (`pipelines.registry`); here they become Ray tasks. A task
returns the artifacts' bytes rather than paths, so it works the same on a local Ray and on
a cluster whose workers do not share the driver's disk. `TrainingRunner` is the coordinator's
side: StartTraining queues runs in the store, a background thread trains them with Ray and
stores each run's artifacts and summary as it finishes.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelab.domain import ArtifactRef, TrainingConfig, TrainingSummary
from edgelab.errors import EdgeLabError, MissingExtraError

if TYPE_CHECKING:
    from coordinator.artifacts import ArtifactStore
    from coordinator.store import Store
    from pipelines.base import TrainConfig, TrainOutput

log = logging.getLogger("edgelab.training")


ONNX, DATASET, SAVEDMODEL = "onnx", "npz", "savedmodel.zip"
"""Artifact formats of a trained run: ONNX (onnxruntime, tensorrt), the test/calibration set, and the
zipped SavedModel the tensorflow backend runs (the speed-up baseline)."""


@dataclass
class TrainedArtifacts:
    """What a training task sends back: the summary and the files to store."""

    output: TrainOutput
    onnx: bytes
    dataset: bytes
    savedmodel: bytes = b""

    def files(self) -> dict[str, tuple[str, bytes]]:
        """Format -> (file name, bytes) of each artifact."""
        name = self.output.pipeline
        files = {ONNX: (f"{name}.onnx", self.onnx), DATASET: (f"{name}-testset.npz", self.dataset)}
        if self.savedmodel:
            files[SAVEDMODEL] = (f"{name}-savedmodel.zip", self.savedmodel)
        return files

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write every artifact into `out_dir`; returns format -> path."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        for fmt, (file_name, data) in self.files().items():
            paths[fmt] = out_dir / file_name
            paths[fmt].write_bytes(data)
        return paths

    def metadata(self) -> dict[str, str]:
        """Training summary carried with the uploaded model artifact."""
        o = self.output
        return {
            "pipeline": o.pipeline,
            "split": o.split,
            "host_accuracy": f"{o.host_accuracy:.6f}",
            "onnx_max_abs_diff": f"{o.onnx_max_abs_diff:.3g}",
            "train_beats": str(o.train_beats),
            "test_beats": str(o.test_beats),
            "params": str(o.params),
            "train_seconds": f"{o.train_seconds:.1f}",
            "classes": ",".join(o.class_names),
        }

    def summary(self) -> TrainingSummary:
        """What the results store keeps of the run (everything but the files)."""
        o = self.output
        return TrainingSummary(
            split=o.split,
            host_accuracy=o.host_accuracy,
            evaluation=o.evaluation,
            class_names=list(o.class_names),
            train_beats=o.train_beats,
            test_beats=o.test_beats,
            params=o.params,
            train_seconds=o.train_seconds,
            onnx_max_abs_diff=o.onnx_max_abs_diff,
            notes=list(o.notes),
        )

    def store(self, artifacts: ArtifactStore, store: Store) -> dict[str, ArtifactRef]:
        """Put every artifact into the coordinator's stores, as an UploadArtifact of each would; format -> ref."""
        refs = {}
        for fmt, (file_name, data) in self.files().items():
            refs[fmt] = artifacts.put_chunks([data], name=file_name, format=fmt)
            store.add_artifact(refs[fmt], {} if fmt == DATASET else self.metadata())
        return refs


@dataclass
class TrainingFailed:
    """A run whose task raised: the others of its batch go on."""

    error: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> TrainingFailed:
        # ray.get raises RayTaskError wrapping the task's own exception (its `cause`), with a long traceback.
        cause = getattr(exc, "cause", None)
        cause = cause if isinstance(cause, BaseException) else exc
        return cls(f"{type(cause).__name__}: {cause}")


Outcome = TrainedArtifacts | TrainingFailed


def to_train_config(config: TrainingConfig, data_dir: Path) -> TrainConfig:
    """The pipelines' config for a stored one (within_budget: no unset values); ConfigError naming the
    key when a value is invalid."""
    from pipelines.base import TrainConfig, weighs_classes

    return TrainConfig(
        data_dir=data_dir,
        split=config.split,  # type: ignore[arg-type]  # TrainConfig validates it
        epochs=config.epochs,
        seed=config.seed,
        records=tuple(config.records) or None,
        max_train_beats=config.max_train_beats or None,
        batch_size=config.batch_size,
        class_weights=weighs_classes(config.class_weights),
    )


def train_pipeline(name: str, config: TrainConfig) -> TrainedArtifacts:
    """Run a pipeline in this process (the body of the Ray task)."""
    from pipelines.registry import get_pipeline

    pipeline = get_pipeline(name)
    with tempfile.TemporaryDirectory(prefix=f"edgelab-{name}-") as tmp:
        from pipelines.convert import zip_savedmodel

        output = pipeline.run(config, Path(tmp))
        savedmodel = zip_savedmodel(output.savedmodel_path, Path(tmp) / "savedmodel.zip")
        return TrainedArtifacts(
            output, output.onnx_path.read_bytes(), output.dataset_path.read_bytes(), savedmodel.read_bytes()
        )


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "train") from exc
    return ray


LOCAL_RAY_START_ATTEMPTS = 3
"""A local Ray node gives its raylet a fixed 30 s to register; on a loaded 2-core machine that
has run out (seen twice while TensorFlow processes ran), and a second start then succeeded."""

LOCAL_RAY_GCS_WAIT_S = 120
"""Seconds a local start waits for Ray's GCS server to write its port file (Ray's own default is 30,
RAY_gcs_server_port_wait_time_s overrides it): all three tries of one demo on a 2-core machine under
load (a test run and a training beside it) ran out of 30 s with "Timed out waiting for file
.../gcs_server_port_...". A user's own RAY_gcs_server_port_wait_time_s is kept."""
RAY_GCS_WAIT_VARIABLE = "RAY_gcs_server_port_wait_time_s"  # Ray's spelling, case and all


def init_ray(address: str | None = None, *, attempts: int = LOCAL_RAY_START_ATTEMPTS) -> None:
    """Local Ray by default; a cluster when given an address ("auto" or "ray://host:10001")."""
    ray = import_ray()
    if ray.is_initialized():
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    if not address:  # read by ray.init when it starts the node's GCS server
        os.environ.setdefault(RAY_GCS_WAIT_VARIABLE, str(LOCAL_RAY_GCS_WAIT_S))
    for attempt in range(1, (1 if address else attempts) + 1):
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                configure_logging=False,
            )
            return
        except Exception as exc:  # Ray raises a bare Exception when its node times out starting
            ray.shutdown()  # stops what the failed start left running before the next try
            if address or attempt == attempts:
                where = f"the Ray cluster at {address}" if address else "a local Ray node"
                raise EdgeLabError(f"could not start {where} ({attempt} attempt(s)): {exc}") from exc
            logging.getLogger("edgelab.ray").warning("local Ray did not start (%s); trying again", exc)


def train_with_ray(
    names_and_configs: list[tuple[str, TrainConfig]],
    *,
    ray_address: str | None = None,
    cpus_per_task: float = 1,
    on_done: Callable[[int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Train several pipelines/seeds in parallel as Ray tasks; outcomes in input order.

    A task that raises becomes a TrainingFailed and the others go on; `on_done(index, outcome)`
    is called as each task finishes, in finishing order.
    """
    ray = import_ray()
    init_ray(ray_address)
    task = ray.remote(num_cpus=cpus_per_task, max_retries=0)(train_pipeline)
    pending = {task.remote(name, config): i for i, (name, config) in enumerate(names_and_configs)}
    outcomes: list[Outcome | None] = [None] * len(pending)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ref)
        try:
            outcome: Outcome = ray.get(ref)
        except Exception as exc:  # the task's exception, or Ray's when its worker died
            outcome = TrainingFailed.from_exception(exc)
        outcomes[index] = outcome
        if on_done is not None:
            on_done(index, outcome)
    return [o for o in outcomes if o is not None]


def shutdown_ray() -> None:
    """Stop the Ray this process started, if any (nothing to do where Ray was never imported)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class QueuedRun:
    run_id: str
    pipeline: str
    config: TrainConfig


class TrainingRunner:
    """The coordinator's training thread: queued runs are trained with Ray, several in parallel.

    Runs queued while a batch trains form the next batch. Each run is stored as it finishes
    (succeeded with its artifacts and summary, or failed with its error), and Ray is shut down
    when nothing is left to train so an idle coordinator holds no Ray workers.
    """

    def __init__(self, store: Store, artifacts: ArtifactStore, *, ray_address: str | None = None) -> None:
        self._store = store
        self._artifacts = artifacts
        self._ray_address = ray_address
        self._queue: queue.Queue[list[QueuedRun] | None] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="training-runner")
        self._thread.start()

    def submit(self, runs: list[QueuedRun]) -> None:
        self._queue.put(runs)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking batches; a batch still training is left running (a restart marks its runs failed)."""
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while (batch := self._queue.get()) is not None:
            while not self._queue.empty():  # everything queued meanwhile trains alongside
                more = self._queue.get()
                if more is None:
                    self._stopped.set()
                    break
                batch += more
            try:
                self._train(batch)
            except Exception as exc:  # e.g. Ray is missing or did not start: every run of the batch ends failed
                log.exception("training batch failed")
                for run in batch:
                    self._finish(run, TrainingFailed.from_exception(exc))
            if self._stopped.is_set():
                return
            if self._queue.empty():
                shutdown_ray()

    def _train(self, batch: list[QueuedRun]) -> None:
        self._store.start_training_runs([run.run_id for run in batch])
        train_with_ray(
            [(run.pipeline, run.config) for run in batch],
            ray_address=self._ray_address,
            on_done=lambda index, outcome: self._finish(batch[index], outcome),
        )

    def _finish(self, run: QueuedRun, outcome: Outcome) -> None:
        if self._stopped.is_set():
            return  # the store may be closed; a restart marks the run failed
        if self._store.get_training_run(run.run_id).state.finished:
            return
        if isinstance(outcome, TrainingFailed):
            self._store.finish_training_run(run.run_id, error=outcome.error)
            return
        try:
            refs = outcome.store(self._artifacts, self._store)
        except Exception as exc:  # e.g. a full disk: the run fails, the coordinator goes on
            log.exception("storing the artifacts of training run %s failed", run.run_id)
            self._store.finish_training_run(run.run_id, error=f"storing its artifacts failed: {exc}")
            return
        self._store.finish_training_run(
            run.run_id,
            summary=outcome.summary(),
            model_sha256=refs[ONNX].sha256,
            dataset_sha256=refs[DATASET].sha256,
            savedmodel_sha256=refs[SAVEDMODEL].sha256 if SAVEDMODEL in refs else "",
        )
