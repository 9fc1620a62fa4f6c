import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agent.device_state import DeviceState, run_command, snapshot, state_manifest

NVPMODEL_Q = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"
JETSON_CLOCKS_ON = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-3
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
"""
JETSON_CLOCKS_OFF = JETSON_CLOCKS_ON.replace(
    "cpu1: Online=1 Governor=schedutil MinFreq=2201600", "cpu1: Online=1 Governor=schedutil MinFreq=115200"
)


def tree(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def commands(outputs: Mapping[str, str]) -> Callable[[Sequence[str]], str | None]:
    """A command runner answering from `outputs` keyed by the command line; others are not installed."""
    return lambda argv: outputs.get(" ".join(argv))


def jetson_tree(root: Path, cpu_temp_mc: int) -> Path:
    return tree(
        root,
        {
            **{f"sys/devices/system/cpu/cpu{n}/cpufreq/scaling_governor": "schedutil" for n in range(4)},
            "sys/class/thermal/thermal_zone0/type": "cpu-thermal",
            "sys/class/thermal/thermal_zone0/temp": str(cpu_temp_mc),
            "sys/class/thermal/thermal_zone1/type": "gpu-thermal",
            "sys/class/thermal/thermal_zone1/temp": "44000",
            "sys/class/thermal/thermal_zone2/type": "PMIC-Die",
            "sys/class/thermal/thermal_zone2/temp": "100000",  # Jetson's fixed placeholder
            "sys/class/thermal/thermal_zone3/type": "CV0-therm",
            "sys/class/thermal/thermal_zone3/temp": "-256000",  # an offline sensor
        },
    )


def test_jetson_state_power_mode_clocks_and_temperatures(tmp_path: Path) -> None:
    root = jetson_tree(tmp_path, cpu_temp_mc=45500)
    run = commands({"nvpmodel -q": NVPMODEL_Q, "jetson_clocks --show": JETSON_CLOCKS_ON})

    state = snapshot(root, run)

    assert state.cpu_governors == ("schedutil",) * 4
    assert state.temperatures_c == {"cpu-thermal": 45.5, "gpu-thermal": 44.0, "PMIC-Die": 100.0}
    assert state.temp_max_c == 45.5  # PMIC-Die's placeholder is not a temperature
    assert (state.nvpmodel, state.jetson_clocks) == ("MAXN (0)", True)


def test_manifest_records_before_after_and_changes(tmp_path: Path) -> None:
    before = snapshot(
        jetson_tree(tmp_path / "a", 45500),
        commands({"nvpmodel -q": NVPMODEL_Q, "jetson_clocks --show": JETSON_CLOCKS_OFF}),
    )
    after = snapshot(
        jetson_tree(tmp_path / "b", 61250),
        commands({"nvpmodel -q": NVPMODEL_Q, "jetson_clocks --show": JETSON_CLOCKS_ON}),
    )

    manifest = state_manifest(before, after)

    assert manifest == {
        "cpu_governor": "schedutil",
        "nvpmodel": "MAXN (0)",
        "jetson_clocks": "off -> on",
        "temp_max_c_before": "45.5",
        "temp_max_c_after": "61.2",
        "temps_c_before": "cpu-thermal=45.5,gpu-thermal=44.0,PMIC-Die=100.0",
        "temps_c_after": "cpu-thermal=61.2,gpu-thermal=44.0,PMIC-Die=100.0",
        "throttled": "unknown",
        "throttle_reason": "no throttling indicator readable (vcgencmd get_throttled, thermal_throttle counters)",
    }


def test_raspberry_pi_throttling_during_the_run_is_flagged_but_not_an_old_one() -> None:
    old = DeviceState(pi_throttled=0x50000)  # under-voltage and throttling since boot, not now
    capped_now = DeviceState(pi_throttled=0x20002)
    temp_limit_in_run = DeviceState(pi_throttled=0x80000)

    assert state_manifest(old, old)["throttled"] == "no"
    assert (
        state_manifest(DeviceState(pi_throttled=0), capped_now)["throttle_reason"]
        == "vcgencmd: arm frequency capped now"
    )
    during = state_manifest(DeviceState(pi_throttled=0), temp_limit_in_run)
    assert (during["throttled"], during["throttle_reason"]) == (
        "yes",
        "vcgencmd: soft temperature limit occurred during the run",
    )


def test_vcgencmd_output_is_parsed(tmp_path: Path) -> None:
    state = snapshot(tmp_path, commands({"vcgencmd get_throttled": "throttled=0x50005\n"}))

    assert state.pi_throttled == 0x50005


def test_x86_throttle_counters_and_hwmon_temperatures(tmp_path: Path) -> None:
    files = {
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance",
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor": "powersave",
        "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count": "4",
        "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count": "0",
        "sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count": "7",
        "sys/class/hwmon/hwmon0/name": "coretemp",
        "sys/class/hwmon/hwmon0/temp1_label": "Package id 0",
        "sys/class/hwmon/hwmon0/temp1_input": "52000",
    }
    before = snapshot(tree(tmp_path, files), commands({}))
    (tmp_path / "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count").write_text("3\n")
    after = snapshot(tmp_path, commands({}))

    manifest = state_manifest(before, after)

    assert before.temperatures_c == {"coretemp Package id 0": 52.0}
    assert before.throttle_counts == {"core": 4, "package": 7}
    assert (manifest["throttled"], manifest["throttle_reason"]) == ("yes", "core_throttle_count +3")
    assert manifest["cpu_governor"] == "performance,powersave"
    assert state_manifest(before, before)["throttled"] == "no"


def test_nothing_readable_is_unknown_not_guessed(tmp_path: Path) -> None:
    state = snapshot(tmp_path, commands({"nvpmodel -q": "garbage", "jetson_clocks --show": "Permission denied"}))

    manifest = state_manifest(state, state)

    assert state == DeviceState()
    assert {
        key: manifest[key] for key in ("cpu_governor", "nvpmodel", "jetson_clocks", "temp_max_c_before", "throttled")
    } == dict.fromkeys(("cpu_governor", "nvpmodel", "jetson_clocks", "temp_max_c_before", "throttled"), "unknown")


def test_run_command_answers_none_for_missing_or_failing_commands() -> None:
    assert run_command([sys.executable, "-c", "print('MAXN')"]) == "MAXN\n"
    assert run_command([sys.executable, "-c", "raise SystemExit(1)"]) is None
    assert run_command(["edgelab-no-such-command"]) is None


def test_this_machine_snapshot_works() -> None:
    manifest = state_manifest(snapshot(), snapshot())

    assert set(manifest) >= {
        "cpu_governor",
        "temp_max_c_before",
        "temp_max_c_after",
        "nvpmodel",
        "jetson_clocks",
        "throttled",
        "throttle_reason",
    }
    assert manifest["throttled"] in ("yes", "no", "unknown")
    assert all(isinstance(value, str) and (value or key == "throttle_reason") for key, value in manifest.items())
