"""The API over real HTTP: every route, auth, bad inputs, batch, overlay, metrics, hot reload."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import (
    animated_gif,
    bomb_png,
    cmyk_jpeg,
    exif_rotated_jpeg,
    jpeg_bytes,
    palette_png,
    png16,
    rgba_png,
    truncated_jpeg,
    webp_bytes,
)
from wmstudio.registry import Registry
from wmstudio.runtime.second_view import SecondView
from wmstudio.runtime.tile_view import TileView

pytestmark = [pytest.mark.integration, pytest.mark.model]

GOOD_INPUTS = {
    "cmyk.jpg": (cmyk_jpeg, (640, 480)),
    "sixteen.png": (png16, (320, 240)),
    "palette.png": (palette_png, (640, 480)),
    "rgba.png": (rgba_png, (640, 480)),
    "rotated.jpg": (exif_rotated_jpeg, (480, 640)),
    "animated.gif": (animated_gif, (200, 150)),
    "photo.webp": (webp_bytes, (640, 480)),
}

BAD_INPUTS = {
    "truncated.jpg": (truncated_jpeg, 422, "truncated_image"),
    "notes.jpg": (lambda: b"this is a text file, not a photo\n" * 10, 415, "not_an_image"),
    "empty.jpg": (lambda: b"", 400, "empty_file"),
    "huge.png": (bomb_png, 413, "too_many_pixels"),
    "doc.pdf": (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 415, "not_an_image"),
}


def post_file(url: str, name: str, data: bytes, **kwargs) -> httpx.Response:
    return httpx.post(url, files={"file": (name, data, "application/octet-stream")}, timeout=30, **kwargs)


def test_health_ready_and_model(api_server):
    assert httpx.get(f"{api_server.url}/healthz").json() == {"status": "ok", "model_version": None}
    ready = httpx.get(f"{api_server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    model = httpx.get(f"{api_server.url}/v1/model").json()
    assert model["classes"] == ["rumah123", "99co"]
    assert 0 < model["threshold"] < 1
    assert model["input_sizes"][0] == model["imgsz"] == model["card"]["imgsz"]
    assert model["input_margin"] == model["card"].get("input_margin", 0.0)
    views = SecondView.from_card(model["card"])
    assert model["second_view"] == (views.to_card() if views else None)
    tiles = TileView.from_card(model["card"])
    assert model["tile_view"] == (tiles.to_card() if tiles else None)
    assert model["version"] == ready.json()["model_version"]


def test_detect_schema_and_boxes_in_original_pixels(api_server):
    response = post_file(f"{api_server.url}/v1/detect", "photo.jpg", jpeg_bytes(1080, 810), params={"min_score": 0.0})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"watermarked", "detections", "image", "model_version", "timing_ms"}
    assert body["image"] == {"width": 1080, "height": 810}
    assert body["watermarked"] == bool(body["detections"])
    for detection in body["detections"]:
        x0, y0, x1, y1 = detection["box"]
        assert 0 <= x0 <= x1 <= 1080 and 0 <= y0 <= y1 <= 810
        assert detection["brand"] in {"rumah123", "99co"}
    assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0


@pytest.mark.parametrize("name", sorted(GOOD_INPUTS))
def test_odd_but_valid_images_are_accepted(api_server, name):
    make, size = GOOD_INPUTS[name]
    response = post_file(f"{api_server.url}/v1/detect", name, make())
    assert response.status_code == 200, response.text
    assert (response.json()["image"]["width"], response.json()["image"]["height"]) == size


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_get_documented_errors(api_server, name):
    make, status, code = BAD_INPUTS[name]
    response = post_file(f"{api_server.url}/v1/detect", name, make())
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_missing_file_field_and_bad_query(api_server):
    response = httpx.post(f"{api_server.url}/v1/detect", data={"other": "x"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    response = post_file(f"{api_server.url}/v1/detect", "a.jpg", jpeg_bytes(), params={"min_score": 3})
    assert response.status_code == 422 and "min_score" in response.json()["error"]["message"]


def test_over_size_limit_is_413(api_server):
    # a file just over the per-file limit, in a body the route still takes: refused after the read
    over_file = b"\xff\xd8" + b"0" * (20 * 1024 * 1024)
    response = post_file(f"{api_server.url}/v1/detect", "big.jpg", over_file)
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    # a body over the route's limit: refused from its Content-Length, before the multipart parser
    big = b"\xff\xd8" + b"0" * (21 * 1024 * 1024)
    response = post_file(f"{api_server.url}/v1/detect", "big.jpg", big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_batch_keeps_order_and_isolates_bad_files(api_server):
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("b.jpg", b"not an image", "image/jpeg")),
        ("files", ("c.png", palette_png(), "image/png")),
    ]
    response = httpx.post(f"{api_server.url}/v1/detect/batch", files=files, timeout=30)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["file"] for r in results] == ["a.jpg", "b.jpg", "c.png"]
    assert results[1]["error"]["code"] == "not_an_image"
    assert results[0]["error"] is None and results[2]["image"] == {"width": 640, "height": 480}


def test_batch_over_maximum_is_refused(api_server):
    files = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(17)]
    response = httpx.post(f"{api_server.url}/v1/detect/batch", files=files, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_files"


@pytest.mark.parametrize("mode", ["boxes", "heatmap"])
def test_overlay_returns_png_of_original_size(api_server, mode):
    response = httpx.post(
        f"{api_server.url}/v1/overlay",
        params={"mode": mode, "min_score": 0.0},
        files={"file": ("p.jpg", jpeg_bytes(800, 600), "image/jpeg")},
        timeout=30,
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (800, 600)
    bad = httpx.post(
        f"{api_server.url}/v1/overlay", params={"mode": "sepia"}, files={"file": ("p.jpg", jpeg_bytes(), "image/jpeg")}
    )
    assert bad.status_code == 422


def test_metrics_count_requests_and_images(api_server):
    post_file(f"{api_server.url}/v1/detect", "a.jpg", jpeg_bytes())
    text = httpx.get(f"{api_server.url}/metrics").text
    assert 'wmstudio_requests_total{method="POST",route="/v1/detect",status="200"}' in text
    assert "wmstudio_request_latency_seconds_bucket" in text
    assert "wmstudio_images_processed_total" in text
    assert 'wmstudio_image_errors_total{code="' in text or "wmstudio_image_errors_total" in text
    assert "wmstudio_model_info{version=" in text
    assert "wmstudio_watermark_rate_drift" in text and "wmstudio_score_psi" in text


def test_unknown_route_is_json_404(api_server):
    response = httpx.get(f"{api_server.url}/v2/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_openapi_documents_every_route_with_examples(api_server):
    spec = httpx.get(f"{api_server.url}/openapi.json").json()
    for path in ("/v1/detect", "/v1/detect/batch", "/v1/overlay", "/v1/model", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert "example" in schemas["DetectResponse"] and "example" in schemas["BatchResponse"]


def test_auth_required_when_keys_configured(secured_server):
    url = f"{secured_server.url}/v1/detect"
    assert post_file(url, "a.jpg", jpeg_bytes()).status_code == 401
    wrong = post_file(url, "a.jpg", jpeg_bytes(), headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert post_file(url, "a.jpg", jpeg_bytes(), headers={"X-API-Key": "k-two"}).status_code == 200
    assert httpx.get(f"{secured_server.url}/healthz").status_code == 200  # probes stay open


def test_client_sends_the_configured_key(secured_server, monkeypatch):
    from wmstudio.client import APIClientError, WatermarkClient
    from wmstudio.settings import get_settings

    monkeypatch.setenv("WMSTUDIO_CLIENT_API_KEY", "k-one")
    get_settings.cache_clear()
    try:
        with WatermarkClient(secured_server.url) as client:
            assert client.detect(jpeg_bytes(), "a.jpg")["image"] == {"width": 640, "height": 480}
        with WatermarkClient(secured_server.url, api_key="") as anonymous, pytest.raises(APIClientError) as info:
            anonymous.detect(jpeg_bytes(), "a.jpg")
        assert info.value.status == 401 and info.value.code == "unauthorized"
    finally:
        get_settings.cache_clear()


def test_hot_reload_on_promotion(api_server, registry_copy: Path):
    registry = Registry(registry_copy)
    current = registry.champion()
    new_version = registry.next_version()
    shutil.copytree(registry.path(current), registry_copy / new_version)
    card = json.loads((registry_copy / new_version / "model_card.json").read_text())
    card["version"] = new_version
    (registry_copy / new_version / "model_card.json").write_text(json.dumps(card))
    # requests keep flowing while the promotion happens
    registry.promote(new_version, "test promotion")
    deadline = time.monotonic() + 15
    seen = set()
    while time.monotonic() < deadline:
        response = post_file(f"{api_server.url}/v1/detect", "a.jpg", jpeg_bytes(320, 240))
        assert response.status_code == 200
        seen.add(response.json()["model_version"])
        if new_version in seen:
            break
        time.sleep(0.2)
    assert new_version in seen
    assert httpx.get(f"{api_server.url}/v1/model").json()["version"] == new_version
    reload = httpx.post(f"{api_server.url}/v1/model/reload").json()
    assert reload == {"changed": False, "version": new_version}
    registry.promote(current, "restore")
    assert httpx.post(f"{api_server.url}/v1/model/reload").json()["version"] == current
