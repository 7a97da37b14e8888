"""A second opinion for a brand whose real mark always sits at one place: a template check.

Rumah123 stamps the same white, semi-transparent wordmark on its listing photos, centred and 0.105
of the image height (13 of the 14 labelled photos: centre within 0.5 %, height 0.105–0.106; the
14th, a narrow photo, has a smaller mark slightly left of centre). Faint marks on busy walls are
exactly what a small detector trained from scratch misses, yet at that one spot the photo's
gradients line up with the gradients of the mark's matte, estimated from train photos as in Dekel et
al. (CVPR 2017). Nothing else in a photo does: on the real train + val photos, decoded as the API
decodes them, marked photos correlate at 0.23–0.59 (one off-centre photo at 0.05 is the exception)
and unmarked ones, other agencies' logos included, at most 0.095 (``training.mark_checks`` logs
these figures at every release).

The check is one small NumPy computation (a few milliseconds, no torch) on the decoded image. It
only ever *adds* evidence: when the correlation passes its calibrated threshold, the candidates
on that spot give way to one detection of the brand, with the check's aligned box and the higher
of the check's score and the brand's best candidate there. Below the threshold nothing changes, so
the detector alone still decides for marks anywhere else, at other sizes, and for brands
without a placement. The matte, placement and threshold travel with the model version
(``model_card.json`` → ``mark_checks``), so a version is judged and served as one unit.

A fired check is a decision, not a hint: its threshold is the cut that separates marked from
unmarked real photos, so its score starts at ``DECISIVE_SCORE``, at or above every operating
threshold a release can choose (``training.evaluate.THRESHOLD_GRID`` stops there). Until 3
December a check that barely fired scored 0.5, under every operating threshold, so a faint real
mark it had found could still be dropped (REPORT §3, v32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TEMPLATE_HEIGHT = 44  # px: the matte is compared at this height (photos are decoded near 320 px)
SCALES = (0.95, 1.0, 1.05)  # relative to the placement's height
SHIFT = 4  # px (at TEMPLATE_HEIGHT) searched each way around the placement
SCORE_SPREAD = 4.0  # threshold / spread: how fast the score climbs above the threshold
DECISIVE_SCORE = 0.95  # a fired check scores at least this: no operating threshold lies above it


@dataclass(frozen=True)
class Placement:
    """Where the brand puts its mark, as fractions of the image (learnt from labelled boxes)."""

    centre_x: float
    centre_y: float
    height: float  # mark height / image height
    aspect: float  # mark width / mark height
    max_width: float  # mark width / image width, at most (narrow photos shrink the mark)

    def box(self, width: int, height: int, scale: float = 1.0) -> tuple[float, float, float, float]:
        mark_h = self.height * height * scale
        mark_w = self.aspect * mark_h
        if mark_w > self.max_width * width * scale:
            mark_w = self.max_width * width * scale
            mark_h = mark_w / self.aspect
        cx, cy = self.centre_x * width, self.centre_y * height
        return (cx - mark_w / 2, cy - mark_h / 2, cx + mark_w / 2, cy + mark_h / 2)

    @classmethod
    def from_boxes(cls, boxes: Sequence[tuple[tuple[float, float, float, float], int, int]]) -> Placement:
        """Median centre, height and aspect of ``(box, image width, image height)`` examples."""
        if not boxes:
            raise ValueError("a placement needs at least one labelled box")
        cx = [(b[0] + b[2]) / 2 / w for b, w, _ in boxes]
        cy = [(b[1] + b[3]) / 2 / h for b, _, h in boxes]
        heights = [(b[3] - b[1]) / h for b, _, h in boxes]
        aspects = [(b[2] - b[0]) / max(b[3] - b[1], 1e-6) for b, _, _ in boxes]
        widths = [(b[2] - b[0]) / w for b, w, _ in boxes]
        return cls(
            float(np.median(cx)),
            float(np.median(cy)),
            float(np.median(heights)),
            float(np.median(aspects)),
            float(max(widths)),
        )


def gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences (zero on the last column/row): the estimate and the check share them."""
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :-1] = grey[:, 1:] - grey[:, :-1]
    gy[:-1, :] = grey[1:, :] - grey[:-1, :]
    return gx, gy


