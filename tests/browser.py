"""Headless Debian Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.components import missing_component

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator:
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        missing_component("Chromium", "Debian chromium is not installed (make system-deps installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def screenshot_is_not_blank(path: Path) -> bool:
    """True when the screenshot has real content (many distinct colours, not one flat fill)."""
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").resize((200, 150)).getcolors(maxcolors=200 * 150)
    return colours is not None and len(colours) > 50
