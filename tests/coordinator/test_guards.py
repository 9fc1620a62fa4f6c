"""Abuse on a real loopback coordinator: stalled uploads, idle connections, a registration flood and
undecodable requests must not stop it answering, nor grow it."""

from __future__ import annotations

import gc
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.guards import StreamGuard, peer_host
from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from edgelab.domain import BenchmarkResult, JobSpec
from edgelab.rpc import FLEET_TOKEN_KEY
from edgelab.v1 import agent_pb2, control_pb2
from tests.factories import CAPS, LATENCY
from tests.polling import wait_for

pytestmark = pytest.mark.integration

UPLOAD = "/edgelab.v1.ControlService/UploadArtifact"
REGISTER = "/edgelab.v1.AgentService/Register"
HEARTBEAT = "/edgelab.v1.AgentService/Heartbeat"
FETCH = "/edgelab.v1.AgentService/FetchArtifact"
FLEET_TOKEN = "fleet-secret"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Coordinator]:
    """A coordinator whose idle uploads are cancelled after 1 s (15 s by default), so the test is short."""
    guard = StreamGuard(max_streams=4, max_per_peer=4, idle_s=1.0)
    running = start_coordinator(Settings(home=tmp_path / "coord", host="127.0.0.1", port=0), stream_guard=guard)
    yield running
    running.stop(grace=None)


def _channel(address: str) -> grpc.Channel:
    # Its own connection: channels with equal arguments would otherwise share one.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def _headers_only(channel: grpc.Channel, method: str, never: threading.Event, **kwargs: object) -> grpc.Future:
    """A unary-request call that sends its headers and then nothing: a stream that never yields."""

    def silent() -> Iterator[bytes]:
        never.wait()
        yield b""

    if method == FETCH:  # a server stream: its response iterator is also its future
        return channel.stream_stream(method)(silent(), timeout=60, **kwargs)
    return channel.stream_unary(method).future(silent(), timeout=60, **kwargs)


def _cycle(
    coordinator: Coordinator, control: ControlClient, spec: JobSpec, fleet_token: str | None = FLEET_TOKEN
) -> str:
    """Health check, then register -> lease -> report on a fresh connection; the job's final state."""
    with _channel(coordinator.address) as probe:
        check = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    agent = AgentClient(coordinator.address, timeout_s=5)
    agent.register("pi", CAPS, fleet_token)
    assert agent.registration is not None
    [job_id] = control.submit(spec, [agent.registration.agent_id])
    lease = agent.lease()
    assert lease is not None and lease.job_id == job_id
    assert not agent.report(lease.job_id, lease.attempt, BenchmarkResult(latency=[LATENCY]))  # not a duplicate
    return control.get_job(job_id)[0].state.value


def _code(call: grpc.Future) -> grpc.StatusCode:
    error = call.exception(timeout=30)  # server streams' iterators are futures too
    assert isinstance(error, grpc.Call), f"{call} did not fail"
    return error.code()


def test_the_coordinator_answers_while_stalled_uploads_idle_connections_and_a_flood_are_open(
    guarded: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    address = guarded.address
    control = ControlClient(address)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    never = threading.Event()

    def silent() -> Iterator[control_pb2.UploadArtifactRequest]:
        never.wait()  # opens the stream, never sends a message
        yield control_pb2.UploadArtifactRequest()

    stall_channels = [_channel(address) for _ in range(8)]
    stalls = [
        ch.stream_unary(UPLOAD, control_pb2.UploadArtifactRequest.SerializeToString).future(silent(), timeout=60)
        for ch in stall_channels
        for _ in range(8)
    ]
    idle = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(200)]
    for sock in idle:
        sock.sendall(HTTP2_PREFACE)
    flood_channels = [_channel(address) for _ in range(10)]
    flood = [
        ch.unary_unary(REGISTER, agent_pb2.RegisterRequest.SerializeToString).future(
            agent_pb2.RegisterRequest(name=f"flood-{i}"), timeout=60
        )
        for ch in flood_channels
        for i in range(30)
    ]
    try:
        state = _cycle(guarded, control, spec, fleet_token=None)
        codes = [stall.exception(timeout=30).code() for stall in stalls]  # none of them may hang
        registered = sum(f.exception(timeout=30) is None for f in flood)
    finally:
        never.set()
        for sock in idle:
            sock.close()
        for ch in [*stall_channels, *flood_channels]:
            ch.close()

    assert state == "succeeded"
    # 4 uploads admitted and cancelled when idle, the other 60 refused at once as busy.
    assert codes.count(grpc.StatusCode.UNAVAILABLE) == 60 and codes.count(grpc.StatusCode.CANCELLED) == 4
    guard = guarded.stream_guard
    assert guard is not None
    wait_for(lambda: guard.open_streams == 0, timeout_s=10)  # a cancelled call's thread unwinds after its client hears
    assert registered == 300


