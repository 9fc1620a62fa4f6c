"""What this device is and can run, reported when the agent registers."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import psutil

import edgelab
from agent.backends import BACKENDS
from agent.power import NONE_METER, available_meters
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


def probe_capabilities() -> DeviceCapabilities:
    return DeviceCapabilities(
        hostname=socket.gethostname(),
        device_model=device_model(),
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 0,
        memory_bytes=psutil.virtual_memory().total,
        os=platform.platform(),
        python_version=platform.python_version(),
        agent_version=edgelab.__version__,
        runtimes=[backend.probe() for backend in BACKENDS.values()],
        # Real sensors only: an empty list means the agent reports no power (the "none" meter).
        power_meters=[info.name for info in available_meters() if info.available and info.name != NONE_METER],
    )
