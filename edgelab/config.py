"""Settings: defaults < YAML file < `EDGELAB_*` environment < CLI flags, validated at start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgelab.constants import DEFAULT_PORT, HEARTBEAT_INTERVAL_S, LEASE_DURATION_S
from edgelab.errors import ConfigError

ENV_PREFIX = "EDGELAB_"


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate it signed (mTLS)


@dataclass(frozen=True)
class ClientTls:
    ca: Path | None = None  # None: the system's trust store
    cert: Path | None = None
    key: Path | None = None


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
    lease_duration_s: float = Field(LEASE_DURATION_S, gt=0, description="a lease not renewed for this long expires")
    heartbeat_interval_s: float = Field(HEARTBEAT_INTERVAL_S, gt=0, description="how often agents heartbeat")
    # TLS (PEM files). Server: tls_cert + tls_key; tls_client_ca additionally requires client certificates (mTLS).
    # Clients: tls_ca verifies the server (it turns TLS on); tls_client_cert + tls_client_key for mTLS.
    tls_cert: Path | None = Field(None, description="coordinator certificate chain (PEM)")
    tls_key: Path | None = Field(None, description="coordinator private key (PEM)")
    tls_client_ca: Path | None = Field(None, description="CA that signs client certificates; set: mTLS required")
    tls_ca: Path | None = Field(None, description="CA the agent/CLI trusts for the coordinator's certificate")
    tls_client_cert: Path | None = Field(None, description="agent/CLI certificate for mTLS (PEM)")
    tls_client_key: Path | None = Field(None, description="agent/CLI private key for mTLS (PEM)")
    agent_cache_max_bytes: int = Field(10 << 30, ge=0, description="agent artifact cache budget; LRU beyond it")
    agent_job_timeout_s: float = Field(3600.0, gt=0, description="wall-clock limit of one benchmark on an agent")
    agent_isolate: bool = Field(True, description="run each benchmark in a child process (False: in-process)")

    @property
    def db_path(self) -> Path:
        return self.home / "edgelab.sqlite"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        for a, b in (("tls_cert", "tls_key"), ("tls_client_cert", "tls_client_key")):
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise ValueError(f"{a} and {b} must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "tls_ca", "tls_client_cert", "tls_client_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: file not found: {path}")
        return self

    def server_tls(self) -> ServerTls | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        return ServerTls(self.tls_cert, self.tls_key, self.tls_client_ca)

    def client_tls(self) -> ClientTls | None:
        """TLS for the agent and the CLI: on when a CA (or a client certificate) is configured."""
        if self.tls_ca is None and self.tls_client_cert is None:
            return None
        return ClientTls(self.tls_ca, self.tls_client_cert, self.tls_client_key)


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
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
