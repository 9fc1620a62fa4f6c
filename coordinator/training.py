"""Training as Ray tasks: the one module that knows about Ray.

Pipelines are plain functions (`pipelines.registry`); here they become Ray tasks. A task
returns the artifacts' bytes rather than paths, so it works the same on a local Ray and on
a cluster whose workers do not share the driver's disk.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelab.errors import EdgeLabError, MissingExtraError

if TYPE_CHECKING:
    from pipelines.base import TrainConfig, TrainOutput


@dataclass
class TrainedArtifacts:
    """What a training task sends back: the summary and the files to store."""

    output: TrainOutput
    onnx: bytes
    dataset: bytes

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        onnx_path = out_dir / f"{self.output.pipeline}.onnx"
        dataset_path = out_dir / f"{self.output.pipeline}-testset.npz"
        onnx_path.write_bytes(self.onnx)
        dataset_path.write_bytes(self.dataset)
        return onnx_path, dataset_path

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


def train_pipeline(name: str, config: TrainConfig) -> TrainedArtifacts:
    """Run a pipeline in this process (the body of the Ray task)."""
    from pipelines.registry import get_pipeline

    pipeline = get_pipeline(name)
    with tempfile.TemporaryDirectory(prefix=f"edgelab-{name}-") as tmp:
        output = pipeline.run(config, Path(tmp))
        return TrainedArtifacts(output, output.onnx_path.read_bytes(), output.dataset_path.read_bytes())


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "train") from exc
    return ray


LOCAL_RAY_START_ATTEMPTS = 3
"""A local Ray node gives its raylet a fixed 30 s to register; on a loaded 2-core machine that
has run out (seen twice while TensorFlow processes ran), and a second start then succeeded."""


def init_ray(address: str | None = None, *, attempts: int = LOCAL_RAY_START_ATTEMPTS) -> None:
    """Local Ray by default; a cluster when given an address ("auto" or "ray://host:10001")."""
    ray = import_ray()
    if ray.is_initialized():
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
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
    names_and_configs: list[tuple[str, TrainConfig]], *, ray_address: str | None = None, cpus_per_task: float = 1
) -> list[TrainedArtifacts]:
    """Train several pipelines/seeds in parallel as Ray tasks; results in input order."""
    ray = import_ray()
    init_ray(ray_address)
    task = ray.remote(num_cpus=cpus_per_task, max_retries=0)(train_pipeline)
    refs = [task.remote(name, config) for name, config in names_and_configs]
    return list(ray.get(refs))


def shutdown_ray() -> None:
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()
