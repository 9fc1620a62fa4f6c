"""The benchmark child's memory: a limit the agent can set on it, and the kernel's OOM-kill counters.

A child the kernel's OOM killer ends dies by SIGKILL, exactly like one an operator kills; only the
memory cgroup's `oom_kill` counter tells them apart (cgroup v2 `memory.events`, v1
`memory.oom_control`, Linux 4.13+). The kernel counts a kill in the victim's own cgroup, whether
the cgroup's limit or the whole machine ran out. So the agent reads the counter of the cgroup the
child runs in before and after the run.

With a memory limit (`AgentConfig.job_memory_limit_bytes`) the agent puts the child into a cgroup
of its own with that limit where the hierarchy lets it (cgroup v1, or v2 with the memory controller
delegated), so the kill is counted there and nowhere else; elsewhere the child limits its own data
segment (RLIMIT_DATA: heap and private writable mappings, not the address space CUDA reserves), so
an allocation past the limit fails as MemoryError / std::bad_alloc in the runtime instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edgelab.agent")

PROC = Path("/proc")
_OOM_KILL = re.compile(r"^oom_kill (\d+)$", re.M)


@dataclass(frozen=True)
class CgroupMount:
    version: int  # 1 or 2
    root: str  # the hierarchy path mounted there (mountinfo's 4th field)
    mountpoint: Path


def _memory_mounts(proc: Path = PROC) -> list[CgroupMount]:
    mounts = []
    try:
        lines = (proc / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        if after[0] == "cgroup2":
            mounts.append(CgroupMount(2, fields[3], Path(fields[4])))
        elif after[0] == "cgroup" and "memory" in after[2].split(","):
            mounts.append(CgroupMount(1, fields[3], Path(fields[4])))
    return mounts


def memory_cgroup(pid: int | str = "self", proc: Path = PROC) -> tuple[int, Path] | None:
    """(cgroup version, directory) of the memory cgroup `pid` is in, or None when none is readable."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    paths: dict[int, str] = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths.setdefault(2, parts[2])
        elif "memory" in parts[1].split(","):
            paths[1] = parts[2]
    for mount in sorted(_memory_mounts(proc), key=lambda m: m.version):  # hybrid: memory is on v1
        path = paths.get(mount.version)
        if path is None:
            continue
        root = mount.root.rstrip("/")
        if root and not (path == root or path.startswith(root + "/")):
            continue
        directory = mount.mountpoint / path[len(root) :].lstrip("/")
        if (directory / _counter_file(mount.version)).is_file():
            return mount.version, directory
    return None


def _counter_file(version: int) -> str:
    return "memory.events" if version == 2 else "memory.oom_control"


