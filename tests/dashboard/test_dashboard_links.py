"""Results views a link selects (query parameters), the matrix and date filters, the operator profiles of
the runs compared, auto-refresh, and the fleet table's wording; AppTest on the seeded store."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from coordinator.client import ControlClient
from coordinator.server import Coordinator
from coordinator.store import Store
from dashboard.config import COORDINATOR_ENV
from dashboard.data import ago, fleet_frame
from edgelab.config import Settings
from edgelab.domain import AgentInfo, BenchmarkResult, JobSpec
from tests.dashboard.conftest import Seeded, latency, plotly_values, rows
from tests.factories import CAPS, write_linear_onnx, write_test_set

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
DAY_S = 86400.0


def _app(**params: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def _names(at: AppTest) -> set[str]:
    return set(at.dataframe[0].value["name"])


def _param(at: AppTest, key: str) -> list[str]:
    """A query parameter's values (AppTest keeps a single one as a plain string)."""
    value = at.query_params[key]
    return value if isinstance(value, list) else [value]


def _chart(at: AppTest, title_start: str) -> dict[str, Any]:
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return next(c for c in charts if c["layout"]["title"]["text"].startswith(title_start))


def test_query_parameters_select_filters_and_runs(seeded: Seeded) -> None:
    # prepare: a link naming an agent by its name, a backend, and two runs by id prefixes
    ort, rerun = seeded.jobs["ort-fp32-pi"], seeded.jobs["ort-fp32-pi-rerun"]
    at = _app(agent="rpi4-lab", backend="onnxruntime", run=[rerun[:6], ort[:6], "nope"])

    # execute
    at.run()

    # assert: only those runs in the table, both compared in the link's order, the first in the confusion matrix
    assert not at.exception
    assert _names(at) == {"ort-fp32-pi", "ort-fp32-pi-rerun"}
    assert at.multiselect(key="compare_runs").value == [rerun, ort]
    assert at.selectbox(key="confusion_job").value == rerun
    assert at.sidebar.multiselect(key="filter_device").value == ["rpi4-lab (Raspberry Pi 4 Model B Rev 1.4)"]


def test_changing_a_filter_writes_it_into_the_link(seeded: Seeded) -> None:
    at = _app().run()

    at.sidebar.multiselect(key="filter_backend").set_value(["tensorflow"]).run()

    assert not at.exception
    assert _param(at, "backend") == ["tensorflow"]
    assert _names(at) == {"tf-fp32-pi"}
    assert "agent" not in at.query_params  # every agent: no parameter
    at.sidebar.multiselect(key="filter_device").set_value(["rpi4-lab (Raspberry Pi 4 Model B Rev 1.4)"]).run()
    assert _param(at, "agent") == ["rpi4-lab"]  # by name: a link a person can read and write


def test_matrix_filter_keeps_one_launch(seeded: Seeded) -> None:
    at = _app(matrix="prune-sweep").run()

    assert not at.exception
    assert _names(at) == {"ort-prune-desk"}
    options = at.sidebar.multiselect(key="filter_matrix").options
    assert set(options) == {"(not from a matrix)", "prune-sweep"}


def test_date_filter_from_the_link_and_the_picker(seeded: Seeded) -> None:
    # prepare: one more run, finished three days ago
    now = time.time()
    past = Store(Settings(home=seeded.home).db_path, clock=lambda: now - 3 * DAY_S)
    agent_id, _ = past.register_agent("old-box", CAPS)
    model = past.get_artifact("a" * 64)
    job_id = past.submit_job(JobSpec("old-run", "onnxruntime", model, past.get_artifact("b" * 64)), agent_id)
    lease = past.lease_job(agent_id, ["onnxruntime"])
    assert lease is not None
    past.report_result(agent_id, job_id, lease.attempt, BenchmarkResult(latency=[latency(1, 3.0)]))
    past.close()
    old_day = dt.datetime.fromtimestamp(now - 3 * DAY_S, dt.timezone.utc).date()  # the page's days are UTC
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()

    # execute
    everything = _app().run()
    until_then = _app(until=old_day.isoformat()).run()
    since_after = _app().run()
    since_after.sidebar.date_input(key="filter_dates").set_value((old_day + dt.timedelta(days=1), today))
    since_after.run()

    # assert
    assert not everything.exception and "old-run" in _names(everything) and "ort-fp32-pi" in _names(everything)
    assert _names(until_then) == {"old-run"}
    assert "old-run" not in _names(since_after) and "ort-fp32-pi" in _names(since_after)
    assert _param(since_after, "since") == [(old_day + dt.timedelta(days=1)).isoformat()]


