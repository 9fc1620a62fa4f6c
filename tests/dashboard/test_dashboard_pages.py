"""Every page rendered by Streamlit's AppTest on a results store seeded through the Store API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from coordinator.client import ControlClient
from coordinator.server import Coordinator
from dashboard.config import COORDINATOR_ENV
from edgelab.domain import DeviceCapabilities, JobState, Precision, RuntimeInfo
from tests.dashboard.conftest import Seeded, plotly_values, rows
from tests.factories import write_linear_onnx, write_test_set

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def _charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_results_page_shows_runs_failures_power_and_speedup(seeded: Seeded) -> None:
    at = _app()

    at.run()

    assert not at.exception
    table = at.dataframe[0].value
    (ort_b1,) = rows(table, name="ort-fp32-pi", batch="1")
    assert (ort_b1["p50 ms"], ort_b1["accuracy"], ort_b1["energy mJ/inf"]) == ("2.000", "91.23%", "12.500")
    assert ort_b1["speed-up vs TF FP32"] == "4.00x"  # 8.0 ms TF FP32 / 2.0 ms on the same Pi, batch 1
    assert rows(table, name="ort-fp32-pi", batch="8")[0]["speed-up vs TF FP32"] == "3.00x"
    trt = rows(table, name="trt-fp16-nano", batch="1")
    assert {r["scope"] for r in trt} == {"end-to-end", "compute-only"}
    assert {r["energy mJ/inf"] for r in trt} == {"not measured"}
    assert {r["speed-up vs TF FP32"] for r in trt} == {"no baseline"}
    (failed,) = rows(table, name="trt-int8-nano")
    assert failed["status"] == "failed (out_of_memory): TensorRT ran out of memory building the int8 engine"
    assert failed["p50 ms"] == failed["throughput/s"] == ""  # a failure is not zero throughput
    assert "queued-ort" not in set(table["name"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["runs"] == "4" and metrics["failed"] == "1"
    assert metrics["best accuracy"] == "91.25%" and metrics["lowest p50 ms"] == "0.310"
    assert any("trt-int8-nano on jetson-nano-1 failed (out_of_memory)" in e.value for e in at.error)
    assert any("MIT-BIH Arrhythmia Database" in c.value for c in at.caption)
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV", "Download Parquet"]


def test_results_plots_draw_the_seeded_figures(seeded: Seeded) -> None:
    at = _app()

    at.run()

    charts = _charts(at)
    titles = [c["layout"]["title"]["text"] for c in charts]
    assert any(t.startswith("Accuracy vs p50 latency") for t in titles)
    assert any(t.startswith("Latency per device x precision") for t in titles)
    assert any(t.startswith("Energy per inference") for t in titles)
    assert any(t.startswith("Model size vs accuracy") for t in titles)
    assert any(t.startswith("Speed-up vs the TensorFlow FP32 baseline") for t in titles)
    scatter = next(c for c in charts if c["layout"]["title"]["text"].startswith("Accuracy vs p50"))
    front = next(t for t in scatter["data"] if t["name"] == "Pareto front")
    # Batch 1, end-to-end: 0.8 ms (TensorRT), 2.0 ms (ORT), 8.0 ms (TF) are each the most accurate so far.
    assert plotly_values(front["x"]) == [0.8, 2.0, 8.0]
    speedup = next(c for c in charts if c["layout"]["title"]["text"].startswith("Speed-up"))
    bars = {t["name"]: plotly_values(t["y"]) for t in speedup["data"]}
    assert bars["onnxruntime fp32"] == [4.0] and bars["tensorflow fp32"] == [1.0]
    sizes = next(c for c in charts if c["layout"]["title"]["text"].startswith("Model size"))
    assert sorted(x for t in sizes["data"] for x in plotly_values(t["x"])) == [
        123_456 / 1024,
        123_456 / 1024,
        654_321 / 1024,
    ]


def test_results_confusion_matrix_and_comparison(seeded: Seeded) -> None:
    at = _app().run()
    runs = at.selectbox(key="confusion_job")

    runs.set_value(seeded.jobs["ort-fp32-pi"])
    at.selectbox(key="compare_a").set_value(seeded.jobs["ort-fp32-pi"])
    at.selectbox(key="compare_b").set_value(seeded.jobs["tf-fp32-pi"])
    at.run()

    assert not at.exception
    heatmap = next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Confusion"))
    assert plotly_values(heatmap["data"][0]["z"]) == [80, 5, 3, 4, 30, 1, 2, 0, 25]
    assert {m.label: m.value for m in at.metric}["accuracy"] == "91.23%"
    compare = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    p50 = compare[compare["metric"] == "p50 ms"].iloc[0]
    assert (p50.iloc[1], p50.iloc[2], p50.iloc[3]) == ("2", "8", "6")
    accuracy = compare[compare["metric"] == "accuracy"].iloc[0]
    assert (accuracy.iloc[1], accuracy.iloc[2], accuracy.iloc[3]) == ("0.9123", "0.9125", "0.0002")
    manifest = next(d.value for d in at.dataframe if "same" in d.value.columns)
    backend = manifest[manifest["key"] == "backend"].iloc[0]
    assert (backend["A"], backend["B"], bool(backend["same"])) == ("onnxruntime", "tensorflow", False)


def test_results_filter_narrows_table_and_plots(seeded: Seeded) -> None:
    at = _app().run()

    at.sidebar.multiselect(key="filter_status").set_value(["failed"])
    at.run()

    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["trt-int8-nano"]
    assert {m.label: m.value for m in at.metric}["runs"] == "1"
    assert any("nothing to plot" in i.value for i in at.info)


def test_fleet_page_shows_liveness_runtimes_and_register_command(seeded: Seeded) -> None:
    at = _app().run()

    at.switch_page("views/fleet.py").run()

    assert not at.exception
    fleet = at.dataframe[0].value
    status = dict(zip(fleet["name"], fleet["status"], strict=True))
    assert status == {"old-pi": "offline", "flaky-nano": "stale", "jetson-nano-1": "online", "rpi4-lab": "online"}
    (nano,) = rows(fleet, name="jetson-nano-1")
    assert nano["device"] == "NVIDIA Jetson Nano Developer Kit"
    assert nano["runtimes available"] == "tensorrt 8.2.1, onnxruntime 1.16.3"
    assert nano["unavailable"] == "tflite: tflite_runtime is not installed"
    runtimes = at.dataframe[1].value
    assert rows(runtimes, agent="rpi4-lab", runtime="tensorrt")[0]["reason"] == "no CUDA device"
    assert {m.label: m.value for m in at.metric} == {"agents": "4", "online": "2", "stale": "1", "offline": "1"}
    assert at.code[0].value == "edgelab agent run --coordinator 127.0.0.1:1 --fleet-token TOKEN --name NAME"


def test_pages_say_when_there_is_no_store_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELAB_HOME", str(tmp_path / "empty"))
    at = _app()

    at.run()

    assert not at.exception
    assert any("No results store at" in i.value and "edgelab demo" in i.value for i in at.info)
    assert not (tmp_path / "empty").exists()  # reading never creates a store


def test_launch_page_says_when_the_coordinator_is_unreachable(seeded: Seeded) -> None:
    at = _app().run()

    at.switch_page("views/launch.py").run()

    assert not at.exception
    (error,) = at.error
    assert "Cannot reach the coordinator" in error.value and "127.0.0.1:1" in error.value
    assert "edgelab coordinator serve" in error.value


@pytest.mark.integration
def test_launch_page_queues_the_matrix_on_a_real_coordinator(
    coordinator: Coordinator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: two agents (one without TensorRT), real artifacts uploaded through the operator API.
    store = coordinator.store
    cpu = DeviceCapabilities(
        device_model="x86 box", runtimes=[RuntimeInfo("onnxruntime", True, "1.32", "", [Precision.FP32])]
    )
    gpu_less = DeviceCapabilities(
        device_model="Raspberry Pi 4",
        runtimes=[
            RuntimeInfo("onnxruntime", True, "1.32", "", [Precision.FP32]),
            RuntimeInfo("tensorrt", False, "", "no CUDA device"),
        ],
    )
    box_id, _ = store.register_agent("box-1", cpu)
    store.register_agent("pi-2", gpu_less)
    with ControlClient(coordinator.address) as client:
        model = client.upload(write_linear_onnx(tmp_path / "m.onnx"), format="onnx", metadata={"pipeline": "linear"})
        client.upload(write_test_set(tmp_path / "t.npz"), format="npz")
    monkeypatch.setenv("EDGELAB_HOME", str(tmp_path / "coordinator"))
    monkeypatch.setenv(COORDINATOR_ENV, coordinator.address)
    at = _app().run()
    at.switch_page("views/launch.py").run()
    backends = next(m for m in at.multiselect if m.label == "Backends")
    backends.set_value(["onnxruntime", "tensorrt"])
    next(t for t in at.text_input if t.label == "Batch sizes").set_value("1, 4")
    at.run()
    matrix = next(d.value for d in at.dataframe if "launch" in d.value.columns)

    # Execute: press launch.
    launch = next(b for b in at.button if b.label.startswith("Launch"))
    assert launch.label == "Launch 2 job(s)"
    launch.click().run()

    # Assert: the matrix showed what was skipped and why; the coordinator queued exactly the launched cells.
    assert not at.exception
    assert (
        rows(matrix, agent="pi-2", backend="tensorrt")[0]["launch"] == "skipped: tensorrt unavailable: no CUDA device"
    )
    assert rows(matrix, agent="box-1", backend="onnxruntime")[0]["launch"] == "yes"
    jobs = store.list_jobs()
    assert sorted(j.agent_name for j in jobs) == ["box-1", "pi-2"]
    assert {j.spec.name for j in jobs} == {"bench-onnxruntime-fp32"}
    assert all(j.spec.batch_sizes == [1, 4] and j.spec.model.sha256 == model.sha256 for j in jobs)
    assert all(j.spec.pipeline == "linear" and j.state is JobState.QUEUED for j in jobs)
    assert box_id in {j.agent_id for j in jobs}
    assert any(s.value.startswith("queued 2 job(s)") for s in at.success)
    progress = next(d.value for d in at.dataframe if "state" in d.value.columns)
    assert sorted(progress["job"]) == sorted(j.job_id for j in jobs)
    assert set(progress["state"]) == {"queued"}
