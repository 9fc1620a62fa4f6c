"""The pipeline registry and `edgelab train --list`."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgelab.app import cli
from edgelab.domain import TrainingConfig
from pipelines.base import Pipeline, TrainBudget
from pipelines.registry import PIPELINES, get_pipeline, within_budget


def test_every_registered_pipeline_is_named_by_its_key() -> None:
    # assert
    assert len(PIPELINES) >= 17
    for name, pipeline in PIPELINES.items():
        assert isinstance(pipeline, Pipeline)
        assert pipeline.name == name
        assert pipeline.description


def test_each_pipeline_has_the_budget_its_documented_figures_used() -> None:
    # assert: README's rows (and the demo's model) were measured with these
    assert PIPELINES["mitdb-beats-1d"].budget == TrainBudget(epochs=6, batch_size=256)
    assert PIPELINES["mitdb-af-bilstm"].budget == TrainBudget(epochs=20, batch_size=64)
    assert PIPELINES["mitdb-af-squeezenet"].budget == TrainBudget(epochs=10, batch_size=64)
    assert PIPELINES["mitdb-beats-image-resnet50"].budget == TrainBudget(epochs=8, batch_size=64)
    assert PIPELINES["rhythm-efficientnetv2-1d-mitdb"].budget == TrainBudget(epochs=6, batch_size=64)
    assert all(p.budget.epochs >= 1 and p.budget.batch_size >= 1 for p in PIPELINES.values())


def test_unset_epochs_and_batch_size_become_the_pipelines_own() -> None:
    # execute
    unset = within_budget("mitdb-af-bilstm", TrainingConfig(seed=3, max_train_beats=100))
    given = within_budget("mitdb-af-bilstm", TrainingConfig(epochs=2, batch_size=8))

    # assert
    assert unset == TrainingConfig(epochs=20, seed=3, max_train_beats=100, batch_size=64)
    assert given == TrainingConfig(epochs=2, batch_size=8)


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
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert [line.split()[0] for line in lines] == sorted(PIPELINES)
    assert next(line for line in lines if line.startswith("mitdb-af-bilstm ")).endswith("(20 epochs, batch 64)")


def test_train_without_a_pipeline_lists_them_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare
    monkeypatch.setattr(cli, "console", Console(width=300))

    # execute
    result = CliRunner().invoke(cli.app, ["train"])

    # assert
    assert result.exit_code == 2
    assert "rhythm-efficientnetv2-1d" in result.output
