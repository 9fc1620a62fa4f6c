"""Run one benchmark in a child process, so a model that crashes the runtime cannot take the agent down.

The child is started with the "spawn" context: a forked child would inherit the agent's gRPC
and heartbeat threads in whatever state they were in. It leads a process group of its own, so
whatever it starts (trtexec) ends with it. A child that dies by a signal (e.g. a segfault in
native runtime code) or exits without a result becomes Failure(CRASH), unless the kernel's
OOM killer ended it or it ran out of the memory the agent allowed it: Failure(OUT_OF_MEMORY)
(`agent.memory`). One that runs past the wall-clock limit is killed and becomes
Failure(TIMEOUT); one whose job is cancelled (the lease was lost) is killed and raises
`Cancelled`: there is nothing to report.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Callable, Optional

from agent.memory import JobCgroup, OomWatch, limit_own_data, own_process_group
from agent.runner import run_benchmark
from edgelab.domain import BenchmarkResult, Failure, FailureKind, JobSpec

# run_benchmark's signature; a test injects a target that crashes. It must be importable by the child.
BenchmarkFn = Callable[
    [JobSpec, Path, Path, Optional[Path]], BenchmarkResult
]  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too

_SPAWN = multiprocessing.get_context("spawn")
KILL_GRACE_S = 5.0
# The job's limit starts once the child has imported the runtime; starting it has its own bound.
STARTUP_TIMEOUT_S = 300.0
_READY = "ready"
POLL_S = 0.1  # how often a waiting agent looks at its cancel event


class Cancelled(Exception):
    """The caller cancelled the run (its lease was lost); the child and its process group were killed."""


def run_isolated(
    spec: JobSpec,
    model_path: Path,
    dataset_path: Path,
    cache_dir: Path | None = None,
    *,
    timeout_s: float,
    target: BenchmarkFn = run_benchmark,
    cancel: threading.Event | None = None,
    memory_limit_bytes: int | None = None,
) -> BenchmarkResult:
    """`target(spec, model_path, dataset_path, cache_dir)` in a child process; never raises for the child's sake.

    `timeout_s` bounds the benchmark itself, from the moment the child is up (a new interpreter
    importing the runtimes takes seconds on a small device, more on a busy one). `cancel` set
    while it runs kills the child and raises `Cancelled`. `memory_limit_bytes` caps the child's
    memory (a cgroup of its own where the agent may make one, else RLIMIT_DATA).
    """
    cgroup = JobCgroup.create(memory_limit_bytes, f"edgelab-job-{os.getpid()}") if memory_limit_bytes else None
    receiver, sender = _SPAWN.Pipe(duplex=False)
    child = _SPAWN.Process(
        target=_child_main,
        args=(target, sender, spec, model_path, dataset_path, cache_dir, None if cgroup else memory_limit_bytes),
        name=f"edgelab-benchmark-{spec.name}",
        daemon=True,  # never outlive the agent
    )
    watch = OomWatch.of("self")  # the child's cgroup is the agent's until it is moved
    child.start()
    sender.close()  # the child holds the only writer now: its death reads as EOF here
    if cgroup is not None and child.pid is not None and cgroup.add(child.pid):
        watch = cgroup.watch()
    try:
        if not _wait(receiver, STARTUP_TIMEOUT_S, cancel):
            return _timeout(f"the benchmark process did not start within {STARTUP_TIMEOUT_S:g} s")
        result: BenchmarkResult | None = None
        try:
            if receiver.recv() == _READY:
                if not _wait(receiver, timeout_s, cancel):
                    return _timeout(f"benchmark ran past the agent's {timeout_s:g} s wall-clock limit")
                result = receiver.recv()
        except EOFError:
            pass
        child.join(KILL_GRACE_S)  # it exits right after sending; a dead one has its exit code now
        if result is not None:
            return result
        return BenchmarkResult(failure=_death(child, watch, memory_limit_bytes, cgroup))
    finally:
        _stop(child)
        receiver.close()
        if cgroup is not None:
            cgroup.remove()


def _wait(receiver: Connection, timeout_s: float, cancel: threading.Event | None) -> bool:
    """Whether the child sent something (or died) within `timeout_s`; raises Cancelled once `cancel` is set."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled("the benchmark was cancelled; its process group was killed")
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if receiver.poll(min(left, POLL_S) if cancel is not None else left):
            return True


def _child_main(
    target: BenchmarkFn,
    conn: Connection,
    spec: JobSpec,
    model_path: Path,
    dataset_path: Path,
    cache_dir: Path | None,
    memory_limit_bytes: int | None = None,
) -> None:
    own_process_group()
    if memory_limit_bytes:
        limit_own_data(memory_limit_bytes)
    conn.send(_READY)  # unpickling our arguments imported the target's module: the runtime is loaded
    try:
        result = target(spec, model_path, dataset_path, cache_dir)
    except MemoryError:
        result = BenchmarkResult(
            failure=Failure(FailureKind.OUT_OF_MEMORY, "the benchmark ran out of memory", traceback.format_exc())
        )
    except Exception as exc:  # run_benchmark never raises; an injected target might
        result = BenchmarkResult(
            failure=Failure(FailureKind.CRASH, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        )
    conn.send(result)
    conn.close()


def _timeout(what: str) -> BenchmarkResult:
    return BenchmarkResult(failure=Failure(FailureKind.TIMEOUT, f"{what}; its process was killed"))


def _death(child: BaseProcess, watch: OomWatch | None, limit_bytes: int | None, cgroup: JobCgroup | None) -> Failure:
    code = child.exitcode
    limit = f" of {limit_bytes / 2**20:g} MiB" if limit_bytes else ""
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        killed = watch.killed() if watch is not None else None
        if code == -signal.SIGKILL and killed is not None:
            at = f"at the agent's memory limit{limit}" if cgroup is not None else "(the device ran out of memory)"
            return Failure(
                FailureKind.OUT_OF_MEMORY,
                f"the benchmark process was killed by the kernel's OOM killer {at}: the model needs more memory "
                f"than this device gives it",
                f"oom_kill {killed[0]} -> {killed[1]} in {watch.where() if watch else '?'}",
            )
        if code == -signal.SIGKILL:
            evidence = (
                "no OOM kill was counted in its memory cgroup"
                if watch is not None and watch.before is not None
                else "this device keeps no OOM-kill counter the agent can read"
            )
            return Failure(
                FailureKind.CRASH,
                f"the benchmark process was killed by signal SIGKILL (9), not by the agent ({evidence})",
            )
        return Failure(
            FailureKind.CRASH,
            f"the benchmark process was killed by signal {name} ({-code}): the runtime crashed on this model"
            + (f" (the agent's memory limit{limit} was in force)" if limit_bytes else ""),
        )
    return Failure(FailureKind.CRASH, f"the benchmark process exited with code {code} without a result")


def _stop(child: BaseProcess) -> None:
    """End the child and its process group (whatever it started): SIGTERM, then SIGKILL after a grace period."""
    if child.is_alive():
        _signal_group(child, signal.SIGTERM)
        child.join(KILL_GRACE_S)
    if child.is_alive():
        child.kill()
        child.join()
    _signal_group(child, signal.SIGKILL)  # stragglers the child left behind


def _signal_group(child: BaseProcess, sig: int) -> None:
    if child.pid is None:
        return
    # The child leads group `pid` once it has started (own_process_group); before that, it alone is signalled.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)
    if child.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
