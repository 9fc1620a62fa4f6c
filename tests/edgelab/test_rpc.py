"""Malformed and oversized messages against a real loopback coordinator: each gets a clear error
(mapped from its status code by edgelab.rpc) and the coordinator keeps serving."""

from pathlib import Path

import grpc
import pytest

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.server import Coordinator
from edgelab.constants import GRPC_MAX_MESSAGE_BYTES
from edgelab.domain import JobSpec
from edgelab.errors import InvalidArgument, MessageTooLarge, NotFound, OutOfRange
from edgelab.rpc import client_errors
from edgelab.v1 import agent_pb2, agent_pb2_grpc, common_pb2, control_pb2, control_pb2_grpc
from tests.factories import CAPS

pytestmark = pytest.mark.integration


def _still_serving(coordinator: Coordinator) -> None:
    assert isinstance(ControlClient(coordinator.address).list_agents(), list)


def test_oversized_message_is_refused_with_a_clear_error(coordinator: Coordinator) -> None:
    # A client with a bigger send limit than ours, so the coordinator itself must refuse the message.
    big = [("grpc.max_send_message_length", 4 * GRPC_MAX_MESSAGE_BYTES)]
    stub = agent_pb2_grpc.AgentServiceStub(grpc.insecure_channel(coordinator.address, options=big))
    request = agent_pb2.RegisterRequest(name="pi", capabilities=common_pb2.DeviceCapabilities(os="x" * (9 << 20)))

    with pytest.raises(MessageTooLarge, match="8 MiB gRPC size limit") as refused, client_errors(coordinator.address):
        stub.Register(request, timeout=10)

    assert isinstance(refused.value.__cause__, grpc.Call)
    assert refused.value.__cause__.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(coordinator)


def test_bytes_that_are_not_protobuf_are_refused(coordinator: Coordinator) -> None:
    channel = grpc.insecure_channel(coordinator.address)
    raw = channel.unary_unary("/edgelab.v1.AgentService/Register")  # no serializer: raw bytes on the wire

    with pytest.raises(InvalidArgument, match="undecodable request message"), client_errors(coordinator.address):
        raw(b"\xff\xff\xff\xff garbage", timeout=10)

    _still_serving(coordinator)


def test_out_of_range_enum_and_invalid_spec_are_invalid_arguments(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    AgentClient(coordinator.address).register("pi", CAPS, None)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    stub = control_pb2_grpc.ControlServiceStub(grpc.insecure_channel(coordinator.address))
    bad_precision = control_pb2.SubmitJobsRequest(
        spec=common_pb2.JobSpec(name="t", backend="onnxruntime", precision=99)
    )
    no_batches = control_pb2.SubmitJobsRequest(
        spec=common_pb2.JobSpec(name="t", backend="onnxruntime", precision=common_pb2.PRECISION_FP32)
    )

    for request, message in (
        (bad_precision, "invalid or unknown value: 99"),
        (no_batches, "batch sizes must be positive"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitJobs(request, timeout=10)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert message in refused.value.details()  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match="can run backend 'tvm'"):
        control.submit(JobSpec("t", "tvm", spec.model, spec.dataset))
    with pytest.raises(InvalidArgument, match=r"^sha256: '\.\./\.\./etc/passwd' is not a sha256 digest"):
        agent = AgentClient(coordinator.address)
        agent.register("pi-2", CAPS, None)
        b"".join(agent.fetch("../../etc/passwd", 0))
    _still_serving(coordinator)


def test_fetch_offsets_outside_the_artifact_are_refused_by_name_and_hex_case_does_not_matter(
    coordinator: Coordinator, onnx_model: Path
) -> None:
    ref = ControlClient(coordinator.address).upload(onnx_model, format="onnx")
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)

    with pytest.raises(InvalidArgument, match=r"^offset: -1 is negative"):
        b"".join(agent.fetch(ref.sha256, -1))
    for past_end in (ref.size_bytes + 1, 2**62):  # 2**62: before, UNKNOWN "[Errno 22] Invalid argument" from seek
        with pytest.raises(OutOfRange, match=f"^offset: {past_end} is past the end .*{ref.size_bytes} bytes"):
            b"".join(agent.fetch(ref.sha256, past_end))

    assert b"".join(agent.fetch(ref.sha256, ref.size_bytes)) == b""  # a finished download resumes to nothing
    assert b"".join(agent.fetch(ref.sha256.upper(), 0)) == onnx_model.read_bytes()
    _still_serving(coordinator)
