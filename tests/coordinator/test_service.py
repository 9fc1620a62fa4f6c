"""The gRPC API on a real loopback server: auth, submission rules, idempotent reports."""

import sqlite3
from pathlib import Path

import grpc
import pytest

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from edgelab.domain import BenchmarkResult, DeviceCapabilities, JobSpec, MeasurementSettings, RuntimeInfo
from edgelab.errors import AuthError, CoordinatorUnavailable, LeaseLost, NotFound
from edgelab.serde import to_proto
from edgelab.v1 import common_pb2, control_pb2, control_pb2_grpc
from tests.factories import CAPS

pytestmark = pytest.mark.integration


def _uploaded(control: ControlClient, onnx_model: Path, test_set: Path) -> JobSpec:
    model = control.upload(onnx_model, format="onnx")
    dataset = control.upload(test_set, format="npz")
    return JobSpec("t", "onnxruntime", model, dataset)


def test_fleet_and_operator_tokens_are_enforced(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, port=0, fleet_token="fleet", operator_token="op")
    running = start_coordinator(settings)
    try:
        agent = AgentClient(running.address)
        with pytest.raises(AuthError, match="fleet"):
            agent.register("pi", CAPS, fleet_token="guess")
        agent.register("pi", CAPS, fleet_token="fleet")
        with pytest.raises(AuthError, match="operator"):
            ControlClient(running.address, "guess").list_agents()
        assert [a.name for a in ControlClient(running.address, "op").list_agents()] == ["pi"]
    finally:
        running.stop(grace=None)


def test_calls_with_a_forged_agent_id_are_refused(coordinator: Coordinator) -> None:
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    assert agent.registration is not None
    forged = AgentClient(coordinator.address)
    forged.registration = type(agent.registration)("someone-else", agent.registration.agent_token, 5, 60)

    with pytest.raises(AuthError, match="unknown agent"):
        forged.lease()


def test_submit_targets_capable_agents_and_refuses_unknown_ones(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    AgentClient(coordinator.address).register("pi", CAPS, None)
    AgentClient(coordinator.address).register(
        "nano", DeviceCapabilities(runtimes=[RuntimeInfo("tensorrt", True)]), None
    )
    spec = _uploaded(control, onnx_model, test_set)

    job_ids = control.submit(spec)

    assert len(job_ids) == 1 and control.get_job(job_ids[0])[0].agent_name == "pi"
    with pytest.raises(NotFound, match="agent"):
        control.submit(spec, agent_ids=["no-such-agent"])
    with pytest.raises(NotFound, match="tensorrt-x"):
        control.submit(JobSpec("t", "tensorrt-x", spec.model, spec.dataset))


def test_submit_without_agent_ids_targets_capable_agents_that_are_not_offline_or_revoked(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    ids = {name: AgentClient(coordinator.address).register(name, CAPS, None).agent_id for name in ("on", "off", "out")}
    with sqlite3.connect(coordinator.store.path) as db:  # "off" was last seen long ago
        db.execute("UPDATE agents SET last_seen_at=0 WHERE agent_id=?", (ids["off"],))
    control.revoke_agent(ids["out"])
    spec = _uploaded(control, onnx_model, test_set)

    job_ids = control.submit(spec)

    assert [control.get_job(j)[0].agent_id for j in job_ids] == [ids["on"]]
    assert {a.name: a.status for a in control.list_agents()} == {"on": "online", "off": "offline", "out": "revoked"}


def test_measurement_fields_left_unset_take_their_defaults_and_a_set_zero_stays_zero(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    """What a client written from the .proto alone sends: before, the unset max_duration_s read as 0 and
    min_duration_s 0.5 was refused as above it."""
    control = ControlClient(coordinator.address)
    AgentClient(coordinator.address).register("pi", CAPS, None)
    spec = _uploaded(control, onnx_model, test_set)
    message = to_proto(spec, common_pb2.JobSpec())
    message.measurement.Clear()
    message.measurement.min_iterations, message.measurement.min_duration_s = 10, 0.5
    message.measurement.warmup_iterations = 0
    message.model.sha256 = spec.model.sha256.upper()
    stub = control_pb2_grpc.ControlServiceStub(grpc.insecure_channel(coordinator.address))

    (job_id,) = stub.SubmitJobs(control_pb2.SubmitJobsRequest(spec=message, any_agent=True), timeout=10).job_ids

    stored = control.get_job(job_id)[0].spec
    assert stored.measurement == MeasurementSettings(warmup_iterations=0, min_iterations=10, min_duration_s=0.5)
    assert stored.measurement.max_duration_s == MeasurementSettings().max_duration_s > 0
    assert stored.model.sha256 == spec.model.sha256  # upper case in, the stored lower case digest out


def test_report_twice_is_a_noop_and_stale_attempt_is_refused(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    (job_id,) = control.submit(_uploaded(control, onnx_model, test_set))
    lease = agent.lease()
    assert lease is not None

    first = agent.report(job_id, lease.attempt, BenchmarkResult(load_s=0.1))
    again = agent.report(job_id, lease.attempt, BenchmarkResult(load_s=0.1))

    assert (first, again) == (False, True)
    with pytest.raises(LeaseLost):
        agent.report(job_id, lease.attempt + 1, BenchmarkResult())


def test_fetch_streams_the_exact_bytes_and_resumes(coordinator: Coordinator, onnx_model: Path, test_set: Path) -> None:
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    ref = control.upload(onnx_model, format="onnx")

    whole = b"".join(agent.fetch(ref.sha256, 0))
    tail = b"".join(agent.fetch(ref.sha256, 100))

    assert whole == onnx_model.read_bytes() and tail == whole[100:]
    with pytest.raises(NotFound):
        b"".join(agent.fetch("0" * 64, 0))


def test_unreachable_coordinator_is_our_error_not_grpcs() -> None:
    client = ControlClient("127.0.0.1:1", timeout_s=2)

    with pytest.raises(CoordinatorUnavailable, match=r"127\.0\.0\.1:1"):
        client.list_jobs()
