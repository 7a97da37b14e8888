"""What every page shares: the context (settings, API client, chosen dataset) and safe helpers.

Pages never let an exception reach Streamlit: API and store failures become ``st.error``
messages through :func:`guarded`, because a reviewer cannot act on a traceback.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import streamlit as st
from PIL import Image, ImageDraw

from wmstudio.client import APIClientError, APIUnavailable, WatermarkClient
from wmstudio.data.manifest import Manifest
from wmstudio.registry import Registry
from wmstudio.settings import Settings

T = TypeVar("T")
BRAND_COLOURS = {"rumah123": "#e8412f", "99co": "#7b2cbf", "none": "#6c757d"}
THUMB_SIDE = 320


@dataclass
class Context:
    """Built once per rerun in ``dashboard.py`` and handed to the page being shown."""

    settings: Settings
    dataset: str | None
    api_ok: bool
    api_message: str
    model: dict  # the API's /v1/model answer ({} when the API is down)
    user: str = "local"  # the signed-in user (app/login.py): the reviewer recorded with decisions

    @cached_property
    def client(self) -> WatermarkClient:
        return WatermarkClient(self.settings.api_url, timeout=60.0)

    @cached_property
    def registry(self) -> Registry:
        """The working registry (seeded from the bundled champion); promotions also reach MLflow."""
        from wmstudio.mlflow_registry import tracked_registry

        return tracked_registry(self.settings)

    @property
    def dataset_dir(self) -> Path | None:
        return self.settings.datasets_dir / self.dataset if self.dataset else None

    @cached_property
    def manifest(self) -> Manifest | None:
        from app.dashboard_data import load_manifest

        return load_manifest(self.settings, self.dataset) if self.dataset else None


def api_error_text(exc: Exception) -> str:
    if isinstance(exc, APIUnavailable):
        return f"The detection API is not reachable. Start it with `wmstudio serve` (or `make run`). Details: {exc}"
    if isinstance(exc, APIClientError):
        return f"The API refused the request ({exc.status} {exc.code}): {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def guarded(action: Callable[[], T], what: str) -> T | None:
    """Run ``action``; on any failure show a message saying what failed and return None."""
    try:
        return action()
    except (APIClientError, APIUnavailable) as exc:
        st.error(f"Could not {what}. {api_error_text(exc)}")
    except Exception as exc:  # a page must stay usable whatever a helper raises
        st.error(f"Could not {what}: {type(exc).__name__}: {exc}")
    return None


def no_dataset_message() -> None:
    st.info(
        "No dataset yet. Ingest your photos with `wmstudio ingest PATH --name NAME` "
        "(folders, CSV, COCO, YOLO or a Label Studio export), then reload this page. "
        "The demo dataset is switched off here (`WMSTUDIO_DEMO_SOURCE=off`); remove that setting "
        "to get a generated one on the next start."
    )


@st.cache_data(show_spinner=False, max_entries=2000)
def thumbnail(path: str, side: int = THUMB_SIDE, mtime: float = 0.0) -> bytes:
    """A small JPEG of a photo (cached: grids redraw on every rerun)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        return buffer.getvalue()


def thumb(path: Path, side: int = THUMB_SIDE) -> bytes | None:
    """Thumbnail bytes, or None when the file is gone (the caption then says so)."""
    try:
        return thumbnail(str(path), side, path.stat().st_mtime)
    except OSError:
        return None


def draw_truth(path: Path, boxes: list[tuple[str, list[float]]], side: int = THUMB_SIDE) -> bytes | None:
    """A thumbnail with the ground-truth boxes drawn in the brand colour."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except OSError:
        return None
    scale = min(side / image.width, side / image.height, 1.0)
    image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    draw = ImageDraw.Draw(image)
    for brand, box in boxes:
        draw.rectangle([v * scale for v in box], outline=BRAND_COLOURS.get(brand, "#ffd400"), width=2)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def letterbox(data: bytes, ratio: float = 4 / 3, side: int = 480) -> bytes:
    """Pad a picture to one aspect ratio, so grids of portrait and landscape photos line up."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        image.thumbnail((side, int(side / ratio)))
        canvas = Image.new("RGB", (side, int(side / ratio)), (240, 242, 246))
        canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=88)
        return buffer.getvalue()
