"""The fleet-scale benchmark at toy size, so the script cannot rot: it must finish every job without errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet_scale.py"


def test_fleet_scale_runs_small() -> None:
    args = ["--agents", "10", "--jobs-per-agent", "2", "--fanout-agents", "3", "--fanout-mb", "3", "--json"]

    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--deadline-s", "60"], capture_output=True, text=True, timeout=180
    )

    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["jobs_done"] == figures["jobs"] == 20 and figures["jobs_per_s"] > 0
    assert {"Register", "LeaseJob", "ReportResult", "FetchArtifact (whole stream)"} <= set(figures["rpc"])
    assert all(r["errors"] == 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in figures["rpc"].values())
    assert figures["fanout"]["agents"] == 3 and figures["fanout"]["aggregate_mb_s"] > 0
    assert figures["coordinator_rss_mb"]["peak"] > 0
