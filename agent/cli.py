"""`edgelab agent run|probe`: the device side of the command line.

Plain argparse, not the operator CLI's typer: this is all a device needs, and it must run with
only the agent's dependencies (grpcio, protobuf, numpy) on Python 3.8+.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from edgelab.config import Settings, load_settings
from edgelab.errors import EdgeLabError


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run a device agent, or show what this device can run.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="Register with the coordinator and run jobs until interrupted.")
    run.add_argument("--coordinator", "-c", required=True, metavar="HOST:PORT", help="the coordinator's address")
    run.add_argument("--name", help="agent name (default: hostname)")
    run.add_argument("--fleet-token", help="also EDGELAB_FLEET_TOKEN")
    run.add_argument("--max-jobs", type=int, metavar="N", help="exit after this many jobs")
    run.add_argument(
        "--in-process", action="store_true", help="run benchmarks in the agent process (debugging; no crash isolation)"
    )
    run.add_argument(
        "--job-memory-limit-mb",
        type=int,
        metavar="MB",
        help="cap each benchmark's memory (a cgroup of its own where the agent may make one, else RLIMIT_DATA): "
        "a job past it is stored as out_of_memory (also EDGELAB_AGENT_JOB_MEMORY_LIMIT_BYTES)",
    )
    probe = commands.add_parser("probe", help="Print each backend (version, precisions, or why not) and power meter.")
    for sub in (run, probe):
        sub.add_argument("--home", type=Path, help="data dir (also EDGELAB_HOME; default ~/.edgelab)")
        sub.add_argument("--config", type=Path, help="YAML settings file (also EDGELAB_CONFIG; needs PyYAML)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "edgelab agent") -> int:
    args = _parser(prog).parse_args(argv)
    try:
        limit_mb = getattr(args, "job_memory_limit_mb", None)
        settings = load_settings(
            args.config,
            home=args.home,
            fleet_token=getattr(args, "fleet_token", None),
            agent_job_memory_limit_bytes=None if limit_mb is None else limit_mb << 20,
        )
        if args.command == "probe":
            return probe()
        return run(args, settings)
    except EdgeLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def probe() -> int:
    from agent.power import available_meters
    from agent.probe import probe_capabilities, render

    meters = available_meters()
    print(render(probe_capabilities(meters), meters))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    from agent.loop import Agent, AgentConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    agent = Agent(
        AgentConfig(
            args.coordinator,
            args.name or socket.gethostname(),
            settings.home / "agent",
            settings.fleet_token,
            tls=settings.client_tls(),
            cache_max_bytes=settings.agent_cache_max_bytes,
            job_timeout_s=settings.agent_job_timeout_s,
            job_memory_limit_bytes=settings.agent_job_memory_limit_bytes,
            isolate=settings.agent_isolate and not args.in_process,
        )
    )
    interrupted = threading.Event()  # agent.stop is also set when run() ends on an error

    def on_signal(*_: object) -> None:
        interrupted.set()
        agent.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        agent.run(max_jobs=args.max_jobs)
    except EdgeLabError:
        if not interrupted.is_set():
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m agent.cli"))
