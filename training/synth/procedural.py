"""Procedural 'room' backgrounds, so a fresh clone can show real detections with no data at all.

``make run`` on a machine without the provided photos still needs example images for the demo
and a small dataset for the dashboard. These scenes (walls, floor, window, furniture blocks,
noise) are crude but photo-like enough for the detector's marks to be the salient thing.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def room_scene(width: int, height: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    wall = tuple(rng.randint(150, 235) for _ in range(3))
    floor = tuple(rng.randint(70, 160) for _ in range(3))
    image = Image.new("RGB", (width, height), wall)
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.55, 0.75))
    draw.rectangle((0, horizon, width, height), fill=floor)
    for _ in range(rng.randint(1, 2)):  # windows
        x0, y0 = rng.randint(0, width * 2 // 3), rng.randint(height // 10, horizon // 2)
        w, h = rng.randint(width // 8, width // 4), rng.randint(height // 8, height // 3)
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=(200, 225, 250), outline=(250, 250, 250), width=4)
    for _ in range(rng.randint(2, 4)):  # furniture
        x0 = rng.randint(0, width - width // 5)
        w, h = rng.randint(width // 8, width // 3), rng.randint(height // 10, height // 4)
        colour = tuple(rng.randint(20, 200) for _ in range(3))
        draw.rectangle((x0, horizon - h // 2, x0 + w, horizon + h // 2), fill=colour)
    array = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)
    ys = np.linspace(0.85, 1.1, height)[:, None, None]  # lighting falloff
    noise = np.random.default_rng(seed).normal(0, 6, array.shape)
    return Image.fromarray(np.clip(array * ys + noise, 0, 255).astype(np.uint8))


def write_scenes(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """Write ``count`` scenes as JPEGs (idempotent: existing files are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"scene_{seed}_{index:04d}.jpg"
        if not path.exists():
            width, height = size if index % 3 else (size[1], size[0] + size[0] // 4)
            room_scene(width, height, seed * 100_000 + index).save(path, quality=90)
        paths.append(path)
    return paths
