"""Estimate the real Rumah123 watermark from several watermarked photos.

Following Dekel et al., CVPR 2017 ("On the Effectiveness of Visible Watermarks"): the same
mark stamped on many different photos is the only thing their gradients have in common, so the
per-pixel median of the gradients of aligned crops is the mark's gradient. Integrating it
(a Poisson solve) gives the mark's intensity up to a constant, which we turn into an alpha
matte. Crops are aligned by the annotated boxes and then refined by a small shift search
against the first estimate (the paper's chamfer-style alignment, simplified to translation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.fft import dctn, idctn

CANONICAL_SIZE = (400, 88)  # width, height of the mark in the template (aspect of the real mark)
MARGIN = 0.12  # fraction of the box added on each side so the mark's edges are inside the crop


def gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences (zero on the last column/row): what the median over photos is taken of."""
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :-1] = grey[:, 1:] - grey[:, :-1]
    gy[:-1, :] = grey[1:, :] - grey[:-1, :]
    return gx, gy


@dataclass(frozen=True)
class WatermarkTemplate:
    """Alpha matte of the mark (0..1, float32) in the canonical frame, box = inner region."""

    alpha: np.ndarray
    inner_box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the annotated mark in ``alpha``
    n_images: int

    def to_rgba(self) -> Image.Image:
        """The mark as a white RGBA layer whose alpha is the estimated matte (tight crop)."""
        x0, y0, x1, y1 = self.inner_box
        alpha = (np.clip(self.alpha[y0:y1, x0:x1], 0, 1) * 255).astype(np.uint8)
        rgba = Image.new("RGBA", (alpha.shape[1], alpha.shape[0]), (255, 255, 255, 0))
        rgba.putalpha(Image.fromarray(alpha))
        return rgba


def _crop(image: Image.Image, box: Sequence[float], shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Crop the box plus margin, resized to the canonical frame, as float grey levels."""
    x, y, w, h = box
    cw, ch = CANONICAL_SIZE
    mx, my = w * MARGIN, h * MARGIN
    sx, sy = shift[0] * w / cw, shift[1] * h / ch
    region = (x - mx + sx, y - my + sy, x + w + mx + sx, y + h + my + sy)
    out_w, out_h = round(cw * (1 + 2 * MARGIN)), round(ch * (1 + 2 * MARGIN))
    grey = image.convert("L")
    crop = grey.transform((out_w, out_h), Image.EXTENT, region, resample=Image.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


def poisson_reconstruct(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Integrate a gradient field (least squares, Neumann boundary) with a DCT solve."""
    div = np.zeros_like(gx)
    div[:, 0] = gx[:, 0]
    div[:, 1:] = gx[:, 1:] - gx[:, :-1]
    div[0, :] += gy[0, :]
    div[1:, :] += gy[1:, :] - gy[:-1, :]
    h, w = div.shape
    coeffs = dctn(div, type=2, norm="ortho")
    yy = 2 * np.cos(np.pi * np.arange(h) / h) - 2
    xx = 2 * np.cos(np.pi * np.arange(w) / w) - 2
    denom = yy[:, None] + xx[None, :]
    denom[0, 0] = 1.0
    solution = coeffs / denom
    solution[0, 0] = 0.0
    return idctn(solution, type=2, norm="ortho")


def _median_gradient_estimate(crops: list[np.ndarray]) -> np.ndarray:
    grads = [gradients(c) for c in crops]
    gx = np.median(np.stack([g[0] for g in grads]), axis=0)
    gy = np.median(np.stack([g[1] for g in grads]), axis=0)
    return poisson_reconstruct(gx, gy)


def _best_shift(image: Image.Image, box: Sequence[float], reference: np.ndarray, radius: int) -> tuple[int, int]:
    """The translation (canonical pixels) whose crop's gradients best match the reference."""
    ref_mag = np.hypot(*gradients(reference))
    best, best_score = (0, 0), -np.inf
    for dy in range(-radius, radius + 1, 2):
        for dx in range(-radius, radius + 1, 2):
            mag = np.hypot(*gradients(_crop(image, box, (dx, dy))))
            score = float((mag * ref_mag).sum() / (np.linalg.norm(mag) + 1e-6))
            if score > best_score:
                best, best_score = (dx, dy), score
    return best


def estimate_template(
    samples: Sequence[tuple[Image.Image, Sequence[float]]], align_radius: int = 8
) -> WatermarkTemplate:
    """Estimate the mark's alpha matte from (image, COCO box) pairs of the same brand.

    At least three photos are needed for the median to reject backgrounds; more is better.
    """
    if len(samples) < 3:
        raise ValueError("template estimation needs at least 3 watermarked photos")
    crops = [_crop(img, box) for img, box in samples]
    first = _median_gradient_estimate(crops)
    shifts = [_best_shift(img, box, first, align_radius) for img, box in samples]
    crops = [_crop(img, box, s) for (img, box), s in zip(samples, shifts, strict=True)]
    intensity = _median_gradient_estimate(crops)

    # The mark is lighter than what it covers: its positive excess over the local level is the
    # matte. Border pixels are background in the canonical frame, so they set the zero level.
    border = np.concatenate(
        [intensity[:4].ravel(), intensity[-4:].ravel(), intensity[:, :4].ravel(), intensity[:, -4:].ravel()]
    )
    excess = intensity - np.median(border)
    peak = np.percentile(excess, 99.5)
    alpha = np.clip(excess / max(peak, 1e-6), 0, 1)
    alpha[alpha < 0.2] = 0.0  # residual background texture
    cw, ch = CANONICAL_SIZE
    mx, my = round(cw * MARGIN), round(ch * MARGIN)
    return WatermarkTemplate(alpha.astype(np.float32), (mx, my, mx + cw, my + ch), len(samples))
