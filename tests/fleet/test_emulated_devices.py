"""A real fleet on emulated devices: the agent installed with pip, as a device owner would, into
Debian userlands of the devices the lab is for (tests/fleet/rootfs.py: debootstrap, chroot,
qemu-user-static), running real MIT-BIH artifacts dispatched by a coordinator on the host.

- arm64: Debian bookworm aarch64 (Raspberry Pi OS 64-bit), Python 3.11: ONNX Runtime + LiteRT.
- armhf: Debian bookworm armv7l (Raspberry Pi OS 32-bit), Python 3.11, no compiler: numpy from
  Debian (`python3-numpy`, a venv with --system-site-packages), grpcio's linux_armv7l wheel,
  protobuf's pure-Python one, TFLite through tflite-runtime 2.14's manylinux_2_34_armv7l wheel
  (ai-edge-litert has no armv7l wheel). (Not bullseye: every grpcio linux_armv7l wheel needs
  glibc >= 2.33 and GLIBCXX_3.4.29, bullseye has 2.31 and 3.4.28, so grpc fails to import there.)
- old-stack: Debian bullseye amd64, CPython 3.9, grpcio, protobuf and numpy at the lowest version
  the agent declares (read from pyproject.toml) that has a wheel for that interpreter, and TFLite
  through the newest tflite-runtime that installs with them. (ONNX Runtime cannot run here with
  numpy at its floor: onnxruntime >= 1.11 needs numpy >= 1.21, and 1.10 loads ONNX opset <= 15
  only, while the lab exports opset 17.)

The coordinator runs in this process on 127.0.0.1 (a chroot shares the host's network namespace),
each agent is `chroot ROOTFS /opt/edgelab/bin/edgelab agent run ...`. Latency under qemu means
nothing; the point is that the agent installs, registers, builds engines, times them, scores the
test set and reports, on each userland. Rootfs builds are cached across runs (rootfs.CACHE_DIR);
per device the test prints the build (or cache hit), install and job figures to the terminal.
Marked `emulated`: `make test` leaves it out, CI runs it (and fails rather than skips when
CI is set and the machine cannot run it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from edgelab.domain import ArtifactRef, BenchmarkResult, Job, JobSpec, JobState, MeasurementSettings, Precision
from tests.fleet.rootfs import Chroot, Recipe, agent_venv, unavailable_reason

# slow too: the default addopts (-m "not slow and not gpu") leaves it out of `make test`; CI runs -m "not gpu".
pytestmark = [pytest.mark.integration, pytest.mark.emulated, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TOKEN = "emulated-devices-fleet-token"
PIPELINE = "mitdb-beats-1d"
TEST_BEATS = 512  # of the test set shipped to the devices: scoring under qemu stays short
AGENT_START_TIMEOUT_S = 300.0  # an interpreter and gRPC under qemu on a shared 2-core machine
JOB_TIMEOUT_S = 900.0  # every job of one device, INT8 quantization on the device included
MEASUREMENT = MeasurementSettings(
    warmup_iterations=1, warmup_duration_s=0.0, min_iterations=10, min_duration_s=0.1, power_meter="none"
)
ORT_FP32 = ("onnx", "onnxruntime", Precision.FP32)
ORT_INT8 = ("onnx", "onnxruntime", Precision.INT8)
TFLITE_FP32 = ("tflite-fp32", "tflite", Precision.FP32)
TFLITE_INT8 = ("tflite-int8", "tflite", Precision.INT8)
BASE = ("python3", "python3-venv", "ca-certificates")


@dataclass(frozen=True)
class Device:
    recipe: Recipe
    machine: str  # platform.machine() inside
    python: str  # the userland's CPython, major.minor
    extras: tuple[str, ...]
    backends: frozenset[str]  # what `edgelab agent probe` must say the device can run, exactly
    runs: tuple[tuple[str, str, Precision], ...] = ()  # (artifact target, backend, precision) jobs
    system_site_packages: bool = False
    lowest: tuple[str, ...] = ()  # requirements pinned to the lowest declared version with a wheel here
    requirements: tuple[str, ...] = ()  # installed next to the agent (pip picks versions that fit the pins)
    upgrade_pip: bool = False

    @property
    def name(self) -> str:
        return self.recipe.name


DEVICES = (
    Device(
        Recipe("arm64", "arm64", "bookworm", BASE, binfmt="qemu-aarch64"),
        "aarch64",
        "3.11",
        ("onnxruntime", "tflite"),
        frozenset({"onnxruntime", "tflite"}),
        (ORT_FP32, ORT_INT8, TFLITE_FP32, TFLITE_INT8),
    ),
    Device(
        Recipe("armhf", "armhf", "bookworm", (*BASE, "python3-numpy"), binfmt="qemu-arm"),
        "armv7l",
        "3.11",
        ("tflite",),
        frozenset({"tflite"}),
        (TFLITE_FP32, TFLITE_INT8),
        system_site_packages=True,
    ),
    Device(
        Recipe("old-stack", "amd64", "bullseye", BASE),
        "x86_64",
        "3.9",
        (),
        frozenset({"tflite"}),
        (TFLITE_FP32, TFLITE_INT8),
        lowest=("grpcio", "protobuf", "numpy"),
        requirements=("tflite-runtime",),
        upgrade_pip=True,
    ),
)


def _cannot_run(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"emulated devices cannot run here: {reason} (CI is set: they must not be skipped)")
    pytest.skip(reason)


@dataclass
class Fleet:
    coordinator: Coordinator
    control: ControlClient
    models: dict[str, ArtifactRef]  # by matrix target
    dataset: ArtifactRef
    wheel: Path
    host_accuracy: float  # the FP32 ONNX model's on the shipped test set, with the host's ONNX Runtime
    figures: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.coordinator.port}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    reason = unavailable_reason([device.recipe for device in DEVICES])
    if reason is not None:
        _cannot_run(reason)
    mitdb = Path(os.environ.get("EDGELAB_MITDB", REPO.parent / "shared" / "data" / "mitdb"))
    if not (mitdb / "100.hea").is_file():
        _cannot_run(f"MIT-BIH not found at {mitdb}")
    tmp = tmp_path_factory.mktemp("emulated")
    wheel = _build_wheel(tmp / "wheel")
    targets, dataset, host_accuracy = _train(mitdb, tmp / "artifacts")
    coordinator = start_coordinator(Settings(home=tmp / "coordinator", host="127.0.0.1", port=0, fleet_token=TOKEN))
    control = ControlClient(coordinator.address, timeout_s=30.0)
    try:
        models = {t: control.upload(path, format=fmt, metadata=meta) for t, (path, fmt, meta) in targets.items()}
        running = Fleet(coordinator, control, models, control.upload(dataset, format="npz"), wheel, host_accuracy)
        yield running
    finally:
        control.close()
        coordinator.stop(grace=None)


def _build_wheel(out: Path) -> Path:
    """The agent's wheel, from the working tree under test (what `pip install edgelab` would get)."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run([*command, str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("edgelab-*.whl")
    return wheel


