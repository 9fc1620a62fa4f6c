from pathlib import Path

import pytest

from edgelab.config import load_settings
from edgelab.errors import ConfigError


def test_layers_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "edgelab.yaml"
    config.write_text("port: 6000\nhost: 0.0.0.0\nfleet_token: from-file\n")
    monkeypatch.setenv("EDGELAB_PORT", "7000")
    monkeypatch.setenv("EDGELAB_FLEET_TOKEN", "from-env")

    settings = load_settings(config, fleet_token="from-flag", home=None)

    assert settings.host == "0.0.0.0"  # file
    assert settings.port == 7000  # env beats file
    assert settings.fleet_token == "from-flag"  # flag beats env


def test_invalid_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELAB_PORT", "not-a-port")

    with pytest.raises(ConfigError, match="port"):
        load_settings()


def test_unknown_key_in_file_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "edgelab.yaml"
    config.write_text("prot: 1\n")

    with pytest.raises(ConfigError, match="prot"):
        load_settings(config)


def test_optional_numbers_coerce_from_the_environment_and_keep_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELAB_AGENT_JOB_MEMORY_LIMIT_BYTES", "268435456")
    assert load_settings().agent_job_memory_limit_bytes == 256 << 20

    monkeypatch.setenv("EDGELAB_AGENT_JOB_MEMORY_LIMIT_BYTES", "0")
    with pytest.raises(ConfigError, match="agent_job_memory_limit_bytes: must be at least 1"):
        load_settings()


def test_booleans_and_paths_from_strings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGELAB_AGENT_ISOLATE", "no")
    monkeypatch.setenv("EDGELAB_HOME", str(tmp_path))

    settings = load_settings()

    assert settings.agent_isolate is False and settings.home == tmp_path
    monkeypatch.setenv("EDGELAB_AGENT_ISOLATE", "maybe")
    with pytest.raises(ConfigError, match="agent_isolate: expected a boolean"):
        load_settings()
