"""The Gradio demo: driven through gradio_client and through a real headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.browser import ARTIFACTS, chromium_page, screenshot_is_not_blank
from tests.conftest import ROOT, encode, free_port, photo, wait_for
from wmstudio.passwords import make_entry

pytestmark = [pytest.mark.integration, pytest.mark.model]


@pytest.fixture(scope="module")
def demo_url(api_server, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    state = tmp_path_factory.mktemp("demo-state")
    env = {
        **os.environ,
        "WMSTUDIO_API_URL": api_server.url,
        "WMSTUDIO_DEMO_PORT": str(port),
        "WMSTUDIO_STATE_DIR": str(state),
    }
    log = (state / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/", timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(15)


def test_demo_through_gradio_client(demo_url, tmp_path):
    from gradio_client import Client, handle_file

    good = tmp_path / "house.jpg"
    good.write_bytes(encode(photo(800, 600), "JPEG"))
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not an image at all")
    client = Client(demo_url, verbose=False)
    gallery, table, raw = client.predict(
        [handle_file(str(good)), handle_file(str(bad))], "boxes", 0.0, api_name="/analyse"
    )
    assert len(gallery) == 1  # the bad file has no overlay ...
    rows = table["data"]
    assert any(row[0] == "notes.jpg" and row[1] == "error" for row in rows)  # ... but an error row
    assert raw[0]["file"] == "house.jpg" and raw[0]["image"] == {"width": 800, "height": 600}
    assert raw[1]["error"]["code"] == "not_an_image"


def test_demo_in_headless_chromium(demo_url, tmp_path):
    upload = tmp_path / "listing.jpg"
    upload.write_bytes(encode(photo(900, 600, seed=3), "JPEG"))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo.png"
    with chromium_page() as page:
        page.goto(demo_url, wait_until="networkidle")
        assert "Watermark Studio" in page.content()
        page.locator("#photos input[type=file]").set_input_files(str(upload))
        page.locator("#detect").click()
        page.locator("#overlay img").first.wait_for(timeout=30_000)
        page.get_by_text("listing.jpg").first.wait_for(timeout=30_000)
        page.wait_for_function("() => !document.querySelector('.pending, .generating')", timeout=30_000)
        page.wait_for_timeout(500)  # let the fade-in transition finish before the screenshot
        page.screenshot(path=str(shot), full_page=True)
    assert screenshot_is_not_blank(shot)


def test_demo_with_logins_needs_a_sign_in(api_server, tmp_path):
    """With WMSTUDIO_APP_USERS the demo (which calls the API with the service's key) needs a login."""
    from gradio_client import Client, handle_file

    port = free_port()
    env = {
        **os.environ,
        "WMSTUDIO_API_URL": api_server.url,
        "WMSTUDIO_DEMO_PORT": str(port),
        "WMSTUDIO_STATE_DIR": str(tmp_path),
        "WMSTUDIO_APP_USERS": make_entry("ana", "pw-ana"),
    }
    log = (tmp_path / "demo.log").open("w")
    command = [sys.executable, "-m", "app.demo"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", timeout=90)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/gradio_api/info").status_code == 401
        refused = httpx.post(f"{url}/login", data={"username": "ana", "password": "nope"})
        assert refused.status_code == 400
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain ValueError without login
            Client(url, verbose=False)
        photo_file = tmp_path / "house.jpg"
        photo_file.write_bytes(encode(photo(640, 480), "JPEG"))
        client = Client(url, auth=("ana", "pw-ana"), verbose=False)
        _, _, raw = client.predict([handle_file(str(photo_file))], "boxes", 0.0, api_name="/analyse")
        assert raw[0]["image"] == {"width": 640, "height": 480}
    finally:
        process.terminate()
        process.wait(15)


def test_exposed_demo_without_logins_refuses_to_start(tmp_path):
    env = {
        **os.environ,
        "WMSTUDIO_API_HOST": "192.0.2.1",  # a documentation address: never bound, refused before
        "WMSTUDIO_DEMO_PORT": str(free_port()),
        "WMSTUDIO_STATE_DIR": str(tmp_path),
        "WMSTUDIO_APP_USERS": "",
    }
    command = [sys.executable, "-m", "app.demo"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "refusing to start the demo on 192.0.2.1" in result.stderr
    assert "WMSTUDIO_APP_USERS" in result.stderr and "Traceback" not in result.stderr