def _train(mitdb: Path, out: Path) -> tuple[dict[str, tuple[Path, str, dict[str, str]]], Path, float]:
    """mitdb-beats-1d trained on records 101 and 106 (every beat, 10 epochs: under a minute; fewer left the
    3-CNN model calling every beat F, its F logit offset outweighing what so little training learnt), tested on record
    200 (inter-patient; its N and V beats, evenly spaced), converted to ONNX and TFLite FP32 / INT8 on the host. Returns the artifacts
    by target, the test set shipped to the devices, and the host's ONNX Runtime accuracy on it."""
    import onnxruntime as ort

    from coordinator.matrix import MatrixSpec, artifact_path, run_matrix
    from pipelines.base import TrainConfig
    from pipelines.training import write_dataset_npz

    config = TrainConfig(
        data_dir=mitdb,
        records=("101", "106", "200"),
        epochs=10,
        batch_size=64,
        max_train_beats=4096,
        calibration_size=64,
    )
    targets = sorted({"onnx", *(target for device in DEVICES for target, _, _ in device.runs)})
    matrix = run_matrix(MatrixSpec(pipeline=PIPELINE, train_config=config, targets=targets), out, use_ray=False)
    assert not matrix.failures, [(r.target, r.error) for r in matrix.failures]
    artifacts = {r.target: (artifact_path(r), r.info["format"], r.metadata) for r in matrix.records}
    with np.load(matrix.dataset_path) as full:
        spaced = np.linspace(0, len(full["y_test"]) - 1, TEST_BEATS).astype(int)
        x_test, y_test = full["x_test"][spaced], full["y_test"][spaced]
        dataset = write_dataset_npz(
            out / "devices-testset.npz", x_test, y_test, [str(name) for name in full["class_names"]], full["x_calib"]
        )
    session = ort.InferenceSession(str(artifacts["onnx"][0]), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {session.get_inputs()[0].name: x_test.astype(np.float32)})
    accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    # The devices are checked against this figure: a model that calls every beat one class would agree vacuously.
    assert accuracy > 0.8, f"the host model scores {accuracy:.1%}: too weak for the device comparison to mean anything"
    return artifacts, dataset, accuracy


