"""The rich result table: compute-only rows, power per batch size, failures as text (never zeros)."""

from __future__ import annotations

from rich.console import Console

from edgelab.app.report import agents_table, ec57_table, jobs_table, results_table
from edgelab.domain import (
    AgentInfo,
    ArtifactRef,
    BenchmarkResult,
    DeviceCapabilities,
    Failure,
    FailureKind,
    Job,
    JobSpec,
    JobState,
    LatencyStats,
    PowerReport,
    RuntimeInfo,
)
from edgelab.metrics import Ec57Figures

SPEC = JobSpec("beats", "tensorrt", ArtifactRef("a" * 64, format="onnx"), ArtifactRef("b" * 64, format="npz"))


def _latency(batch: int, scope: str, p50: float) -> LatencyStats:
    return LatencyStats(
        batch_size=batch,
        samples=700,
        mean_ms=p50,
        p50_ms=p50,
        min_ms=p50,
        max_ms=p50,
        std_ms=0.0,
        throughput_per_s=batch / p50 * 1e3,
        first_inference_ms=5.0,
        warmup_s=0.2,
        warmup_iterations=10,
        timed_duration_s=3.0,
        scope=scope,
        p99_ms=p50 * 2,
    )


def _render(rows: list[tuple[Job, BenchmarkResult | None]]) -> str:
    console = Console(record=True, width=250)
    console.print(results_table(rows))
    return console.export_text()


def test_compute_only_rows_and_power_per_batch_are_shown() -> None:
    job = Job("job1", SPEC, JobState.SUCCEEDED, agent_name="orin")
    result = BenchmarkResult(
        load_s=1.5,
        latency=[_latency(8, "end-to-end: H2D + compute + D2H", 2.0), _latency(8, "compute-only: CUDA events", 1.25)],
        power=[PowerReport("jtop", "tot", 0.05, 60, 4.0, 9.5, 1.375, batch_size=8, window_s=3.0)],
    )

    text = _render([(job, result)])

    e2e = next(line for line in text.splitlines() if "job1" in line)
    compute = next(line for line in text.splitlines() if " compute " in line)
    assert "e2e" in e2e and "2.000" in e2e and "9.50" in e2e and "1.375" in e2e
    assert "1.250" in compute and "9.50" not in compute  # power belongs to the end-to-end window only


def test_failures_and_pending_jobs_show_their_state_not_zero_figures() -> None:
    failed = Job("bad", SPEC, JobState.FAILED)
    pending = Job("wait", SPEC, JobState.QUEUED)
    failure = BenchmarkResult(failure=Failure(FailureKind.UNAVAILABLE, "tensorrt: pip install 'edgelab[tensorrt]'"))

    text = _render([(failed, failure), (pending, None)])

    assert "unavailable: tensorrt: pip install 'edgelab[tensorrt]'" in text  # not eaten as rich markup
    assert "queued" in text
    assert "0.000" not in text


def test_agents_table_shows_runtimes_with_reasons_and_power_meters() -> None:
    caps = DeviceCapabilities(
        device_model="NVIDIA Jetson Orin Nano",
        runtimes=[
            RuntimeInfo("onnxruntime", True, "1.32.0"),
            RuntimeInfo("tensorrt", False, reason="pip install 'edgelab[tensorrt]'"),
        ],
        power_meters=["jtop"],
    )
    agent = AgentInfo("a1", "orin-1", "online", 0.0, caps)
    console = Console(record=True, width=250)

    console.print(agents_table([agent]))

    text = console.export_text()
    assert "onnxruntime 1.32.0" in text and "tensorrt: pip install 'edgelab[tensorrt]'" in text
    assert "jtop" in text and "NVIDIA Jetson Orin Nano" in text


def test_cis_cv_memory_and_the_comparison_verdict_are_shown() -> None:
    import dataclasses

    from edgelab.app.report import comparison_table, memory_line
    from edgelab.domain import MemoryReport

    def with_ci(p50: float, low: float, high: float) -> LatencyStats:
        lat = _latency(1, "end-to-end", p50)
        return dataclasses.replace(lat, ci_level=0.95, p50_ci_low_ms=low, p50_ci_high_ms=high, cv=0.05)

    memory = MemoryReport(40 << 20, 230 << 20, 205 << 20, 200 << 20, "VmHWM")
    base = (Job("old", SPEC, JobState.SUCCEEDED), BenchmarkResult(latency=[with_ci(2.0, 1.9, 2.1)], memory=memory))
    fast = (Job("new", SPEC, JobState.SUCCEEDED), BenchmarkResult(latency=[with_ci(1.5, 1.4, 1.6)]))
    same = (Job("same", SPEC, JobState.SUCCEEDED), BenchmarkResult(latency=[with_ci(2.05, 1.95, 2.15)]))

    text = _render([base])
    row = next(line for line in text.splitlines() if "old" in line)
    assert "1.900-2.100" in row and "5.0%" in row and "205.0" in row  # CI, CV, inference peak MiB
    assert "build 230.0 MiB, inference 205.0 MiB" in memory_line(memory) and "model file 200.0 MiB" in memory_line(
        memory
    )
    assert memory_line(None) == "memory: not reported"

    console = Console(record=True, width=250)
    console.print(comparison_table(base, fast))
    console.print(comparison_table(base, same))
    console.print(comparison_table(fast, base))
    compared = console.export_text()
    assert "0.750x" in compared and "faster" in compared
    assert "no significant difference" in compared and "slower" in compared


def test_top_operators_per_batch_and_the_per_operator_diff_are_shown() -> None:
    from edgelab.app.report import profile_comparison_table, profile_tables
    from edgelab.domain import OperatorProfile, OperatorTime

    def profile(batch: int, conv2: float, conv1: float, extra: str) -> OperatorProfile:
        ops = [OperatorTime("conv2", "FusedConv", conv2, 0.0), OperatorTime("conv1", "FusedConv", conv1, 0.0)]
        ops.append(OperatorTime(extra, "Gemm", 0.01, 0.0))
        return OperatorProfile(batch, "onnxruntime session profiling", conv2 + conv1 + 0.01, 3, 20, ops)

    fp32 = BenchmarkResult(latency=[_latency(8, "end-to-end", 0.3)], profiles=[profile(8, 0.28, 0.02, "dense")])
    int8 = BenchmarkResult(latency=[_latency(8, "end-to-end", 0.3)], profiles=[profile(8, 0.14, 0.04, "dense_q")])
    base, cand = (Job("fp32", SPEC, JobState.SUCCEEDED), fp32), (Job("int8", SPEC, JobState.SUCCEEDED), int8)

    console = Console(record=True, width=250)
    for table in profile_tables(fp32):
        console.print(table)
    diff = profile_comparison_table(base, cand)
    assert diff is not None
    console.print(diff)
    text = console.export_text()
    assert "Top operators at batch 8" in text and "FusedConv" in text and "0.2800" in text
    lines = text.splitlines()
    conv1 = next(line for line in lines if " conv1 " in line and "2.00x" in line)  # got slower: listed first
    conv2 = next(line for line in lines if " conv2 " in line and "0.50x" in line)
    assert lines.index(conv1) < lines.index(conv2)
    assert "2 kept by one side only" in text  # dense vs dense_q: counted, not compared
    assert profile_comparison_table(base, (Job("x", SPEC, JobState.SUCCEEDED), BenchmarkResult())) is None


def test_names_from_agents_and_launch_files_cannot_drive_the_terminal() -> None:
    import io

    hostile = "\x1b]0;pwned\x07\x1b[2Jnano [jetson]"
    agent = AgentInfo(
        "a1",
        hostile,
        "online",
        0.0,
        DeviceCapabilities(device_model=hostile, runtimes=[RuntimeInfo("tflite", True, "2.14")]),
    )
    job = Job("j1", JobSpec(hostile, "tflite", SPEC.model, SPEC.dataset), JobState.SUCCEEDED, agent_name=hostile)
    failed = BenchmarkResult(failure=Failure(FailureKind.CRASH, f"runtime said {hostile}\nsecond line"))
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)

    for table in (agents_table([agent]), jobs_table([job]), results_table([(job, failed)])):
        console.print(table)

    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2Jnano [jetson]" in text  # shown, escaped, markup kept as text
    assert "second line" in text


