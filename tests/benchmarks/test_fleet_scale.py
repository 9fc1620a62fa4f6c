"""The fleet-scale benchmark at toy size, so the script cannot rot: it must finish every job without errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "fleet_scale.py"


def test_fleet_scale_runs_small() -> None:
    args = ["--agents", "10", "--jobs-per-agent", "2", "--job-s", "0.05", "--ramp-s", "0.2", "--idle-s", "0.5"]
    args += ["--probe-jobs", "2", "--bad-requests", "50", "--fanout-agents", "3", "--fanout-mb", "3", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's packages, also from a worktree

    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--deadline-s", "60"], capture_output=True, text=True, timeout=180, env=env
    )

    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["jobs_done"] == figures["jobs"] == 20 and figures["jobs_per_s"] > 0
    assert {"Register", "LeaseJob", "ReportResult", "FetchArtifact (whole stream)"} <= set(figures["rpc"])
    assert all(r["errors"] == 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in figures["rpc"].values())
    assert figures["idle"]["probes"] == 2 and figures["idle"]["job_start_max_ms"] > 0
    assert figures["bad_requests"]["codes"] == ["INVALID_ARGUMENT"]
    assert figures["fanout"]["agents"] == 3 and figures["fanout"]["aggregate_mb_s"] > 0
    assert figures["coordinator_rss_mb"]["peak"] > 0


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_fleet_scale_sync_cost_runs_the_fleet_on_disk_and_on_tmpfs() -> None:
    args = ["--agents", "5", "--jobs-per-agent", "2", "--job-s", "0", "--ramp-s", "0.2", "--idle-s", "0.2"]
    args += ["--probe-jobs", "1", "--fanout-agents", "0", "--sync-cost", "/dev/shm", "--deadline-s", "60"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=180, env=env)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("store on disk vs on tmpfs (/dev/shm")
    jobs = next(line.split() for line in lines if line.startswith("jobs/s"))
    assert len(jobs) == 4 and all(float(v) > 0 for v in jobs[1:])
    assert any(line.startswith("ReportResult p99 ms") for line in lines)
