"""Procedural renderings of the Rumah123 and 99.co marks and of look-alike hard negatives.

Every renderer returns an RGBA image whose alpha is the mark's coverage; the compositor owns
opacity, colour, blur and placement. Variety (fonts, icon shapes, spacing, case) is the point:
the model must recognise a brand's mark in renderings it has never seen.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from training.synth.fonts import FontSource, load_font

HARD_NEGATIVE_TEXTS: tuple[str, ...] = (
    "Ray White",
    "RAY WHITE",
    "CENTURY 21",
    "Century21",
    "ERA Indonesia",
    "LJ Hooker",
    "Harcourts",
    "Coldwell Banker",
    "rumah.com",
    "Rumahku",
    "lamudi",
    "OLX",
    "pinhome",
    "Brighton",
    "Properti Kita",
    "DIJUAL",
    "DISEWAKAN",
    "FOR SALE",
    "SOLD",
    "HOT DEAL",
    "0812-3456-7890",
    "WA 0813 9988 7766",
    "Hub: 021-555 1234",
    "@rumahidaman.id",
    "www.propertiku.co.id",
    "Jl. Melati No. 99",
    "Cluster 123",
    "Type 36/72",
    "SHM - IMB",
    "Marketing Gallery",
    "Agen Properti",
    "Hunian Nyaman",
    "Harga Nego",
    "Rp 1,2 M",
    "Perumahan Griya 99",
    "Ruko 3 Lantai",
    "Kavling Siap Bangun",
)

# Hard negatives whose endings match the long brand wordmarks ("99.co Indonesia" / "ERA
# Indonesia", "rumah123.com" / "rumah.com", ".co" in a web address). v22 scored every single long
# 99.co validation mark under its threshold, and these were suspected. The ablation
# (``SynthConfig(lookalike_negatives=False)``, train marks only; v28, REPORT §3) refuted that:
# without them long 99.co marks scored the same and other agencies' marks alarmed more often.
ENDING_LOOKALIKE_NEGATIVES: tuple[str, ...] = ("ERA Indonesia", "rumah.com", "www.propertiku.co.id")


def negative_texts_without(dropped: tuple[str, ...]) -> tuple[str, ...]:
    """:data:`HARD_NEGATIVE_TEXTS` with each dropped text replaced by the next kept one.

    Same length and order, so one ``rng.choice`` draws the same index either way and a
    photo's first draw of a dropped text is the only change in it. Later photos of a split
    still differ: the swapped text's width changes how many draws its placement takes, so the
    stream drifts (4,145 of 4,400 train photos differ), and the ablation is a fresh rendering
    of the same mix without those texts.
    """
    if set(HARD_NEGATIVE_TEXTS) <= set(dropped):
        raise ValueError("cannot drop every hard-negative text")
    count = len(HARD_NEGATIVE_TEXTS)
    following = ([HARD_NEGATIVE_TEXTS[(start + step) % count] for step in range(count)] for start in range(count))
    return tuple(next(text for text in candidates if text not in dropped) for candidates in following)


# Relative weight of the long wordmark ("rumah123.com", "99.co Indonesia") among a brand's texts.
# One ``rng.choices`` call whatever the weights, so a split drawn with another share keeps the rest
# of its random stream in step.
LONG_WORDMARK_SHARE = 0.1


@dataclass(frozen=True)
class RenderedMark:
    """A mark as a coverage mask (RGBA, white where drawn) and what it represents."""

    image: Image.Image
    label: str  # "rumah123", "99co" or "other"
    layout: str = "plain"  # how a 99.co mark is laid out: "plain", "small_co", "icon" or "stacked"


@dataclass(frozen=True)
class GlyphMix:
    """Draw a wordmark one character at a time, each in a font picked from ``fonts``.

    Train-only (chosen by ``training.synth.variation``): with a few dozen offline fonts, a
    detector can key on whole-word shapes of the training fonts; a word whose letters come from
    different fonts, sizes and baselines only stays recognisable by its letters. Its own random
    stream keeps the generator's main stream (what is drawn where) unchanged.
    """

    fonts: tuple[FontSource, ...]
    rng: random.Random


@dataclass(frozen=True)
class MixedFace:
    """A :class:`GlyphMix` at a nominal size (what ``_font`` returns for a mix)."""

    mix: GlyphMix
    size: int


Typeface = FontSource | GlyphMix


def _font(font: Typeface, size: int) -> ImageFont.FreeTypeFont | MixedFace:
    if isinstance(font, GlyphMix):
        return MixedFace(font, max(8, size))
    return load_font(font, max(8, size))


def _mixed_text_layer(text: str, face: MixedFace, stroke: int) -> Image.Image:
    """Characters in random fonts, sizes (±15 %) and baselines (±5 %), on one coverage layer."""
    rng = face.mix.rng
    pieces: list[tuple[ImageFont.FreeTypeFont, str, float, float]] = []  # font, char, x, baseline shift
    x = 0.0
    for char in text:
        size = max(8, int(face.size * rng.uniform(0.85, 1.15)))
        font = load_font(rng.choice(face.mix.fonts), size)
        pieces.append((font, char, x, face.size * rng.uniform(-0.05, 0.05)))
        x += font.getlength(char) + stroke + face.size * rng.uniform(-0.02, 0.06)
    extents = []  # each character's ink box on the shared canvas: x0, y0, x1, y1
    for font, char, px, dy in pieces:
        x0, y0, x1, y1 = font.getbbox(char, anchor="ls", stroke_width=stroke)
        extents.append((px + x0, dy + y0, px + x1, dy + y1))
    left, top = min(e[0] for e in extents), min(e[1] for e in extents)
    right, bottom = max(e[2] for e in extents), max(e[3] for e in extents)
    layer = Image.new("L", (math.ceil(right - left) + 2, math.ceil(bottom - top) + 2), 0)
    draw = ImageDraw.Draw(layer)
    for font, char, px, dy in pieces:
        draw.text((px - left + 1, dy - top + 1), char, font=font, fill=255, anchor="ls", stroke_width=stroke)
    return layer


def _text_layer(text: str, font: ImageFont.FreeTypeFont | MixedFace, stroke: int = 0) -> Image.Image:
    if isinstance(font, MixedFace):
        return _mixed_text_layer(text, font, stroke)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    layer = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(layer).text((-left + 1, -top + 1), text, font=font, fill=255, stroke_width=stroke)
    return layer


def pin_icon(height: int, rng: random.Random) -> Image.Image:
    """A map-pin (the Rumah123 icon family): a disc over a point, sometimes with a hole/house."""
    width = int(height * rng.uniform(0.62, 0.8))
    scale = 4
    big = Image.new("L", (width * scale, height * scale), 0)
    draw = ImageDraw.Draw(big)
    w, h = width * scale, height * scale
    radius = w / 2
    draw.ellipse((0, 0, w - 1, 2 * radius), fill=255)
    draw.polygon([(w * 0.08, radius * 1.35), (w * 0.92, radius * 1.35), (w / 2, h - 1)], fill=255)
    style = rng.choice(("hole", "house", "solid", "ring"))
    if style == "hole":
        r = radius * rng.uniform(0.32, 0.45)
        draw.ellipse((w / 2 - r, radius - r, w / 2 + r, radius + r), fill=0)
    elif style == "house":
        s = radius * 0.55
        draw.polygon([(w / 2 - s, radius), (w / 2, radius - s), (w / 2 + s, radius)], fill=0)
        draw.rectangle((w / 2 - s * 0.7, radius, w / 2 + s * 0.7, radius + s * 0.8), fill=0)
    elif style == "ring":
        r = radius * 0.7
        draw.ellipse((w / 2 - r, radius - r, w / 2 + r, radius + r), fill=0)
        r2 = radius * 0.3
        draw.ellipse((w / 2 - r2, radius - r2, w / 2 + r2, radius + r2), fill=255)
    return big.resize((width, height), Image.LANCZOS)


def house_icon(height: int, rng: random.Random) -> Image.Image:
    """A rounded square with a roof, the shape family of the 99.co app icon."""
    size = height
    scale = 4
    big = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(big)
    s = size * scale
    draw.rounded_rectangle((0, 0, s - 1, s - 1), radius=int(s * rng.uniform(0.15, 0.3)), fill=255)
    draw.polygon([(s * 0.2, s * 0.5), (s * 0.5, s * 0.22), (s * 0.8, s * 0.5)], fill=0)
    draw.rectangle((s * 0.3, s * 0.5, s * 0.7, s * 0.78), fill=0)
    return big.resize((size, size), Image.LANCZOS)


def _generic_icon(height: int, rng: random.Random) -> Image.Image:
    """Circles, squares, stars and badges used by other agencies' logos."""
    scale = 4
    s = height * scale
    big = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(big)
    kind = rng.choice(("circle", "square", "diamond", "badge"))
    if kind == "circle":
        draw.ellipse((0, 0, s - 1, s - 1), fill=255)
        draw.ellipse((s * 0.25, s * 0.25, s * 0.75, s * 0.75), fill=0)
    elif kind == "square":
        draw.rectangle((0, 0, s - 1, s - 1), fill=255)
        draw.rectangle((s * 0.2, s * 0.2, s * 0.8, s * 0.8), fill=0)
    elif kind == "diamond":
        draw.polygon([(s / 2, 0), (s - 1, s / 2), (s / 2, s - 1), (0, s / 2)], fill=255)
    else:
        draw.rounded_rectangle((0, s * 0.15, s - 1, s * 0.85), radius=int(s * 0.2), fill=255)
    return big.resize((height, height), Image.LANCZOS)