def test_operator_profiles_of_two_runs_and_their_diff(seeded: Seeded) -> None:
    ort, rerun = seeded.jobs["ort-fp32-pi"], seeded.jobs["ort-fp32-pi-rerun"]
    at = _app(run=[ort, rerun]).run()

    assert not at.exception
    assert at.multiselect(key="profile_runs").value == [ort, rerun]
    assert at.selectbox(key="profile_batch").options == ["1", "8"]
    chart = _chart(at, "Slowest operators at batch 1")
    bars = {t["name"]: dict(zip(t["y"], plotly_values(t["x"]), strict=True)) for t in chart["data"]}
    assert bars == {
        f"ort-fp32-pi [{ort[:6]}]": {"Conv_0": 0.8, "Gemm_1": 0.4, "Relu_2": 0.1},
        f"ort-fp32-pi-rerun [{rerun[:6]}]": {"Conv_0": 1.2, "Gemm_1": 0.3, "Add_3": 0.05},
    }
    diff = next(d.value for d in at.dataframe if "B / A" in d.value.columns)
    assert list(diff["operator"]) == ["Conv_0", "Gemm_1", "(all operators; 2 kept by one side only)"]
    assert list(diff["B / A"]) == pytest.approx([1.5, 0.75, 1.55 / 1.3])
    # One run alone: its profile, no diff.
    at.multiselect(key="profile_runs").set_value([ort]).run()
    assert not any("B / A" in d.value.columns for d in at.dataframe)
    assert len(_chart(at, "Slowest operators")["data"]) == 1


def test_runs_without_profiles_say_how_to_get_one(seeded: Seeded) -> None:
    at = _app(backend="tensorflow").run()

    assert not at.exception
    assert any("No run in this selection carries an operator profile" in i.value for i in at.info)


def test_auto_refresh_turns_on_from_the_link_and_off_from_the_toggle(seeded: Seeded) -> None:
    at = _app(refresh="on").run()

    assert not at.exception
    assert at.sidebar.toggle(key="results_refresh").value is True
    at.sidebar.toggle(key="results_refresh").set_value(False).run()
    assert not at.exception and "refresh" not in at.query_params
    fleet = _app(refresh="on").run()
    fleet.switch_page("views/fleet.py").run()
    assert not fleet.exception and fleet.sidebar.toggle(key="fleet_refresh").value is True


def test_results_page_counts_jobs_still_queued_or_running(seeded: Seeded) -> None:
    at = _app().run()

    assert any("0 job(s) running, 1 queued" in c.value for c in at.caption)


def test_fleet_rows_say_how_long_ago_and_what_runs_now() -> None:
    agent = AgentInfo("a1", "pi", "online", 1000.0, CAPS, current_job_id="j1")

    (row,) = fleet_frame([agent], {"j1": "bench"}, now=1012.4).to_dict("records")

    assert row["last seen"] == "12 s ago" and row["current job"] == "bench (j1)"
    assert row["power meters"] == "none (energy not measured)"
    assert [ago(s) for s in (0, 59, 60, 3599, 3600, 2 * DAY_S)] == [
        "0 s ago",
        "59 s ago",
        "1 min ago",
        "59 min ago",
        "1 h ago",
        "2 d ago",
    ]
    assert rows(fleet_frame([agent], now=1000.0), name="pi")[0]["current job"] == "j1"


@pytest.mark.integration
def test_launch_progress_survives_a_reload_and_counts_a_cancelled_job(
    coordinator: Coordinator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare: a job that succeeded and one an operator cancelled, named by the address alone (a new session)
    store = coordinator.store
    agent_id, _ = store.register_agent("box-1", CAPS)
    with ControlClient(coordinator.address) as client:
        model = client.upload(write_linear_onnx(tmp_path / "m.onnx"), format="onnx")
        dataset = client.upload(write_test_set(tmp_path / "t.npz"), format="npz")
    done = store.submit_job(JobSpec("bench-ok", "onnxruntime", model, dataset), agent_id)
    lease = store.lease_job(agent_id, ["onnxruntime"])
    assert lease is not None
    store.report_result(agent_id, done, lease.attempt, BenchmarkResult(latency=[latency(1, 1.0)]))
    cancelled = store.submit_job(JobSpec("bench-stopped", "onnxruntime", model, dataset), agent_id)
    store.cancel_job(cancelled)
    monkeypatch.setenv("EDGELAB_HOME", str(tmp_path / "coordinator"))
    monkeypatch.setenv(COORDINATOR_ENV, coordinator.address)
    at = _app(launched=[done, cancelled]).run()

    # execute
    at.switch_page("views/launch.py").run()

    # assert
    assert not at.exception
    (banner,) = [e.value for e in at.error if "launched job(s) finished" in e.value]
    assert "All 2 launched job(s) finished; 1 failed" in banner and "bench-stopped on box-1: cancelled" in banner
