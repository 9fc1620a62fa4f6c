"""Fleet scale: a real coordinator process on loopback and hundreds of simulated agents.

    nice -n 10 .venv/bin/python benchmarks/fleet_scale.py                    # 200 agents, 100 MB to 20 agents
    .venv/bin/python benchmarks/fleet_scale.py --agents 10 --jobs-per-agent 2 --fanout-agents 2 --fanout-mb 2

1. Starts `edgelab coordinator serve` as its own process (fleet token on, short heartbeat), so its
   CPU and memory are its own and its RSS can be read.
2. Simulated agents are grpc.aio clients in this process, one channel (one TCP connection) each,
   speaking the real AgentService: register with the fleet token, heartbeat on the coordinator's
   interval, lease, and report a small result; jobs are queued fleet-wide up front, so jobs/s
   is the coordinator's lease + report rate under `--agents` concurrent pollers.
3. Fan-out: uploads one `--fanout-mb` artifact and `--fanout-agents` agents fetch it at once
   over the chunked stream, each verifying every chunk's sha256 and the whole file's, as the
   agent does; prints the aggregate MB/s.

Prints p50/p99 latency per RPC type, jobs/s and the coordinator's RSS (peak of samples taken
every 0.2 s, and at the end). Every loop is bounded by `--deadline-s`; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
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

import psutil

from coordinator.client import ControlClient
from edgelab.domain import ArtifactRef, BenchmarkResult, DeviceCapabilities, JobSpec, LatencyStats, RuntimeInfo
from edgelab.errors import CoordinatorUnavailable
from edgelab.rpc import AGENT_ID_KEY, AGENT_TOKEN_KEY, FLEET_TOKEN_KEY, Metadata, open_aio_channel
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

    async def timed(self, name: str, call: Any) -> Any:
        start = time.perf_counter()
        try:
            return await call
        except Exception:
            self.errors[name] += 1
            raise
        finally:
            self.latency_s[name].append(time.perf_counter() - start)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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
        self.channel = open_aio_channel(address)
        self.stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.name = f"sim-{index:04d}"
        self.stats = stats
        self.creds: Metadata = ()  # call metadata: the agent id and token Register returned
        self.heartbeat_s = 5.0

    async def register(self) -> None:
        request = agent_pb2.RegisterRequest(name=self.name, capabilities=CAPS)
        call = self.stub.Register(request, timeout=60, metadata=((FLEET_TOKEN_KEY, FLEET_TOKEN),))
        response = await self.stats.timed("Register", call)
        self.creds = ((AGENT_ID_KEY, response.agent_id), (AGENT_TOKEN_KEY, response.agent_token))
        self.heartbeat_s = response.heartbeat_interval_s

    async def heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.heartbeat_s)
            except asyncio.TimeoutError:
                await self.stats.timed(
                    "Heartbeat", self.stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=60, metadata=self.creds)
                )

    async def work(self, stop: asyncio.Event, total_jobs: int, poll_s: float) -> None:
        while not stop.is_set():
            leased = await self.stats.timed(
                "LeaseJob", self.stub.LeaseJob(agent_pb2.LeaseJobRequest(), timeout=60, metadata=self.creds)
            )
            if not leased.has_job:
                await asyncio.sleep(poll_s)
                continue
            lease = leased.lease
            report = agent_pb2.ReportResultRequest(job_id=lease.job_id, attempt=lease.attempt, result=RESULT)
            call = self.stub.ReportResult(report, timeout=60, metadata=self.creds)
            response = await self.stats.timed("ReportResult", call)
            assert response.accepted and not response.duplicate
            self.stats.jobs_done += 1
            self.stats.last_report = time.perf_counter()
            if self.stats.jobs_done >= total_jobs:
                stop.set()

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


def _artifact(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(size & ((1 << 20) - 1)))
    return path


async def run_fleet(args: argparse.Namespace, address: str, control: ControlClient, home: Path) -> dict[str, Any]:
    stats = Stats()
    agents = [SimAgent(address, i, stats) for i in range(args.agents)]
    t_register = time.perf_counter()
    await asyncio.gather(*(a.register() for a in agents))
    register_s = time.perf_counter() - t_register

    model = control.upload(_artifact(home / "model.onnx", 4096), format="onnx")
    dataset = control.upload(_artifact(home / "testset.npz", 4096), format="npz")
    spec = JobSpec("scale", "onnxruntime", model, dataset)
    job_ids = [job for _ in range(args.jobs_per_agent) for job in control.submit(spec)]  # one per agent per round

    stop = asyncio.Event()
    t0 = time.perf_counter()
    workers = [asyncio.create_task(a.work(stop, len(job_ids), args.poll_s)) for a in agents]
    beats = [asyncio.create_task(a.heartbeats(stop)) for a in agents]
    try:
        await asyncio.wait_for(stop.wait(), args.deadline_s)
    except asyncio.TimeoutError:
        stop.set()
    await asyncio.gather(*workers, *beats, return_exceptions=True)
    jobs_s = stats.jobs_done / max(stats.last_report - t0, 1e-9)

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
    await asyncio.gather(*(a.channel.close() for a in agents))
    return {
        "agents": args.agents,
        "registered_s": register_s,
        "jobs": len(job_ids),
        "jobs_done": stats.jobs_done,
        "jobs_per_s": jobs_s,
        "rpc": {
            name: {
                "calls": len(v),
                "p50_ms": 1e3 * _percentile(v, 0.50),
                "p99_ms": 1e3 * _percentile(v, 0.99),
                "errors": stats.errors.get(name, 0),
            }
            for name, v in sorted(stats.latency_s.items())
        },
        "fanout": fanout,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--jobs-per-agent", type=int, default=5)
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="heartbeat interval the coordinator hands out")
    parser.add_argument("--poll-s", type=float, default=0.5, help="an idle agent's lease poll interval")
    parser.add_argument("--fanout-agents", type=int, default=20)
    parser.add_argument("--fanout-mb", type=int, default=100)
    parser.add_argument("--deadline-s", type=float, default=300.0, help="bound on each phase")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.fanout_agents > args.agents:
        parser.error("--fanout-agents cannot exceed --agents")

    with tempfile.TemporaryDirectory(prefix="edgelab-fleet-") as tmp:
        home = Path(tmp)
        process, address = start_coordinator(home, args.heartbeat_s)
        rss = RssSampler(process.pid)
        rss.start()
        rss_idle = rss.current()
        try:
            with ControlClient(address) as control:
                figures = asyncio.run(run_fleet(args, address, control, home))
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
    print(json.dumps(figures) if args.json else _table(figures))
    return figures


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
    rss = f["coordinator_rss_mb"]
    lines.append(f"coordinator RSS: idle {rss['idle']:.1f} MB, peak {rss['peak']:.1f} MB, end {rss['end']:.1f} MB")
    if f["fanout"]:
        fan = f["fanout"]
        lines.append(
            f"fan-out: {fan['mb_each']:.0f} MB to {fan['agents']} agents in {fan['seconds']:.1f} s ="
            f" {fan['aggregate_mb_s']:.0f} MB/s aggregate (upload {fan['upload_mb_s']:.0f} MB/s)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
