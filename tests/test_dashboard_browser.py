"""The dashboard as a user sees it: ``streamlit run`` in a subprocess, driven by headless Chromium.

The dashboard talks to the real API fixture and reads a seeded state folder (demo dataset,
curation findings, a labelling queue, a two-version registry). Each page is loaded, the
predictions filter, the queue push, a curation decision and an upload are clicked through,
and a screenshot of every page is kept under ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, chromium_page, screenshot_is_not_blank
from tests.conftest import ROOT, encode, free_port, photo, wait_for
from tests.dashboard_seed import seed_state
from wmstudio.data.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.model]

VIEWPORT = (1400, 2000)  # tall: Streamlit scrolls inside its own container, so full_page cannot


@pytest.fixture(scope="module")
def dashboard(api_server, bundled_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    seeded = seed_state(bundled_registry, tmp_path_factory.mktemp("dash-browser"))
    state, registry, folder = seeded["state"], seeded["registry"], seeded["folder"]
    port = free_port()
    env = {
        **os.environ,
        "WMSTUDIO_API_URL": api_server.url,
        "WMSTUDIO_STATE_DIR": str(state),
        "WMSTUDIO_REGISTRY_DIR": str(registry),
        "WMSTUDIO_LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
        "WMSTUDIO_LABEL_STUDIO_TOKEN": "not-a-real-token",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "dashboard.py"),
        "--server.port", str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
    ]  # fmt: skip
    log = (state / "dashboard.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", timeout=120)
        yield {"url": f"http://127.0.0.1:{port}", "state": state, "dataset": folder}
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def settle(page, timeout: float = 60) -> None:
    """Wait until the page stops changing (Streamlit streams a run's elements as they come)."""
    deadline = time.monotonic() + timeout
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        current = (main_text(page), page.locator('[data-testid="stImage"]').count())
        if current != last or page.locator('[data-testid="stSkeleton"]').count():
            last, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since > 1.5:
            return
        time.sleep(0.25)


def open_page(page, url: str, name: str, heading: str, ready: str) -> None:
    """Load a page and wait for its heading and for a text that only a finished run shows."""
    page.goto(f"{url}/?page={name}")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    settle(page)


def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path))
    assert screenshot_is_not_blank(path), f"{path} looks blank"
    return path


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_every_page_in_headless_chromium(dashboard):
    url = dashboard["url"]
    clean = sum(1 for item in Manifest.load(dashboard["dataset"]).items.values() if item.brand is None)
    with chromium_page(*VIEWPORT) as page:
        # Overview: numbers and charts (Vega renders <canvas> or <svg>)
        open_page(page, url, "overview", "Overview / EDA", "Near-duplicate groups")
        assert "Photos" in main_text(page) and "40" in main_text(page)
        page.locator('[data-testid="stVegaLiteChart"]').nth(6).wait_for(timeout=60_000)  # seven charts or more
        shoot(page, "overview")

        # Predictions: the grid, then the outcome filter, then the detail view
        open_page(page, url, "predictions", "Predictions", "40 of 40 photos match")
        page.locator('[data-testid="stImage"]').nth(11).wait_for(timeout=120_000)  # a full page of overlays
        settle(page)
        shoot(page, "predictions")
        page.locator('[data-testid="stSlider"]').first.focus()
        outcome = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Outcome against ground truth")
        outcome.click()
        page.get_by_role("option", name="TN").click()
        page.keyboard.press("Escape")
        settle(page)
        shown = int(page.get_by_text("photos match").inner_text().split()[0])
        assert 0 < shown <= clean + 1, "TN keeps only (nearly) clean photos with the stub model"
        page.get_by_role("button", name="Details").first.click()
        page.get_by_text("ground_truth").first.wait_for(timeout=60_000)
        settle(page)
        assert "Detail:" in main_text(page)
        shoot(page, "predictions-filtered")

        # Queue: ranked items, tick one, push: without Label Studio the page says so
        open_page(page, url, "queue", "Uncertainty queue", "selected to Label Studio")
        assert "4 of 4 queue items" in main_text(page)
        assert "open task 42 in Label Studio" in main_text(page)
        page.locator('[data-testid="stCheckbox"]').filter(has_text="Select queue item").first.locator("label").click()
        settle(page)
        page.get_by_role("button", name="Push 1 selected to Label Studio").click()
        settle(page)
        page.get_by_text("Label Studio is not available").first.wait_for(timeout=60_000)
        shoot(page, "queue")

        # Curation: accept the duplicate cluster; the decision is stored and confirmed
        open_page(page, url, "curation", "Curation", "dHash distance 2")
        assert "dup-1" in main_text(page)
        shoot(page, "curation")
        page.get_by_role("button", name="Accept").first.click()
        settle(page)
        page.get_by_text("marked accepted").wait_for(timeout=60_000)

        # Models: the two versions side by side and the PR curves
        open_page(page, url, "models", "Models", "Promote or roll back")
        assert "Champion: v1" in main_text(page)
        assert "Retraining loop runs" in main_text(page) and "Could not" not in main_text(page)
        page.locator('[data-testid="stVegaLiteChart"]').nth(1).wait_for(timeout=60_000)  # metrics and PR curves
        shoot(page, "models")

        # Upload: a photo through the API, its overlay and JSON
        open_page(page, url, "upload", "Upload", "Drop one or more photos")
        upload = dashboard["state"] / "listing.jpg"
        upload.write_bytes(encode(photo(800, 600, seed=9), "JPEG"))
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text("listing.jpg: ").first.wait_for(timeout=120_000)
        settle(page)
        assert '"width"' in main_text(page) or "width" in main_text(page)
        shoot(page, "upload")
