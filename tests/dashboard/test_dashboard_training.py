"""The Training page under Streamlit's AppTest: stored runs and one run's evaluation from a seeded store,
and StartTraining through a real loopback coordinator."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from coordinator.server import Coordinator, start_coordinator
from dashboard.config import COORDINATOR_ENV
from dashboard.data import parse_seeds
from edgelab.config import Settings
from edgelab.domain import TrainingConfig, TrainingState
from tests.dashboard.conftest import Seeded, plotly_values, rows

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGE = "views/training.py"


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    return at.switch_page(PAGE).run()


def _button(at: AppTest, prefix: str) -> Any:
    return next(b for b in at.button if b.label.startswith(prefix))


def test_training_page_lists_runs_and_shows_one_runs_evaluation(seeded: Seeded) -> None:
    # execute
    at = _page()

    # assert: the runs table says the split fell back and why a run failed
    assert not at.exception
    runs = at.dataframe[0].value
    (trained,) = rows(runs, run=seeded.training["trained"])
    assert trained["split"] == "random (asked inter-patient)" and trained["state"] == "succeeded"
    assert (trained["accuracy"], trained["macro F1"], trained["train / test beats"]) == ("90.00%", "0.800", "500 / 150")
    assert (trained["seed"], trained["epochs"], trained["records"]) == (1, 2, "101,106")
    (failed,) = rows(runs, run=seeded.training["failed"])
    assert (failed["state"], failed["accuracy"]) == ("failed", "")
    assert failed["error"] == "ConfigError: records: no AFIB window in 101, 106"
    # ... and the evaluation of the one run that succeeded: metrics, per-class table, confusion heatmap, notes
    assert {m.label: m.value for m in at.metric} == {
        "accuracy": "90.00%",
        "macro F1": "0.800",
        "test beats": "150",
        "split": "random",
    }
    classes = next(d.value for d in at.dataframe if "recall (Se)" in d.value.columns)
    assert list(classes["class"]) == ["N", "S", "V"]
    (heatmap,) = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert heatmap["layout"]["title"]["text"] == "Confusion matrix, mitdb-beats-1d seed 1"
    assert plotly_values(heatmap["data"][0]["z"]) == [80, 5, 3, 4, 30, 1, 2, 0, 25]
    assert any("fell back to a random beat split" in c.value for c in at.caption)
    assert any("MIT-BIH Arrhythmia Database" in c.value for c in at.caption)


def test_training_launch_says_when_the_coordinator_is_unreachable(seeded: Seeded) -> None:
    # prepare
    at = _page()

    # execute
    _button(at, "Train").click().run()

    # assert
    assert not at.exception
    (error,) = at.error
    assert "Cannot reach the coordinator" in error.value and "127.0.0.1:1" in error.value
    assert "edgelab coordinator serve" in error.value


def test_training_page_without_a_store_still_offers_to_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare
    monkeypatch.setenv("EDGELAB_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv(COORDINATOR_ENV, "127.0.0.1:1")

    # execute
    at = _page()

    # assert
    assert not at.exception
    assert any("No training run stored yet" in i.value for i in at.info)
    assert _button(at, "Train").label == "Train 1 run(s)"
    assert not (tmp_path / "empty").exists()


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    """A real coordinator with a data dir of its own; its training thread is stopped, so the runs
    StartTraining queues stay queued for the assertions instead of starting Ray in the test process."""
    (tmp_path / "mitdb").mkdir()
    running = start_coordinator(Settings(home=tmp_path / "coordinator", port=0, mitdb=tmp_path / "mitdb"))
    running.training.stop()
    yield running
    running.stop(grace=None)


def _form_on(coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The training page of a dashboard on `coordinator`'s store and API, the beat CNN and a BiLSTM picked."""
    monkeypatch.setenv("EDGELAB_HOME", str(coordinator.store.path.parent))
    monkeypatch.setenv(COORDINATOR_ENV, coordinator.address)
    at = _page()
    at.multiselect(key="train_pipelines").set_value(["mitdb-beats-1d", "mitdb-af-bilstm"])
    return at


@pytest.mark.integration
def test_training_form_queues_pipelines_x_seeds_on_a_real_coordinator(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare
    at = _form_on(coordinator, monkeypatch)
    next(t for t in at.text_input if t.label == "Seeds").set_value("0, 1").run()
    bad_seeds = next(t for t in at.text_input if t.label == "Seeds")
    bad_seeds.set_value("0,x").run()
    refused = (_button(at, "Train").label, _button(at, "Train").disabled, [e.value for e in at.error])
    next(t for t in at.text_input if t.label == "Seeds").set_value("0, 1")
    own_budgets = [c.value for c in at.caption if c.value.startswith("Own budgets")]
    next(n for n in at.number_input if n.label.startswith("Epochs")).set_value(1)
    next(t for t in at.text_input if t.label.startswith("Records")).set_value("100, 119")
    at.run()

    # execute
    _button(at, "Train").click().run()

    # assert
    assert not at.exception
    assert refused == ("Train 0 run(s)", True, ["seeds must be non-negative integers separated by commas, got 'x'"])
    runs = coordinator.store.list_training_runs()
    assert sorted((r.pipeline, r.config.seed) for r in runs) == [
        ("mitdb-af-bilstm", 0),
        ("mitdb-af-bilstm", 1),
        ("mitdb-beats-1d", 0),
        ("mitdb-beats-1d", 1),
    ]
    assert {r.state for r in runs} == {TrainingState.QUEUED}
    # the batch size left unset (0) is each pipeline's own, stored as trained
    assert own_budgets == ["Own budgets: mitdb-beats-1d 6 epochs, batch 256; mitdb-af-bilstm 20 epochs, batch 64"]
    batch_sizes = {"mitdb-beats-1d": 256, "mitdb-af-bilstm": 64}
    expected = TrainingConfig(split="inter-patient", epochs=1, records=["100", "119"], class_weights="balanced")
    assert all(
        r.config == dataclasses.replace(expected, seed=r.config.seed, batch_size=batch_sizes[r.pipeline]) for r in runs
    )
    assert any(s.value.startswith("queued 4 training run(s)") for s in at.success)
    progress = at.dataframe[-1].value
    assert sorted(progress["run"]) == sorted(r.run_id for r in runs) and set(progress["state"]) == {"queued"}


@pytest.mark.integration
def test_training_form_batch_size_and_class_weights_override_every_pipelines_own(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare
    at = _form_on(coordinator, monkeypatch)
    next(n for n in at.number_input if n.label.startswith("Batch size")).set_value(32)
    next(s for s in at.selectbox if s.label == "Class weights").set_value("none")
    at.run()

    # execute
    _button(at, "Train").click().run()

    # assert: the epochs left unset are still each pipeline's own
    assert not at.exception
    runs = coordinator.store.list_training_runs()
    assert sorted((r.pipeline, r.config.epochs, r.config.batch_size, r.config.class_weights) for r in runs) == [
        ("mitdb-af-bilstm", 20, 32, "none"),
        ("mitdb-beats-1d", 6, 32, "none"),
    ]
    assert set(at.dataframe[-1].value["class weights"]) == {"none"}


def test_parse_seeds_names_the_bad_part() -> None:
    # execute / assert
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    with pytest.raises(ValueError, match="'-1'"):
        parse_seeds("0,-1")
