"""The `edgelab jobs launch` file: a YAML benchmark spec, validated before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coordinator.limits import MAX_REPETITIONS
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import ClassWeights, MeasurementSettings, Precision
from edgelab.errors import ConfigError

_Model = TypeVar("_Model", bound=BaseModel)
# Formats a file name can say, longest first (a SavedModel zip ends in .zip, not .savedmodel.zip).
KNOWN_FORMATS = sorted({fmt for formats in BACKEND_FORMATS.values() for fmt in formats}, key=len, reverse=True)
MODEL_FORMAT = "onnx"  # a model whose format nothing says
DATASET_FORMAT = "npz"


class ArtifactSource(BaseModel):
    """A file to upload, or the sha256 of an artifact already in the coordinator's store."""

    model_config = ConfigDict(extra="forbid")
    path: Path | None = None
    sha256: str | None = None
    format: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ArtifactSource:
        if (self.path is None) == (self.sha256 is None):
            raise ValueError("give exactly one of path or sha256")
        return self

    def format_or(self, default: str) -> str:
        """The format given, else the one the file's name says (m.tflite: tflite), else `default`."""
        if self.format:
            return self.format
        name = self.path.name if self.path is not None else ""
        return next((fmt for fmt in KNOWN_FORMATS if name.endswith(f".{fmt}")), default)


class Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warmup_iterations: int = Field(10, ge=0)
    warmup_duration_s: float = Field(0.2, ge=0)
    min_iterations: int = Field(100, ge=1)
    min_duration_s: float = Field(3.0, ge=0)
    max_duration_s: float = Field(60.0, gt=0)
    num_threads: int = Field(0, ge=0)
    power_meter: str = Field("", description='"" picks the best meter on each device; "none" turns power off')
    power_sample_period_s: float = Field(0.05, gt=0)
    power_idle_s: float = Field(1.0, ge=0)
    repetitions: int = Field(
        1, ge=1, le=MAX_REPETITIONS, description="warm-up + timed phase per batch size, for run-to-run spread"
    )

    def settings(self) -> MeasurementSettings:
        return MeasurementSettings(**self.model_dump())


class LaunchFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    backend: str = "onnxruntime"
    precision: Precision = Precision.FP32
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    measurement: Measurement = Field(default_factory=lambda: Measurement())
    model: ArtifactSource
    dataset: ArtifactSource
    pipeline: str = ""
    backend_options: dict[str, str] = Field(default_factory=dict, description='e.g. {dla_core: "0"} for tensorrt')
    agents: list[str] = Field(default_factory=list, description="agent ids; empty: every capable agent")
    any_agent: bool = Field(False, description="one job for whichever capable agent leases it first")

    @model_validator(mode="after")
    def _targets(self) -> LaunchFile:
        if self.backend not in BACKEND_FORMATS:
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(BACKEND_FORMATS)}")
        loads = BACKEND_FORMATS[self.backend]
        if self.model.format_or(MODEL_FORMAT) not in loads:
            raise ValueError(
                f"backend {self.backend} cannot load a {self.model.format_or(MODEL_FORMAT)} model "
                f"(it loads {', '.join(loads)}): pick another backend or model"
            )
        if self.any_agent and self.agents:
            raise ValueError("any_agent runs one job on whichever agent is free: leave agents empty")
        return self

    @classmethod
    def load(cls, path: Path) -> LaunchFile:
        launch = _validate(cls, _read(path), path)
        # Relative artifact paths are relative to the launch file.
        for key, source in (("model", launch.model), ("dataset", launch.dataset)):
            if source.path is not None:
                source.path = _existing(path, f"{key}.path", source.path)
        return launch


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read launch file {path}: {exc}") from exc


def _existing(launch: Path, key: str, value: Path) -> Path:
    """`value` (relative: to the launch file), checked before anything is built, uploaded or queued."""
    resolved = value if value.is_absolute() else launch.parent / value
    if not resolved.exists():
        raise ConfigError(f"{launch}: {key}: no such file or directory: {resolved}")
    return resolved


def _validate(cls: type[_Model], data: object, path: Path) -> _Model:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


class MatrixSection(BaseModel):
    """A conversion/compression matrix: one source model x compressions x targets (coordinator.matrix)."""

    model_config = ConfigDict(extra="forbid")
    pipeline: str | None = Field(None, description="train this pipeline as the source, e.g. mitdb-beats-1d")
    data: Path | None = Field(None, description="pipeline data dir (default: the mitdb setting)")
    records: list[str] | None = None
    epochs: int | None = Field(None, ge=1, description="default: the pipeline's own (`edgelab train --list`)")
    batch_size: int | None = Field(None, ge=1, description="default: the pipeline's own")
    class_weights: ClassWeights | None = Field(
        None, description="balanced, or none (the plain loss); default: the pipeline's own"
    )
    split: str = "inter-patient"
    max_train_beats: int | None = Field(None, ge=1)
    savedmodel: Path | None = Field(None, description="or: a SavedModel from pipelines.export.export_savedmodel")
    dataset: Path | None = Field(None, description="with savedmodel: its npz (x_test, y_test, class_names, x_calib)")
    train_data: Path | None = Field(None, description="with savedmodel and compressions: npz with x_train, y_train")
    compressions: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    targets: list[str] = Field(default_factory=lambda: ["onnx", "tflite-fp32"], min_length=1)
    finetune_epochs: float = Field(1.0, gt=0)
    backends: dict[str, list[str]] = Field(
        default_factory=dict, description="per format, e.g. {onnx: [onnxruntime, tensorrt]}; default: one each"
    )
    out: Path = Field(Path("matrix-artifacts"), description="where the artifacts and matrix.json are written")
    use_ray: bool = Field(True, description="false: build the artifacts one after another in this process")

    @model_validator(mode="after")
    def _one_source(self) -> MatrixSection:
        if (self.pipeline is None) == (self.savedmodel is None):
            raise ValueError("give exactly one of pipeline or savedmodel")
        return self


class MatrixLaunchFile(BaseModel):
    """A launch file that builds a matrix of artifacts and queues a job for each one."""

    model_config = ConfigDict(extra="forbid")
    name: str
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    measurement: Measurement = Field(default_factory=lambda: Measurement())
    matrix: MatrixSection
    backend_options: dict[str, str] = Field(default_factory=dict)
    agents: list[str] = Field(default_factory=list, description="agent ids; empty: every capable agent")
    any_agent: bool = Field(False, description="one job per artifact for whichever capable agent leases it first")

    @model_validator(mode="after")
    def _targets(self) -> MatrixLaunchFile:
        if self.any_agent and self.agents:
            raise ValueError("any_agent runs one job on whichever agent is free: leave agents empty")
        return self

    @classmethod
    def load(cls, path: Path) -> MatrixLaunchFile:
        launch = _validate(cls, _read(path), path)
        m = launch.matrix
        # Relative paths are relative to the launch file.
        for key in ("data", "savedmodel", "dataset", "train_data"):
            value = getattr(m, key)
            if value is not None:
                setattr(m, key, _existing(path, f"matrix.{key}", value))
        if not m.out.is_absolute():
            m.out = path.parent / m.out
        return launch


def load_launch(path: Path) -> LaunchFile | MatrixLaunchFile:
    """A single-model launch file, or a matrix one (it has a `matrix:` section)."""
    data = _read(path)
    if isinstance(data, dict) and "matrix" in data:
        return MatrixLaunchFile.load(path)
    return LaunchFile.load(path)
