"""Authentication at the door (coordinator.auth) on a real loopback coordinator: every RPC is checked from its call
metadata before its handler runs, no message carries a credential, and an exposed bind needs both tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from coordinator.auth import authenticated_agent_id, is_loopback
from coordinator.server import Coordinator, check_exposure, start_coordinator
from coordinator.service import AgentServicer, ControlServicer
from edgelab.app.cli import app
from edgelab.config import Settings
from edgelab.errors import AuthError, ConfigError
from edgelab.rpc import AGENT_ID_KEY, AGENT_TOKEN_KEY, FLEET_TOKEN_KEY, OPERATOR_TOKEN_KEY, Metadata
from edgelab.serde import to_proto
from edgelab.v1 import agent_pb2, common_pb2, control_pb2
from tests.factories import CAPS

pytestmark = pytest.mark.integration

SERVICES: list[tuple[type, ServiceDescriptor]] = [
    (AgentServicer, agent_pb2.DESCRIPTOR.services_by_name["AgentService"]),
    (ControlServicer, control_pb2.DESCRIPTOR.services_by_name["ControlService"]),
]
CREDENTIAL_FIELDS = {"fleet_token", "operator_token", "agent_token"}


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the servicer methods that ran (every method is wrapped before the coordinator starts)."""
    names: list[str] = []
    for servicer, service in SERVICES:
        for method in service.methods:
            original = getattr(servicer, method.name)

            def spy(
                self: object,
                request: object,
                context: object,
                _name: str = method.name,
                _run: Callable[..., object] = original,
            ) -> object:
                names.append(_name)
                return _run(self, request, context)

            monkeypatch.setattr(servicer, method.name, spy)
    return names


@pytest.fixture
def guarded(tmp_path: Path, reached: list[str]) -> Iterator[Coordinator]:
    running = start_coordinator(Settings(home=tmp_path / "coord", port=0, fleet_token="fleet", operator_token="op"))
    yield running
    running.stop(grace=None)


def _call(channel: grpc.Channel, service: ServiceDescriptor, name: str, metadata: Metadata) -> None:
    """Call a method with an empty request (a client stream that never sends a message), raw bytes on the wire."""
    method = service.methods_by_name[name]
    path = f"/{service.full_name}/{name}"
    if method.client_streaming:
        never_sent = threading.Event()

        def silent() -> Iterator[bytes]:
            never_sent.wait(30)  # the server must answer without reading a message
            yield from ()

        try:
            channel.stream_unary(path)(silent(), timeout=10, metadata=metadata)
        finally:
            never_sent.set()
    elif method.server_streaming:
        list(channel.unary_stream(path)(b"", timeout=10, metadata=metadata))
    else:
        channel.unary_unary(path)(b"", timeout=10, metadata=metadata)


WRONG: dict[str, Metadata] = {
    "none": (),
    "wrong": ((FLEET_TOKEN_KEY, "guess"), (OPERATOR_TOKEN_KEY, ""), (AGENT_ID_KEY, "someone"), (AGENT_TOKEN_KEY, "x")),
}


@pytest.mark.parametrize("credentials", WRONG)
def test_every_rpc_without_valid_credentials_is_refused_before_its_handler_runs(
    guarded: Coordinator, reached: list[str], credentials: str
) -> None:
    channel = grpc.insecure_channel(guarded.address)
    refused = {}
    for _, service in SERVICES:
        for method in service.methods:
            with pytest.raises(grpc.RpcError) as caught:
                _call(channel, service, method.name, WRONG[credentials])
            error = caught.value
            assert isinstance(error, grpc.Call)
            refused[method.name] = (error.code(), error.details())

    every_rpc = sum(len(service.methods) for _, service in SERVICES)
    assert len(refused) == every_rpc >= 18 and {code for code, _ in refused.values()} == {
        grpc.StatusCode.UNAUTHENTICATED
    }
    expected = "missing" if credentials == "none" else "bad|unknown agent"
    assert all(any(word in details for word in expected.split("|")) for _, details in refused.values()), refused
    assert reached == []  # no handler ran
    assert (
        guarded.store.list_agents() == [] and guarded.store.list_jobs() == [] and guarded.store.list_artifacts() == []
    )


