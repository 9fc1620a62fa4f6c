"""Fleet scale: a real coordinator process on loopback and hundreds of simulated agents.

    nice -n 10 .venv/bin/python benchmarks/fleet_scale.py                    # 1,000 agents, 5 s jobs
    nice -n 10 .venv/bin/python benchmarks/fleet_scale.py --job-s 0 --agents 200 --heartbeat-s 1  # saturation
    nice -n 10 .venv/bin/python benchmarks/fleet_scale.py --job-s 0 --agents 200 --sync-cost /dev/shm  # durable acks
    .venv/bin/python benchmarks/fleet_scale.py --agents 10 --jobs-per-agent 2 --fanout-agents 2 --fanout-mb 2

1. Starts `edgelab coordinator serve` as its own process (fleet token on, the product's 5 s heartbeat
   unless told otherwise), so its CPU and memory are its own and can be read.
2. Simulated agents are grpc.aio clients in this process, one channel (one TCP connection) each,
   speaking the real AgentService: they register (spread over `--ramp-s`, as a fleet comes up), heartbeat
   on the coordinator's interval, lease (a long-poll of `--lease-wait-s`, or polls every `--poll-s` with
   `--lease-wait-s 0`), hold each job for `--job-s` (x0.5-1.5 at random, the device's work) and report a
   small result. Jobs are queued fleet-wide up front. `--job-s 0` is a closed loop: the coordinator's
   saturation rate, where per-RPC latency is queueing and says little.
3. Idle fleet: with every job done and every agent idle, the coordinator's CPU over `--idle-s`, and the
   job-start latency of `--probe-jobs` jobs submitted one at a time to idle agents (submit sent -> the
   agent holds the lease).
4. Fan-out: uploads one `--fanout-mb` artifact and `--fanout-agents` agents fetch it at once
   over the chunked stream, each verifying every chunk's sha256 and the whole file's, as the
   agent does; prints the aggregate MB/s.
5. Bad input: `--bad-requests` undecodable Register calls, and the coordinator's RSS before and after.

Prints p50/p99 latency per RPC type (a long-poll's wait is not latency: LeaseJob counts the calls that
found a job queued, and every poll), jobs/s and the coordinator's RSS (peak of samples taken every 0.2 s,
and at the end). Every loop is bounded by `--deadline-s`; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from coordinator.client import ControlClient
from edgelab.constants import HEARTBEAT_INTERVAL_S, LEASE_WAIT_S
from edgelab.domain import ArtifactRef, BenchmarkResult, DeviceCapabilities, JobSpec, LatencyStats, RuntimeInfo
from edgelab.errors import CoordinatorUnavailable
from edgelab.rpc import AGENT_ID_KEY, AGENT_TOKEN_KEY, CHANNEL_OPTIONS, FLEET_TOKEN_KEY, Metadata
from edgelab.serde import to_proto
from edgelab.v1 import agent_pb2, agent_pb2_grpc, common_pb2

FLEET_TOKEN = "fleet-scale-bench"
CAPS = to_proto(
    DeviceCapabilities(hostname="sim", device_model="simulated", runtimes=[RuntimeInfo("onnxruntime", True, "sim")]),
    common_pb2.DeviceCapabilities(),
)
RESULT = to_proto(
    BenchmarkResult(
        load_s=0.01,
        latency=[LatencyStats(1, 100, 1.0, 1.0, 0.9, 1.2, 0.05, 1000.0, 1.5, 0.2, 10, 0.1, "simulated")],
        manifest={"agent": "simulated"},
    ),
    common_pb2.BenchmarkResult(),
)


@dataclass
class Stats:
    latency_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    jobs_done: int = 0
    last_report: float = 0.0
    leased_at: dict[str, float] = field(default_factory=dict)  # job id -> when its agent got the lease
    answered: int = 0  # calls that came back, long-polls that waited included

    async def timed(self, name: str, call: Any, *, keep: Any = None) -> Any:
        """Await `call`, counting its errors; its latency is kept unless `keep(response)` says no."""
        start = time.perf_counter()
        try:
            response = await call
        except Exception as exc:
            self.answered += 1
            self.errors[name] += 1
            self.latency_s[name].append(time.perf_counter() - start)
            if sum(self.errors.values()) <= 5:
                print(f"{name} failed: {exc!r}"[:500], file=sys.stderr)
            raise
        self.answered += 1
        if keep is None or keep(response):
            self.latency_s[name].append(time.perf_counter() - start)
        return response


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_percent(before: Any, after: Any, seconds: float) -> float:
    return 100.0 * float(((after.user - before.user) + (after.system - before.system)) / seconds)


class LoopLag:
    """How late the simulated fleet's own event loop wakes up: a reply that arrived waits this long to be
    timed, so the RPC latencies above include it (the fleet and the coordinator share the machine)."""

    TICK_S = 0.01

    def __init__(self) -> None:
        self.lags_s: list[float] = [0.0]

    async def probe(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.TICK_S)
            self.lags_s.append(max(0.0, time.perf_counter() - start - self.TICK_S))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_coordinator(home: Path, heartbeat_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "EDGELAB_FLEET_TOKEN": FLEET_TOKEN, "EDGELAB_HEARTBEAT_INTERVAL_S": str(heartbeat_s)}
    command = [sys.executable, "-m", "edgelab", "coordinator", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (home / "coordinator.log").open("wb")
    process = subprocess.Popen([*command, "--home", str(home)], env=env, stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with ControlClient(address, timeout_s=2) as control:
        while True:
            try:
                control.list_agents()
                return process, address
            except CoordinatorUnavailable:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"coordinator did not start: {(home / 'coordinator.log').read_text()}") from None
                time.sleep(0.1)


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stopped = threading.Event()

    def current(self) -> int:
        return int(self.process.memory_info().rss)

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.peak = max(self.peak, self.current())


class SimAgent:
    def __init__(self, address: str, index: int, stats: Stats) -> None:
        # Its own connection, as a device has: equal channels in one process would share one.
        self.channel = grpc.aio.insecure_channel(
            address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
        )
        self.stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.name = f"sim-{index:04d}"
        self.stats = stats
        self.creds: Metadata = ()  # call metadata: the agent id and token Register returned
        self.agent_id = ""
        self.heartbeat_s = HEARTBEAT_INTERVAL_S

    async def register(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        request = agent_pb2.RegisterRequest(name=self.name, capabilities=CAPS)
        call = self.stub.Register(request, timeout=60, metadata=((FLEET_TOKEN_KEY, FLEET_TOKEN),))
        response = await self.stats.timed("Register", call)
        self.agent_id = response.agent_id
        self.creds = ((AGENT_ID_KEY, response.agent_id), (AGENT_TOKEN_KEY, response.agent_token))
        self.heartbeat_s = response.heartbeat_interval_s

    async def heartbeats(self) -> None:
        await asyncio.sleep(random.uniform(0, self.heartbeat_s))  # agents do not beat in step
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self.stats.timed(
                "Heartbeat", self.stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=60, metadata=self.creds)
            )

    async def work(self, drained: asyncio.Event, total_jobs: int, args: argparse.Namespace) -> None:
        """Lease, hold the job for the device's time, report; until cancelled."""
        await asyncio.sleep(random.uniform(0, args.job_s))  # a fleet's jobs do not end in step
        while True:
            request = agent_pb2.LeaseJobRequest()
            if args.lease_wait_s:  # unset otherwise, so this also runs against a coordinator without the field
                request.wait_s = args.lease_wait_s
            asked = time.perf_counter()
            leased = await self.stats.timed(
                "LeaseJob",
                self.stub.LeaseJob(request, timeout=args.lease_wait_s + 60, metadata=self.creds),
                # A long-poll's wait is not latency: keep the calls that found a job queued, and every poll.
                keep=lambda r: not drained.is_set() and (r.has_job or not args.lease_wait_s),
            )
            if not leased.has_job:
                await asyncio.sleep(max(0.0, args.poll_s - (time.perf_counter() - asked)))
                continue
            lease = leased.lease
            self.stats.leased_at[lease.job_id] = time.perf_counter()
            await asyncio.sleep(args.job_s * random.uniform(0.5, 1.5))
            report = agent_pb2.ReportResultRequest(job_id=lease.job_id, attempt=lease.attempt, result=RESULT)
            call = self.stub.ReportResult(report, timeout=60, metadata=self.creds)
            response = await self.stats.timed("ReportResult", call)
            assert response.accepted and not response.duplicate
            self.stats.jobs_done += 1
            self.stats.last_report = time.perf_counter()
            if self.stats.jobs_done >= total_jobs:
                drained.set()

    async def fetch(self, ref: ArtifactRef) -> int:
        """Download the whole artifact verifying every chunk and the file, as the agent does; returns bytes."""
        start = time.perf_counter()
        whole = hashlib.sha256()
        size = 0
        request = agent_pb2.FetchArtifactRequest(sha256=ref.sha256, offset=0)
        async for chunk in self.stub.FetchArtifact(request, metadata=self.creds):
            if chunk.offset != size or hashlib.sha256(chunk.data).hexdigest() != chunk.sha256:
                raise RuntimeError(f"{self.name}: damaged chunk at byte {chunk.offset}")
            whole.update(chunk.data)
            size += len(chunk.data)
        if whole.hexdigest() != ref.sha256:
            raise RuntimeError(f"{self.name}: artifact hash mismatch")
        self.stats.latency_s["FetchArtifact (whole stream)"].append(time.perf_counter() - start)
        return size


