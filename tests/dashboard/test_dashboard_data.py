"""The read model: store rows -> DataFrames, speed-up baselines, Pareto front, launch matrix, export."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from coordinator.store import Store
from dashboard.data import (
    backends_for,
    comparison_frame,
    ec57_frame,
    expand_matrix,
    format_problem,
    pareto_front,
    parse_batch_sizes,
    quality_options,
    results_frame,
    scoring_warnings,
    to_parquet_bytes,
)
from edgelab.config import Settings
from edgelab.domain import AgentInfo, DeviceCapabilities, PowerReport, Precision, RuntimeInfo
from tests.dashboard.conftest import DEMO_DS2_CONFUSION, Seeded, report_of


@pytest.fixture
def store(seeded: Seeded) -> Store:
    return Store(Settings(home=seeded.home).db_path)


def test_list_results_returns_latest_attempt_of_finished_jobs_only(store: Store, seeded: Seeded) -> None:
    rows = store.list_results()

    assert {job.spec.name for job, _ in rows} == {
        "ort-fp32-pi",
        "ort-fp32-pi-rerun",
        "ort-prune-desk",
        "tf-fp32-pi",
        "trt-fp16-nano",
        "trt-int8-nano",
    }
    by_name = {job.spec.name: (job, stored) for job, stored in rows}
    job, stored = by_name["trt-int8-nano"]
    assert stored.result.failure is not None and job.agent_name == "jetson-nano-1"
    assert stored.agent_id == seeded.agents["jetson-nano-1"] and stored.attempt == 1


def test_results_frame_keeps_failures_as_failures_and_sizes_from_artifacts(store: Store) -> None:
    frame = results_frame(store.list_results(), store.list_artifacts(), store.list_agents())

    failed = frame[frame["name"] == "trt-int8-nano"]
    assert len(failed) == 1 and failed.iloc[0]["failure_kind"] == "out_of_memory"
    assert failed[["p50_ms", "throughput_per_s", "speedup_vs_tf_fp32"]].isna().all(axis=None)
    ort = frame[frame["name"] == "ort-fp32-pi"]
    assert set(ort["model_size_bytes"]) == {123_456.0} and set(ort["energy_per_inference_mj"]) == {12.5}
    trt = frame[frame["name"] == "trt-fp16-nano"]
    assert sorted(trt["scope_kind"]) == ["compute-only", "compute-only", "end-to-end", "end-to-end"]
    assert trt["energy_per_inference_mj"].isna().all()


def test_speedup_needs_same_device_batch_and_scope(store: Store) -> None:
    frame = results_frame(store.list_results())

    speedup = frame.set_index(["name", "batch_size", "scope_kind"])["speedup_vs_tf_fp32"]
    assert speedup[("ort-fp32-pi", 1, "end-to-end")] == pytest.approx(8.0 / 2.0)
    assert speedup[("ort-fp32-pi", 8, "end-to-end")] == pytest.approx(27.0 / 9.0)
    assert speedup[("tf-fp32-pi", 1, "end-to-end")] == pytest.approx(1.0)
    # The Jetson has no TensorFlow FP32 run: another device's baseline does not count.
    assert speedup.xs("trt-fp16-nano", level="name").isna().all()


def test_pareto_front_keeps_points_nothing_beats_on_both_axes() -> None:
    points = pd.DataFrame(
        {"name": list("abcde"), "p50_ms": [1.0, 2.0, 3.0, 2.5, 4.0], "accuracy": [0.80, 0.90, 0.85, 0.95, 0.95]}
    )

    front = pareto_front(points)

    assert list(front["name"]) == ["a", "b", "d"]


def _agent(agent_id: str, status: str, runtimes: list[RuntimeInfo]) -> AgentInfo:
    return AgentInfo(agent_id, agent_id, status, 0.0, DeviceCapabilities(runtimes=runtimes))


def test_matrix_skips_cells_with_the_reason() -> None:
    nano = _agent(
        "nano", "online", [RuntimeInfo("tensorrt", True, "8.2", "", [Precision.FP32, Precision.FP16, Precision.INT8])]
    )
    pi = _agent("pi", "online", [RuntimeInfo("tensorrt", False, "", "no CUDA device")])
    gone = _agent("gone", "offline", [RuntimeInfo("tensorrt", True, "8.2", "", [Precision.FP16])])

    fleet = expand_matrix([nano, pi, gone], ["tensorrt"], [Precision.FP16, Precision.INT8])
    pinned = expand_matrix([nano, pi, gone], ["tensorrt"], [Precision.FP16], targets=["gone"])

    reasons = {(c.agent, c.precision.value): c.reason for c in fleet}
    assert reasons == {
        ("nano", "fp16"): "",
        ("nano", "int8"): "",
        ("pi", "fp16"): "tensorrt unavailable: no CUDA device",
        ("pi", "int8"): "tensorrt unavailable: no CUDA device",
        ("gone", "fp16"): "agent offline",
        ("gone", "int8"): "tensorrt here supports fp16",
    }
    assert [(c.agent, c.launched) for c in pinned] == [("gone", True)]


def test_matrix_skips_backends_that_cannot_load_the_model_format() -> None:
    both = _agent(
        "both",
        "online",
        [
            RuntimeInfo("onnxruntime", True, "1.32", "", [Precision.FP32]),
            RuntimeInfo("tflite", True, "2.16", "", [Precision.FP32, Precision.INT8]),
        ],
    )

    cells = expand_matrix([both], ["onnxruntime", "tflite"], [Precision.FP32], model_format="tflite")

    reasons = {c.backend: c.reason for c in cells}
    assert reasons == {"onnxruntime": "onnxruntime cannot load a tflite model (it loads onnx)", "tflite": ""}
    assert format_problem("tensorflow", "onnx") == "tensorflow cannot load a onnx model (it loads savedmodel.zip)"
    assert format_problem("tensorflow", "savedmodel.zip") == format_problem("my-backend", "onnx") == ""
    assert backends_for("onnx") == ["onnxruntime", "tensorrt", "trtexec"] and backends_for("tflite") == ["tflite"]


def test_results_frame_tells_agents_and_compressions_apart(store: Store) -> None:
    frame = results_frame(store.list_results(), store.list_artifacts(), store.list_agents())

    runs = frame.drop_duplicates("job_id").set_index("name")
    pi = "Raspberry Pi 4 Model B Rev 1.4"
    assert runs.loc["ort-fp32-pi", "device"] == f"rpi4-lab ({pi})"
    assert runs.loc["ort-prune-desk", "device"] == f"rpi4-desk ({pi})"
    assert runs.loc["ort-prune-desk", "device_model"] == runs.loc["ort-fp32-pi", "device_model"] == pi
    assert runs.loc["ort-prune-desk", ["compression", "sparsity", "flops"]].tolist() == ["prune:0.5", 0.5, 1.2e6]
    assert runs.loc["ort-prune-desk", "config"] == "onnxruntime fp32, prune:0.5"
    assert runs.loc["ort-fp32-pi", "config"] == runs.loc["ort-fp32-pi-rerun", "config"] == "onnxruntime fp32, none"
    assert runs.loc["ort-fp32-pi", "run"] != runs.loc["ort-fp32-pi-rerun", "run"]


def test_quality_options_and_warnings_about_the_test_set(store: Store) -> None:
    frame = results_frame(store.list_results(), store.list_artifacts(), store.list_agents())

    options = quality_options(frame)
    warnings = scoring_warnings(frame)

    assert list(options)[:2] == ["macro_f1", "accuracy"]
    assert options["se:S"] == "Se (recall) of class S"
    assert frame.drop_duplicates("job_id").set_index("name").loc["ort-prune-desk", "se:V"] == 0.95
    (desk,) = [w for w in warnings if "ort-prune-desk" in w]
    assert "only 150 test samples (< 500)" in desk and "no test sample of class V" in desk
    assert len(warnings) == 5  # every scored run of the seed has a tiny test set; the failure has none
    assert scoring_warnings(frame, small=100) == [desk.replace("only 150 test samples (< 500); ", "")]


def test_batch_sizes_are_parsed_or_rejected_by_name() -> None:
    assert parse_batch_sizes(" 1, 8,32") == [1, 8, 32]
    with pytest.raises(ValueError, match="'0'"):
        parse_batch_sizes("1,0")
    with pytest.raises(ValueError, match="'x'"):
        parse_batch_sizes("1,x")


def test_comparison_and_parquet_export(store: Store, seeded: Seeded) -> None:
    frame = results_frame(store.list_results())

    compared = comparison_frame(frame, [seeded.jobs["ort-fp32-pi"], seeded.jobs["tf-fp32-pi"]], batch_size=8)
    restored = pd.read_parquet(io.BytesIO(to_parquet_bytes(frame)))

    p50 = compared[compared["metric"] == "p50 ms"].iloc[0].tolist()
    assert p50[1:] == ["9", "27", "+200.0% worse"]
    assert compared[compared["metric"] == "status"].iloc[0].tolist()[3] == ""
    assert restored.shape == frame.shape and list(restored["name"]) == list(frame["name"])


def test_an_empty_store_gives_an_empty_frame_with_all_columns() -> None:
    frame = results_frame([])

    assert frame.empty and "speedup_vs_tf_fp32" in frame.columns


def _rerun_on_the_nano(store: Store, seeded: Seeded, name: str, **changes: Any) -> None:
    """The seeded Jetson FP16 job run again under `name`, its result reported with `changes`."""
    job, stored = next((j, s) for j, s in store.list_results() if j.spec.name == "trt-fp16-nano")
    agent_id = seeded.agents["jetson-nano-1"]
    job_id = store.submit_job(replace(job.spec, name=name), agent_id)
    lease = store.lease_job(agent_id, ["tensorrt"])
    assert lease is not None and lease.job_id == job_id
    store.report_result(agent_id, job_id, lease.attempt, replace(stored.result, **changes))


def test_results_frame_lists_the_power_of_each_rail(store: Store, seeded: Seeded) -> None:
    # prepare: a Jetson result whose jtop meter reported two rails
    rails = {"VDD_CPU": 1.1, "VDD_GPU": 3.25}
    power = PowerReport("jtop", "jtop tot rail (VDD_IN)", 0.05, 60, 4.0, 6.5, 0.9, 1, 3.0, rails)
    _rerun_on_the_nano(store, seeded, "trt-fp16-nano-power", power=[power])

    # execute
    frame = results_frame(store.list_results())

    # assert
    powered = frame[frame["name"] == "trt-fp16-nano-power"]
    assert set(powered["power_rails"]) == {"VDD_CPU 1.10 W, VDD_GPU 3.25 W"}
    assert set(frame[frame["name"] == "ort-fp32-pi"]["power_rails"]) == {""}  # ina219: no rails


def test_a_run_whose_model_called_every_sample_one_class_is_warned_about(store: Store, seeded: Seeded) -> None:
    # prepare: the Jetson's FP16 result again, but its model called every one of 600 test samples V
    from tests.dashboard.conftest import accuracy

    every_v = accuracy(0.1, [0, 0, 500, 0, 0, 40, 0, 0, 60], supports=(500, 40, 60))
    _rerun_on_the_nano(store, seeded, "trt-int8-collapsed", accuracy=every_v)

    # execute
    warnings = scoring_warnings(results_frame(store.list_results()))

    # assert: named with what it called; the seeded runs, which separate their classes, are not
    (collapsed,) = [w for w in warnings if "trt-int8-collapsed" in w]
    assert "called 100.0% of the 600 test examples V (which 10.0% of them are)" in collapsed
    assert not any("test examples" in w for w in warnings if "trt-int8-collapsed" not in w)


def test_ec57_frame_sets_de_chazal_beside_inter_patient_aami_runs_only() -> None:
    # prepare: the demo's DS2 run; the same beats under a random-split model; a three-class run
    report = report_of(DEMO_DS2_CONFUSION, ["N", "S", "V", "F", "Q"])

    # execute
    inter_patient = ec57_frame(report, "inter-patient")
    random_split = ec57_frame(report, "random")
    three_classes = ec57_frame(report_of([[5, 1, 0], [1, 5, 0], [0, 0, 6]], ["N", "S", "V"]), "inter-patient")

    # assert: N +P 38960 / 39278 keeps its second decimal beside the published 99.2; VEB +P leaves out the
    # F and Q beats labelled V (2892 / (2892 + 168 + 75), not / 3143); de Chazal gives no F or Q figure
    assert inter_patient is not None and random_split is not None and three_classes is None
    run, published = inter_patient.to_dict("records")
    assert (run["N Se"], run["N +P"], run["VEB +P"], run["Q +P"]) == ("88.07%", "99.19%", "92.25%", "-")
    assert published["run"] == "de Chazal 2004 (published)"
    assert [published[c] for c in ("N Se", "N +P", "SVEB Se", "SVEB +P", "VEB Se", "VEB +P")] == [
        *("86.9%", "99.2%", "75.9%", "38.5%", "77.7%", "81.9%")
    ]
    assert published["F Se"] == published["Q +P"] == "-"
    assert random_split.to_dict("records") == [run]  # no published inter-patient figure beside it
