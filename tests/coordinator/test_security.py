"""Auth and TLS on a real loopback coordinator: revoked agents, TLS and mTLS with certificates made here."""

import datetime
import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from edgelab.app.cli import app
from edgelab.config import ClientTls, Settings
from edgelab.domain import BenchmarkResult, FailureKind, JobSpec, JobState
from edgelab.errors import AuthError, ConfigError, CoordinatorUnavailable, EdgeLabError, PermissionDenied
from tests.factories import CAPS

pytestmark = pytest.mark.integration


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _write_cert(tmp: Path, name: str, *, issuer: tuple[object, object] | None, server: bool) -> tuple[object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)  # type: ignore[attr-defined]
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pytest.importorskip("cryptography")
    tmp = tmp_path_factory.mktemp("pki")
    ca = _write_cert(tmp, "ca", issuer=None, server=False)
    _write_cert(tmp, "server", issuer=ca, server=True)
    _write_cert(tmp, "client", issuer=ca, server=False)
    _write_cert(tmp, "other-ca", issuer=None, server=False)
    return Pki(
        tmp / "ca.pem",
        tmp / "server.pem",
        tmp / "server.key",
        tmp / "client.pem",
        tmp / "client.key",
        tmp / "other-ca.pem",
    )


def _serve(tmp_path: Path, **settings: object) -> Iterator[Coordinator]:
    running = start_coordinator(Settings(home=tmp_path / "coord", port=0, **settings))  # type: ignore[arg-type]
    yield running
    running.stop(grace=None)


@pytest.fixture
def tls_coordinator(tmp_path: Path, pki: Pki) -> Iterator[Coordinator]:
    yield from _serve(tmp_path, tls_cert=pki.server_cert, tls_key=pki.server_key, operator_token="op")


@pytest.fixture
def mtls_coordinator(tmp_path: Path, pki: Pki) -> Iterator[Coordinator]:
    yield from _serve(tmp_path, tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca)


def test_tls_agent_and_operator_talk_to_a_tls_coordinator(tls_coordinator: Coordinator, pki: Pki) -> None:
    agent = AgentClient(tls_coordinator.address, tls=ClientTls(ca=pki.ca), timeout_s=5)
    control = ControlClient(tls_coordinator.address, "op", tls=ClientTls(ca=pki.ca), timeout_s=5)

    agent.register("pi", CAPS, None)
    agent.heartbeat()

    assert [a.name for a in control.list_agents()] == ["pi"]
    with pytest.raises(AuthError, match="operator"):
        ControlClient(tls_coordinator.address, "guess", tls=ClientTls(ca=pki.ca)).revoke_agent("any")


@pytest.mark.parametrize("client_tls", ["plaintext", "untrusted-ca"])
def test_tls_coordinator_refuses_plaintext_and_untrusted_clients(
    tls_coordinator: Coordinator, pki: Pki, client_tls: str
) -> None:
    tls = None if client_tls == "plaintext" else ClientTls(ca=pki.other_ca)
    agent = AgentClient(tls_coordinator.address, tls=tls, timeout_s=3)

    with pytest.raises(CoordinatorUnavailable):
        agent.register("pi", CAPS, None)


def test_mtls_needs_a_client_certificate_signed_by_the_client_ca(mtls_coordinator: Coordinator, pki: Pki) -> None:
    with_cert = AgentClient(
        mtls_coordinator.address, tls=ClientTls(pki.ca, pki.client_cert, pki.client_key), timeout_s=3
    )
    without_cert = AgentClient(mtls_coordinator.address, tls=ClientTls(ca=pki.ca), timeout_s=3)

    with_cert.register("pi", CAPS, None)

    with pytest.raises(CoordinatorUnavailable):
        without_cert.register("pi", CAPS, None)


def test_tls_settings_come_from_environment_and_are_checked(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgelab.config import load_settings

    monkeypatch.setenv("EDGELAB_TLS_CA", str(pki.ca))
    monkeypatch.setenv("EDGELAB_TLS_CERT", str(pki.server_cert))
    monkeypatch.setenv("EDGELAB_TLS_KEY", str(pki.server_key))

    settings = load_settings()

    assert settings.client_tls() == ClientTls(ca=pki.ca)
    assert settings.server_tls() is not None and settings.server_tls().cert == pki.server_cert  # type: ignore[union-attr]
    monkeypatch.delenv("EDGELAB_TLS_KEY")
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        load_settings()
    with pytest.raises(ConfigError, match="tls_client_cert: file not found"):
        load_settings(tls_client_cert=tmp_path / "missing.pem", tls_client_key=pki.client_key, tls_key=pki.server_key)


def test_unknown_agent_is_unauthenticated_and_revoked_agent_is_denied(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    agent, other = AgentClient(coordinator.address), AgentClient(coordinator.address)
    reg = agent.register("pi", CAPS, None)
    other.register("pi-2", CAPS, None)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    (floating,) = control.submit(spec, any_agent=True)
    (pinned,) = control.submit(spec, agent_ids=[reg.agent_id])
    leases = [agent.lease(), agent.lease()]  # one job at a time: asked twice, the same lease
    assert [(lease.job_id, lease.attempt) for lease in leases if lease] == [(floating, 1), (floating, 1)]

    requeued, failed = control.revoke_agent(reg.agent_id)

    assert (requeued, failed) == ([floating], [pinned])
    for call in (agent.heartbeat, agent.lease, lambda: agent.report(pinned, 1, BenchmarkResult())):
        with pytest.raises(PermissionDenied, match="revoked"):
            call()
    _, result = control.get_job(pinned)
    assert result is not None and result.failure is not None and result.failure.kind is FailureKind.UNAVAILABLE
    assert control.get_job(floating)[0].state is JobState.QUEUED
    lease = other.lease()  # the floating job goes to the agent that is still trusted
    assert lease is not None and (lease.job_id, lease.attempt) == (floating, 2)
    assert {a.name: a.status for a in control.list_agents()}["pi"] == "revoked"
    with pytest.raises(EdgeLabError, match="revoked"):
        control.submit(spec, agent_ids=[reg.agent_id])
    stranger = AgentClient(coordinator.address)
    stranger.registration = type(reg)("nobody", "x", 5, 60)
    with pytest.raises(AuthError, match="unknown agent") as unknown:
        stranger.lease()
    assert not isinstance(unknown.value, PermissionDenied)


def test_cli_revokes_an_agent(coordinator: Coordinator) -> None:
    agent = AgentClient(coordinator.address)
    reg = agent.register("pi", CAPS, None)

    out = CliRunner().invoke(app, ["agents", "revoke", reg.agent_id, "-c", coordinator.address])
    missing = CliRunner().invoke(app, ["agents", "revoke", "no-such-agent", "-c", coordinator.address])

    assert out.exit_code == 0, out.output
    assert "revoked agent" in out.output
    with pytest.raises(PermissionDenied):
        agent.lease()
    assert missing.exit_code == 1 and "unknown agent" in missing.output


def test_revoked_agent_process_exits_with_an_error(coordinator: Coordinator, tmp_path: Path) -> None:
    control = ControlClient(coordinator.address)
    agent = subprocess.Popen(
        [sys.executable, "-m", "edgelab", "agent", "run", "-c", coordinator.address, "--home", str(tmp_path / "a")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not control.list_agents():
            assert agent.poll() is None and time.monotonic() < deadline, "agent did not register"
            time.sleep(0.05)

        control.revoke_agent(control.list_agents()[0].agent_id)
        output, _ = agent.communicate(timeout=60)
    finally:
        agent.kill()

    assert agent.returncode == 1
    assert b"revoked" in output
