"""The agent stays installable where the lab's devices are: a small import closure, Python 3.8.

- The closure of `edgelab agent run|probe` holds the shared kernel and `agent/` only: no
  coordinator, pipelines or dashboard code and none of their heavy packages.
- Every module in it is Python 3.8 syntax (vermin), and it really runs on CPython 3.8 (JetPack 5's
  Python), twice: on the oldest grpcio/protobuf/numpy that pyproject.toml declares (every agent
  module imports, the probe runs, every wire type round-trips), and on JetPack 5's own wheel set
  (the newest for 3.8: grpcio 1.70, protobuf 5.29, numpy 1.24) as a real agent that registers with
  a loopback coordinator and runs ONNX Runtime and TFLite jobs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from edgelab.domain import JobSpec, JobState, MeasurementSettings, Precision

REPO = Path(__file__).resolve().parents[2]
# What a device must never need: the workstation's packages, and the packages that have no wheel there.
FORBIDDEN_ROOTS = frozenset(
    {"coordinator", "pipelines", "dashboard", "benchmarks", "pydantic", "typer", "rich", "yaml", "psutil"}
    | {"tensorflow", "keras", "onnx", "onnxruntime", "ray", "pandas", "streamlit", "tensorrt", "pycuda", "jtop"}
)
# Imports every module of the agent package and reports, as JSON, where each loaded module lives.
CLOSURE_SCRIPT = """
import importlib, json, pkgutil, sys
import agent
import edgelab.__main__
for info in pkgutil.walk_packages(agent.__path__, "agent."):
    importlib.import_module(info.name)
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()}))
"""


def _closure(python: str, env: dict[str, str] | None = None) -> dict[str, str | None]:
    import json

    out = subprocess.run([python, "-c", CLOSURE_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _our_files(modules: dict[str, str | None]) -> list[Path]:
    """The loaded modules that are this repository's source (not the venv inside it)."""
    files = [Path(path) for path in modules.values() if path]
    return sorted(f for f in files if f.is_relative_to(REPO) and f.relative_to(REPO).parts[0] != ".venv")


def test_agent_import_closure_is_the_kernel_and_the_agent_only() -> None:
    modules = _closure(sys.executable)

    loaded_roots = {name.split(".")[0] for name in modules}
    assert not loaded_roots & FORBIDDEN_ROOTS, sorted(loaded_roots & FORBIDDEN_ROOTS)
    assert {f.relative_to(REPO).parts[0] for f in _our_files(modules)} == {"agent", "edgelab"}
    assert not [name for name in modules if name.startswith("edgelab.app")]  # the workstation side stays off devices


def test_agent_import_closure_is_python38_syntax() -> None:
    files = [str(f) for f in _our_files(_closure(sys.executable))]
    assert any(f.endswith("agent/loop.py") for f in files)

    out = subprocess.run(
        [str(Path(sys.executable).parent / "vermin"), "-t=3.8-", "--no-tips", "--violations", *files],
        capture_output=True,
        text=True,
    )

    assert out.returncode == 0, out.stdout + out.stderr


# --- on a real CPython 3.8 -------------------------------------------------------------------------


def _python38() -> str:
    candidates = [os.environ.get("EDGELAB_PYTHON38", ""), "python3.8"]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    why = "no CPython 3.8 here (set EDGELAB_PYTHON38, or install one with pyenv)"
    if os.environ.get("CI"):  # CI must run the floor, not skip it unseen (as the emulated-device tests)
        pytest.fail(why)
    pytest.skip(why)


def _declared_floors() -> list[str]:
    """The agent's own dependencies pinned to the lowest versions pyproject.toml declares."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    assert block is not None
    return [f"{name}=={version}" for name, version in re.findall(r'"([\w-]+)>=([\d.]+)"', block.group(1))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("edgelab-*.whl")
    return path


def _venv(python: str, where: Path, *requirements: str) -> Path:
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "--only-binary=:all:"]
    out = subprocess.run([*pip, *requirements], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return where / "bin"


ROUND_TRIP_SCRIPT = """
import dataclasses, typing
from edgelab import domain, serde
from edgelab.v1 import agent_pb2, common_pb2, control_pb2, agent_pb2_grpc, control_pb2_grpc
spec = domain.JobSpec("j", "tflite", domain.ArtifactRef("ab" * 32, 10, "tflite"), domain.ArtifactRef("cd" * 32),
                      precision=domain.Precision.INT8, batch_sizes=[1, 8], labels={"k": "v"})
result = domain.BenchmarkResult(
    load_s=0.5,
    latency=[domain.LatencyStats(1, 100, 1.0, 0.9, 0.5, 2.0, 0.1, 1000.0, 3.0, 0.2, 10, 1.0, "e2e", p90_ms=1.5)],
    accuracy=domain.AccuracyReport(4, 0.75, 2, 0.7, [domain.ClassMetrics("N", 2, 1.0, 0.5, 0.66)], [1, 1, 0, 2]),
    power=[domain.PowerReport("rapl", "pkg", 0.05, 10, 1.0, 2.0, 0.3, rail_mean_w={"cpu": 1.5})],
    manifest={"a": "b"}, failure=domain.Failure(domain.FailureKind.OUT_OF_MEMORY, "m"))
