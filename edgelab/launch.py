"""The `edgelab jobs launch` file: a YAML benchmark spec, validated before anything is sent."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgelab.domain import MeasurementSettings, Precision
from edgelab.errors import ConfigError


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
        if self.any_agent and self.agents:
            raise ValueError("any_agent runs one job on whichever agent is free: leave agents empty")
        return self

    @classmethod
    def load(cls, path: Path) -> LaunchFile:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read launch file {path}: {exc}") from exc
        try:
            launch = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}: {problems}") from exc
        # Relative artifact paths are relative to the launch file.
        for source in (launch.model, launch.dataset):
            if source.path is not None and not source.path.is_absolute():
                source.path = path.parent / source.path
        return launch
