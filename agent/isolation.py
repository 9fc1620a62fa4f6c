"""Run one benchmark in a child process, so a model that crashes the runtime cannot take the agent down.

The child is started with the "spawn" context: a forked child would inherit the agent's gRPC
and heartbeat threads in whatever state they were in. A child that dies by a signal (e.g. a
segfault in native runtime code) or exits without a result becomes Failure(CRASH); one that
runs past the wall-clock limit is killed and becomes Failure(TIMEOUT).
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Callable, Optional

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


def run_isolated(
    spec: JobSpec,
    model_path: Path,
    dataset_path: Path,
    cache_dir: Path | None = None,
    *,
    timeout_s: float,
    target: BenchmarkFn = run_benchmark,
) -> BenchmarkResult:
    """`target(spec, model_path, dataset_path, cache_dir)` in a child process; never raises for the child's sake.

    `timeout_s` bounds the benchmark itself, from the moment the child is up (a new interpreter
    importing the runtimes takes seconds on a small device, more on a busy one).
    """
    receiver, sender = _SPAWN.Pipe(duplex=False)
    child = _SPAWN.Process(
        target=_child_main,
        args=(target, sender, spec, model_path, dataset_path, cache_dir),
        name=f"edgelab-benchmark-{spec.name}",
        daemon=True,  # never outlive the agent
    )
    child.start()
    sender.close()  # the child holds the only writer now: its death reads as EOF here
    try:
        if not receiver.poll(STARTUP_TIMEOUT_S):
            return _timeout(f"the benchmark process did not start within {STARTUP_TIMEOUT_S:g} s")
        result: BenchmarkResult | None = None
        try:
            if receiver.recv() == _READY:
                if not receiver.poll(timeout_s):
                    return _timeout(f"benchmark ran past the agent's {timeout_s:g} s wall-clock limit")
                result = receiver.recv()
        except EOFError:
            pass
        child.join(KILL_GRACE_S)  # it exits right after sending; a dead one has its exit code now
        return result if result is not None else BenchmarkResult(failure=_death(child))
    finally:
        _stop(child)
        receiver.close()


def _child_main(
    target: BenchmarkFn,
    conn: Connection,
    spec: JobSpec,
    model_path: Path,
    dataset_path: Path,
    cache_dir: Path | None,
) -> None:
    conn.send(_READY)  # unpickling our arguments imported the target's module: the runtime is loaded
    try:
        result = target(spec, model_path, dataset_path, cache_dir)
    except Exception as exc:  # run_benchmark never raises; an injected target might
        result = BenchmarkResult(
            failure=Failure(FailureKind.CRASH, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        )
    conn.send(result)
    conn.close()


def _timeout(what: str) -> BenchmarkResult:
    return BenchmarkResult(failure=Failure(FailureKind.TIMEOUT, f"{what}; its process was killed"))


def _death(child: BaseProcess) -> Failure:
    code = child.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return Failure(
            FailureKind.CRASH,
            f"the benchmark process was killed by signal {name} ({-code}): the runtime crashed on this model",
        )
    return Failure(FailureKind.CRASH, f"the benchmark process exited with code {code} without a result")


def _stop(child: BaseProcess) -> None:
    if child.is_alive():
        child.terminate()
        child.join(KILL_GRACE_S)
    if child.is_alive():
        child.kill()
        child.join()
