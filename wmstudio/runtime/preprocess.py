"""Letterbox pre-processing identical in geometry to Ultralytics' ``LetterBox(auto=False)``.

The image is scaled to fit the square input keeping its aspect ratio, centred, and padded
with grey 114; the same scale and offsets map the model's boxes back to original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How an original image was placed in the model input."""

    scale: float
    pad_x: int
    pad_y: int
    width: int  # original size
    height: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) x0,y0,x1,y1 boxes from input pixels to clipped original pixels."""
        out = boxes.astype(np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
        return out


def letterbox(image: Image.Image, size: int, margin: float = 0.0) -> tuple[np.ndarray, Letterbox]:
    """Return the NCHW float32 input tensor (0..1, RGB) and the placement.

    ``margin`` (a share of ``size`` on every side) shrinks the photo into a grey surround, so a
    mark at the photo's edge no longer sits at the input's edge, where the network sees padding
    instead of context. 0 is Ultralytics' own geometry.
    """
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"letterbox margin must be in [0, 0.5), got {margin}")
    width, height = image.size
    inner = size * (1 - 2 * margin)
    scale = min(inner / width, inner / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), Image.BILINEAR) if (new_w, new_h) != (width, height) else image
    pad_x = round((size - new_w) / 2 - 0.1)
    pad_y = round((size - new_h) / 2 - 0.1)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(resized.convert("RGB"))
    tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return np.ascontiguousarray(tensor), Letterbox(scale, pad_x, pad_y, width, height)