def _rpc_figures(stats: Stats) -> dict[str, dict[str, float]]:
    return {
        name: {
            "calls": len(v),
            "p50_ms": 1e3 * _percentile(v, 0.50),
            "p99_ms": 1e3 * _percentile(v, 0.99),
            "errors": stats.errors.get(name, 0),
        }
        for name, v in sorted(stats.latency_s.items())
    }


def _artifact(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(size & ((1 << 20) - 1)))
    return path


async def run_fleet(
    args: argparse.Namespace, address: str, control: ControlClient, home: Path, coordinator: psutil.Process
) -> dict[str, Any]:
    stats = Stats()
    agents = [SimAgent(address, i, stats) for i in range(args.agents)]
    t_register = time.perf_counter()
    await asyncio.gather(*(a.register(args.ramp_s * i / args.agents) for i, a in enumerate(agents)))
    register_s = time.perf_counter() - t_register

    model = control.upload(_artifact(home / "model.onnx", 4096), format="onnx")
    dataset = control.upload(_artifact(home / "testset.npz", 4096), format="npz")
    spec = JobSpec("scale", "onnxruntime", model, dataset)
    job_ids = [job for _ in range(args.jobs_per_agent) for job in control.submit(spec)]  # one per agent per round

    drained = asyncio.Event()
    t0 = time.perf_counter()
    cpu_before = coordinator.cpu_times(), psutil.Process().cpu_times()
    tasks = [asyncio.create_task(a.work(drained, len(job_ids), args)) for a in agents]
    tasks += [asyncio.create_task(a.heartbeats()) for a in agents]
    lag = LoopLag()
    tasks.append(asyncio.create_task(lag.probe()))
    try:
        try:
            await asyncio.wait_for(drained.wait(), args.deadline_s)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{stats.jobs_done}/{len(job_ids)} jobs done after {args.deadline_s} s") from None
        jobs_done = stats.jobs_done
        busy_s = max(stats.last_report - t0, 1e-9)
        jobs_s = jobs_done / busy_s
        rpc = _rpc_figures(stats)  # before the idle fleet's probes add their calls
        load = {
            "coordinator_cpu_percent": _cpu_percent(cpu_before[0], coordinator.cpu_times(), busy_s),
            "fleet_cpu_percent": _cpu_percent(cpu_before[1], psutil.Process().cpu_times(), busy_s),
            "loop_lag_p50_ms": 1e3 * _percentile(lag.lags_s, 0.50),
            "loop_lag_p99_ms": 1e3 * _percentile(lag.lags_s, 0.99),
        }
        idle = await _idle_fleet(args, agents, control, spec, stats, coordinator)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    fanout: dict[str, float] = {}
    if args.fanout_agents:
        big = _artifact(home / "big.bin", args.fanout_mb << 20)
        t_up = time.perf_counter()
        ref = control.upload(big, format="bin")
        upload_s = time.perf_counter() - t_up
        t_fan = time.perf_counter()
        sizes = await asyncio.wait_for(
            asyncio.gather(*(a.fetch(ref) for a in agents[: args.fanout_agents])), args.deadline_s
        )
        fan_s = time.perf_counter() - t_fan
        fanout = {
            "agents": len(sizes),
            "mb_each": ref.size_bytes / 1e6,
            "seconds": fan_s,
            "aggregate_mb_s": sum(sizes) / 1e6 / fan_s,
            "upload_mb_s": ref.size_bytes / 1e6 / upload_s,
        }
        rpc.update((k, v) for k, v in _rpc_figures(stats).items() if k.startswith("FetchArtifact"))
    await asyncio.gather(*(a.channel.close() for a in agents))
    return {
        "agents": args.agents,
        "registered_s": register_s,
        "jobs": len(job_ids),
        "jobs_done": jobs_done,
        "jobs_per_s": jobs_s,
        "idle": idle,
        "rpc": rpc,
        "load": load,
        "fanout": fanout,
    }