def oom_kills(version: int, directory: Path) -> int | None:
    """The cgroup's OOM-kill count, or None when the kernel does not keep one (before 4.13) or it is unreadable."""
    try:
        match = _OOM_KILL.search((directory / _counter_file(version)).read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


@dataclass
class OomWatch:
    """The OOM-kill counter of one cgroup, read when the child starts and again after it died."""

    version: int
    directory: Path
    before: int | None

    @classmethod
    def of(cls, pid: int | str = "self") -> OomWatch | None:
        found = memory_cgroup(pid)
        if found is None:
            return None
        return cls(found[0], found[1], oom_kills(*found))

    def killed(self) -> tuple[int, int] | None:
        """(before, after) when the counter rose since `before` was read, else None."""
        after = oom_kills(self.version, self.directory)
        if self.before is None or after is None or after <= self.before:
            return None
        return self.before, after

    def where(self) -> str:
        return f"{self.directory / _counter_file(self.version)}"


class JobCgroup:
    """A memory cgroup with a limit, made for one benchmark child under the agent's own cgroup, removed after."""

    def __init__(self, version: int, directory: Path, limit_bytes: int) -> None:
        self.version, self.directory, self.limit_bytes = version, directory, limit_bytes

    @classmethod
    def create(cls, limit_bytes: int, name: str) -> JobCgroup | None:
        """None where the hierarchy is not ours to write (most unprivileged agents): the caller falls back to an rlimit."""
        found = memory_cgroup("self")
        if found is None:
            return None
        version, parent = found
        directory = parent / name
        try:
            if version == 2:
                controllers = (parent / "cgroup.subtree_control").read_text().split()
                if "memory" not in controllers:
                    (parent / "cgroup.subtree_control").write_text("+memory")
            directory.mkdir(exist_ok=True)
            job = cls(version, directory, limit_bytes)
            if version == 2:
                (directory / "memory.max").write_text(str(limit_bytes))
                if (directory / "memory.swap.max").exists():
                    (directory / "memory.swap.max").write_text("0")
                (directory / "memory.oom.group").write_text("1")  # the child and whatever it started
            else:
                (directory / "memory.limit_in_bytes").write_text(str(limit_bytes))
                if (directory / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no swapping past it
                    (directory / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        except OSError as exc:
            log.debug("no memory cgroup of our own under %s (%s): limiting the child with RLIMIT_DATA", parent, exc)
            with contextlib.suppress(OSError):
                directory.rmdir()
            return None
        return job

    def add(self, pid: int) -> bool:
        try:
            (self.directory / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            log.warning("could not move the benchmark process into %s: %s", self.directory, exc)
            return False
        return True

    def watch(self) -> OomWatch:
        return OomWatch(self.version, self.directory, oom_kills(self.version, self.directory))

    def remove(self) -> None:
        try:
            self.directory.rmdir()
        except OSError as exc:  # a process still in it: left for the next start to find
            log.debug("could not remove %s: %s", self.directory, exc)


def limit_own_data(limit_bytes: int) -> None:
    """In the child: allocations past `limit_bytes` fail (MemoryError in Python, bad_alloc in C++ runtimes)."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = limit_bytes if hard == resource.RLIM_INFINITY else min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def own_process_group() -> None:
    """In the child: lead a process group of its own (so the agent can end it with whatever it started, e.g.
    trtexec) and die with the agent (Linux's parent-death signal)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


# -- peak resident memory per phase --------------------------------------------------------------

_STATUS_KIB = re.compile(r"^(VmRSS|VmHWM):\s+(\d+) kB$", re.M)
# 20 ms, not 5: on two cores busy with a runtime's threads, a 5 ms wake-up moved the p50 of ~1 ms inferences
# by 3-4% (benchmarks/measurement_overhead.py); a peak this thread misses is one shorter than 20 ms.
RSS_SAMPLE_PERIOD_S = 0.02


def _status(proc: Path = PROC) -> dict[str, int] | None:
    """VmRSS and VmHWM of this process in bytes, or None without a readable /proc/self/status."""
    try:
        text = (proc / "self" / "status").read_text()
    except OSError:
        return None
    found = {name: int(kib) * 1024 for name, kib in _STATUS_KIB.findall(text)}
    return found if "VmRSS" in found else None


def _resident(proc: Path = PROC) -> int | None:
    """This process's RSS in bytes from /proc/self/statm (resident pages, its second field): a quarter of the
    cost of reading and parsing status, which matters to the sampling thread that runs beside the timed loop.
    status's VmRSS where statm cannot be read; None without either."""
    try:
        return int((proc / "self" / "statm").read_text().split()[1]) * resource.getpagesize()
    except (OSError, IndexError, ValueError):
        status = _status(proc)
        return status["VmRSS"] if status else None


def _reset_high_water_mark(proc: Path = PROC) -> bool:
    """Reset VmHWM to the current RSS (`echo 5 > /proc/self/clear_refs`, Linux 4.0+); False where not allowed."""
    try:
        (proc / "self" / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakRss:
    """Peak RSS of this process per phase, above the RSS it had when made (the baseline).

    Where the kernel lets a process reset its own high-water mark (/proc/self/clear_refs), each phase
    reads VmHWM after resetting it at the start: exact, and nothing runs beside the benchmark. Elsewhere
    a thread samples the RSS every RSS_SAMPLE_PERIOD_S during the phase (a peak shorter than that can be
    missed; the thread wakes beside the timed loop, which the method names). Without /proc, no figures.
    """

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        status = _status(proc)
        self.available = status is not None
        self.baseline = status["VmRSS"] if status else 0
        self.exact = status is not None and "VmHWM" in status and _reset_high_water_mark(proc)
        self.method = (
            "VmHWM of the benchmark process, reset per phase by /proc/self/clear_refs"
            if self.exact
            else f"RSS of the benchmark process sampled every {RSS_SAMPLE_PERIOD_S * 1e3:g} ms (/proc/self/statm, else status)"
            if self.available
            else "not available: no /proc/self/status"
        )

    @contextlib.contextmanager
    def phase(self) -> Iterator[list[int]]:
        """Yields a one-item list; after the block it holds the phase's peak RSS above the baseline (>= 0)."""
        peak = [0]
        if not self.available:
            yield peak
            return
        if self.exact:
            _reset_high_water_mark(self.proc)
            try:
                yield peak
            finally:
                status = _status(self.proc) or {}
                peak[0] = max(0, status.get("VmHWM", 0) - self.baseline)
            return
        highest = [0]
        stop = threading.Event()

        def sample() -> None:
            while True:
                highest[0] = max(highest[0], _resident(self.proc) or 0)
                if stop.wait(RSS_SAMPLE_PERIOD_S):
                    return

        thread = threading.Thread(target=sample, name="edgelab-rss", daemon=True)
        thread.start()
        try:
            yield peak
        finally:
            stop.set()
            thread.join()
            highest[0] = max(highest[0], _resident(self.proc) or 0)
            peak[0] = max(0, highest[0] - self.baseline)
