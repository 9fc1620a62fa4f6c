"""End to end through the CLI: a real coordinator on loopback, a real agent process, one real job."""

import hashlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from coordinator.client import ControlClient
from coordinator.server import Coordinator
from edgelab.app import cli
from edgelab.app.cli import app
from edgelab.domain import JobSpec, MeasurementSettings, TrainingConfig, TrainingSummary
from edgelab.metrics import accuracy_report

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=300))


@pytest.fixture
def agent_process(coordinator: Coordinator, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgelab",
            "agent",
            "run",
            "-c",
            coordinator.address,
            "--name",
            "bench-pi",
            "--home",
            str(tmp_path / "agent"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = ControlClient(coordinator.address)
    deadline = time.monotonic() + 60
    while not client.list_agents():
        assert process.poll() is None, (tmp_path / "agent.log").read_text()
        assert time.monotonic() < deadline, "agent did not register"
        time.sleep(0.1)
    yield process
    process.terminate()
    process.wait(timeout=15)
    log.close()


def _wait_finished(client: ControlClient, job_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not client.get_job(job_id)[0].state.finished:
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.1)


def test_agent_registers_leases_verifies_and_result_lands_in_sqlite(
    coordinator: Coordinator, agent_process: subprocess.Popen[bytes], onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    launch = tmp_path / "bench.yaml"
    launch.write_text(
        f"name: linear-ort\nbackend: onnxruntime\nbatch_sizes: [1, 8]\n"
        f"model: {{path: {onnx_model}}}\ndataset: {{path: {test_set}}}\n"
        f"measurement: {{min_duration_s: 0.2, min_iterations: 700}}\n"
        f"backend_options: {{profile: 'on'}}\n"
    )
    address = ["--coordinator", coordinator.address]

    launched = runner.invoke(app, ["jobs", "launch", str(launch), *address])
    assert launched.exit_code == 0, launched.output
    job_id = launched.output.split()[-1]
    _wait_finished(ControlClient(coordinator.address), job_id)
    shown = runner.invoke(app, ["jobs", "show", job_id, *address])
    agents = runner.invoke(app, ["agents", "list", *address])
    listed = runner.invoke(app, ["jobs", "list", *address])

    assert shown.exit_code == 0, shown.output
    assert "succeeded" in shown.output and "model_sha256" in shown.output and "Confusion matrix" in shown.output
    assert "p50 95% CI" in shown.output
    assert "Top operators at batch 8" in shown.output and "Gemm" in shown.output  # backend_options profile: on
    compared = runner.invoke(app, ["jobs", "show", job_id, job_id, *address])
    assert compared.exit_code == 0, compared.output
    assert f"{job_id} against {job_id}" in compared.output and "no significant difference" in compared.output
    assert f"{job_id} against {job_id}: operators by name" in compared.output and "1.00x" in compared.output
    assert "bench-pi" in agents.output and "online" in agents.output and "onnxruntime" in agents.output
    assert job_id in listed.output
    db = sqlite3.connect(coordinator.store.path)
    attempt, agent_id, ok = db.execute("SELECT attempt, agent_id, ok FROM results WHERE job_id=?", (job_id,)).fetchone()
    assert (attempt, ok) == (1, 1)
    assert agent_id == ControlClient(coordinator.address).list_agents()[0].agent_id
    cached = list((tmp_path / "agent" / "agent" / "cache" / "artifacts").iterdir())
    assert sorted(p.name for p in cached) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (onnx_model, test_set)
    )


def test_corrupt_model_is_stored_as_a_build_failure_and_the_agent_keeps_serving(
    coordinator: Coordinator, agent_process: subprocess.Popen[bytes], onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    client = ControlClient(coordinator.address)
    fast = MeasurementSettings(min_duration_s=0.05, min_iterations=10)
    dataset = client.upload(test_set, format="npz")
    (bad,) = client.submit(
        JobSpec("bad", "onnxruntime", client.upload(corrupt, format="onnx"), dataset, measurement=fast)
    )
    (good,) = client.submit(
        JobSpec("good", "onnxruntime", client.upload(onnx_model, format="onnx"), dataset, measurement=fast)
    )
    _wait_finished(client, bad)
    _wait_finished(client, good)

    bad_job, bad_result = client.get_job(bad)
    good_job, good_result = client.get_job(good)
    assert bad_job.state.value == "failed" and bad_result is not None and bad_result.failure is not None
    assert bad_result.failure.kind.value == "build" and "could not load" in bad_result.failure.message
    assert good_job.state.value == "succeeded" and good_result is not None and good_result.ok
    assert agent_process.poll() is None


def test_unknown_job_and_unreachable_coordinator_give_clear_errors(coordinator: Coordinator) -> None:
    missing = runner.invoke(app, ["jobs", "show", "nope", "--coordinator", coordinator.address])
    down = runner.invoke(app, ["agents", "list", "--coordinator", "127.0.0.1:1"])

    assert missing.exit_code == 1 and "unknown job" in missing.output
    assert down.exit_code == 1 and "unreachable" in down.output


def test_train_refuses_unknown_pipelines_and_bad_options_before_starting_ray(tmp_path: Path) -> None:
    # execute
    unknown = runner.invoke(app, ["train", "mitdb-beats-1d", "no-such", "--out", str(tmp_path)])
    seeds = runner.invoke(app, ["train", "mitdb-beats-1d", "--seeds", "0,x", "--out", str(tmp_path)])
    split = runner.invoke(app, ["train", "mitdb-beats-1d", "--split", "sideways", "--out", str(tmp_path)])
    weights = runner.invoke(app, ["train", "mitdb-beats-1d", "--class-weights", "heavy", "--out", str(tmp_path)])

    # assert
    assert unknown.exit_code == 1 and "unknown pipeline(s) no-such" in unknown.output
    assert seeds.exit_code == 1 and "--seeds: comma-separated integers expected, got '0,x'" in seeds.output
    assert split.exit_code == 1 and "split: 'sideways' is not one of" in split.output
    assert weights.exit_code == 2 and "'--class-weights'" in weights.output and "'heavy'" in weights.output
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # four Ray tasks, two of them real trainings: 40-50 s on 2 cores
def test_train_several_seeds_writes_each_run_and_records_them_on_the_coordinator(
    coordinator: Coordinator, mitdb_dir: Path, tmp_path: Path
) -> None:
    # prepare: image-transfer fails on the MIT-BIH dir (no class subfolders), the beat CNN trains
    args = ["train", "mitdb-beats-1d", "image-transfer", "--seeds", "0,1", "--records", "100,119", "--epochs", "1"]
    args += [
        "--max-train-beats",
        "128",
        "--class-weights",
        "none",
        "--data",
        str(mitdb_dir),
        "--out",
        str(tmp_path / "out"),
    ]

    # execute
    trained = runner.invoke(app, [*args, "--coordinator", coordinator.address])
    listed = runner.invoke(app, ["runs", "list", "--coordinator", coordinator.address])

    # assert
    assert trained.exit_code == 1, trained.output  # some runs failed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mitdb-beats-1d-seed0", "mitdb-beats-1d-seed1"]
    assert sorted(p.name for p in (tmp_path / "out" / "mitdb-beats-1d-seed1").iterdir()) == [
        "mitdb-beats-1d-savedmodel.zip",
        "mitdb-beats-1d-testset.npz",
        "mitdb-beats-1d.onnx",
    ]
    runs = ControlClient(coordinator.address).list_training_runs()
    assert sorted((r.pipeline, r.config.seed, r.state.value) for r in runs) == [
        ("image-transfer", 0, "failed"),
        ("image-transfer", 1, "failed"),
        ("mitdb-beats-1d", 0, "succeeded"),
        ("mitdb-beats-1d", 1, "succeeded"),
    ]
    # --epochs and --class-weights given, the batch size each pipeline's own
    assert {(r.pipeline, r.config.epochs, r.config.batch_size, r.config.class_weights) for r in runs} == {
        ("image-transfer", 1, 32, "none"),
        ("mitdb-beats-1d", 1, 256, "none"),
    }
    succeeded = [r for r in runs if r.state.value == "succeeded"]
    assert all(r.origin.startswith("cli@") and r.model_sha256 and r.savedmodel_sha256 for r in succeeded)
    assert all("class subfolders" in r.error for r in runs if r.pipeline == "image-transfer")
    assert listed.exit_code == 0 and all(r.run_id in listed.output for r in runs)
    assert "N " in listed.output and "macro F1" in listed.output


def test_runs_list_shows_accuracy_macro_f1_and_f1_per_class(coordinator: Coordinator) -> None:
    # prepare: one run finished the way the coordinator's trainer finishes it, one failed
    report = accuracy_report(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]), ["N", "V", "F"])
    store = coordinator.store
    ok, bad = store.add_training_runs([("mitdb-beats-1d", TrainingConfig(seed=s, split="random")) for s in (3, 4)])
    summary = TrainingSummary("random", report.accuracy, report, ["N", "V", "F"], 8, 4, 10, 1.0, 0.0)
    store.finish_training_run(ok, summary=summary)
    store.finish_training_run(bad, error="ConfigError: records: 999 not found")

    # execute
    listed = runner.invoke(app, ["runs", "list", "--coordinator", coordinator.address])

    # assert
    assert listed.exit_code == 0, listed.output
    (ok_line,) = [line for line in listed.output.splitlines() if ok in line]
    assert "75.00%" in ok_line and "0.733" in ok_line and "N 0.80 V 0.67 F n/a" in ok_line
    (bad_line,) = [line for line in listed.output.splitlines() if bad in line]
    assert "failed" in bad_line and "ConfigError: records: 999 not found" in bad_line