async def _idle_fleet(
    args: argparse.Namespace,
    agents: list[SimAgent],
    control: ControlClient,
    spec: JobSpec,
    stats: Stats,
    coordinator: psutil.Process,
) -> dict[str, float]:
    """Every job done and every agent idle: what the idle fleet costs, and how fast a new job starts."""
    await asyncio.sleep(min(args.poll_s, 1.0))  # every agent back to waiting (or polling)
    calls = stats.answered
    cpu = coordinator.cpu_times()
    start = time.perf_counter()
    await asyncio.sleep(args.idle_s)
    elapsed = time.perf_counter() - start
    cpu_end = coordinator.cpu_times()
    busy_s = (cpu_end.user - cpu.user) + (cpu_end.system - cpu.system)
    answered = stats.answered - calls

    starts = []
    for agent in random.sample(agents, min(args.probe_jobs, len(agents))):
        sent = time.perf_counter()
        [job_id] = await asyncio.to_thread(control.submit, spec, [agent.agent_id])
        while job_id not in stats.leased_at:
            if time.perf_counter() - sent > args.deadline_s:
                raise RuntimeError(f"job {job_id} did not start within {args.deadline_s} s")
            await asyncio.sleep(0.001)
        starts.append(stats.leased_at[job_id] - sent)
        await asyncio.sleep(0.05)
    return {
        "cpu_percent": 100 * busy_s / elapsed,
        "rpc_per_s": answered / elapsed,
        "job_start_p50_ms": 1e3 * _percentile(starts, 0.5) if starts else 0.0,
        "job_start_max_ms": 1e3 * max(starts) if starts else 0.0,
        "probes": len(starts),
    }


