"""The agent's side of AgentService, with EdgeLab errors instead of grpc.RpcError."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc

from edgelab.config import ClientTls
from edgelab.domain import BenchmarkResult, DeviceCapabilities, Lease
from edgelab.errors import ArtifactCorrupt, CoordinatorUnavailable
from edgelab.rpc import AGENT_ID_KEY, AGENT_TOKEN_KEY, FLEET_TOKEN_KEY, Metadata, client_errors, open_channel
from edgelab.serde import from_proto, to_proto
from edgelab.v1 import agent_pb2, agent_pb2_grpc, common_pb2

CANCEL_CHECK_S = 0.25  # how often a waiting lease call looks at its cancel event


@dataclass(frozen=True)
class Registration:
    agent_id: str
    agent_token: str
    heartbeat_interval_s: float
    lease_duration_s: float


class AgentClient:
    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 30.0,
        tls: ClientTls | None = None,
        interceptors: Sequence[grpc.UnaryStreamClientInterceptor] = (),
    ) -> None:
        self.address = address
        self._timeout = timeout_s
        self._channel = open_channel(address, tls)
        channel = grpc.intercept_channel(self._channel, *interceptors) if interceptors else self._channel
        self._stub = agent_pb2_grpc.AgentServiceStub(channel)
        self.registration: Registration | None = None

    def close(self) -> None:
        self._channel.close()

    @property
    def _creds(self) -> Metadata:
        """The call metadata that authenticates every call after Register."""
        if self.registration is None:
            raise RuntimeError("register first")
        return ((AGENT_ID_KEY, self.registration.agent_id), (AGENT_TOKEN_KEY, self.registration.agent_token))

    def register(self, name: str, capabilities: DeviceCapabilities, fleet_token: str | None) -> Registration:
        request = agent_pb2.RegisterRequest(
            name=name, capabilities=to_proto(capabilities, common_pb2.DeviceCapabilities())
        )
        metadata = ((FLEET_TOKEN_KEY, fleet_token),) if fleet_token else ()
        with client_errors(self.address):
            r = self._stub.Register(request, timeout=self._timeout, metadata=metadata)
        self.registration = Registration(r.agent_id, r.agent_token, r.heartbeat_interval_s, r.lease_duration_s)
        return self.registration

    def heartbeat(self, current_job_id: str = "") -> None:
        with client_errors(self.address):
            self._stub.Heartbeat(
                agent_pb2.HeartbeatRequest(current_job_id=current_job_id), timeout=self._timeout, metadata=self._creds
            )

    def lease(self, wait_s: float = 0.0, cancel: threading.Event | None = None) -> Lease | None:
        """A job, or None. `wait_s` > 0: a long-poll, answered as soon as a job is queued for this agent
        (None after `wait_s`, or at once from a coordinator that does not wait); `cancel` set: give up, None."""
        request = agent_pb2.LeaseJobRequest(wait_s=wait_s)
        with client_errors(self.address):
            call = self._stub.LeaseJob.future(request, timeout=self._timeout + wait_s, metadata=self._creds)
            while True:
                try:
                    r = call.result(timeout=CANCEL_CHECK_S)
                    break
                except grpc.FutureTimeoutError:
                    if cancel is not None and cancel.is_set():
                        call.cancel()
                        return None
        return from_proto(r.lease, Lease) if r.has_job else None

    def renew(self, job_id: str, attempt: int) -> float:
        with client_errors(self.address):
            r = self._stub.RenewLease(
                agent_pb2.RenewLeaseRequest(job_id=job_id, attempt=attempt), timeout=self._timeout, metadata=self._creds
            )
        return float(r.expires_in_s)

    def fetch(self, sha256: str, offset: int) -> Iterator[bytes]:
        """Stream the artifact from `offset`, each chunk checked against its own sha256 before it is yielded.

        A damaged or misplaced chunk raises ArtifactCorrupt and a stream that ends early raises
        CoordinatorUnavailable; in both cases what was yielded is good and the caller resumes there.
        """
        request = agent_pb2.FetchArtifactRequest(sha256=sha256, offset=offset)
        total = None
        with client_errors(self.address):
            call = self._stub.FetchArtifact(request, timeout=None, metadata=self._creds)
            try:
                for chunk in call:
                    if chunk.offset != offset:
                        raise ArtifactCorrupt(
                            f"artifact {sha256[:12]}: chunk at byte {chunk.offset}, expected {offset}"
                        )
                    if hashlib.sha256(chunk.data).hexdigest() != chunk.sha256:
                        raise ArtifactCorrupt(f"artifact {sha256[:12]}: chunk at byte {offset} failed its sha256 check")
                    total = chunk.total_size
                    offset += len(chunk.data)
                    yield chunk.data
            finally:
                call.cancel()  # no-op when the stream completed; frees the call when we stop early
        if total is not None and offset < total:
            raise CoordinatorUnavailable(
                f"download of {sha256[:12]} from {self.address} stopped at byte {offset} of {total}"
            )

    def report(self, job_id: str, attempt: int, result: BenchmarkResult) -> bool:
        """Returns True when the coordinator already had this report (idempotent retry)."""
        request = agent_pb2.ReportResultRequest(
            job_id=job_id, attempt=attempt, result=to_proto(result, common_pb2.BenchmarkResult())
        )
        with client_errors(self.address):
            return bool(self._stub.ReportResult(request, timeout=self._timeout, metadata=self._creds).duplicate)
