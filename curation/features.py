"""Compact, fast image descriptors (about 60 numbers) for outliers and label classifiers.

No pretrained network is needed (nothing to download, nothing licence-encumbered): colour
statistics, a saturation-weighted hue histogram, edge density on a 4×4 grid and per
orientation, shape, and the brightness/edges of the centre band where Rumah123 places its
white semi-transparent mark. Images are decoded with JPEG draft mode, so a large photo costs a
few milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 64


def image_features(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        width, height = image.size
        image.draft("RGB", (SIDE * 4, SIDE * 4))
        small = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    gx[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    gy[1:-1, :] = gray[2:, :] - gray[:-2, :]
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)

    hue_hist = np.histogram(hsv[..., 0], bins=8, range=(0, 1), weights=hsv[..., 1])[0]
    hue_hist = hue_hist / max(float(hue_hist.sum()), 1e-6)
    sat_hist = np.histogram(hsv[..., 1], bins=4, range=(0, 1))[0] / gray.size
    val_hist = np.histogram(hsv[..., 2], bins=4, range=(0, 1))[0] / gray.size
    orientation = np.histogram(angle, bins=4, range=(0, np.pi), weights=magnitude)[0] / gray.size
    grid = magnitude.reshape(4, SIDE // 4, 4, SIDE // 4).mean(axis=(1, 3)).ravel()
    band = slice(int(SIDE * 0.35), int(SIDE * 0.65))
    centre = [float((gray[band] > 0.8).mean()), float(magnitude[band].mean()), float(gray[band].std())]
    shape = [np.log(width / height), np.log(width * height) / 10.0]
    parts = [
        rgb.reshape(-1, 3).mean(axis=0),
        rgb.reshape(-1, 3).std(axis=0),
        hue_hist,
        sat_hist,
        val_hist,
        orientation,
        grid,
        centre,
        shape,
        [float(magnitude.mean()), float((magnitude > 0.1).mean())],
    ]
    return np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])


def feature_matrix(paths: list[Path]) -> np.ndarray:
    return np.stack([image_features(path) for path in paths]) if paths else np.zeros((0, 0), dtype=np.float32)
