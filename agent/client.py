"""The agent's side of AgentService, with EdgeLab errors instead of grpc.RpcError."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from edgelab.domain import BenchmarkResult, DeviceCapabilities, Lease
from edgelab.rpc import client_errors, insecure_channel
from edgelab.serde import from_proto, to_proto
from edgelab.v1 import agent_pb2, agent_pb2_grpc, common_pb2


@dataclass(frozen=True)
class Registration:
    agent_id: str
    agent_token: str
    heartbeat_interval_s: float
    lease_duration_s: float


class AgentClient:
    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self.address = address
        self._timeout = timeout_s
        self._channel = insecure_channel(address)
        self._stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        self.registration: Registration | None = None

    def close(self) -> None:
        self._channel.close()

    @property
    def _creds(self) -> dict[str, str]:
        if self.registration is None:
            raise RuntimeError("register first")
        return {"agent_id": self.registration.agent_id, "agent_token": self.registration.agent_token}

    def register(self, name: str, capabilities: DeviceCapabilities, fleet_token: str | None) -> Registration:
        request = agent_pb2.RegisterRequest(
            name=name,
            fleet_token=fleet_token or "",
            capabilities=to_proto(capabilities, common_pb2.DeviceCapabilities()),
        )
        with client_errors(self.address):
            r = self._stub.Register(request, timeout=self._timeout)
        self.registration = Registration(r.agent_id, r.agent_token, r.heartbeat_interval_s, r.lease_duration_s)
        return self.registration

    def heartbeat(self, current_job_id: str = "") -> None:
        with client_errors(self.address):
            self._stub.Heartbeat(
                agent_pb2.HeartbeatRequest(current_job_id=current_job_id, **self._creds), timeout=self._timeout
            )

    def lease(self) -> Lease | None:
        with client_errors(self.address):
            r = self._stub.LeaseJob(agent_pb2.LeaseJobRequest(**self._creds), timeout=self._timeout)
        return from_proto(r.lease, Lease) if r.has_job else None

    def renew(self, job_id: str, attempt: int) -> float:
        with client_errors(self.address):
            r = self._stub.RenewLease(
                agent_pb2.RenewLeaseRequest(job_id=job_id, attempt=attempt, **self._creds), timeout=self._timeout
            )
        return float(r.expires_in_s)

    def fetch(self, sha256: str, offset: int) -> Iterator[bytes]:
        request = agent_pb2.FetchArtifactRequest(sha256=sha256, offset=offset, **self._creds)
        with client_errors(self.address):
            for chunk in self._stub.FetchArtifact(request, timeout=None):
                yield chunk.data

    def report(self, job_id: str, attempt: int, result: BenchmarkResult) -> bool:
        """Returns True when the coordinator already had this report (idempotent retry)."""
        request = agent_pb2.ReportResultRequest(
            job_id=job_id, attempt=attempt, result=to_proto(result, common_pb2.BenchmarkResult()), **self._creds
        )
        with client_errors(self.address):
            return bool(self._stub.ReportResult(request, timeout=self._timeout).duplicate)
