"""Start and stop a coordinator: gRPC server + store + artifact store."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc

from coordinator.artifacts import ArtifactStore
from coordinator.service import AgentServicer, ControlServicer
from coordinator.store import Store
from coordinator.training import TrainingRunner
from edgelab.config import Settings
from edgelab.errors import ConfigError
from edgelab.rpc import CHANNEL_OPTIONS, server_credentials
from edgelab.v1 import agent_pb2_grpc, control_pb2_grpc


@dataclass
class Coordinator:
    """A running coordinator; `port` is the bound port (useful with port 0)."""

    server: grpc.Server
    store: Store
    artifacts: ArtifactStore
    host: str
    port: int
    _sweeper_stop: threading.Event
    training: TrainingRunner

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace: float | None = 1.0) -> None:
        self._sweeper_stop.set()
        self.server.stop(grace).wait()
        self.training.stop()
        self.store.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def start_coordinator(settings: Settings, *, max_workers: int = 32) -> Coordinator:
    store = Store(
        settings.db_path, lease_duration_s=settings.lease_duration_s, heartbeat_interval_s=settings.heartbeat_interval_s
    )
    artifacts = ArtifactStore(settings.artifacts_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=CHANNEL_OPTIONS)
    agent_servicer = AgentServicer(
        store, artifacts, settings.fleet_token, heartbeat_interval_s=settings.heartbeat_interval_s
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(agent_servicer, server)
    training = TrainingRunner(store, artifacts, ray_address=settings.ray_address)
    control_pb2_grpc.add_ControlServiceServicer_to_server(
        ControlServicer(store, artifacts, settings.operator_token, training=training, data_dir=settings.mitdb), server
    )
    tls = settings.server_tls()
    try:
        if tls is None:
            port = server.add_insecure_port(settings.address)
        else:
            port = server.add_secure_port(settings.address, server_credentials(tls))
    except RuntimeError as exc:
        port, reason = 0, str(exc)
    else:
        reason = "address in use or not local"
    if port == 0:
        training.stop()
        store.close()
        raise ConfigError(f"cannot listen on {settings.address}: {reason}")
    store.grant_restart_grace()
    store.fail_interrupted_training_runs()  # their Ray tasks died with the previous process
    server.start()
    stop = threading.Event()
    # Expired leases are also swept lazily on every lease call; this catches a fleet that went quiet.
    threading.Thread(target=_sweep_leases, args=(store, stop), daemon=True, name="lease-sweeper").start()
    return Coordinator(server, store, artifacts, settings.host, port, stop, training)


def _sweep_leases(store: Store, stop: threading.Event) -> None:
    while not stop.wait(store.lease_duration_s / 4):
        store.expire_leases()
