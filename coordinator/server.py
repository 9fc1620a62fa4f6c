"""Start and stop a coordinator: gRPC server + store + artifact store."""

from __future__ import annotations

import gc
import logging
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from coordinator.artifacts import ArtifactStore
from coordinator.auth import Authenticator, is_loopback
from coordinator.dispatch import JobBell
from coordinator.guards import CallSlots, DecodeGuard, StreamGuard
from coordinator.service import AgentServicer, ControlServicer
from coordinator.store import Store
from coordinator.training import TrainingRunner
from edgelab.config import Settings
from edgelab.errors import ConfigError
from edgelab.rpc import CHANNEL_OPTIONS, server_credentials
from edgelab.v1 import agent_pb2_grpc, control_pb2_grpc

log = logging.getLogger("edgelab.coordinator")

QUEUED_CALLS = 1024  # calls that may wait for a free thread
MAX_LONG_POLLS = 2048  # LeaseJob calls waiting for a job at once (one per idle agent); beyond it, agents poll
# Connections with no call for this long are closed (an agent's connection always has one, its
# heartbeats or its long-poll; clients reconnect by themselves), so idle connections do not pile up.
# No `grpc.max_concurrent_streams`: a process whose channels share one connection (grpcio shares
# them between equal channels) gets streams over the bound refused (REFUSED_STREAM) under load;
# what one client may hold open is bounded per peer host by StreamGuard instead.
SERVER_OPTIONS = [("grpc.max_connection_idle_ms", 120_000)]


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
    _sweeper: threading.Thread | None = None
    _executor: futures.ThreadPoolExecutor | None = None
    stream_guard: StreamGuard | None = None
    bell: JobBell | None = None  # wakes long-polling leases; `bell.waiting` counts them
    _health: health.HealthServicer | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace: float | None = 1.0) -> None:
        """Shut down in order: no new RPCs, in-flight handlers and the lease sweeper finished, training
        stopped, and only then the store closed (nothing can touch a closed store)."""
        self._sweeper_stop.set()
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self.stream_guard is not None:
            self.stream_guard.close()
        if self._sweeper is not None:
            self._sweeper.join()
        self.training.stop()
        self.store.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def check_exposure(settings: Settings) -> None:
    """Refuse to listen beyond loopback without both tokens: anyone on the network could otherwise upload,
    queue jobs, revoke agents, start training or register as an agent."""
    missing = [name for name in ("operator_token", "fleet_token") if not getattr(settings, name)]
    if is_loopback(settings.host) or not missing:
        return
    flags = " and ".join(f"--{name.replace('_', '-')}" for name in missing)
    env = " and ".join(f"EDGELAB_{name.upper()}" for name in missing)
    raise ConfigError(
        f"refusing to listen on {settings.address} without {' and '.join(missing)}: anyone who can reach it could "
        f"upload models, queue jobs, revoke agents or register as an agent. Set {flags} (or {env}, or "
        f"{' and '.join(missing)} in the settings file given by --config / EDGELAB_CONFIG), "
        "or listen on 127.0.0.1"
    )


def start_coordinator(
    settings: Settings,
    *,
    max_workers: int = 32,
    busy_timeout_s: float | None = None,
    max_long_polls: int = MAX_LONG_POLLS,
    stream_guard: StreamGuard | None = None,
) -> Coordinator:
    """`busy_timeout_s`: how long a store transaction waits for SQLite's write lock (None: the store's default).

    Every call is authenticated from its metadata by `coordinator.auth.Authenticator` before its handler runs
    (and before its request is read, or a slot or an upload bound is taken); a non-loopback `settings.host` needs both tokens
    (`check_exposure`). At most `max_workers` unary calls run at once (CallSlots); the pool holds a thread
    more for each call that may wait (long-polls, uploads), so waiting calls can never take the threads the
    short ones need. `stream_guard`: the bounds on calls waiting for their client (default: guards.MAX_STREAMS,
    MAX_STREAMS_PER_PEER, MAX_WAITING_PER_PEER, STREAM_IDLE_S)."""
    check_exposure(settings)
    bell = JobBell(max_waiters=max_long_polls)
    store = Store(
        settings.db_path,
        lease_duration_s=settings.lease_duration_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        busy_timeout_s=busy_timeout_s,
        on_job_queued=bell.ring,
    )
    artifacts = ArtifactStore(settings.artifacts_dir)
    streams = stream_guard or StreamGuard()
    slots = CallSlots(max_workers)
    workers = max_workers + streams.max_streams + max_long_polls
    executor = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc")
    # gRPC sets SO_REUSEPORT by default: a second coordinator on a taken port would start, say "listening",
    # and split the fleet between two stores. Without it the second bind fails and says so.
    authenticator = Authenticator(store, fleet_token=settings.fleet_token, operator_token=settings.operator_token)
    server = grpc.server(
        executor,
        interceptors=[authenticator, DecodeGuard(), streams, slots],
        options=[*CHANNEL_OPTIONS, *SERVER_OPTIONS, ("grpc.so_reuseport", 0)],
        # A flood beyond this many calls in progress or queued is refused at once (RESOURCE_EXHAUSTED,
        # which clients read as "busy, retry") instead of queueing without bound.
        maximum_concurrent_rpcs=workers + QUEUED_CALLS,
    )
    agent_servicer = AgentServicer(
        store, artifacts, heartbeat_interval_s=settings.heartbeat_interval_s, bell=bell, slots=slots
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(agent_servicer, server)
    health_servicer = health.HealthServicer()  # grpc.health.v1: SERVING while the coordinator runs
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    training = TrainingRunner(store, artifacts, ray_address=settings.ray_address)
    control_pb2_grpc.add_ControlServiceServicer_to_server(
        ControlServicer(store, artifacts, training=training, data_dir=settings.mitdb), server
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
        executor.shutdown(wait=False)
        streams.close()
        training.stop()
        store.close()
        raise ConfigError(f"cannot listen on {settings.address}: {reason}")
    store.grant_restart_grace()
    store.fail_interrupted_training_runs()  # their Ray tasks died with the previous process
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = threading.Event()
    # Expired leases are also swept lazily on every lease call; this catches a fleet that went quiet.
    sweeper = threading.Thread(target=_sweep_leases, args=(store, stop), daemon=True, name="lease-sweeper")
    sweeper.start()
    return Coordinator(
        server, store, artifacts, settings.host, port, stop, training, sweeper, executor, streams, bell, health_servicer
    )


def freeze_startup_heap() -> None:
    """Move everything alive now (the imported modules: grpc, protobuf, typer, pydantic...) out of the cyclic
    garbage collector's sight, for a coordinator process that will run for long.

    A full collection stops every handler thread while it walks all tracked objects; with the startup heap
    in sight it took 40-107 ms per collection in benchmarks/fleet_scale.py (1,000 agents, 2-core box) and
    set the RPCs' p99. Frozen, the same runs collected in 3-64 ms. Collect first so no garbage is frozen."""
    gc.collect()
    gc.freeze()


def _sweep_leases(store: Store, stop: threading.Event) -> None:
    """Expire leases every quarter lease until `stop`; an error (a lock held past the busy timeout, a
    full disk) is logged and the next sweep tries again: the thread only ends when told to."""
    interval = store.lease_duration_s / 4
    failures = 0
    while not stop.wait(interval):
        try:
            store.expire_leases()
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.exception("lease sweep failed; retrying every %.1f s", interval)
            else:
                log.warning("lease sweep failed %d times in a row: %s", failures, exc)
        else:
            if failures:
                log.info("lease sweep works again after %d failure(s)", failures)
            failures = 0
