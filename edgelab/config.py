"""Settings: defaults < YAML file < `EDGELAB_*` environment < CLI flags, validated at start.

A stdlib dataclass, not pydantic: the agent loads these settings on devices where pydantic-core
has no wheel (ARMv6) and on Python 3.8, so the annotations use `typing.Optional` (evaluated at
run time to coerce environment strings). PyYAML is needed only to read a settings file.
"""

import math
import operator
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

from edgelab.constants import DEFAULT_PORT, HEARTBEAT_INTERVAL_S, LEASE_DURATION_S
from edgelab.errors import ConfigError, MissingExtraError

ENV_PREFIX = "EDGELAB_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path
    client_ca: Optional[Path] = None  # set: clients must present a certificate it signed (mTLS)


@dataclass(frozen=True)
class ClientTls:
    ca: Optional[Path] = None  # None: the system's trust store
    cert: Optional[Path] = None
    key: Optional[Path] = None


def default_home() -> Path:
    return Path.home() / ".edgelab"


def default_mitdb() -> Path:
    """MIT-BIH next to a source checkout (../shared/data/mitdb), else under the home dir."""
    checkout = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"
    return checkout if checkout.is_dir() else default_home() / "data" / "mitdb"


@dataclass
class Settings:
    home: Path = field(default_factory=default_home)  # data dir: SQLite store, artifacts, agent cache
    host: str = "127.0.0.1"
    port: int = field(default=DEFAULT_PORT, metadata={"ge": 0, "le": 65535})
    # Agents must present it to register / the CLI and dashboard on every call; None: open, which only a
    # coordinator on loopback may be (coordinator.server.check_exposure).
    fleet_token: Optional[str] = None
    operator_token: Optional[str] = None
    mitdb: Path = field(default_factory=default_mitdb)  # MIT-BIH records (WFDB)
    ray_address: Optional[str] = None  # Ray cluster address; None: local Ray
    lease_duration_s: float = field(default=LEASE_DURATION_S, metadata={"gt": 0})  # unrenewed this long: expired
    heartbeat_interval_s: float = field(default=HEARTBEAT_INTERVAL_S, metadata={"gt": 0})
    # TLS (PEM files). Server: tls_cert + tls_key; tls_client_ca additionally requires client certificates (mTLS).
    # Clients: tls_ca verifies the server (it turns TLS on); tls_client_cert + tls_client_key for mTLS.
    tls_cert: Optional[Path] = None  # coordinator certificate chain
    tls_key: Optional[Path] = None  # coordinator private key
    tls_client_ca: Optional[Path] = None  # CA that signs client certificates; set: mTLS required
    tls_ca: Optional[Path] = None  # CA the agent/CLI trusts for the coordinator's certificate
    tls_client_cert: Optional[Path] = None  # agent/CLI certificate for mTLS
    tls_client_key: Optional[Path] = None  # agent/CLI private key for mTLS
    agent_cache_max_bytes: int = field(default=10 << 30, metadata={"ge": 0})  # artifact cache budget; LRU beyond
    agent_job_timeout_s: float = field(default=3600.0, metadata={"gt": 0})  # wall-clock limit of one benchmark
    # memory cap of one benchmark (its own cgroup where the agent may make one, else RLIMIT_DATA): past it, out_of_memory
    agent_job_memory_limit_bytes: Optional[int] = field(default=None, metadata={"ge": 1})
    agent_isolate: bool = True  # run each benchmark in a child process (False: in-process)
    log_level: str = "INFO"  # coordinator log: INFO says each agent and job event, WARNING only problems

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(Settings)
        for f in fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            _check_bounds(f.name, value, f.metadata)
            object.__setattr__(self, f.name, value)
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"invalid settings: log_level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        for a, b in (("tls_cert", "tls_key"), ("tls_client_cert", "tls_client_key")):
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise ConfigError(f"{a} and {b} must be given together")
        for name in ("fleet_token", "operator_token"):
            token = getattr(self, name)
            if token is not None and not all("!" <= c <= "~" for c in token):
                # They travel as gRPC call metadata: printable ASCII, and spaces at either end would not survive.
                raise ConfigError(f"invalid settings: {name}: only visible ASCII characters, no spaces")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "tls_ca", "tls_client_cert", "tls_client_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: file not found: {path}")

    @property
    def db_path(self) -> Path:
        return self.home / "edgelab.sqlite"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def server_tls(self) -> Optional[ServerTls]:
        if self.tls_cert is None or self.tls_key is None:
            return None
        return ServerTls(self.tls_cert, self.tls_key, self.tls_client_ca)

    def client_tls(self) -> Optional[ClientTls]:
        """TLS for the agent and the CLI: on when a CA (or a client certificate) is configured."""
        if self.tls_ca is None and self.tls_client_cert is None:
            return None
        return ClientTls(self.tls_ca, self.tls_client_cert, self.tls_client_key)


SETTING_NAMES = tuple(f.name for f in fields(Settings))


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Environment strings and YAML scalars -> the field's type; a value that does not fit names the key."""
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        if value is None:
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError(f"expected a boolean ({'/'.join(sorted(_TRUE | _FALSE))})")
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            return number
        if hint is Path:
            return Path(os.path.expanduser(str(value)))
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError("expected a string")
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid settings: {name}: {exc} (got {value!r})") from exc
    return value


def _check_bounds(name: str, value: Any, meta: Any) -> None:
    for key, ok, word in (
        ("gt", operator.gt, "greater than"),
        ("ge", operator.ge, "at least"),
        ("le", operator.le, "at most"),
    ):
        bound = meta.get(key)
        if bound is not None and value is not None and not ok(value, bound):
            raise ConfigError(f"invalid settings: {name}: must be {word} {bound} (got {value!r})")


def _read_file(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        import yaml
    except ImportError as exc:
        raise MissingExtraError("pyyaml", "yaml") from exc
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return loaded


def load_settings(config_file: Optional[Path] = None, **overrides: Any) -> Settings:
    """Merge the layers; `overrides` are CLI flags (None means "not given")."""
    values: Dict[str, Any] = {}
    env_file = os.environ.get(f"{ENV_PREFIX}CONFIG")
    path = config_file or (Path(env_file) if env_file is not None else None)
    if path is not None:
        values.update(_read_file(path))
    for name in SETTING_NAMES:
        env = os.environ.get(f"{ENV_PREFIX}{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"invalid settings: unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTING_NAMES)}"
        )
    return Settings(**values)
