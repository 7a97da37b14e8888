"""Gradio drag-and-drop demo: a client of the API, never a second model server.

Drop one or more photos (or click an example) to see the overlay (boxes or heatmap), a table
of brands and scores, and the raw JSON the API returned.
"""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
from PIL import Image

from app.examples import example_photos
from wmstudio.client import APIClientError, APIUnavailable, WatermarkClient
from wmstudio.offline import apply_offline_env
from wmstudio.settings import get_settings

TABLE_HEADERS = ["file", "watermarked", "brand", "score", "box"]


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


def main() -> None:
    settings = get_settings()
    apply_offline_env(settings.state_dir)
    build_demo().launch(server_name=settings.api_host, server_port=settings.demo_port, show_error=True)


if __name__ == "__main__":
    main()
