"""Gradio drag-and-drop demo: a client of the API, never a second model server.

Drop one or more photos (or click an example) to see the overlay (boxes or heatmap), a table
of brands and scores, and the raw JSON the API returned.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import gradio as gr
from PIL import Image

from app.examples import example_photos
from wmstudio.client import APIClientError, APIUnavailable, WatermarkClient
from wmstudio.exposure import InsecureDeployment, require_protection
from wmstudio.offline import apply_offline_env
from wmstudio.passwords import PasswordEntryError, parse_users, verify
from wmstudio.settings import Settings, get_settings

TABLE_HEADERS = ["file", "watermarked", "brand", "score", "box"]
FAILURE_DELAY = 1.0  # seconds a failed sign-in costs (without blocking other users)


def analyse(files: list[str] | None, mode: str, min_score: float, client: WatermarkClient) -> tuple:
    """Run every dropped photo through the API; errors become table rows, not exceptions."""
    if not files:
        return [], [], {"message": "drop one or more photos"}
    gallery, rows, raw = [], [], []
    for file in files:
        path = Path(file)
        try:
            result = client.detect(path, min_score=min_score)
            overlay = Image.open(io.BytesIO(client.overlay(path, mode=mode, min_score=min_score)))
        except APIClientError as exc:
            rows.append([path.name, "error", exc.code, None, exc.message])
            raw.append({"file": path.name, "error": {"code": exc.code, "message": exc.message}})
            continue
        except APIUnavailable as exc:
            raise gr.Error(f"The detection API is not reachable: {exc}") from exc
        gallery.append((overlay, f"{path.name}: {'watermarked' if result['watermarked'] else 'clean'}"))
        raw.append({"file": path.name, **result})
        if not result["detections"]:
            rows.append([path.name, "no", "", None, ""])
        for detection in result["detections"]:
            rows.append([path.name, "yes", detection["brand"], detection["score"], str(detection["box"])])
    return gallery, rows, raw


def build_demo(client: WatermarkClient | None = None) -> gr.Blocks:
    client = client or WatermarkClient()
    try:
        threshold = float(client.model()["threshold"])
    except (APIClientError, APIUnavailable, KeyError):
        threshold = 0.5
    examples = [[str(p)] for p in example_photos()]

    with gr.Blocks(title="Watermark Studio demo") as demo:
        gr.Markdown(
            "# Watermark Studio\nDrop listing photos to find **Rumah123** and **99.co** watermarks. "
            f"The API at `{client.base_url}` does the work."
        )
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label="Photos", file_count="multiple", file_types=["image"], elem_id="photos")
                mode = gr.Radio(["boxes", "heatmap"], value="boxes", label="Overlay")
                min_score = gr.Slider(0.0, 1.0, value=threshold, step=0.01, label="Minimum score")
                run = gr.Button("Detect", variant="primary", elem_id="detect")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Overlay", columns=2, height=420, elem_id="overlay")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Detections", elem_id="table")
                raw = gr.JSON(label="API response")
        if examples:
            gr.Examples(examples=examples, inputs=[files], label="Examples (click one)")

        def _run(f: list[str] | None, m: str, s: float) -> tuple:
            return analyse(f, m, s, client)

        run.click(_run, [files, mode, min_score], [gallery, table, raw], api_name="analyse")
        files.upload(_run, [files, mode, min_score], [gallery, table, raw])
    return demo


def login_check(settings: Settings) -> Callable[[str, str], Awaitable[bool]] | None:
    """Gradio's ``auth`` for the configured users, or None where the demo may stay open.

    The demo sends every photo to the API with the service's key, so beyond loopback it is
    nobody's without a login: with no users configured it refuses to start (``InsecureDeployment``)
    unless ``WMSTUDIO_ALLOW_INSECURE`` is set.
    """
    users = parse_users(settings.app_users)
    if not users:
        require_protection("demo", settings.api_host, False, settings.allow_insecure, "WMSTUDIO_APP_USERS")
        return None

    async def check(name: str, password: str) -> bool:
        # scrypt is deliberately slow: off the event loop, so other users are not held up
        if await asyncio.to_thread(verify, users, name, password):
            return True
        await asyncio.sleep(FAILURE_DELAY)
        return False

    return check


def main() -> None:
    settings = get_settings()
    apply_offline_env(settings.state_dir)
    try:
        auth = login_check(settings)
    except (InsecureDeployment, PasswordEntryError) as exc:
        raise SystemExit(f"error: {exc}") from None
    build_demo().launch(
        server_name=settings.api_host,
        server_port=settings.demo_port,
        show_error=True,
        auth=auth,
        auth_message="Sign in with your Watermark Studio login.",
    )


if __name__ == "__main__":
    main()