def _project() -> dict[str, Any]:
    import tomllib  # the host's Python (3.11+); only what runs inside the userlands must be older

    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


def _declared_floors() -> dict[str, Version]:
    """The lowest version pyproject.toml allows for each requirement of the agent and its extras."""
    project = _project()
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    floors: dict[str, Version] = {}
    for line in declared:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator in (">=", "==", "~="):
                floors[requirement.name.lower()] = Version(spec.version)
    return floors


def _requirements(device: Device) -> Callable[[Chroot], list[str]]:
    """agent_venv's `requirements`: the device's own, and each of its `lowest` pinned to the lowest
    version at or above its declared floor that pip (inside: that interpreter and platform) has a wheel of."""
    floors = _declared_floors()

    def pins(chroot: Chroot) -> list[str]:
        chosen = list(device.requirements)
        for name in device.lowest:
            listing = chroot.run(
                ["/opt/edgelab/bin/python", "-m", "pip", "index", "versions", name, "--only-binary=:all:"],
                sys.stdout,
                120,
            ).stdout
            match = re.search(r"Available versions: (.*)", listing)
            assert match, f"pip index versions {name}: {listing}"
            versions = sorted(Version(v.strip()) for v in match.group(1).split(","))
            chosen.append(f"{name}=={min(v for v in versions if v >= floors[name])}")
        return chosen

    return pins


def _probe_backends(output: str) -> dict[str, bool]:
    """`edgelab agent probe`'s backend lines: name -> can run."""
    section = output.split("backends:", 1)[1].split("power meters:", 1)[0]
    return {line.split()[0]: line.split()[1] == "yes" for line in section.splitlines() if line.strip()}


def _spec(device: Device, fleet: Fleet, target: str, backend: str, precision: Precision) -> JobSpec:
    return JobSpec(
        name=f"{device.name}-{backend}-{precision.value}",
        backend=backend,
        model=fleet.models[target],
        dataset=fleet.dataset,
        precision=precision,
        batch_sizes=[1],
        measurement=MEASUREMENT,
        pipeline=PIPELINE,
        labels={"device": device.name, "target": target},
    )


def _outcome(job: Job, result: BenchmarkResult | None, host_accuracy: float) -> str:
    if result is None:
        return f"{job.state.value}, no result stored"
    if result.failure is not None:
        return f"{job.state.value}, {result.failure.kind.value}: {result.failure.message[:400]}"
    assert result.accuracy is not None and result.latency
    latency = result.latency[0]
    return (
        f"{job.state.value}, accuracy {result.accuracy.accuracy:.1%} on {result.accuracy.samples} beats "
        f"(host FP32 {host_accuracy:.1%}), "
        f"p50 {latency.p50_ms:.2f} ms (batch {latency.batch_size}, {latency.samples} runs; emulated), "
        f"{result.manifest.get('backend_version', '?')} on Python {result.manifest.get('python', '?')}"
    )


def _wait(
    predicate: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, timeout_s: float, what: str
) -> float:
    start = time.monotonic()
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"the agent exited ({process.returncode}) waiting for {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    return time.monotonic() - start


