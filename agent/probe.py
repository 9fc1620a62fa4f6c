"""What this device is and can run, reported when the agent registers."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import edgelab
from agent.backends import BACKENDS
from agent.power import NONE_METER, MeterInfo, available_meters
from edgelab.domain import DeviceCapabilities

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")  # Jetson and Raspberry Pi name themselves here


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    return platform.processor() or platform.machine()


def device_model() -> str:
    if DEVICE_TREE_MODEL.is_file():
        return DEVICE_TREE_MODEL.read_text(errors="replace").strip("\x00\n ")
    return f"{platform.machine()} {cpu_model()}"


def memory_bytes() -> int:
    """Physical memory, from the C library (Linux and macOS); 0 where it cannot tell."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


def probe_capabilities(meters: list[MeterInfo] | None = None) -> DeviceCapabilities:
    """`meters`: power meters already probed (probing opens each sensor: about 1 s for jtop)."""
    meters = available_meters() if meters is None else meters
    return DeviceCapabilities(
        hostname=socket.gethostname(),
        device_model=device_model(),
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 0,
        memory_bytes=memory_bytes(),
        os=platform.platform(),
        python_version=platform.python_version(),
        agent_version=edgelab.__version__,
        runtimes=[backend.probe() for backend in BACKENDS.values()],
        # Real sensors only: an empty list means the agent reports no power (the "none" meter).
        power_meters=[info.name for info in meters if info.available and info.name != NONE_METER],
    )


def render(caps: DeviceCapabilities, meters: list[MeterInfo]) -> str:
    """What `edgelab agent probe` prints: the device, then each backend and power meter, or why not."""
    lines = [
        f"device:  {caps.device_model}",
        f"host:    {caps.hostname}, {caps.cpu_cores} cores, {caps.memory_bytes / 2**30:.1f} GiB, {caps.os}",
        f"python:  {caps.python_version}, edgelab {caps.agent_version}",
        "backends:",
    ]
    width = max(len(r.name) for r in caps.runtimes)
    for runtime in caps.runtimes:
        if runtime.available:
            precisions = ", ".join(p.value for p in runtime.precisions)
            lines.append(f"  {runtime.name:<{width}}  yes  {runtime.version}  ({precisions})")
        else:
            lines.append(f"  {runtime.name:<{width}}  no   {runtime.reason}")
    lines.append("power meters:")
    width = max(len(m.name) for m in meters)
    for meter in meters:
        detail = meter.sensor if meter.available else meter.reason
        lines.append(f"  {meter.name:<{width}}  {'yes' if meter.available else 'no '}  {detail}")
    return "\n".join(lines)
