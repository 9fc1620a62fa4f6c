"""The agent loop against a real loopback coordinator, with faults injected: it stores a classified
result for every bad job and keeps serving; damaged or cut artifact streams are re-fetched and resumed."""

import ctypes
import hashlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.client import AgentClient
from agent.loop import Agent, AgentConfig
from agent.runner import run_benchmark
from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from edgelab.constants import ARTIFACT_CHUNK_BYTES
from edgelab.domain import (
    BenchmarkResult,
    DeviceCapabilities,
    JobSpec,
    JobState,
    MeasurementSettings,
    Precision,
    RuntimeInfo,
)
from edgelab.errors import CoordinatorUnavailable, PermissionDenied
from edgelab.v1 import agent_pb2
from tests.factories import write_linear_onnx, write_test_set
from tests.polling import wait_for

pytestmark = pytest.mark.integration

FAST = MeasurementSettings(warmup_iterations=1, warmup_duration_s=0, min_iterations=10, min_duration_s=0.02)


def faulty(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    """run_benchmark, except for jobs whose name asks for a fault (runs in the spawned child)."""
    if spec.name == "segfault":
        ctypes.string_at(0)
    if spec.name == "hang":
        time.sleep(60)
    if spec.name == "huge":  # a result over the 8 MiB gRPC message limit
        return BenchmarkResult(load_s=0.1, manifest={"log": "x" * (9 << 20)})
    if spec.name == "nan":  # a runtime whose clock misbehaved: values the coordinator refuses to store
        result = run_benchmark(spec, model, dataset, cache)
        result.latency[0].mean_ms = float("nan")
        return result
    return run_benchmark(spec, model, dataset, cache)


def start_grandchild_and_hang(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    """A benchmark that runs a subprocess of its own (as the trtexec backend does) and takes its time."""
    grandchild = subprocess.Popen(["sleep", "120"])
    assert cache is not None
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "pids").write_text(f"{os.getpid()} {grandchild.pid}")
    time.sleep(120)
    return BenchmarkResult(load_s=1.0)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _serve(agent: Agent, control: ControlClient, jobs: int) -> tuple[threading.Thread, str]:
    known = {a.agent_id for a in control.list_agents()}
    thread = threading.Thread(target=agent.run, kwargs={"max_jobs": jobs}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (fresh := [a.agent_id for a in control.list_agents() if a.agent_id not in known]):
        assert time.monotonic() < deadline, "agent did not register"
        time.sleep(0.05)
    return thread, fresh[0]


def _agent(coordinator: Coordinator, home: Path, **config: Any) -> Agent:
    return Agent(AgentConfig(coordinator.address, "pi", home, poll_interval_s=0.05, **config))


def _outcomes(control: ControlClient, job_ids: list[str]) -> list[str]:
    outcomes = []
    for job_id in job_ids:
        job, result = control.get_job(job_id)
        assert result is not None, job
        outcomes.append("ok" if result.failure is None else result.failure.kind.value)
    return outcomes


def test_every_bad_job_is_stored_classified_and_the_agent_keeps_serving(
    coordinator: Coordinator, tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    model = control.upload(onnx_model, format="onnx")
    dataset = control.upload(test_set, format="npz")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_model.read_bytes()[:60])
    not_a_zip = tmp_path / "garbage.npz"
    not_a_zip.write_bytes(b"PK\x03\x04 not really a zip")
    specs = {
        "corrupt-model": JobSpec("corrupt-model", "onnxruntime", control.upload(truncated, format="onnx"), dataset),
        "wrong-shape": JobSpec(
            "wrong-shape",
            "onnxruntime",
            model,
            control.upload(write_test_set(tmp_path / "l64.npz", length=64), format="npz"),
        ),
        "corrupt-dataset": JobSpec("corrupt-dataset", "onnxruntime", model, control.upload(not_a_zip, format="npz")),
        "fp16-on-cpu": JobSpec("fp16-on-cpu", "onnxruntime", model, dataset, precision=Precision.FP16),
        "wrong-classes": JobSpec(
            "wrong-classes",
            "onnxruntime",
            control.upload(write_linear_onnx(tmp_path / "five.onnx", classes=5), format="onnx"),
            dataset,
        ),
        "good": JobSpec("good", "onnxruntime", model, dataset, batch_sizes=[1, 4]),
    }
    agent = _agent(coordinator, tmp_path / "agent", isolate=False)
    thread, agent_id = _serve(agent, control, jobs=len(specs))

    job_ids = [control.submit(JobSpec(**{**vars(s), "measurement": FAST}), [agent_id])[0] for s in specs.values()]
    thread.join(timeout=120)

    assert not thread.is_alive()
    assert _outcomes(control, job_ids) == ["build", "bad_input", "bad_input", "unsupported", "wrong_output", "ok"]
    _, good = control.get_job(job_ids[-1])
    assert good is not None and [lat.batch_size for lat in good.latency] == [1, 4]


def test_crashing_hanging_and_oversized_jobs_do_not_take_the_agent_down(
    coordinator: Coordinator, tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    model = control.upload(onnx_model, format="onnx")
    dataset = control.upload(test_set, format="npz")
    agent = _agent(coordinator, tmp_path / "agent", benchmark=faulty, job_timeout_s=3)
    names = ["segfault", "hang", "huge", "good"]
    thread, agent_id = _serve(agent, control, jobs=len(names))

    job_ids = [
        control.submit(JobSpec(n, "onnxruntime", model, dataset, measurement=FAST), [agent_id])[0] for n in names
    ]
    thread.join(timeout=120)

    assert not thread.is_alive()
    assert _outcomes(control, job_ids) == ["crash", "timeout", "wrong_output", "ok"]
    messages = [control.get_job(j)[1].failure.message for j in job_ids[:3]]  # type: ignore[union-attr]
    assert "signal SIGSEGV" in messages[0]
    assert "3 s wall-clock limit" in messages[1]
    assert "too large to report" in messages[2] and "8 MiB" in messages[2]


class FlakyNetwork(grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Damages the 2nd chunk of the first download of one artifact and cuts the 2nd download short."""

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        self.offsets: list[int] = []

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        call = continuation(details, request)
        if getattr(request, "sha256", None) != self.sha256:
            return call
        self.offsets.append(request.offset)
        return _Faulty(call, {1: "corrupt", 2: "cut"}.get(len(self.offsets), ""))


class _Faulty:
    def __init__(self, call: Any, fault: str) -> None:
        self._call = call
        self._fault = fault

    def __iter__(self) -> Iterator[agent_pb2.ArtifactChunk]:
        for i, chunk in enumerate(self._call):
            if i == 1 and self._fault == "cut":
                return  # the stream ends early, as through a proxy that dropped the connection
            if i == 1 and self._fault == "corrupt":
                data = bytes([chunk.data[0] ^ 0xFF]) + chunk.data[1:]  # one flipped byte in transit
                chunk = agent_pb2.ArtifactChunk(
                    offset=chunk.offset, data=data, total_size=chunk.total_size, sha256=chunk.sha256
                )
            yield chunk

    def cancel(self) -> bool:
        return bool(self._call.cancel())


def test_damaged_chunk_is_fetched_again_and_a_cut_download_resumes(
    coordinator: Coordinator, tmp_path: Path, onnx_model: Path
) -> None:
    control = ControlClient(coordinator.address)
    big = write_test_set(tmp_path / "big.npz", n=30_000)  # ~3.5 MiB of random floats: several chunks
    dataset = control.upload(big, format="npz")
    assert dataset.size_bytes > 3 * ARTIFACT_CHUNK_BYTES
    model = control.upload(onnx_model, format="onnx")
    network = FlakyNetwork(dataset.sha256)
    agent = _agent(coordinator, tmp_path / "agent", isolate=False, interceptors=[network])
    thread, agent_id = _serve(agent, control, jobs=1)

    (job_id,) = control.submit(
        JobSpec("big", "onnxruntime", model, dataset, batch_sizes=[256], measurement=FAST), [agent_id]
    )
    thread.join(timeout=120)

    assert _outcomes(control, [job_id]) == ["ok"]
    # 1st stream: chunk 1 damaged -> refetched from byte 1 MiB; 2nd stream cut after one chunk -> resumed at 2 MiB.
    assert network.offsets == [0, ARTIFACT_CHUNK_BYTES, 2 * ARTIFACT_CHUNK_BYTES]
    cached = agent.cache.path(dataset.sha256)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == dataset.sha256


def test_cache_beyond_its_budget_evicts_the_least_recently_used_artifacts(
    coordinator: Coordinator, tmp_path: Path, onnx_model: Path
) -> None:
    control = ControlClient(coordinator.address)
    model = control.upload(onnx_model, format="onnx")
    datasets = [control.upload(write_test_set(tmp_path / f"d{i}.npz", seed=i), format="npz") for i in range(3)]
    budget = model.size_bytes + 2 * max(d.size_bytes for d in datasets)
    agent = _agent(coordinator, tmp_path / "agent", isolate=False, cache_max_bytes=budget)
    thread, agent_id = _serve(agent, control, jobs=3)

    job_ids = [
        control.submit(JobSpec(f"d{i}", "onnxruntime", model, d, measurement=FAST), [agent_id])[0]
        for i, d in enumerate(datasets)
    ]
    thread.join(timeout=120)

    assert _outcomes(control, job_ids) == ["ok", "ok", "ok"]
    cached = {p.name for p in agent.cache.root.iterdir()}
    assert cached == {model.sha256, datasets[1].sha256, datasets[2].sha256}  # d0 was least recently used


def test_revoked_agent_stops_serving(coordinator: Coordinator, tmp_path: Path) -> None:
    control = ControlClient(coordinator.address)
    agent = _agent(coordinator, tmp_path / "agent", isolate=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            agent.run()
        except PermissionDenied as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not control.list_agents():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    control.revoke_agent(control.list_agents()[0].agent_id)
    thread.join(timeout=30)

    assert not thread.is_alive() and len(errors) == 1 and "revoked" in str(errors[0])
    assert agent.stop.is_set()
    assert control.list_agents()[0].status == "revoked"
    assert [j.state for j in control.list_jobs()] == []


def test_heartbeat_failures_warn_once_and_recovery_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # prepare: an agent registered with a coordinator that heartbeats every 50 ms, then the coordinator stops
    home = tmp_path / "coordinator"
    first = start_coordinator(Settings(home=home, host="127.0.0.1", port=0, heartbeat_interval_s=0.05))
    agent = _agent(first, tmp_path / "agent", isolate=False)
    agent._register()
    first.stop(grace=None)
    beats = threading.Thread(target=agent._heartbeat_loop, daemon=True)

    def logged(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if text in r.getMessage()]

    # execute: several beats fail, then the coordinator comes back on the same port and home
    with caplog.at_level(logging.INFO, logger="edgelab.agent"):
        beats.start()
        wait_for(lambda: logged("heartbeat failed"), 20, "a failed heartbeat was never logged")
        time.sleep(0.5)  # about ten more failing beats
        second = start_coordinator(Settings(home=home, host="127.0.0.1", port=first.port, heartbeat_interval_s=0.05))
        try:
            wait_for(lambda: logged("heartbeats reach the coordinator again"), 20, "the recovery was never logged")
        finally:
            agent.stop.set()
            beats.join(timeout=10)
            second.stop(grace=None)

    # assert
    failed = logged("heartbeat failed")
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert len(logged("heartbeats reach the coordinator again")) == 1


def test_lost_lease_kills_the_benchmark_child_and_its_children(
    tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    lease_s = 3.0  # renewals every third of it: 1 s leases expired under a loaded CI machine before the cut
    coordinator = start_coordinator(
        Settings(home=tmp_path / "coord", host="127.0.0.1", port=0, lease_duration_s=lease_s)
    )
    try:
        control = ControlClient(coordinator.address)
        agent = _agent(coordinator, tmp_path / "agent", benchmark=start_grandchild_and_hang, job_timeout_s=120)
        partitioned = threading.Event()  # the agent's renewals do not get through, as on a cut link
        renew = agent.client.renew

        def renew_through_partition(job_id: str, attempt: int) -> float:
            if partitioned.is_set():
                raise CoordinatorUnavailable(f"{coordinator.address}: link down")
            return renew(job_id, attempt)

        agent.client.renew = renew_through_partition  # type: ignore[method-assign]
        thread, _ = _serve(agent, control, jobs=1)
        spec = JobSpec(
            "slow", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
        )
        (job_id,) = control.submit(spec, any_agent=True)
        pids = tmp_path / "agent" / "cache" / "engines" / "pids"
        wait_for(pids.is_file, 60, "the benchmark never started")
        child, grandchild = (int(p) for p in pids.read_text().split())

        partitioned.set()
        time.sleep(lease_s * 1.5)  # the lease expires; another agent takes the job
        thief = AgentClient(coordinator.address)
        thief.register(
            "thief", DeviceCapabilities(hostname="b", runtimes=[RuntimeInfo("onnxruntime", True, "1")]), None
        )
        second = thief.lease()
        assert second is not None and (second.job_id, second.attempt) == (job_id, 2)
        partitioned.clear()  # the link is back: the next renewal hears that the lease is lost
        lost_at = time.monotonic()

        wait_for(
            lambda: not _alive(child) and not _alive(grandchild), 15, "the benchmark ran on after the lease was lost"
        )
        assert time.monotonic() - lost_at < 15  # not the 120 s job timeout
        thread.join(timeout=15)
        assert not thread.is_alive()
        job, result = control.get_job(job_id)
        assert (job.state, job.attempt) == (JobState.LEASED, 2) and result is None
    finally:
        coordinator.stop(grace=None)


def test_a_result_the_coordinator_refuses_is_reported_as_its_verdict_and_the_agent_keeps_serving(
    coordinator: Coordinator, tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    model, dataset = control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    agent = _agent(coordinator, tmp_path / "agent", isolate=False, benchmark=faulty)
    thread, agent_id = _serve(agent, control, jobs=2)

    job_ids = [
        control.submit(JobSpec(name, "onnxruntime", model, dataset, measurement=FAST), [agent_id])[0]
        for name in ("nan", "good")
    ]
    thread.join(timeout=120)

    assert not thread.is_alive()
    assert _outcomes(control, job_ids) == ["wrong_output", "ok"]
    _, refused = control.get_job(job_ids[0])
    assert refused is not None and refused.failure is not None
    assert refused.failure.message.startswith("the result was refused by the coordinator: ")
    assert "latency[0].mean_ms" in refused.failure.message
