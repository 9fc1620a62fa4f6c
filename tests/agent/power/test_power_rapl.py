from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from agent.power.base import PowerMeterUnavailable
from agent.power.rapl import POWERCAP_ROOT, RaplMeter

WriteTree = Callable[[Mapping[str, str]], Path]  # the sysfs fixture


def zone(name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> dict[str, str]:
    return {"name": name, "energy_uj": str(energy_uj), "max_energy_range_uj": str(max_uj)}


def rapl_tree(sysfs: WriteTree, zones: dict[str, dict[str, str]]) -> Path:
    return sysfs({f"{z}/{attr}": text for z, attrs in zones.items() for attr, text in attrs.items()})


def test_sums_package_zones_and_leaves_subzones_out(sysfs: WriteTree) -> None:
    root = rapl_tree(
        sysfs,
        {
            "intel-rapl:0": zone("package-0", 1_000_000),
            "intel-rapl:0:0": zone("core", 500_000),
            "intel-rapl:1": zone("package-1", 2_000_000),
        },
    )
    reader = RaplMeter(root).open()
    (root / "intel-rapl:0/energy_uj").write_text("3000000")  # +2 J
    (root / "intel-rapl:0:0/energy_uj").write_text("9000000")  # a subzone: not counted
    (root / "intel-rapl:1/energy_uj").write_text("2500000")  # +0.5 J

    sample = reader.read()

    assert sample.energy_j == pytest.approx(2.5)
    assert sample.watts is None
    assert reader.sensor == "intel-rapl:0 package-0 energy_uj + intel-rapl:1 package-1 energy_uj"


def test_counter_wrap_around_is_unwrapped_with_max_energy_range(sysfs: WriteTree) -> None:
    root = rapl_tree(sysfs, {"intel-rapl:0": zone("package-0", 999_000, max_uj=1_000_000)})
    reader = RaplMeter(root).open()
    counter = root / "intel-rapl:0/energy_uj"

    counter.write_text("2000")  # wrapped: 1_000 µJ to the top, then 2_000 µJ after 0
    first = reader.read()
    counter.write_text("5000")
    second = reader.read()

    assert first.energy_j == pytest.approx(0.003)
    assert second.energy_j == pytest.approx(0.006)


def test_dram_subzone_is_added_when_asked(sysfs: WriteTree) -> None:
    root = rapl_tree(sysfs, {"intel-rapl:0": zone("package-0", 0), "intel-rapl:0:2": zone("dram", 0)})

    reader = RaplMeter(root, domains=("package", "dram")).open()
    (root / "intel-rapl:0:2/energy_uj").write_text("1500000")

    assert reader.read().energy_j == pytest.approx(1.5)
    assert "intel-rapl:0:2 dram energy_uj" in reader.sensor


def test_missing_powercap_and_empty_powercap_say_why(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    missing = RaplMeter(tmp_path / "absent").probe()
    empty = RaplMeter(tmp_path / "empty").probe()

    assert not missing.available
    assert missing.reason.startswith(f"no {tmp_path / 'absent'} (kernel without powercap")
    assert not empty.available
    assert empty.reason == f"no intel-rapl:* zone named package* readable under {tmp_path / 'empty'}"


def test_root_only_energy_uj_is_reported_as_permission_denied(
    sysfs: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = rapl_tree(sysfs, {"intel-rapl:0": zone("package-0", 0)})
    read_text = Path.read_text

    def deny_energy(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":  # what a non-root user meets on kernels patched against PLATYPUS
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", deny_energy)

    with pytest.raises(PowerMeterUnavailable, match="permission denied"):
        RaplMeter(root).open()


@pytest.mark.skipif(POWERCAP_ROOT.is_dir(), reason="this machine has a powercap tree")
def test_real_powercap_absent_here_is_unavailable() -> None:
    info = RaplMeter().probe()

    assert (info.name, info.available) == ("rapl", False)
    assert str(POWERCAP_ROOT) in info.reason