def join_layers(parts: list[Image.Image], gap: int, vertical: bool = False) -> Image.Image:
    """Lay out coverage layers side by side (or stacked), centred on the cross axis."""
    if vertical:
        width = max(p.width for p in parts)
        height = sum(p.height for p in parts) + gap * (len(parts) - 1)
        canvas = Image.new("L", (width, height), 0)
        y = 0
        for part in parts:
            canvas.paste(part, ((width - part.width) // 2, y))
            y += part.height + gap
        return canvas
    width = sum(p.width for p in parts) + gap * (len(parts) - 1)
    height = max(p.height for p in parts)
    canvas = Image.new("L", (width, height), 0)
    x = 0
    for part in parts:
        canvas.paste(part, (x, (height - part.height) // 2))
        x += part.width + gap
    return canvas


def as_rgba(coverage: Image.Image) -> Image.Image:
    rgba = Image.new("RGBA", coverage.size, (255, 255, 255, 0))
    rgba.putalpha(coverage)
    return rgba


def render_rumah123(
    font: Typeface, height: int, rng: random.Random, long_share: float = LONG_WORDMARK_SHARE
) -> RenderedMark:
    """Pin icon + 'rumah123' wordmark, ~4.7:1 like the observed mark, with layout variations."""
    text = rng.choices(["rumah123", "Rumah123", "rumah123.com", "RUMAH123"], [0.7, 0.15, long_share, 0.05])[0]
    stroke = rng.choice((0, 0, 0, 1))
    words = _text_layer(text, _font(font, int(height * rng.uniform(0.75, 0.95))), stroke)
    if rng.random() < 0.85:
        icon = pin_icon(int(height * rng.uniform(0.95, 1.15)), rng)
        layer = join_layers([icon, words], gap=int(height * rng.uniform(0.1, 0.3)))
    else:
        layer = words
    return RenderedMark(as_rgba(layer), "rumah123")


def render_99co(
    font: Typeface, height: int, rng: random.Random, long_share: float = LONG_WORDMARK_SHARE
) -> RenderedMark:
    """'99.co' wordmark, sometimes with a house-in-square icon or a smaller '.co'."""
    big = _font(font, int(height * rng.uniform(0.8, 1.0)))
    style = rng.choices(["plain", "small_co", "icon", "stacked"], [0.45, 0.2, 0.25, 0.1])[0]
    if style == "small_co":
        nines = _text_layer("99", big)
        co = _text_layer(".co", _font(font, int(big.size * rng.uniform(0.55, 0.75))))
        canvas = Image.new("L", (nines.width + co.width, nines.height), 0)
        canvas.paste(nines, (0, 0))
        canvas.paste(co, (nines.width, nines.height - co.height))
        layer = canvas
    else:
        text = rng.choices(["99.co", "99.CO", "99.co Indonesia", "99co"], [0.75, 0.1, long_share, 0.05])[0]
        layer = _text_layer(text, big, stroke=rng.choice((0, 0, 1)))
        if style == "icon":
            icon = house_icon(int(layer.height * rng.uniform(1.0, 1.3)), rng)
            layer = join_layers([icon, layer], gap=int(height * 0.2))
        elif style == "stacked":
            icon = house_icon(int(layer.height * 1.2), rng)
            layer = join_layers([icon, layer], gap=int(height * 0.1), vertical=True)
    return RenderedMark(as_rgba(layer), "99co", style)


def render_other(
    font: Typeface, height: int, rng: random.Random, texts: tuple[str, ...] = HARD_NEGATIVE_TEXTS
) -> RenderedMark:
    """Another agency's mark, a phone number or sale-sign text: must NOT be detected."""
    text = rng.choice(texts)
    layer = _text_layer(text, _font(font, int(height * rng.uniform(0.7, 1.0))), rng.choice((0, 0, 1)))
    if rng.random() < 0.4:
        layer = join_layers([_generic_icon(int(height * 1.05), rng), layer], gap=int(height * 0.2))
    return RenderedMark(as_rgba(layer), "other")


BRAND_RENDERERS = {"rumah123": render_rumah123, "99co": render_99co}
