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
