"""Composite marks onto clean photos with exact boxes: the synthetic training data.

Each generated photo records every box it drew, computed from the mark's own alpha after
placement and clipping, so labels are exact by construction. The generator is seeded: the
same seed and inputs give byte-identical images.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from training.synth.fonts import fonts_for
from training.synth.marks import (
    BRAND_RENDERERS,
    ENDING_LOOKALIKE_NEGATIVES,
    HARD_NEGATIVE_TEXTS,
    LONG_WORDMARK_SHARE,
    RenderedMark,
    negative_texts_without,
    render_other,
)
from training.synth.variation import P_LONG_WORDMARK, MarkVariation

MAX_SIDE = 640  # synthetic photos are stored at most this large: training runs at 320 px
VISIBLE_FRACTION = 0.4  # a tiled mark cut by the border is labelled only if this much shows
MIN_CONTRAST = 12  # grey levels: a mark whose strongest pixels change less than this is invisible

BRAND_COLOURS = {"rumah123": (232, 63, 50), "99co": (225, 45, 60), "other": (30, 90, 200)}
# SynthConfig fields whose ablations have been run, and the folder tag their sets already carry.
ABLATION_FOLDER_TAGS = {"vary_glyphs": "plain", "lookalike_negatives": "nolookalike"}


@dataclass
class SynthConfig:
    """Mix and ranges of the generator (documented in the README's synthesis section)."""

    p_rumah123: float = 0.35
    p_99co: float = 0.35
    p_other_with_brand: float = 0.35
    p_other_without_brand: float = 0.75
    p_template: float = 0.5  # share of Rumah123 marks drawn from the estimated real template
    opacity: tuple[float, float] = (0.25, 0.9)
    placement_weights: dict[str, float] = field(
        default_factory=lambda: {"centre": 0.45, "corner": 0.2, "anywhere": 0.25, "tiled": 0.1}
    )
    jpeg_quality: tuple[int, int] = (35, 95)
    vary_glyphs: bool = True  # train split only: see training.synth.variation
    # Train split only; off is the ablation of marks.ENDING_LOOKALIKE_NEGATIVES.
    lookalike_negatives: bool = True

    def changes(self) -> dict[str, object]:
        """The fields that differ from the default generator, in JSON types.

        A set drawn with them is a different data set: they go into its cache stamp and name
        its folder, so an ablation can never overwrite (or be mistaken for) the default set.
        """
        default = asdict(SynthConfig())
        return json.loads(json.dumps({k: v for k, v in asdict(self).items() if v != default[k]}))

    def folder_suffix(self) -> str:
        """``-plain`` / ``-nolookalike`` for the two named ablations, a short hash for any other change."""
        changes = self.changes()
        tags = [tag for name, tag in ABLATION_FOLDER_TAGS.items() if name in changes]
        rest = {name: value for name, value in changes.items() if name not in ABLATION_FOLDER_TAGS}
        if rest:
            tags.append(hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:8])
        return "".join(f"-{tag}" for tag in tags)


@dataclass(frozen=True)
class DrawnBox:
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class SynthImage:
    image_bytes: bytes
    width: int
    height: int
    boxes: tuple[DrawnBox, ...]
    background: str
    other_marks: int = 0  # hard-negative marks drawn (other agencies, phone numbers, signs)
    # Brand marks drawn but left unlabelled: "partial" (a tiled copy cut off by the border) or
    # "invisible" (under MIN_CONTRAST). Kept so that checks can account for every drawn pixel.
    unlabelled: tuple[DrawnBox, ...] = ()


