"""The device's state around a run, recorded beside every result: power mode, clocks, governor, temperatures, throttling.

Everything is read from sysfs under `root` and from commands through `run`, both injectable,
so a test can build a Jetson, a Raspberry Pi or an x86 box in a temporary directory. What
cannot be read is recorded as unknown, never guessed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from agent.power.base import numbered, read_sysfs

CommandRunner = Callable[
    [Sequence[str]], Optional[str]
]  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too
UNKNOWN = "unknown"
COMMAND_TIMEOUT_S = 5.0
# Jetson reports a fixed 100 °C placeholder for PMIC-Die; offline sensors read -256 °C.
TEMP_IGNORED_FOR_MAX = ("PMIC-Die",)
TEMP_MIN_VALID_C = -40.0
# vcgencmd get_throttled bits: 0-3 now, 16-19 the same conditions since boot.
PI_THROTTLE_BITS = {
    0: "under-voltage",
    1: "arm frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}


def run_command(argv: Sequence[str]) -> str | None:
    """The command's stdout, or None when it is not installed, fails or hangs (e.g. needs root)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class DeviceState:
    cpu_governors: tuple[str, ...] = ()  # per CPU with cpufreq, in CPU order
    temperatures_c: Mapping[str, float] = field(default_factory=dict)  # sensor -> °C
    nvpmodel: str | None = None  # Jetson power mode, e.g. "MAXN (0)"
    jetson_clocks: bool | None = None  # clocks pinned to max (min == max frequency)
    pi_throttled: int | None = None  # `vcgencmd get_throttled` bit mask
    throttle_counts: Mapping[str, int] = field(default_factory=dict)  # x86 "core"/"package" -> sum over CPUs

    @property
    def temp_max_c(self) -> float | None:
        valid = [t for name, t in self.temperatures_c.items() if not name.startswith(TEMP_IGNORED_FOR_MAX)]
        return max(valid) if valid else None


def cpu_governors(cpu_root: Path) -> tuple[str, ...]:
    governors = (read_sysfs(cpu / "cpufreq" / "scaling_governor") for _, cpu in numbered(cpu_root, "cpu"))
    return tuple(g for g in governors if g)


def _millidegrees(path: Path) -> float | None:
    text = read_sysfs(path)
    if text is None or not text.lstrip("-").isdigit():
        return None
    celsius = int(text) / 1000
    return celsius if celsius > TEMP_MIN_VALID_C else None


def temperatures(thermal_root: Path, hwmon_root: Path) -> dict[str, float]:
    """Thermal zones by type; where there are none, hwmon temp*_input (what psutil reads)."""
    temps: dict[str, float] = {}
    for n, zone in numbered(thermal_root, "thermal_zone"):
        celsius = _millidegrees(zone / "temp")
        if celsius is not None:
            kind = read_sysfs(zone / "type") or f"thermal_zone{n}"
            temps[kind if kind not in temps else f"{kind}#{n}"] = celsius
    if temps:
        return temps
    for _, device in numbered(hwmon_root, "hwmon"):
        chip = read_sysfs(device / "name") or device.name
        for sensor in sorted(device.glob("temp*_input")):
            celsius = _millidegrees(sensor)
            if celsius is not None:
                label = read_sysfs(sensor.with_name(sensor.name.replace("_input", "_label")))
                temps[f"{chip} {label or sensor.name.removesuffix('_input')}"] = celsius
    return temps


def parse_nvpmodel(output: str | None) -> str | None:
    """`nvpmodel -q` prints "NV Power Mode: MAXN" and the mode id on the next line."""
    if output is None:
        return None
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            mode = line.partition(":")[2].strip()
            following = lines[i + 1] if i + 1 < len(lines) else ""
            return f"{mode} ({following})" if following.isdigit() else mode
    return None


_CLOCK_LINE = re.compile(r"^(?:cpu\d+:.*?|GPU) MinFreq=(\d+) MaxFreq=(\d+)")


def parse_jetson_clocks(output: str | None) -> bool | None:
    """`jetson_clocks --show`: on when every CPU and the GPU has MinFreq == MaxFreq (what jetson_clocks sets)."""
    if output is None:
        return None
    pairs = [m.groups() for line in output.splitlines() if (m := _CLOCK_LINE.match(line.strip()))]
    return all(lo == hi for lo, hi in pairs) if pairs else None


