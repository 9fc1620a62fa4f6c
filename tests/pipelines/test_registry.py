"""The pipeline registry and `edgelab train --list`."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgelab.app import cli
from pipelines.base import Pipeline
from pipelines.registry import PIPELINES, get_pipeline


def test_every_registered_pipeline_is_named_by_its_key() -> None:
    # assert
    assert len(PIPELINES) >= 17
    for name, pipeline in PIPELINES.items():
        assert isinstance(pipeline, Pipeline)
        assert pipeline.name == name
        assert pipeline.description


def test_unknown_pipeline_lists_the_known_ones() -> None:
    # execute / assert
    with pytest.raises(KeyError, match="mitdb-af-bilstm"):
        get_pipeline("mitdb-af-lstm")


def test_train_list_prints_every_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare
    monkeypatch.setattr(cli, "console", Console(width=300))

    # execute
    result = CliRunner().invoke(cli.app, ["train", "--list"])

    # assert
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == sorted(PIPELINES)


def test_train_without_a_pipeline_lists_them_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare
    monkeypatch.setattr(cli, "console", Console(width=300))

    # execute
    result = CliRunner().invoke(cli.app, ["train"])

    # assert
    assert result.exit_code == 2
    assert "rhythm-efficientnetv2-1d" in result.output