def _colour(label: str, rng: random.Random) -> tuple[int, int, int]:
    pick = rng.random()
    if pick < 0.7:
        grey = rng.randint(225, 255)
        return (grey, grey, grey)
    if pick < 0.8:
        grey = rng.randint(0, 50)
        return (grey, grey, grey)
    if pick < 0.9:
        return BRAND_COLOURS[label]
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def _style(mark: Image.Image, label: str, rng: random.Random, opacity: float) -> Image.Image:
    """Colour, opacity, optional blur and drop shadow applied to a white coverage layer."""
    alpha = np.asarray(mark.getchannel("A"), dtype=np.float32) / 255.0 * opacity
    colour = np.array(_colour(label, rng), dtype=np.float32)
    rgba = np.zeros((*alpha.shape, 4), dtype=np.float32)
    rgba[..., :3] = colour
    rgba[..., 3] = alpha
    layer = Image.fromarray((rgba * [1, 1, 1, 255]).clip(0, 255).astype(np.uint8), "RGBA")
    if rng.random() < 0.15:  # soft shadow under the mark, as many portals add
        pad = 4
        shadow_alpha = Image.fromarray((alpha * 255 * 0.6).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
        canvas = Image.new("RGBA", (layer.width + pad, layer.height + pad), (0, 0, 0, 0))
        shadow = Image.new("RGBA", shadow_alpha.size, (0, 0, 0, 255))
        shadow.putalpha(shadow_alpha)
        canvas.alpha_composite(shadow, (2, 2))
        canvas.alpha_composite(layer, (0, 0))
        layer = canvas
    if rng.random() < 0.3:
        layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    return layer


def _fit_background(path: Path) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return image


def _mark_height(placement: str, image_h: int, rng: random.Random) -> int:
    if placement == "centre":
        return int(image_h * rng.uniform(0.06, 0.14))
    return int(image_h * rng.uniform(0.035, 0.09))


def _resize_to_height(mark: Image.Image, height: int, rng: random.Random, max_width: int) -> Image.Image:
    aspect = mark.width / mark.height * rng.uniform(0.92, 1.08)
    width = max(4, int(height * aspect))
    if width > max_width:
        height = max(4, int(height * max_width / width))
        width = max_width
    return mark.resize((width, max(4, height)), Image.LANCZOS)


def _positions(
    placement: str, size: tuple[int, int], mark: tuple[int, int], rng: random.Random
) -> list[tuple[int, int]]:
    (W, H), (w, h) = size, mark
    if placement == "centre":
        return [(int((W - w) / 2 + rng.uniform(-0.03, 0.03) * W), int((H - h) / 2 + rng.uniform(-0.05, 0.05) * H))]
    if placement == "corner":
        margin = int(min(W, H) * rng.uniform(0.01, 0.05))
        xs = (margin, W - w - margin)
        ys = (margin, H - h - margin)
        return [(rng.choice(xs), rng.choice(ys))]
    if placement == "anywhere":
        return [(rng.randint(0, max(0, W - w)), rng.randint(0, max(0, H - h)))]
    # tiled: a grid of repeats, offset so that some are cut at the borders
    step_x, step_y = int(w * rng.uniform(1.3, 2.0)), int(h * rng.uniform(2.5, 4.0))
    off_x, off_y = rng.randint(-w // 2, 0), rng.randint(-h // 2, 0)
    return [(x, y) for y in range(off_y, H, step_y) for x in range(off_x + (y // step_y % 2) * step_x // 2, W, step_x)]


def _paste(canvas: Image.Image, layer: Image.Image, xy: tuple[int, int], label: str) -> DrawnBox | None:
    """Alpha-composite the layer and return the exact visible box of what was drawn."""
    canvas_rgba = canvas if canvas.mode == "RGBA" else canvas.convert("RGBA")
    before = np.asarray(canvas, dtype=np.int16)
    alpha = np.asarray(layer.getchannel("A")) > 8
    ys, xs = np.nonzero(alpha)
    if len(xs) == 0:
        return None
    x0, y0 = xy[0] + xs.min(), xy[1] + ys.min()
    x1, y1 = xy[0] + xs.max() + 1, xy[1] + ys.max() + 1
    full_area = (x1 - x0) * (y1 - y0)
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(canvas.width, x1), min(canvas.height, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    canvas_rgba.alpha_composite(layer, dest=(max(0, xy[0]), max(0, xy[1])), source=(max(0, -xy[0]), max(0, -xy[1])))
    canvas.paste(canvas_rgba.convert("RGB"))
    change = np.abs(np.asarray(canvas, dtype=np.int16) - before).max(axis=2)[cy0:cy1, cx0:cx1]
    if np.percentile(change, 99) < MIN_CONTRAST:
        # Same colour as what it covers: nobody can see it, so it must not be labelled a mark.
        return DrawnBox("invisible", (float(cx0), float(cy0), float(cx1), float(cy1)))
    if (cx1 - cx0) * (cy1 - cy0) < VISIBLE_FRACTION * full_area:
        return DrawnBox("partial", (float(cx0), float(cy0), float(cx1), float(cy1)))
    return DrawnBox(label, (float(cx0), float(cy0), float(cx1), float(cy1)))


class SyntheticGenerator:
    """Draws brand marks and hard negatives on backgrounds; seeded and reproducible."""

    def __init__(
        self,
        split: str,
        seed: int,
        template_mark: Image.Image | None = None,
        config: SynthConfig | None = None,
    ) -> None:
        self.rng = random.Random(f"{split}:{seed}")
        self.fonts = fonts_for(split)
        self.template_mark = template_mark
        self.config = config or SynthConfig()
        # Its own stream, so varying train glyphs never shifts what else the generator draws.
        vary = split == "train" and self.config.vary_glyphs
        self.variation = MarkVariation(random.Random(f"variation:{split}:{seed}")) if vary else None
        self.long_share = P_LONG_WORDMARK if vary else LONG_WORDMARK_SHARE
        drop = split == "train" and not self.config.lookalike_negatives
        self.negative_texts = negative_texts_without(ENDING_LOOKALIKE_NEGATIVES) if drop else HARD_NEGATIVE_TEXTS

    def _render(self, label: str, height: int) -> RenderedMark:
        if label == "rumah123" and self.template_mark is not None and self.rng.random() < self.config.p_template:
            mark = RenderedMark(self.template_mark, "rumah123")
        else:
            font = self.rng.choice(self.fonts)
            typeface = self.variation.typeface(font, self.fonts) if self.variation is not None else font
            if label == "other":
                mark = render_other(typeface, height * 2, self.rng, self.negative_texts)
            else:
                mark = BRAND_RENDERERS[label](typeface, height * 2, self.rng, long_share=self.long_share)
        return self.variation(mark) if self.variation is not None else mark

    def _draw(self, canvas: Image.Image, label: str, placement: str) -> list[DrawnBox]:
        rng = self.rng
        height = max(6, _mark_height(placement, canvas.height, rng))
        mark = self._render(label, height).image
        mark = _resize_to_height(mark, height, rng, max_width=int(canvas.width * 0.95))
        opacity = rng.uniform(*self.config.opacity)
        styled = _style(mark, label, rng, opacity)
        boxes = []
        for xy in _positions(placement, canvas.size, styled.size, rng):
            drawn = _paste(canvas, styled, xy, label)
            if drawn is not None:
                boxes.append(drawn)
        return boxes

    def generate(self, background: Path) -> SynthImage:
        """One synthetic photo: maybe a brand mark, maybe a hard negative, then JPEG."""
        rng, cfg = self.rng, self.config
        canvas = _fit_background(background)
        pick = rng.random()
        brand = "rumah123" if pick < cfg.p_rumah123 else "99co" if pick < cfg.p_rumah123 + cfg.p_99co else None
        placements = list(cfg.placement_weights)
        weights = list(cfg.placement_weights.values())
        boxes: list[DrawnBox] = []
        others = 0
        if rng.random() < (cfg.p_other_with_brand if brand else cfg.p_other_without_brand):
            other_place = rng.choices(placements[:3], weights[:3])[0] if brand is None else "corner"
            others = len([b for b in self._draw(canvas, "other", other_place) if b.label == "other"])
        if brand is not None:
            boxes += self._draw(canvas, brand, rng.choices(placements, weights)[0])
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=rng.randint(*cfg.jpeg_quality))
        brand_boxes = tuple(b for b in boxes if b.label in ("rumah123", "99co"))
        unlabelled = tuple(b for b in boxes if b.label not in ("rumah123", "99co"))
        return SynthImage(
            buffer.getvalue(), canvas.width, canvas.height, brand_boxes, background.name, others, unlabelled
        )


def generate_many(
    backgrounds: Sequence[Path], count: int, split: str, seed: int, template_mark: Image.Image | None
) -> list[SynthImage]:
    """``count`` images cycling through ``backgrounds`` in a seeded order."""
    generator = SyntheticGenerator(split, seed, template_mark)
    order = list(backgrounds)
    random.Random(seed).shuffle(order)
    return [generator.generate(order[i % len(order)]) for i in range(count)]