@dataclass
class MarkCheck:
    """The brand's matte (0..1), where it is placed, and the correlation at which the check fires."""

    brand: str
    matte: np.ndarray
    placement: Placement
    threshold: float

    def __post_init__(self) -> None:
        height = TEMPLATE_HEIGHT
        width = max(8, round(height * self.matte.shape[1] / self.matte.shape[0]))
        small = Image.fromarray((np.clip(self.matte, 0, 1) * 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BOX
        )
        self._size = (width, height)
        self._template = gradients(np.asarray(small, dtype=np.float32))
        self._template_norm = float(np.sqrt((self._template[0] ** 2 + self._template[1] ** 2).sum())) + 1e-6

    def correlation(self, image: Image.Image) -> tuple[float, tuple[float, float, float, float]]:
        """Best normalised gradient correlation around the placement, and the box where it is."""
        grey = image.convert("L")
        width, height = self._size
        pad_x, pad_y = SHIFT / width, SHIFT / height  # margin as a fraction of the mark box
        best, best_box = -1.0, self.placement.box(image.width, image.height)
        for scale in SCALES:
            x0, y0, x1, y1 = self.placement.box(image.width, image.height, scale)
            mark_w, mark_h = x1 - x0, y1 - y0
            region = (x0 - pad_x * mark_w, y0 - pad_y * mark_h, x1 + pad_x * mark_w, y1 + pad_y * mark_h)
            crop = grey.transform(
                (width + 2 * SHIFT, height + 2 * SHIFT), Image.Transform.EXTENT, region, Image.Resampling.BILINEAR
            )
            gx, gy = gradients(np.asarray(crop, dtype=np.float32))
            for dy in range(0, 2 * SHIFT + 1):
                for dx in range(0, 2 * SHIFT + 1, 2):
                    wx, wy = gx[dy : dy + height, dx : dx + width], gy[dy : dy + height, dx : dx + width]
                    norm = math.sqrt(float((wx * wx).sum() + (wy * wy).sum())) + 1e-6
                    value = float((wx * self._template[0]).sum() + (wy * self._template[1]).sum())
                    value /= norm * self._template_norm
                    if value > best:
                        ox, oy = (dx - SHIFT) * mark_w / width, (dy - SHIFT) * mark_h / height
                        best, best_box = value, (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
        return best, best_box

    def score(self, correlation: float) -> float:
        """A detection score for a correlation at or above the threshold: ``DECISIVE_SCORE`` there,
        → 1 above (all but 1 at twice the threshold), so stronger evidence still ranks higher."""
        spread = self.threshold / SCORE_SPREAD
        excess = max(correlation - self.threshold, 0.0) / max(spread, 1e-6)
        return DECISIVE_SCORE + (1.0 - DECISIVE_SCORE) * math.tanh(excess)

    def save_matte(self, path: Path) -> None:
        Image.fromarray((np.clip(self.matte, 0, 1) * 255).astype(np.uint8)).save(path)

    def to_card(self, matte_file: str) -> dict:
        return {
            "brand": self.brand,
            "matte": matte_file,
            "placement": asdict(self.placement),
            "threshold": round(self.threshold, 4),
        }

    @classmethod
    def from_card(cls, folder: Path, entry: dict) -> MarkCheck:
        with Image.open(folder / entry["matte"]) as matte_image:
            alpha = matte_image.getchannel("A") if matte_image.mode == "RGBA" else matte_image.convert("L")
            matte = np.asarray(alpha, dtype=np.float32) / 255.0
        return cls(entry["brand"], matte, Placement(**entry["placement"]), float(entry["threshold"]))


def calibrate_threshold(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The cut with the best F1 on labelled photos, placed mid-way in the gap it leaves.

    Mid-gap rather than just above the highest negative: both sets are small, and the margin on
    each side is the check's only protection against the photos it has not seen.
    """
    if not positives:
        raise ValueError("calibrating a mark check needs at least one marked photo")
    values = sorted({0.0} | set(positives) | set(negatives))
    best_f1, best_cut = -1.0, values[0]
    for cut in values:  # the check fires above ``cut``
        tp = sum(p > cut for p in positives)
        fp = sum(n > cut for n in negatives)
        fn = len(positives) - tp
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        if f1 > best_f1:
            best_f1, best_cut = f1, cut
    above = [v for v in values if v > best_cut]
    return (best_cut + min(above)) / 2 if above else best_cut