for obj, message in ((spec, common_pb2.JobSpec), (result, common_pb2.BenchmarkResult),
                     (domain.Lease("j", 2, 30.0, spec), agent_pb2.Lease)):
    wire = serde.to_proto(obj, message()).SerializeToString()
    assert serde.from_proto(message.FromString(wire), type(obj)) == obj, type(obj)
print("round trip ok")
"""


@pytest.mark.integration
@pytest.mark.emulated
@pytest.mark.slow
def test_agent_on_python38_with_the_oldest_declared_grpcio_protobuf_numpy(tmp_path: Path, wheel: Path) -> None:
    bin_dir = _venv(_python38(), tmp_path / "venv", *_declared_floors())
    subprocess.run([str(bin_dir / "pip"), "install", "-q", "--no-deps", str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": ""}

    modules = _closure(str(bin_dir / "python"), env)
    probe = subprocess.run([str(bin_dir / "edgelab"), "agent", "probe"], capture_output=True, text=True, cwd=tmp_path)
    trip = subprocess.run([str(bin_dir / "python"), "-c", ROUND_TRIP_SCRIPT], capture_output=True, text=True)
    operator = subprocess.run([str(bin_dir / "edgelab"), "jobs", "list"], capture_output=True, text=True)

    assert "agent.loop" in modules and "agent.backends.trtexec" in modules
    assert probe.returncode == 0 and "python:  3.8" in probe.stdout, probe.stdout + probe.stderr
    assert "onnxruntime  no   onnxruntime is not installed: pip install 'edgelab[onnxruntime]'" in probe.stdout
    assert trip.returncode == 0 and "round trip ok" in trip.stdout, trip.stderr
    assert operator.returncode != 0 and "runs the device commands only" in operator.stderr


@pytest.fixture
def coordinator_with_token(tmp_path: Path) -> Iterator[Coordinator]:
    running = start_coordinator(Settings(home=tmp_path / "coord", port=0, fleet_token="py38"))
    yield running
    running.stop(grace=None)


@pytest.mark.integration
@pytest.mark.emulated
@pytest.mark.slow
def test_jetpack5_python38_agent_runs_onnxruntime_and_tflite_jobs(
    tmp_path: Path, wheel: Path, coordinator_with_token: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    from tests.factories import write_keras_artifacts, write_test_set

    bin_dir = _venv(_python38(), tmp_path / "venv", f"{wheel}[onnxruntime,tflite]")
    keras = write_keras_artifacts(tmp_path / "keras")
    keras_test_set = write_test_set(tmp_path / "keras-testset.npz", n=40, length=32)
    control = ControlClient(coordinator_with_token.address)
    measurement = MeasurementSettings(warmup_iterations=1, min_iterations=10, min_duration_s=0.05, power_meter="none")
    dataset = control.upload(test_set, format="npz")
    keras_dataset = control.upload(keras_test_set, format="npz")
    onnx = control.upload(onnx_model, format="onnx")
    jobs = [
        JobSpec("ort-fp32", "onnxruntime", onnx, dataset, measurement=measurement),
        JobSpec("ort-int8", "onnxruntime", onnx, dataset, precision=Precision.INT8, measurement=measurement),
        JobSpec(
            "tflite-fp32",
            "tflite",
            control.upload(keras["tflite-fp32"], format="tflite"),
            keras_dataset,
            measurement=measurement,
        ),
        JobSpec(
            "tflite-int8",
            "tflite",
            control.upload(keras["tflite-int8"], format="tflite"),
            keras_dataset,
            precision=Precision.INT8,
            measurement=measurement,
        ),
    ]
    agent = subprocess.Popen(
        [str(bin_dir / "edgelab"), "agent", "run", "-c", coordinator_with_token.address, "--fleet-token", "py38",
         "--name", "jetpack5", "--home", str(tmp_path / "agent"), "--max-jobs", str(len(jobs))],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not control.list_agents():
            assert agent.poll() is None and time.monotonic() < deadline, "the Python 3.8 agent did not register"
            time.sleep(0.2)
        (registered,) = control.list_agents()
        job_ids = [job_id for spec in jobs for job_id in control.submit(spec, [registered.agent_id])]
        output, _ = agent.communicate(timeout=600)
    finally:
        agent.kill()

    assert agent.returncode == 0, output[-4000:]
    for job_id in job_ids:
        job, result = control.get_job(job_id)
        assert job.state is JobState.SUCCEEDED and result is not None, (job.spec.name, result)
        assert result.manifest["python"].startswith("3.8."), result.manifest
        assert result.latency and result.accuracy is not None and result.accuracy.samples in (40, 60)
    (agent_info,) = control.list_agents()
    assert agent_info.capabilities.python_version.startswith("3.8.")
    versions = {r.name: r.version for r in agent_info.capabilities.runtimes if r.available}
    assert set(versions) == {"onnxruntime", "tflite"}, versions