def test_header_only_calls_without_credentials_are_refused_before_they_wait_for_their_request(
    tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    # A pool of 2 + 2 + 2 threads: grpcio reads a unary call's request before its handler (and so the
    # authentication) runs, so before the fix six header-only calls held every thread and the health check
    # behind them timed out.
    settings = Settings(home=tmp_path / "coord", host="127.0.0.1", port=0, fleet_token=FLEET_TOKEN)
    guard = StreamGuard(max_streams=2, max_per_peer=2, idle_s=60.0)
    running = start_coordinator(settings, max_workers=2, max_long_polls=2, stream_guard=guard)
    control = ControlClient(running.address)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    never = threading.Event()
    channels = [_channel(running.address) for _ in range(4)]
    stalls = [_headers_only(ch, method, never) for ch in channels for method in (REGISTER, HEARTBEAT, FETCH) * 6]
    try:
        state = _cycle(running, control, spec)
        codes = [_code(stall) for stall in stalls]
    finally:
        never.set()
        for ch in channels:
            ch.close()
        running.stop(grace=None)

    assert state == "succeeded"
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 72


def test_header_only_calls_with_credentials_are_bounded_per_peer_and_cancelled_when_idle(
    tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    settings = Settings(home=tmp_path / "coord", host="127.0.0.1", port=0, fleet_token=FLEET_TOKEN)
    guard = StreamGuard(max_waiting_per_peer=8, idle_s=1.0)
    running = start_coordinator(settings, stream_guard=guard)
    control = ControlClient(running.address)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    never = threading.Event()
    channels = [_channel(running.address) for _ in range(8)]
    token = {"metadata": ((FLEET_TOKEN_KEY, FLEET_TOKEN),)}
    stalls = [_headers_only(ch, REGISTER, never, **token) for ch in channels for _ in range(8)]
    try:
        codes = [_code(stall) for stall in stalls]  # none of them may hang
        state = _cycle(running, control, spec)
    finally:
        never.set()
        for ch in channels:
            ch.close()
        running.stop(grace=None)

    # 8 admitted to wait for their request and cancelled after 1 s idle, the other 56 refused at once.
    assert codes.count(grpc.StatusCode.UNAVAILABLE) == 56 and codes.count(grpc.StatusCode.CANCELLED) == 8
    assert guard.waiting_calls == 0
    assert state == "succeeded"


def test_undecodable_requests_are_invalid_argument_and_leave_nothing_behind(coordinator: Coordinator) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 100  # a length-delimited field longer than the message
    with _channel(coordinator.address) as channel:
        register = channel.unary_unary(REGISTER)
        upload = channel.stream_unary(UPLOAD)

        def burst(n: int) -> list[grpc.RpcError]:
            errors = []
            for _ in range(n):
                with pytest.raises(grpc.RpcError) as caught:
                    register(garbage, timeout=10)
                errors.append(caught.value)
            return errors

        burst(200)  # warm-up: allocator pools and caches reach their size
        gc.collect()
        before = psutil.Process().memory_info().rss
        errors = burst(2000)
        gc.collect()
        grown = psutil.Process().memory_info().rss - before
        with pytest.raises(grpc.RpcError) as upload_error:
            upload(iter([garbage]), timeout=10)

    assert {e.code() for e in errors} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert "undecodable request message" in errors[0].details()
    assert upload_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ControlClient(coordinator.address).list_agents() == []
    # grpcio's own path kept ~19 kB per request (about 38 MB here); what stays now is noise.
    assert grown < 15e6, f"RSS grew {grown / 1e6:.1f} MB over 2000 undecodable requests"


def test_peer_host_drops_the_per_connection_port() -> None:
    assert peer_host("ipv4:10.0.0.5:53211") == "ipv4:10.0.0.5"
    assert peer_host("ipv6:[::1]:53211") == "ipv6:[::1]"
    assert peer_host("unix:/tmp/sock") == "unix:/tmp/sock"
