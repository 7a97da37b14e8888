"""Draw what the detector saw: boxes with labels and scores, or a heatmap of its candidates."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wmstudio.runtime.detector import Detection

BRAND_COLOURS = {"rumah123": (255, 64, 64), "99co": (40, 160, 255)}
DEFAULT_COLOUR = (255, 200, 0)
HEATMAP_GRID = 416  # px: the density grid's long side (the network's input scale)


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


def heatmap(
    image: Image.Image, candidates: list[Detection], alpha: float = 0.55, grid_side: int = HEATMAP_GRID
) -> Image.Image:
    """Score-weighted density of every candidate box, blended over the photo.

    Each candidate adds a soft ellipse of its box weighted by its score, so the map shows where
    the model sees watermark-like evidence, including below the operating threshold.

    The density is computed on a grid of at most ``grid_side`` pixels a side (the scale the model
    looked at: there is no finer evidence to show), each ellipse only over the window where it is
    visible, then scaled up and blended in 8-bit by Pillow. Work and memory are those of the
    displayed image, not of float grids the size of the photo.
    """
    width, height = image.size
    scale = min(1.0, grid_side / max(width, height, 1))
    grid_w, grid_h = max(1, round(width * scale)), max(1, round(height * scale))
    density = np.zeros((grid_h, grid_w), dtype=np.float32)
    for detection in candidates:
        x0, y0, x1, y1 = (v * scale for v in detection.box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx, sy = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
        # exp(-1.5 r^2) is below 1/1000 beyond r = 2.2 half-sizes: nothing visible is left out
        left, right = max(0, int(cx - 2.2 * sx)), min(grid_w, int(cx + 2.2 * sx) + 1)
        top, bottom = max(0, int(cy - 2.2 * sy)), min(grid_h, int(cy + 2.2 * sy) + 1)
        if left >= right or top >= bottom:
            continue
        xs = ((np.arange(left, right, dtype=np.float32) + 0.5 - cx) / sx) ** 2
        ys = ((np.arange(top, bottom, dtype=np.float32) + 0.5 - cy) / sy) ** 2
        density[top:bottom, left:right] += detection.score * np.exp(-(ys[:, None] + xs[None, :]) * 1.5)
    density = np.clip(density / max(float(density.max()), 1.0), 0, 1)
    # A perceptual colour map without importing matplotlib on the request path: black→red→yellow.
    red = np.clip(density * 2, 0, 1)
    green = np.clip(density * 2 - 1, 0, 1)
    colour = np.stack([red, green, np.zeros_like(density)], -1)
    small_colour = Image.fromarray((colour * 255).astype(np.uint8), "RGB")
    small_weight = Image.fromarray((alpha * density * 255).astype(np.uint8), "L")
    base = image.convert("RGB")
    colour_layer = small_colour.resize(base.size, Image.Resampling.BILINEAR)
    weight = small_weight.resize(base.size, Image.Resampling.BILINEAR)
    return Image.composite(colour_layer, base, weight)