def test_the_health_check_needs_no_credentials_while_the_services_do(guarded: Coordinator) -> None:
    with grpc.insecure_channel(guarded.address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert check.status == health_pb2.HealthCheckResponse.SERVING


def test_valid_credentials_reach_the_handlers(guarded: Coordinator, reached: list[str]) -> None:
    channel = grpc.insecure_channel(guarded.address)
    register = channel.unary_unary(
        "/edgelab.v1.AgentService/Register",
        request_serializer=agent_pb2.RegisterRequest.SerializeToString,
        response_deserializer=agent_pb2.RegisterResponse.FromString,
    )
    request = agent_pb2.RegisterRequest(name="pi", capabilities=to_proto(CAPS, common_pb2.DeviceCapabilities()))
    registration = register(request, timeout=10, metadata=((FLEET_TOKEN_KEY, "fleet"),))
    creds = ((AGENT_ID_KEY, registration.agent_id), (AGENT_TOKEN_KEY, registration.agent_token))

    _call(channel, SERVICES[0][1], "Heartbeat", creds)
    _call(channel, SERVICES[1][1], "ListAgents", ((OPERATOR_TOKEN_KEY, "op"),))
    with pytest.raises(grpc.RpcError) as other_agents_token:
        _call(channel, SERVICES[0][1], "Heartbeat", ((AGENT_ID_KEY, "someone-else"), creds[1]))

    assert reached == ["Register", "Heartbeat", "ListAgents"]
    assert other_agents_token.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert [a.name for a in guarded.store.list_agents()] == ["pi"]


def _message_types(message: Descriptor, seen: set[str]) -> Iterator[Descriptor]:
    if message.full_name in seen:
        return
    seen.add(message.full_name)
    yield message
    for field in message.fields:
        if field.message_type is not None:
            yield from _message_types(field.message_type, seen)


def test_no_request_message_carries_a_credential_and_the_old_fields_stay_reserved() -> None:
    seen: set[str] = set()
    requests = [
        m for _, service in SERVICES for method in service.methods for m in _message_types(method.input_type, seen)
    ]
    fields = {f"{m.name}.{f.name}" for m in requests for f in m.fields}

    assert len(requests) > 16 and not [f for f in fields if f.rsplit(".", 1)[1] in CREDENTIAL_FIELDS]
    assert not [f for f in fields if f.endswith("token") and not f.endswith(".page_token")]
    reserved: dict[str, set[str]] = {}
    for _, service in SERVICES:
        for method in service.methods:
            proto = descriptor_pb2.DescriptorProto()
            method.input_type.CopyToProto(proto)
            reserved[proto.name] = set(proto.reserved_name)
    assert reserved["RegisterRequest"] == {"fleet_token"}
    assert all(reserved[name] == {"agent_id", "agent_token"} for name in ("HeartbeatRequest", "ReportResultRequest"))
    assert all(
        names == {"operator_token"}
        for name, names in reserved.items()
        if name in control_pb2.DESCRIPTOR.message_types_by_name
    )


def test_a_handler_outside_an_authenticated_call_has_no_agent() -> None:
    with pytest.raises(AuthError, match="no authenticated agent"):
        authenticated_agent_id()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_need_no_tokens(host: str) -> None:
    assert is_loopback(host)
    check_exposure(Settings(host=host))


@pytest.mark.parametrize(
    ("tokens", "missing"),
    [
        ({}, "operator_token and fleet_token"),
        ({"operator_token": "op"}, "fleet_token"),
        ({"fleet_token": "f"}, "operator_token"),
    ],
)
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "workstation.lab"])
def test_an_exposed_bind_without_both_tokens_is_refused_saying_how_to_set_them(
    tmp_path: Path, host: str, tokens: dict[str, str], missing: str
) -> None:
    settings = Settings(home=tmp_path / "coord", host=host, port=0, **tokens)  # type: ignore[arg-type]

    with pytest.raises(ConfigError, match=f"refusing to listen on .* without {missing}:") as refused:
        start_coordinator(settings)

    for name in missing.split(" and "):
        assert f"--{name.replace('_', '-')}" in str(refused.value) and f"EDGELAB_{name.upper()}" in str(refused.value)
    assert "--config" in str(refused.value) and not (tmp_path / "coord").exists()  # refused before the store opened
    check_exposure(Settings(host=host, operator_token="op", fleet_token="fleet"))  # both set: allowed


def test_cli_serve_on_all_interfaces_without_tokens_exits_with_the_hint(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["coordinator", "serve", "--host", "0.0.0.0", "--port", "0", "--home", str(tmp_path)])

    assert out.exit_code == 1
    assert "refusing to listen on 0.0.0.0:0" in out.output and "--operator-token" in out.output


@pytest.mark.parametrize("token", ["two words", "tab\there", "naïve", " padded"])
def test_tokens_that_cannot_travel_as_metadata_are_refused_in_settings(token: str) -> None:
    with pytest.raises(ConfigError, match="fleet_token: only visible ASCII"):
        Settings(fleet_token=token)
