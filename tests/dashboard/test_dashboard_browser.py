"""End to end: `edgelab dashboard` serves the seeded store; headless Debian Chromium renders it."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coordinator.server import start_coordinator
from coordinator.store import Store
from edgelab.config import Settings
from tests.dashboard.conftest import Seeded

WINDOW = (1400, 2400)
# The Fleet page must read on a 1280 px screen: its agents table wraps its cells instead of cutting columns.
FLEET_WINDOW = (1280, 1400)
# Results is long: the leaderboard, the headline plots and the latency distribution tab fit in 3600 px.
TALL_WINDOW = (1400, 3600)
SERVER_START_TIMEOUT_S = 60.0
CHROMIUM_TIMEOUT_S = 90.0
# A cold server's first script run (pandas, plotly imports) can outlast a visit: visit again until then.
RENDER_TIMEOUT_S = 120.0
# A blank page still loading has only the toolbar in the main column; the rendered one has text and plots.
MIN_DARK_PIXELS = 5000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"edgelab dashboard exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"dashboard not healthy after {SERVER_START_TIMEOUT_S:.0f}s:\n{log.read_text()}")


def _chromium(binary: str, profile: Path, *args: str) -> list[str]:
    # --no-sandbox: CI runs as root. The virtual time budget lets the websocket deliver the page.
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=30000",
        *args,
    ]


def _dark_pixels(png: Path) -> int:
    """Dark pixels in the main column (right of the sidebar, below the toolbar)."""
    from PIL import Image  # Streamlit depends on Pillow

    with Image.open(png) as image:
        main = image.convert("L").crop((400, 100, *image.size))
        return sum(count for level, count in enumerate(main.histogram()) if level < 100)


def _dump_rendered(binary: str, profile: Path, url: str, last_element: str, window: tuple[int, int]) -> str:
    """The page's DOM once Streamlit drew it (a visit to a cold server may come back empty)."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    for attempt in itertools.count():
        # A fresh profile per visit: a reused one came back empty again and again.
        dom = subprocess.run(
            _chromium(binary, profile / str(attempt), f"--window-size={window[0]},{window[1]}", "--dump-dom", url),
            capture_output=True,
            timeout=CHROMIUM_TIMEOUT_S,
            check=True,
        ).stdout.decode()
        if last_element in dom or time.monotonic() > deadline:
            break
    return dom


def _screenshot(binary: str, profile: Path, url: str, png: Path, window: tuple[int, int]) -> None:
    """A screenshot of `url` once it has drawn (visit again while the main column is still blank)."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    for attempt in itertools.count():
        subprocess.run(
            _chromium(
                binary, profile / str(attempt), f"--window-size={window[0]},{window[1]}", f"--screenshot={png}", url
            ),
            capture_output=True,
            timeout=CHROMIUM_TIMEOUT_S,
            check=True,
        )
        if _dark_pixels(png) > MIN_DARK_PIXELS or time.monotonic() > deadline:
            break


def _keep_alive(seeded: Seeded) -> None:
    """Heartbeat the agents seeded online: a slow visit would otherwise find them stale."""
    store = Store(Settings(home=seeded.home).db_path)
    try:
        for name in ("jetson-nano-1", "rpi4-lab", "rpi4-desk"):
            store.heartbeat(seeded.agents[name])
    finally:
        store.close()


@pytest.mark.integration
def test_served_dashboard_renders_seeded_data_in_chromium(seeded: Seeded, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    # A real coordinator on the seeded store: the Launch page lists its agents and artifacts.
    coordinator = start_coordinator(Settings(home=seeded.home, host="127.0.0.1", port=0))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dashboard.log"
    # Results through a deep link comparing a run with its rerun: both carry operator profiles.
    ort, rerun = seeded.jobs["ort-fp32-pi"], seeded.jobs["ort-fp32-pi-rerun"]
    pages = {"results": f"{url}/?run={ort[:6]}&run={rerun[:6]}", "fleet": f"{url}/fleet", "launch": f"{url}/launch"}
    windows = {"results": TALL_WINDOW, "fleet": FLEET_WINDOW, "launch": WINDOW}
    last = {"results": "Slowest operators at batch", "fleet": "Register a device", "launch": "Expanded matrix"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgelab",
                "dashboard",
                "--port",
                str(port),
                "--home",
                str(seeded.home),
                "--coordinator",
                coordinator.address,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, server, log)
        # The first visits also warm the server (imports, first script run) before the screenshots.
        doms = {}
        for page, address in pages.items():
            _keep_alive(seeded)
            doms[page] = _dump_rendered(chromium, tmp_path / f"dom-{page}", address, last[page], windows[page])
        for page, address in pages.items():
            _keep_alive(seeded)
            _screenshot(chromium, tmp_path / f"shot-{page}", address, tmp_path / f"{page}.png", windows[page])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        coordinator.stop(grace=None)

    for page, dom in doms.items():
        (tmp_path / f"{page}.html").write_text(dom)
    results_dom, fleet_dom, launch_dom = doms["results"], doms["fleet"], doms["launch"]
    assert "trt-int8-nano on jetson-nano-1 failed (out_of_memory)" in results_dom
    # Table cells reach the DOM through the data grid's accessibility layer (visible columns only).
    assert "ort-fp32-pi" in results_dom and ">2.000<" in results_dom and "prune:0.5" in results_dom
    assert ">0.812<" in results_dom  # the headline is macro F1, not accuracy
    # One latency bar per run (plotly draws its category labels as SVG text): the rerun has its own.
    assert "ort-fp32-pi-rerun [" in results_dom and "rpi4-desk" in results_dom
    assert "MIT-BIH Arrhythmia Database" in results_dom
    # Noise flagged, the leaderboard and the distribution plot drawn.
    assert "Noisy timings" in results_dom and "shares host raspberry-pi-4-model-b-rev-1.4" in results_dom
    assert "Leaderboard per device" in results_dom and "Latency distribution" in results_dom
    # The deep link selected both runs: compared, and their operator profiles drawn side by side.
    assert "Compare runs" in results_dom and "B vs A" in results_dom
    assert "Slowest operators at batch 1" in results_dom and "Conv_0" in results_dom
    for agent in ("old-pi", "flaky-nano", "jetson-nano-1", "rpi4-lab"):
        assert agent in fleet_dom
    for column in ("status", "last seen", "current job", "runtimes available", "power meters", "shares host with"):
        assert f">{column}<" in fleet_dom, column
    assert "1 h ago" in fleet_dom and "none (energy not measured)" in fleet_dom
    assert "tflite_runtime is not installed" in fleet_dom and "Runtimes per agent" in fleet_dom
    assert f"coordinator {coordinator.address}: 5 agent(s) registered" in launch_dom
    assert "Expanded matrix" in launch_dom and "mitdb-beats-1d-testset.npz (npz" in launch_dom
    from PIL import Image

    for page in pages:
        with Image.open(tmp_path / f"{page}.png") as image:
            assert image.size == windows[page]
        assert _dark_pixels(tmp_path / f"{page}.png") > MIN_DARK_PIXELS, page