def parse_vcgencmd_throttled(output: str | None) -> int | None:
    """`vcgencmd get_throttled` prints "throttled=0x50005"."""
    if output is None or "=" not in output:
        return None
    try:
        return int(output.strip().partition("=")[2], 16)
    except ValueError:
        return None


def throttle_counts(cpu_root: Path) -> dict[str, int]:
    """x86 thermal_throttle counters, summed over CPUs (package counters repeat per core; only deltas matter)."""
    counts: dict[str, int] = {}
    for _, cpu in numbered(cpu_root, "cpu"):
        for kind in ("core", "package"):
            text = read_sysfs(cpu / "thermal_throttle" / f"{kind}_throttle_count")
            if text is not None and text.isdigit():
                counts[kind] = counts.get(kind, 0) + int(text)
    return counts


def snapshot(root: Path = Path("/"), run: CommandRunner = run_command) -> DeviceState:
    cpu_root = root / "sys/devices/system/cpu"
    return DeviceState(
        cpu_governors=cpu_governors(cpu_root),
        temperatures_c=temperatures(root / "sys/class/thermal", root / "sys/class/hwmon"),
        nvpmodel=parse_nvpmodel(run(["nvpmodel", "-q"])),
        jetson_clocks=parse_jetson_clocks(run(["jetson_clocks", "--show"])),
        pi_throttled=parse_vcgencmd_throttled(run(["vcgencmd", "get_throttled"])),
        throttle_counts=throttle_counts(cpu_root),
    )


def _pi_reasons(before: int, after: int) -> list[str]:
    reasons = []
    for bit, what in PI_THROTTLE_BITS.items():
        if (before | after) & (1 << bit):
            reasons.append(f"{what} now")
        elif after & ~before & (1 << (bit + 16)):
            reasons.append(f"{what} occurred during the run")
    return reasons


def throttling(before: DeviceState, after: DeviceState) -> tuple[str, str]:
    """("yes"/"no"/"unknown", reason) from the indicators readable both before and after."""
    reasons: list[str] = []
    known = False
    if before.pi_throttled is not None and after.pi_throttled is not None:
        known = True
        reasons += [f"vcgencmd: {r}" for r in _pi_reasons(before.pi_throttled, after.pi_throttled)]
    for kind in sorted(before.throttle_counts.keys() & after.throttle_counts.keys()):
        known = True
        delta = after.throttle_counts[kind] - before.throttle_counts[kind]
        if delta > 0:
            reasons.append(f"{kind}_throttle_count +{delta}")
    if not known:
        return UNKNOWN, "no throttling indicator readable (vcgencmd get_throttled, thermal_throttle counters)"
    return ("yes", "; ".join(reasons)) if reasons else ("no", "")


def _text(value: str | None) -> str:
    return UNKNOWN if value is None else value


def _changed(before: str, after: str) -> str:
    return before if before == after else f"{before} -> {after}"


def _governors(state: DeviceState) -> str:
    return ",".join(sorted(set(state.cpu_governors))) or UNKNOWN


def _on_off(value: bool | None) -> str:
    return UNKNOWN if value is None else ("on" if value else "off")


def _temp(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.1f}"


def _temps(state: DeviceState) -> str:
    return ",".join(f"{name}={t:.1f}" for name, t in state.temperatures_c.items()) or UNKNOWN


def state_manifest(before: DeviceState, after: DeviceState) -> dict[str, str]:
    """Flat string keys for a result's provenance manifest; a setting that changed reads "a -> b"."""
    throttled, reason = throttling(before, after)
    return {
        "cpu_governor": _changed(_governors(before), _governors(after)),
        "nvpmodel": _changed(_text(before.nvpmodel), _text(after.nvpmodel)),
        "jetson_clocks": _changed(_on_off(before.jetson_clocks), _on_off(after.jetson_clocks)),
        "temp_max_c_before": _temp(before.temp_max_c),
        "temp_max_c_after": _temp(after.temp_max_c),
        "temps_c_before": _temps(before),
        "temps_c_after": _temps(after),
        "throttled": throttled,
        "throttle_reason": reason,
    }
