"""Settings: defaults < YAML file < `EDGELAB_*` environment < CLI flags, validated at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgelab.constants import DEFAULT_PORT
from edgelab.errors import ConfigError

ENV_PREFIX = "EDGELAB_"


def default_home() -> Path:
    return Path.home() / ".edgelab"


def default_mitdb() -> Path:
    """MIT-BIH next to a source checkout (../shared/data/mitdb), else under the home dir."""
    checkout = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"
    return checkout if checkout.is_dir() else default_home() / "data" / "mitdb"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home: Path = Field(default_factory=default_home, description="data dir: SQLite store, artifacts, cache")
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    fleet_token: str | None = Field(None, description="agents must present it to register; None: open")
    operator_token: str | None = Field(None, description="CLI/dashboard must present it; None: open")
    mitdb: Path = Field(default_factory=default_mitdb, description="MIT-BIH records (WFDB)")
    ray_address: str | None = Field(None, description="Ray cluster address; None: local Ray")

    @property
    def db_path(self) -> Path:
        return self.home / "edgelab.sqlite"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Merge the layers; `overrides` are CLI flags (None means "not given")."""
    values: dict[str, Any] = {}
    path = config_file or (Path(os.environ[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in os.environ else None)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of settings")
        values.update(loaded)
    for name in Settings.model_fields:
        env = os.environ.get(f"{ENV_PREFIX}{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc
