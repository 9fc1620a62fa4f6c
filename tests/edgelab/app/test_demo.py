"""`edgelab demo` for real: coordinator, agent process, Ray training + conversion on MIT-BIH records, every CPU runtime."""

import json
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from edgelab.app.demo import DemoOptions, run_demo
from edgelab.config import Settings

pytestmark = pytest.mark.integration


def test_demo_trains_dispatches_and_stores_a_real_result(mitdb_dir: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", port=0, mitdb=mitdb_dir)
    options = DemoOptions(epochs=1, records=("100", "101", "106", "119"), batch_sizes=[1, 8], min_duration_s=0.2)
    console = Console(record=True, width=200)

    rows = run_demo(settings, options, console)

    runs = {(job.spec.backend, job.spec.precision.value): (job, result) for job, result in rows}
    assert set(runs) == {
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("tflite", "fp32"),
        ("tflite", "int8"),
        ("tensorflow", "fp32"),
    }
    for job, result in runs.values():
        assert job.state.value == "succeeded" and result is not None and result.ok, result
        assert [lat.batch_size for lat in result.latency] == [1, 8]
        assert result.accuracy is not None and result.accuracy.samples > 1000
        assert "accuracy_drop_vs_fp32_reference" in result.manifest
    fp32 = [runs[key][1] for key in (("onnxruntime", "fp32"), ("tflite", "fp32"), ("tensorflow", "fp32"))]
    accuracies = {r.accuracy.accuracy for r in fp32 if r is not None and r.accuracy is not None}
    assert max(accuracies) - min(accuracies) < 1e-3  # one FP32 model, three runtimes: the same predictions
    text = console.export_text()
    assert "EdgeLab demo" in text and "Confusion matrix" in text and "tflite-int8" in text
    assert "EC57 gross Se / +P per class" in text and "SVEB +P" in text
    assert "tflite int8 (on device)" in text and "de Chazal et al. 2004 (published" in text
    assert "pip install 'edgelab[jetson]'" in text  # why power was not measured, markup escaped
    job_ids = [job.job_id for job, _ in rows]
    stored = sqlite3.connect(settings.db_path).execute(
        f"SELECT ok FROM results WHERE job_id IN ({','.join('?' * len(job_ids))})", job_ids
    )
    assert stored.fetchall() == [(1,)] * 5
    # each model artifact says which split it was trained on, as the job's label does (the dashboard's EC57 table)
    split = runs[("onnxruntime", "fp32")][0].spec.labels["split"]
    models = sqlite3.connect(settings.db_path).execute("SELECT metadata FROM artifacts WHERE format != 'npz'")
    assert split and {json.loads(meta).get("split") for (meta,) in models} == {split}