@pytest.mark.timeout(3600)  # a cold cache debootstraps the userland first (4-8 minutes each here)
@pytest.mark.parametrize("device", DEVICES, ids=[device.name for device in DEVICES])
def test_agent_installed_in_an_emulated_device_runs_real_jobs(
    device: Device, fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures: list[str] = []
    setup_log = tmp_path / "setup.log"
    agent_log = tmp_path / "agent.log"
    inner_tmp = tmp_path / "tmp"
    try:
        with setup_log.open("a") as log, Chroot(device.recipe, inner_tmp, log) as chroot:
            figures.append(chroot.build.describe())
            compilers = [cc for cc in ("cc", "gcc", "c++", "clang") if (chroot.root / "usr" / "bin" / cc).exists()]
            assert not compilers, f"{device.name} has {compilers}: wheels only, as on a device without a toolchain"
            (inner_tmp / "wheels").mkdir()
            wheel = Path(shutil.copy(fleet.wheel, inner_tmp / "wheels"))
            install = agent_venv(
                chroot,
                wheel,
                device.extras,
                {  # what decides the venv's dependencies: rebuilt from scratch when any of it changes
                    "declared": {
                        k: _project().get(k) for k in ("requires-python", "dependencies", "optional-dependencies")
                    },
                    "device": repr(device),
                },
                log,
                requirements=_requirements(device),
                system_site_packages=device.system_site_packages,
                upgrade_pip=device.upgrade_pip,
            )
            figures.append(install.describe(device.name))

            probe = chroot.run(["/opt/edgelab/bin/edgelab", "agent", "probe"], log, 300).stdout
            backends = _probe_backends(probe)
            assert {name for name, yes in backends.items() if yes} == device.backends, probe
            assert f"python:  {device.python}." in probe, probe

            with agent_log.open("ab") as out:
                agent = chroot.popen(
                    [
                        "/opt/edgelab/bin/edgelab",
                        "agent",
                        "run",
                        "--coordinator",
                        fleet.address,
                        "--fleet-token",
                        TOKEN,
                        "--name",
                        device.name,
                        "--home",
                        "/tmp/agent",
                        *(["--max-jobs", str(len(device.runs))] if device.runs else []),
                    ],
                    out,
                )
            registered = {}

            def agent_registered() -> bool:
                registered.update({a.name: a for a in fleet.control.list_agents()})
                return device.name in registered

            start_s = _wait(agent_registered, agent, agent_log, AGENT_START_TIMEOUT_S, f"{device.name} to register")
            caps = registered[device.name].capabilities
            assert caps.python_version.startswith(f"{device.python}.") and device.machine in caps.device_model
            assert {r.name for r in caps.runtimes if r.available} == device.backends
            figures.append(f"{device.name}: agent registered after {start_s:.0f} s")

            started = time.monotonic()
            agent_id = registered[device.name].agent_id
            job_ids = [fleet.control.submit(_spec(device, fleet, *run), [agent_id])[0] for run in device.runs]

            def finished() -> bool:
                return all(fleet.control.get_job(job_id)[0].state.finished for job_id in job_ids)

            _wait(finished, agent, agent_log, JOB_TIMEOUT_S, f"{device.name}'s jobs")
            rows: list[tuple[Job, BenchmarkResult | None]] = [fleet.control.get_job(job_id) for job_id in job_ids]
            for job, result in rows:
                figures.append(f"{device.name}: job {job.spec.name}: {_outcome(job, result, fleet.host_accuracy)}")
            if rows:
                figures.append(f"{device.name}: {len(rows)} job(s) finished in {time.monotonic() - started:.0f} s")
            for job, result in rows:
                assert (job.state, job.agent_name) == (JobState.SUCCEEDED, device.name), (job, result)
                assert result is not None and result.ok, result
                assert [stats.batch_size for stats in result.latency] == [1] and result.latency[0].samples >= 10
                assert result.accuracy is not None and result.accuracy.samples == TEST_BEATS
                # The device scored the same beats as the host: FP32 agrees, INT8 stays close.
                tolerance = 0.02 if job.spec.precision is Precision.FP32 else 0.10
                assert abs(result.accuracy.accuracy - fleet.host_accuracy) <= tolerance, (
                    job.spec.name,
                    result.accuracy,
                )
                assert result.manifest["backend"] == job.spec.backend
                assert result.manifest["python"].startswith(f"{device.python}."), result.manifest
                assert device.machine in result.manifest["os"] and device.machine in result.manifest["device_model"]
            if device.runs:
                assert agent.wait(timeout=120) == 0, agent_log.read_text()[-4000:]  # --max-jobs reached
    finally:
        for path in (setup_log, agent_log):  # pytest shows them when the test failed
            if path.is_file():
                print(f"===== {path.name} (end) =====\n{path.read_text(errors='replace')[-6000:]}")
        with capsys.disabled():
            print("\n" + "\n".join(f"[emulated] {line}" for line in figures), flush=True)
        fleet.figures += figures
