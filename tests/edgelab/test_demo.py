"""`edgelab demo` for real: coordinator, agent process, Ray training on MIT-BIH records, ORT on the agent."""

import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from edgelab.config import Settings
from edgelab.demo import DemoOptions, run_demo

pytestmark = pytest.mark.integration


def test_demo_trains_dispatches_and_stores_a_real_result(mitdb_dir: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", port=0, mitdb=mitdb_dir)
    options = DemoOptions(epochs=1, records=("100", "101", "106", "119"), batch_sizes=[1, 8], min_duration_s=0.2)
    console = Console(record=True, width=200)

    rows = run_demo(settings, options, console)

    ((job, result),) = rows
    assert job.state.value == "succeeded" and result is not None and result.ok
    assert [lat.batch_size for lat in result.latency] == [1, 8]
    assert result.accuracy is not None and result.accuracy.samples > 1000
    assert 0.0 <= result.accuracy.accuracy <= 1.0
    text = console.export_text()
    assert "EdgeLab demo" in text and "Confusion matrix" in text and job.job_id in text
    stored = (
        sqlite3.connect(settings.db_path).execute("SELECT ok FROM results WHERE job_id=?", (job.job_id,)).fetchall()
    )
    assert stored == [(1,)]
