"""The pipeline registry and `edgelab train --list`."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgelab.app import cli
from edgelab.domain import TrainingConfig
from edgelab.errors import ConfigError, NotFound
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
    # the paper-class beat-image CNN: its validation side preferred the plain loss
    assert PIPELINES["mitdb-beats-image-paper"].budget == TrainBudget(epochs=8, batch_size=64, class_weights=False)
    assert [name for name, p in PIPELINES.items() if not p.budget.class_weights] == ["mitdb-beats-image-paper"]
    assert all(p.budget.epochs >= 1 and p.budget.batch_size >= 1 for p in PIPELINES.values())


def test_unset_epochs_batch_size_and_class_weights_become_the_pipelines_own() -> None:
    # execute
    unset = within_budget("mitdb-af-bilstm", TrainingConfig(seed=3, max_train_beats=100))
    given = within_budget("mitdb-af-bilstm", TrainingConfig(epochs=2, batch_size=8, class_weights="none"))
    paper = within_budget("mitdb-beats-image-paper", TrainingConfig())
    paper_weighted = within_budget("mitdb-beats-image-paper", TrainingConfig(class_weights="balanced"))

    # assert: the stored config says what the run trained with
    assert unset == TrainingConfig(epochs=20, seed=3, max_train_beats=100, batch_size=64, class_weights="balanced")
    assert given == TrainingConfig(epochs=2, batch_size=8, class_weights="none")
    assert paper == TrainingConfig(epochs=8, batch_size=64, class_weights="none")
    assert paper_weighted.class_weights == "balanced"


def test_a_budget_makes_the_train_config_and_names_its_loss() -> None:
    # prepare
    budget = TrainBudget(epochs=8, batch_size=64, class_weights=False)

    # execute
    config = budget.override(epochs=3).train_config(Path("data"), split="random", seed=2)
    weighted = budget.override(class_weights="balanced")
    unset = budget.override(class_weights="")

    # assert
    assert (config.epochs, config.batch_size, config.class_weights) == (3, 64, False)
    assert (config.data_dir, config.split, config.seed) == (Path("data"), "random", 2)
    assert str(budget) == "8 epochs, batch 64, no class weights"
    assert str(weighted) == "8 epochs, batch 64"
    assert unset == budget
    with pytest.raises(ConfigError, match="class_weights: 'heavy' is not one of balanced, none"):
        budget.override(class_weights="heavy")


def test_unknown_pipeline_lists_the_known_ones() -> None:
    # execute / assert
    with pytest.raises(NotFound, match=r"unknown pipeline\(s\) mitdb-af-lstm; known: .*mitdb-af-bilstm"):
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
