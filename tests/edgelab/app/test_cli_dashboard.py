"""`edgelab dashboard`: a taken port is a one-line error, and SIGTERM stops the Streamlit server it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgelab.app.cli import app

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 60.0


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.read() == b"ok")
    except OSError:
        return False


def test_a_taken_port_is_refused_before_the_address_is_printed(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(app, ["dashboard", "--port", str(port), "--home", str(tmp_path)])

    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert result.output.startswith(f"error: cannot serve the dashboard on 127.0.0.1:{port}: Address already in use")
    assert "dashboard on http" not in result.output


def test_sigterm_stops_the_streamlit_server(tmp_path: Path) -> None:
    # prepare: `edgelab dashboard` serving, in its own process group so only it gets the signal
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health = f"http://127.0.0.1:{port}/_stcore/health"
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        parent = subprocess.Popen(
            [sys.executable, "-m", "edgelab", "dashboard", "--port", str(port), "--home", str(tmp_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "EDGELAB_DASHBOARD_COORDINATOR": "127.0.0.1:1"},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _serving(health):
        assert parent.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)

    # execute
    parent.send_signal(signal.SIGTERM)
    code = parent.wait(timeout=30)

    # assert: the parent exits cleanly and nothing serves the port any more
    assert code == 0, log.read_text()
    assert "dashboard stopped" in log.read_text()
    assert not _serving(health)
