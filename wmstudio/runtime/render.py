"""Draw what the detector saw: boxes with labels and scores, or a heatmap of its candidates."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wmstudio.runtime.detector import Detection

BRAND_COLOURS = {"rumah123": (255, 64, 64), "99co": (40, 160, 255)}
DEFAULT_COLOUR = (255, 200, 0)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        import matplotlib

        path = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans-Bold.ttf"
        return ImageFont.truetype(path, size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, detections: list[Detection]) -> Image.Image:
    """A copy of the image with each detection's box, brand and score."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(min(canvas.size) / 250))
    font = _font(max(12, round(min(canvas.size) / 30)))
    for detection in detections:
        colour = BRAND_COLOURS.get(detection.brand, DEFAULT_COLOUR)
        x0, y0, x1, y1 = detection.box
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        label = f"{detection.brand} {detection.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        ty = y0 - (bottom - top) - 2 * line if y0 - (bottom - top) - 2 * line >= 0 else y1 + line
        draw.rectangle((x0, ty, x0 + right - left + 2 * line, ty + bottom - top + 2 * line), fill=colour)
        draw.text((x0 + line, ty + line - top), label, fill=(255, 255, 255), font=font)
    return canvas


def heatmap(image: Image.Image, candidates: list[Detection], alpha: float = 0.55) -> Image.Image:
    """Score-weighted density of every candidate box, blended over the photo.

    Each candidate adds a soft ellipse of its box weighted by its score, so the map shows where
    the model sees watermark-like evidence, including below the operating threshold.
    """
    width, height = image.size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    density = np.zeros((height, width), dtype=np.float32)
    for detection in candidates:
        x0, y0, x1, y1 = detection.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx, sy = max((x1 - x0) / 2, 1.0), max((y1 - y0) / 2, 1.0)
        density += detection.score * np.exp(-(((xs - cx) / sx) ** 2 + ((ys - cy) / sy) ** 2) * 1.5)
    density = np.clip(density / max(float(density.max()), 1.0), 0, 1)
    # A perceptual colour map without importing matplotlib on the request path: black→red→yellow.
    colour = np.stack([np.clip(density * 2, 0, 1), np.clip(density * 2 - 1, 0, 1), np.zeros_like(density)], -1)
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    weight = (alpha * density)[..., None]
    blended = base * (1 - weight) + colour * weight
    return Image.fromarray((blended * 255).astype(np.uint8))
