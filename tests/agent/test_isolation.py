"""A benchmark in a spawned child: a segfault, an exit without a result and a hang all become stored failures;
running out of memory is told from a crash; a cancelled run takes the child's own children down with it."""

import ctypes
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import agent.isolation
from agent.isolation import Cancelled, run_isolated
from agent.memory import JobCgroup, memory_cgroup, oom_kills
from edgelab.domain import ArtifactRef, BenchmarkResult, FailureKind, JobSpec, MeasurementSettings
from tests.polling import wait_for

SPEC = JobSpec(
    "t",
    "onnxruntime",
    ArtifactRef("a" * 64, format="onnx"),
    ArtifactRef("b" * 64, format="npz"),
    measurement=MeasurementSettings(warmup_iterations=1, min_iterations=10, min_duration_s=0.01),
)


# Targets run in the child, so they live at module level where the spawned interpreter can import them.
def segfault(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    ctypes.string_at(0)  # reads address 0: SIGSEGV in native code, like a runtime crashing on a model
    raise AssertionError("unreachable")


def exit_without_result(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    os._exit(3)


def hang(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    time.sleep(60)
    raise AssertionError("unreachable")


def raises(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    raise RuntimeError("bug in a backend")


def report_pid(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    return BenchmarkResult(load_s=1.5, manifest={"pid": str(os.getpid())})


def allocate_a_gib(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    block = np.ones(1 << 27)  # 1 GiB of float64, every page touched: past a 256 MiB limit
    return BenchmarkResult(load_s=float(block[-1]))


def sigkilled(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    os.kill(os.getpid(), signal.SIGKILL)  # an operator's kill -9: not memory
    raise AssertionError("unreachable")


def start_grandchild_and_hang(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    """Like the trtexec backend: the benchmark runs a subprocess of its own."""
    grandchild = subprocess.Popen(["sleep", "120"])
    assert cache is not None
    (cache / "pids").write_text(f"{os.getpid()} {grandchild.pid}")
    time.sleep(120)
    raise AssertionError("unreachable")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead, waiting for whoever reaps orphans here


def test_result_comes_back_from_a_separate_process(tmp_path: Path) -> None:
    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=report_pid)

    assert result.failure is None and result.load_s == 1.5
    assert result.manifest["pid"] != str(os.getpid())


def test_real_benchmark_runs_in_the_child(onnx_model: Path, test_set: Path) -> None:
    result = run_isolated(SPEC, onnx_model, test_set, timeout_s=120)

    assert result.failure is None, result.failure
    assert result.latency[0].samples >= 10 and result.accuracy is not None


@pytest.mark.parametrize(
    ("target", "kind", "message"),
    [
        (segfault, FailureKind.CRASH, "killed by signal SIGSEGV (11)"),
        (exit_without_result, FailureKind.CRASH, "exited with code 3 without a result"),
        (raises, FailureKind.CRASH, "RuntimeError: bug in a backend"),
    ],
)
def test_dying_child_is_a_classified_crash(tmp_path: Path, target: object, kind: FailureKind, message: str) -> None:
    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=target)  # type: ignore[arg-type]

    assert result.failure is not None and result.failure.kind is kind
    assert message in result.failure.message


def test_hanging_child_is_killed_at_the_wall_clock_limit(tmp_path: Path) -> None:
    start = time.monotonic()

    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=3, target=hang)

    assert result.failure is not None and result.failure.kind is FailureKind.TIMEOUT
    assert "3 s wall-clock limit" in result.failure.message
    assert time.monotonic() - start < 15


MIB = 1 << 20


def test_allocation_past_the_memory_limit_is_out_of_memory_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JobCgroup, "create", classmethod(lambda cls, limit, name: None))  # the rlimit path

    result = run_isolated(
        SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=allocate_a_gib, memory_limit_bytes=256 * MIB
    )

    assert result.failure is not None and result.failure.kind is FailureKind.OUT_OF_MEMORY, result.failure
    assert "MemoryError" in result.failure.detail


def test_kernel_oom_kill_is_out_of_memory_not_signal_9(tmp_path: Path) -> None:
    """The real kernel OOM killer: the child in a memory cgroup of its own, 256 MiB, touching 1 GiB."""
    probe = JobCgroup.create(256 * MIB, "edgelab-test-probe")
    if probe is None:
        pytest.skip("no writable memory cgroup here (needs root or a delegated cgroup)")
    probe.remove()

    result = run_isolated(
        SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=allocate_a_gib, memory_limit_bytes=256 * MIB
    )

    assert result.failure is not None and result.failure.kind is FailureKind.OUT_OF_MEMORY, result.failure
    assert "OOM killer" in result.failure.message and "256 MiB" in result.failure.message
    assert "oom_kill 0 -> 1" in result.failure.detail
    found = memory_cgroup("self")
    assert found is not None and not (found[1] / f"edgelab-job-{os.getpid()}").exists()  # removed after the run


def test_sigkill_without_an_oom_kill_stays_a_crash_and_says_so(tmp_path: Path) -> None:
    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=sigkilled)

    assert result.failure is not None and result.failure.kind is FailureKind.CRASH
    assert "SIGKILL (9), not by the agent" in result.failure.message


def test_oom_kill_counter_is_read_from_the_childs_memory_cgroup(tmp_path: Path) -> None:
    proc, group = tmp_path / "proc", tmp_path / "memcg" / "job"
    (proc / "42").mkdir(parents=True)
    (proc / "self").mkdir()
    group.mkdir(parents=True)
    (proc / "42" / "cgroup").write_text("12:pids:/\n4:memory:/lab/job\n0::/\n")
    (proc / "self" / "mountinfo").write_text(
        f"35 31 0:32 /lab {tmp_path / 'memcg'} rw,relatime - cgroup cgroup rw,memory\n"
        f"41 31 0:38 / {tmp_path / 'unified'} rw,relatime - cgroup2 cgroup2 rw\n"
    )
    (group / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")

    found = memory_cgroup(42, proc)

    assert found == (1, group) and oom_kills(*found) == 3


def test_cancelled_run_kills_the_child_and_what_it_started(tmp_path: Path) -> None:
    cancel = threading.Event()
    pids = tmp_path / "pids"

    def cancel_once_started() -> None:
        wait_for(pids.is_file)
        cancel.set()  # as the lease-renewal thread does when the coordinator says the lease is lost

    threading.Thread(target=cancel_once_started, daemon=True).start()
    start = time.monotonic()

    with pytest.raises(Cancelled):
        run_isolated(
            SPEC,
            tmp_path / "m",
            tmp_path / "d",
            tmp_path,
            timeout_s=120,
            target=start_grandchild_and_hang,
            cancel=cancel,
        )

    assert time.monotonic() - start < 60
    child, grandchild = (int(p) for p in pids.read_text().split())
    wait_for(lambda: not alive(child) and not alive(grandchild))


def test_timed_out_run_kills_what_the_child_started_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent.isolation, "KILL_GRACE_S", 1.0)

    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", tmp_path, timeout_s=5, target=start_grandchild_and_hang)

    assert result.failure is not None and result.failure.kind is FailureKind.TIMEOUT
    child, grandchild = (int(p) for p in (tmp_path / "pids").read_text().split())
    wait_for(lambda: not alive(child) and not alive(grandchild), timeout_s=10)