def test_ec57_table_shows_se_and_ppv_per_class_and_the_published_row_labelled() -> None:
    # prepare: SVEB above the published figures, VEB +P below, no Q beat
    figures = [
        Ec57Figures("N", tp=900, fn=100, fp=5),
        Ec57Figures("SVEB", tp=80, fn=20, fp=100),
        Ec57Figures("VEB", tp=90, fn=10, fp=90),
        Ec57Figures("F", tp=0, fn=10, fp=0),
        Ec57Figures("Q", tp=0, fn=0, fp=0),
    ]
    published = [("published row (method, data, split)", {"SVEB": (0.759, 0.385), "VEB": (0.777, 0.819)})]
    console = Console(record=True, width=250)

    # execute
    console.print(ec57_table([("onnxruntime fp32 (on device)", figures)], "EC57 on DS2", published))
    text = console.export_text()

    # assert
    assert "SVEB Se" in text and "VEB +P" in text and "Q +P" in text
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["onnxruntime fp32 (on device)"] == [
        *("90.0%", "99.4%", "80.0%", "44.4%", "90.0%", "50.0%", "0.0%", "-", "-", "-")
    ]
    assert rows["published row (method, data, split)"] == ["-", "-", "75.9%", "38.5%", "77.7%", "81.9%", *["-"] * 4]


def test_ec57_figures_that_round_to_the_published_one_get_a_second_decimal() -> None:
    # prepare: N +P 99.19% (a miss) and 99.25% (a win) beside a published 99.2%, which one decimal shows as ties
    def figures(fp: int) -> list[Ec57Figures]:
        return [Ec57Figures("N", tp=38960, fn=5280, fp=fp), Ec57Figures("SVEB", tp=80, fn=20, fp=100)]

    published = [("published", {"N": (0.869, 0.992)})]
    console = Console(record=True, width=250)

    # execute
    console.print(ec57_table([("miss", figures(318)), ("win", figures(296))], "EC57", published))
    text = console.export_text()

    # assert: second decimals only where one decimal would hide the comparison
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["miss"][:2] == ["88.1%", "99.19%"] and rows["win"][:2] == ["88.1%", "99.25%"]
    assert rows["published"][:2] == ["86.9%", "99.2%"]


def test_the_spread_across_repetitions_and_accelerator_memory_are_shown() -> None:
    from edgelab.app.report import memory_line
    from edgelab.domain import AcceleratorMemory, MemoryReport, RepetitionSpread

    spread = RepetitionSpread(1, "end-to-end", [1.9, 2.1, 2.0], mean_ms=2.0, sd_ms=0.1, min_ms=1.9, max_ms=2.1)
    repeated = BenchmarkResult(latency=[_latency(1, "end-to-end", 2.0)], repetitions=[spread])
    single = BenchmarkResult(latency=[_latency(1, "end-to-end", 2.0)])
    memory = MemoryReport(
        40 << 20,
        230 << 20,
        205 << 20,
        accelerator=[
            AcceleratorMemory("tensorrt", "device memory of one execution context", 3 << 20, "ICudaEngine.x"),
            AcceleratorMemory("nvml", "GPU memory of the process", None, "not available: NVML lists no process"),
        ],
    )

    with_reps = _render([(Job("reps", SPEC, JobState.SUCCEEDED), repeated)])
    without = _render([(Job("one", SPEC, JobState.SUCCEEDED), single)])
    shown = memory_line(memory)

    assert "p50 across reps" in with_reps and "3x 1.900-2.100, sd 5.0%" in with_reps
    assert "p50 across reps" not in without
    assert "\n  tensorrt: 3.0 MiB, device memory of one execution context (ICudaEngine.x)" in shown
    assert "\n  nvml: GPU memory of the process (not available: NVML lists no process)" in shown  # no figure, no 0
