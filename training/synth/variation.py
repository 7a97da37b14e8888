"""Train-only variation of a mark's glyph shapes: mixed fonts, weight, slant, width, look-alike icons.

Error analysis of v5 on the synthetic *validation* split (held-out fonts) showed most misses
were marks found in the right place with the right brand but at a low score (0.05-0.3): the
detector had learnt the training fonts' glyph shapes rather than the wordmark. With only a few
dozen offline fonts, this widens the family of shapes a training mark can take (bolder or
thinner strokes, italic or back-slanted, condensed or expanded) so that no one font's shapes
are what the model keys on. The same happens to hard negatives, so "distorted" never means
"brand"; some hard negatives also get the Rumah123-style map pin, because other agencies'
marks with a pin (Rumahku, rumah.com) were the commonest false alarm.

Error analysis of v9 found clear, large marks in held-out fonts (a serif "99.co", an italic
"rumah123") not found at all: the network still keyed on the training fonts' whole-word
shapes. So some train marks (and hard negatives) are now drawn with a different font per
character (:class:`~training.synth.marks.GlyphMix`).

Error analysis of v21 on validation found that not one of the 11 single 99.co marks laid out
stacked (the house icon above the word) was found at the threshold, and 8 were never proposed,
while the same layout in tiled photos was found; one train 99.co mark in ten was stacked. So some
plain train 99.co marks get the icon stacked above them too.

Error analysis of v22 on validation found long single wordmarks ("99.co Indonesia",
"rumah123.com", width/height of 5 or more) proposed in the right place but scored low: 0 of 14
99.co and 30 of 63 Rumah123 reached the threshold, against 38 of 62 and 71 of 92 for the usual
wordmark shape. One text-drawn train brand mark in ten had the long text; now one in four does
(:data:`P_LONG_WORDMARK`, the relative weight the brand renderers give it), and the stacked
layout's share rises again (v22 still never proposed 4 of 11 single stacked validation marks).

It draws from its own random stream and only for the train split, so the validation and test
renderings stay byte-identical and earlier versions' figures remain comparable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

from training.synth.fonts import FontSource
from training.synth.marks import GlyphMix, RenderedMark, Typeface, as_rgba, house_icon, join_layers, pin_icon

P_WEIGHT = 0.35  # bolder or thinner strokes
P_SLANT = 0.35
P_WIDTH = 0.3
P_PIN_ON_OTHER = 0.15
P_MIXED_GLYPHS = 0.3  # one font per character
P_STACK_99CO = 0.25  # of the 99.co marks without an icon: about a quarter of train 99.co marks end up stacked
P_LONG_WORDMARK = 0.3  # the long text's weight in train brand marks (validation and test: marks.LONG_WORDMARK_SHARE)
STACKED_LAYOUTS = ("plain", "small_co")  # 99.co layouts with no icon yet
MIN_KEPT_COVERAGE = 0.5  # thinning that erases more than half a mark's ink is skipped


class MarkVariation:
    """Seeded glyph-shape variation applied to a mark's coverage (alpha) before styling."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def typeface(self, font: FontSource, fonts: Sequence[FontSource]) -> Typeface:
        """``font``, or sometimes a per-character mix of ``fonts`` (drawn from this stream)."""
        if len(fonts) > 1 and self.rng.random() < P_MIXED_GLYPHS:
            return GlyphMix(tuple(fonts), self.rng)
        return font

    def __call__(self, mark: RenderedMark) -> RenderedMark:
        coverage = mark.image.getchannel("A")
        layout = mark.layout
        if mark.label == "99co" and layout in STACKED_LAYOUTS and self.rng.random() < P_STACK_99CO:
            icon = house_icon(int(coverage.height * self.rng.uniform(1.0, 1.3)), self.rng)
            coverage = join_layers([icon, coverage], gap=int(coverage.height * 0.1), vertical=True)
            layout = "stacked"
        if mark.label == "other" and self.rng.random() < P_PIN_ON_OTHER:
            icon = pin_icon(int(coverage.height * self.rng.uniform(0.95, 1.15)), self.rng)
            coverage = join_layers([icon, coverage], gap=int(coverage.height * self.rng.uniform(0.1, 0.3)))
        if self.rng.random() < P_WEIGHT:
            coverage = self._weight(coverage)
        if self.rng.random() < P_SLANT:
            coverage = self._slant(coverage, self.rng.uniform(-0.3, 0.3))
        if self.rng.random() < P_WIDTH:
            factor = self.rng.uniform(0.75, 1.3)
            coverage = coverage.resize((max(4, int(coverage.width * factor)), coverage.height), Image.LANCZOS)
        return RenderedMark(as_rgba(coverage), mark.label, layout)

    def _weight(self, coverage: Image.Image) -> Image.Image:
        """Bolder (max filter) or thinner (min filter) strokes, by one to two pixels a side."""
        size = self.rng.choice((3, 3, 5)) if coverage.height >= 40 else 3
        if self.rng.random() < 0.6:
            return coverage.filter(ImageFilter.MaxFilter(size))
        thinner = coverage.filter(ImageFilter.MinFilter(size))
        ink_before = np.asarray(coverage, dtype=np.float32).sum()
        if ink_before == 0 or np.asarray(thinner, dtype=np.float32).sum() < MIN_KEPT_COVERAGE * ink_before:
            return coverage
        return thinner

    @staticmethod
    def _slant(coverage: Image.Image, shear: float) -> Image.Image:
        """Italic (shear > 0) or back-slanted text: x' = x - shear * (y - height)."""
        pad = int(abs(shear) * coverage.height) + 2
        width = coverage.width + pad
        offset = -pad if shear > 0 else 0
        # The affine maps output pixels back to input: x_in = x_out + shear * y_out + offset.
        return coverage.transform(
            (width, coverage.height),
            Image.AFFINE,
            (1, shear, offset, 0, 1, 0),
            resample=Image.BICUBIC,
        )