def bad_requests(address: str, n: int, rss: RssSampler) -> dict[str, Any]:
    """`n` Register calls whose bytes do not decode, with the fleet token (so they pass authentication and
    reach decoding); the coordinator's RSS before and after."""
    garbage = b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 100  # a length-delimited field longer than the message
    codes: set[str] = set()
    before = rss.current()
    with grpc.insecure_channel(address) as channel:
        register = channel.unary_unary("/edgelab.v1.AgentService/Register")
        for _ in range(n):
            try:
                register(garbage, timeout=10, metadata=((FLEET_TOKEN_KEY, FLEET_TOKEN),))
            except grpc.RpcError as exc:
                codes.add(exc.code().name if isinstance(exc, grpc.Call) else "?")
    time.sleep(0.5)
    return {"requests": n, "rss_before_mb": before / 1e6, "rss_after_mb": rss.current() / 1e6, "codes": sorted(codes)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--jobs-per-agent", type=int, default=5)
    parser.add_argument(
        "--job-s", type=float, default=5.0, help="a job's time on the device (x0.5-1.5); 0: closed loop"
    )
    parser.add_argument(
        "--heartbeat-s", type=float, default=HEARTBEAT_INTERVAL_S, help="interval the coordinator hands out"
    )
    parser.add_argument("--lease-wait-s", type=float, default=LEASE_WAIT_S, help="lease long-poll; 0: poll")
    parser.add_argument(
        "--poll-s", type=float, default=1.0, help="pause after a lease call that came back empty at once"
    )
    parser.add_argument("--ramp-s", type=float, default=5.0, help="agents register spread over this long")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle-fleet window for the coordinator's CPU")
    parser.add_argument("--probe-jobs", type=int, default=20, help="jobs submitted one by one to idle agents")
    parser.add_argument("--bad-requests", type=int, default=0, help="undecodable requests, RSS before/after")
    parser.add_argument("--fanout-agents", type=int, default=20)
    parser.add_argument("--fanout-mb", type=int, default=100)
    parser.add_argument("--deadline-s", type=float, default=300.0, help="bound on each phase")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--store-dir", help="put the coordinator's home (SQLite store, artifacts) under this directory")
    parser.add_argument(
        "--sync-cost",
        metavar="TMPFS_DIR",
        help="run the fleet twice, store on disk then under TMPFS_DIR (e.g. /dev/shm), and print what syncing costs",
    )
    args = parser.parse_args(argv)
    if args.fanout_agents > args.agents:
        parser.error("--fanout-agents cannot exceed --agents")

    if args.sync_cost:
        on_disk, on_tmpfs = measure(args, None), measure(args, Path(args.sync_cost))
        print(_sync_cost_table(on_disk, on_tmpfs, args.sync_cost))
        return {"disk": on_disk, "tmpfs": on_tmpfs}
    figures = measure(args, Path(args.store_dir) if args.store_dir else None)
    print(json.dumps(figures) if args.json else _table(figures))
    return figures


def measure(args: argparse.Namespace, store_parent: Path | None) -> dict[str, Any]:
    """One coordinator, its home (store, artifacts) in a fresh directory under `store_parent` (None: the
    system's temporary directory), and the fleet against it."""
    with tempfile.TemporaryDirectory(prefix="edgelab-fleet-", dir=store_parent) as tmp:
        home = Path(tmp)
        process, address = start_coordinator(home, args.heartbeat_s)
        rss = RssSampler(process.pid)
        rss.start()
        rss_idle = rss.current()
        try:
            with ControlClient(address) as control:
                figures = asyncio.run(run_fleet(args, address, control, home, psutil.Process(process.pid)))
            figures["bad_requests"] = bad_requests(address, args.bad_requests, rss) if args.bad_requests else {}
            rss_end = rss.current()
            figures["coordinator_rss_mb"] = {
                "idle": rss_idle / 1e6,
                "peak": max(rss.peak, rss_end) / 1e6,
                "end": rss_end / 1e6,
            }
        finally:
            rss.stopped.set()
            process.terminate()
            process.wait(timeout=30)
    return figures


def _sync_cost_table(disk: dict[str, Any], tmpfs: dict[str, Any], tmpfs_dir: str) -> str:
    """What durable acknowledgements cost: the same fleet with the store on disk (every acknowledging commit
    waits for an fdatasync) and on tmpfs (the same code; fdatasync returns at once)."""
    lines = [
        f"store on disk vs on tmpfs ({tmpfs_dir}: fdatasync is a no-op there), same fleet, one after the other",
        f"{'':<24}{'disk':>12}{'tmpfs':>12}{'disk/tmpfs':>12}",
        f"{'jobs/s':<24}{disk['jobs_per_s']:>12.1f}{tmpfs['jobs_per_s']:>12.1f}"
        f"{disk['jobs_per_s'] / tmpfs['jobs_per_s']:>12.2f}",
    ]
    for name in ("ReportResult", "Register"):
        for q in ("p50_ms", "p99_ms"):
            a, b = disk["rpc"][name][q], tmpfs["rpc"][name][q]
            lines.append(f"{name + ' ' + q.replace('_', ' '):<24}{a:>12.2f}{b:>12.2f}{a / b:>12.2f}")
    return "\n".join(lines)


def _table(f: dict[str, Any]) -> str:
    lines = [
        f"agents {f['agents']} registered in {f['registered_s']:.2f} s",
        f"jobs {f['jobs_done']}/{f['jobs']} leased and reported: {f['jobs_per_s']:.1f} jobs/s",
        f"{'rpc':<28}{'calls':>8}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}",
    ]
    lines += [
        f"{name:<28}{r['calls']:>8}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['errors']:>8}"
        for name, r in f["rpc"].items()
    ]
    load = f["load"]
    lines.append(
        f"while jobs ran: coordinator CPU {load['coordinator_cpu_percent']:.0f}% and simulated fleet CPU"
        f" {load['fleet_cpu_percent']:.0f}% of one core; the fleet's event loop woke late by p50"
        f" {load['loop_lag_p50_ms']:.1f} ms, p99 {load['loop_lag_p99_ms']:.1f} ms (included in the latencies above)"
    )
    idle = f["idle"]
    lines.append(
        f"idle fleet: coordinator CPU {idle['cpu_percent']:.1f}% of one core, {idle['rpc_per_s']:.0f} RPC/s answered;"
        f" job start on an idle agent p50 {idle['job_start_p50_ms']:.1f} ms, max {idle['job_start_max_ms']:.1f} ms"
        f" ({idle['probes']} jobs)"
    )
    rss = f["coordinator_rss_mb"]
    lines.append(f"coordinator RSS: idle {rss['idle']:.1f} MB, peak {rss['peak']:.1f} MB, end {rss['end']:.1f} MB")
    if f["bad_requests"]:
        bad = f["bad_requests"]
        lines.append(
            f"{bad['requests']} undecodable requests ({', '.join(bad['codes'])}): coordinator RSS"
            f" {bad['rss_before_mb']:.1f} -> {bad['rss_after_mb']:.1f} MB"
        )
    if f["fanout"]:
        fan = f["fanout"]
        lines.append(
            f"fan-out: {fan['mb_each']:.0f} MB to {fan['agents']} agents in {fan['seconds']:.1f} s ="
            f" {fan['aggregate_mb_s']:.0f} MB/s aggregate (upload {fan['upload_mb_s']:.0f} MB/s)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
