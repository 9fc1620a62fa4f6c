"""A private multi-host network made of Linux network namespaces, for fleet tests.

One namespace holds a bridge; each host is a namespace with its own `eth0` (a veth pair whose
other end sits on the bridge), loopback up and an address in SUBNET, which exists only inside
these namespaces: nothing here touches the machine's own interfaces, and tests only ever
target these addresses and loopback. `cut(host)` takes the host's bridge port down, so its
packets vanish without a RST (an unplugged cable; `tc netem loss 100%` would need the
sch_netem kernel module, which CI machines lack); `restore(host)` plugs it back in.

Every namespace name carries this run's prefix (`eln<pid in hex>-`), so concurrent or crashed
runs never collide; namespaces left by a run whose process is gone are removed (with anything
still running in them) when the next network is built. Processes started with `popen` run in
their own session and are killed with their children on `close()`, which a finalizer also
calls if the test never does. Needs root and iproute2 (`ip`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Any

SUBNET = "10.231.0"
FIRST_HOST_BYTE = 2  # hosts get .2, .3, ... in the order they are named
NAME_PREFIX = "eln"
REMOTE_CALL_TIMEOUT_S = 120.0
_LEFTOVER = re.compile(rf"^{NAME_PREFIX}([0-9a-f]+)-")
_CLONE_NEWNET = 0x40000000
_PROXY_VARS = {"http_proxy", "https_proxy", "grpc_proxy", "all_proxy"}  # a namespace reaches no proxy


def unavailable_reason() -> str | None:
    """Why namespaces cannot be built here (for pytest.skip), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs these tests as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed"
    probe = f"{_prefix()}probe"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed: {exc.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str
    bridge_port: str  # the veth end on the bridge, in the bridge's namespace


class Network:
    """Hosts on one private bridge; use as a context manager, or call `close()`."""

    def __init__(self, hosts: Sequence[str]) -> None:
        remove_leftovers()
        prefix = _prefix()
        self.bridge_netns = f"{prefix}bridge"
        self.hosts = {
            name: Host(name, f"{prefix}{name}", f"{SUBNET}.{FIRST_HOST_BYTE + i}", f"port{i}")
            for i, name in enumerate(hosts)
        }
        self._processes: list[subprocess.Popen[bytes]] = []
        namespaces = [self.bridge_netns, *(h.netns for h in self.hosts.values())]
        self._finalizer = weakref.finalize(self, _teardown, self._processes, namespaces)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        bridge = self.bridge_netns
        _ip("netns", "add", bridge)
        _ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge, "link", "set", "br0", "up")
        for host in self.hosts.values():
            _ip("netns", "add", host.netns)
            veth = ["link", "add", "eth0", "type", "veth", "peer", "name", host.bridge_port, "netns", bridge]
            _ip("-n", host.netns, *veth)
            _ip("-n", bridge, "link", "set", host.bridge_port, "master", "br0", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    def cut(self, host: str) -> None:
        """Unplug the host: its packets and those sent to it vanish, open connections get no RST;
        a new connection fails with "No route to host" once ARP gives up, as on a real LAN."""
        _ip("-n", self.bridge_netns, "link", "set", self.hosts[host].bridge_port, "down")

    def restore(self, host: str) -> None:
        _ip("-n", self.bridge_netns, "link", "set", self.hosts[host].bridge_port, "up")

    def popen(
        self, host: str, argv: Sequence[str], log: IO[bytes], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` inside the host's namespace (`ip netns exec` execs it: the pid is argv's)."""
        environment = {k: v for k, v in (env or os.environ).items() if k.lower() not in _PROXY_VARS}
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.hosts[host].netns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its own process group: killed with its benchmark children
        )
        self._processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its children (its process group), as `kill -9` would."""
        _kill_group(process)

    def run(self, host: str, argv: Sequence[str]) -> str:
        """Run a short command inside the host's namespace; returns its stdout."""
        return subprocess.run(
            ["ip", "netns", "exec", self.hosts[host].netns, *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout

    def remote(self, host: str, factory: Callable[..., object], *args: Any) -> Remote:
        """`factory(*args)` built in a process inside the host's namespace; see Remote."""
        return Remote(self.hosts[host].netns, factory, *args)


class Remote:
    """An object that lives in a spawned worker process which joined a namespace before building it.

    The worker is spawned (not forked) and enters the namespace before anything opens a socket,
    so every connection the object makes, gRPC's included, starts in that namespace. Arguments
    and results cross the process boundary by pickle.
    """

    def __init__(self, netns: str, factory: Callable[..., object], *args: Any) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_build_in_netns, initargs=(netns, factory, args)
        )

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`object.method(*args, **kwargs)` in the worker; bounded so a hung call fails the test."""
        return self._pool.submit(_invoke, method, args, kwargs).result(timeout=REMOTE_CALL_TIMEOUT_S)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_leftovers() -> None:
    """Delete namespaces (and kill what runs in them) left by runs whose process is gone."""
    for netns in _list_netns():
        match = _LEFTOVER.match(netns)
        if match and not _alive(int(match.group(1), 16)):
            _delete_netns(netns)


def _prefix() -> str:
    return f"{NAME_PREFIX}{os.getpid():x}-"


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def _list_netns() -> list[str]:
    return [entry["name"] for entry in json.loads(_ip("-j", "netns", "list") or "[]")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _delete_netns(netns: str) -> None:
    try:
        pids = _ip("netns", "pids", netns).split()
    except subprocess.CalledProcessError:
        return  # already gone
    for pid in pids:  # processes of this test that outlived their group kill (or a crashed run)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


def _teardown(processes: list[subprocess.Popen[bytes]], namespaces: list[str]) -> None:
    for process in processes:
        _kill_group(process)
    existing = set(_list_netns())
    for netns in namespaces:
        if netns in existing:
            _delete_netns(netns)


_remote_object: object = None  # the Remote's object, in its worker process


def _build_in_netns(netns: str, factory: Callable[..., object], args: tuple[Any, ...]) -> None:
    global _remote_object
    for name in list(os.environ):
        if name.lower() in _PROXY_VARS:
            del os.environ[name]
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(Path("/run/netns") / netns, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
    finally:
        os.close(fd)
    _remote_object = factory(*args)


def _invoke(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return getattr(_remote_object, method)(*args, **kwargs)
