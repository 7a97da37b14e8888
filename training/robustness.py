"""The photos a listing system really passes on: seeded variants of the evaluation photos.

A published listing photo reaches us cropped, framed, shrunk, re-compressed or pasted into a
collage, and the brand mark then sits anywhere and at any size. A detector that only scores the
photo as published measures where the mark usually is, not whether it is found. Every variant
here is derived from a labelled evaluation photo with its boxes moved exactly with the pixels,
and is seeded by (seed, variant, photo), so two runs score the same pixels and one photo's
variant does not change when another photo is added to the set.

The variants (``VARIANTS``):

- ``original``: the photo as published.
- ``crop``: a random crop (55–85 % of each side) that keeps every mark whole, so the mark
  ends up anywhere in the frame.
- ``corner``: a crop that puts the mark near one of the photo's corners.
- ``border``: a plain band (10–40 %) added on one side, which pushes the mark off the centre line.
- ``frame``: an uneven frame on all four sides (5–20 % each).
- ``thumbnail``: shrunk to a long side of 320–480 px.
- ``jpeg``: re-compressed at quality 20–35.
- ``collage``: a 2×2 grid of the photo and three unmarked photos of the same set, so the mark
  shrinks to half its size and leaves the centre.
- ``reshared``: what a second portal does to a first one's photo: crop, thumbnail to 400–640 px,
  JPEG quality 40–70.

Every variant is JPEG-encoded (quality 92 unless the variant says otherwise) and decoded through
the same path as the API (:func:`wmstudio.imaging.decode_image`), so the figures measure what is
served.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from training.evaluate import Example, carries_other_mark
from wmstudio.data.manifest import Box, Item
from wmstudio.imaging import decode_image
from wmstudio.runtime import Detection, Detector, Prediction

VARIANTS = ("original", "crop", "corner", "border", "frame", "thumbnail", "jpeg", "collage", "reshared")
DEFAULT_QUALITY = 92
COLLAGE_PARTNERS = 3

BoxList = list[tuple[str, tuple[float, float, float, float]]]


@dataclass(frozen=True)
class Photo:
    """Pixels plus the brand boxes on them (original pixels, x0, y0, x1, y1)."""

    image: Image.Image
    boxes: BoxList


@dataclass(frozen=True)
class VariantPhoto:
    """One derived photo: its encoded bytes and the source item relabelled with the moved boxes."""

    variant: str
    item: Item
    data: bytes


def _rng(seed: int, variant: str, item: Item) -> random.Random:
    """One generator per (seed, variant, photo): adding photos never changes another's variant."""
    return random.Random(f"{seed}:{variant}:{item.sha256}")


def _marks_extent(photo: Photo) -> tuple[float, float, float, float] | None:
    if not photo.boxes:
        return None
    xs0, ys0, xs1, ys1 = zip(*(box for _, box in photo.boxes), strict=True)
    return min(xs0), min(ys0), max(xs1), max(ys1)


def _crop(photo: Photo, window: tuple[int, int, int, int]) -> Photo:
    x0, y0, x1, y1 = window
    boxes = [
        (brand, (max(bx0, x0) - x0, max(by0, y0) - y0, min(bx1, x1) - x0, min(by1, y1) - y0))
        for brand, (bx0, by0, bx1, by1) in photo.boxes
        if min(bx1, x1) > max(bx0, x0) and min(by1, y1) > max(by0, y0)
    ]
    return Photo(photo.image.crop(window), boxes)


def _window_range(lo_mark: float, hi_mark: float, size: int, full: int) -> tuple[int, int]:
    """Allowed starts of a ``size``-long window inside ``[0, full]`` that contains ``[lo, hi]``."""
    start_min = max(0, int(hi_mark + 1) - size)
    start_max = min(full - size, int(lo_mark))
    return start_min, max(start_min, start_max)


def random_crop(photo: Photo, rng: random.Random, share: tuple[float, float] = (0.55, 0.85)) -> Photo:
    """A crop of ``share`` of each side that keeps every mark whole (grown where a mark is larger)."""
    width, height = photo.image.size
    extent = _marks_extent(photo) or (width / 2, height / 2, width / 2, height / 2)
    crop_w = max(int(width * rng.uniform(*share)), int(extent[2] - extent[0]) + 2)
    crop_h = max(int(height * rng.uniform(*share)), int(extent[3] - extent[1]) + 2)
    crop_w, crop_h = min(crop_w, width), min(crop_h, height)
    x_lo, x_hi = _window_range(extent[0], extent[2], crop_w, width)
    y_lo, y_hi = _window_range(extent[1], extent[3], crop_h, height)
    x0, y0 = rng.randint(x_lo, x_hi), rng.randint(y_lo, y_hi)
    return _crop(photo, (x0, y0, x0 + crop_w, y0 + crop_h))


def corner_crop(photo: Photo, rng: random.Random) -> Photo:
    """A crop whose corner lies just outside the marks, so they end up in a corner of the frame."""
    width, height = photo.image.size
    extent = _marks_extent(photo)
    if extent is None:
        return random_crop(photo, rng)
    margin = int(min(width, height) * rng.uniform(0.01, 0.04))
    left, top = rng.random() < 0.5, rng.random() < 0.5
    x0 = max(0, int(extent[0]) - margin) if left else 0
    x1 = width if left else min(width, int(extent[2] + 1) + margin)
    y0 = max(0, int(extent[1]) - margin) if top else 0
    y1 = height if top else min(height, int(extent[3] + 1) + margin)
    # Keep at least 45 % of each side, so the crop stays a photo rather than a close-up of the mark.
    if x1 - x0 < 0.45 * width:
        x1, x0 = (min(width, x0 + int(0.45 * width)), x0) if left else (x1, max(0, x1 - int(0.45 * width)))
    if y1 - y0 < 0.45 * height:
        y1, y0 = (min(height, y0 + int(0.45 * height)), y0) if top else (y1, max(0, y1 - int(0.45 * height)))
    return _crop(photo, (x0, y0, x1, y1))


def _fill(rng: random.Random) -> tuple[int, int, int]:
    """White, black or a random flat colour: what listing templates frame photos with."""
    choice = rng.random()
    if choice < 0.4:
        return (255, 255, 255)
    if choice < 0.7:
        return (0, 0, 0)
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def pad(photo: Photo, left: int, top: int, right: int, bottom: int, colour: tuple[int, int, int]) -> Photo:
    width, height = photo.image.size
    canvas = Image.new("RGB", (width + left + right, height + top + bottom), colour)
    canvas.paste(photo.image, (left, top))
    boxes = [(brand, (x0 + left, y0 + top, x1 + left, y1 + top)) for brand, (x0, y0, x1, y1) in photo.boxes]
    return Photo(canvas, boxes)


def one_side_border(photo: Photo, rng: random.Random) -> Photo:
    width, height = photo.image.size
    side = rng.choice(("left", "top", "right", "bottom"))
    share = rng.uniform(0.10, 0.40)
    band = int((width if side in ("left", "right") else height) * share)
    sides = {"left": 0, "top": 0, "right": 0, "bottom": 0} | {side: band}
    return pad(photo, sides["left"], sides["top"], sides["right"], sides["bottom"], _fill(rng))


def uneven_frame(photo: Photo, rng: random.Random) -> Photo:
    width, height = photo.image.size
    left, right = (int(width * rng.uniform(0.05, 0.20)) for _ in range(2))
    top, bottom = (int(height * rng.uniform(0.05, 0.20)) for _ in range(2))
    return pad(photo, left, top, right, bottom, _fill(rng))


def resize(photo: Photo, long_side: int) -> Photo:
    width, height = photo.image.size
    factor = long_side / max(width, height)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    sx, sy = size[0] / width, size[1] / height
    boxes = [(brand, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)) for brand, (x0, y0, x1, y1) in photo.boxes]
    return Photo(photo.image.resize(size, Image.LANCZOS), boxes)


def thumbnail(photo: Photo, rng: random.Random) -> Photo:
    long_side = rng.randint(320, 480)
    return resize(photo, min(long_side, max(photo.image.size)))


def collage(photo: Photo, partners: Sequence[Photo], rng: random.Random) -> Photo:
    """The photo in one cell of a 2×2 grid, the other cells filled with unmarked photos."""
    width, height = photo.image.size
    cell_w, cell_h = width // 2, height // 2
    canvas = Image.new("RGB", (cell_w * 2, cell_h * 2), (255, 255, 255))
    cell = rng.randrange(4)
    others = iter(partners)
    boxes: BoxList = []
    for index in range(4):
        x, y = (index % 2) * cell_w, (index // 2) * cell_h
        source = photo if index == cell else next(others, None)
        if source is None:
            continue
        canvas.paste(source.image.resize((cell_w, cell_h), Image.LANCZOS), (x, y))
        if index == cell:
            sx, sy = cell_w / width, cell_h / height
            boxes = [(b, (x + x0 * sx, y + y0 * sy, x + x1 * sx, y + y1 * sy)) for b, (x0, y0, x1, y1) in photo.boxes]
    return Photo(canvas, boxes)


def reshared(photo: Photo, rng: random.Random) -> Photo:
    cropped = random_crop(photo, rng, share=(0.7, 0.95))
    return resize(cropped, min(rng.randint(400, 640), max(cropped.image.size)))


def encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _quality(variant: str, rng: random.Random) -> int:
    if variant == "jpeg":
        return rng.randint(20, 35)
    if variant == "reshared":
        return rng.randint(40, 70)
    return DEFAULT_QUALITY


GEOMETRY: dict[str, Callable[[Photo, random.Random], Photo]] = {
    "original": lambda photo, rng: photo,
    "crop": random_crop,
    "corner": corner_crop,
    "border": one_side_border,
    "frame": uneven_frame,
    "thumbnail": thumbnail,
    "jpeg": lambda photo, rng: photo,
    "reshared": reshared,
}


def load_photo(item: Item, root: Path) -> Photo:
    image = decode_image(root / item.path).image
    return Photo(image, [(box.brand, tuple(float(v) for v in box.box)) for box in item.boxes])


def make_variant(
    variant: str, item: Item, root: Path, partners: Sequence[tuple[Item, Path]] = (), seed: int = 0
) -> VariantPhoto:
    """One seeded variant of an evaluation photo, with the item's boxes moved to match."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    rng = _rng(seed, variant, item)
    photo = load_photo(item, root)
    if variant == "collage":
        chosen = rng.sample(list(partners), min(COLLAGE_PARTNERS, len(partners)))
        result = collage(photo, [load_photo(p, r) for p, r in chosen], rng)
    else:
        result = GEOMETRY[variant](photo, rng)
    moved = [Box(brand, [round(v, 2) for v in box]) for brand, box in result.boxes]
    relabelled = replace(
        item,
        width=result.image.width,
        height=result.image.height,
        boxes=moved,
        notes=[*item.notes, f"variant:{variant}"],
    )
    return VariantPhoto(variant, relabelled, encode(result.image, _quality(variant, rng)))


def collage_partners(items: Sequence[tuple[Item, Path]]) -> list[tuple[Item, Path]]:
    """Unmarked photos without other agencies' marks: the fillers of a collage."""
    return [(item, root) for item, root in items if item.brand is None and not carries_other_mark(item)]


def predict_variant(detector: Detector, photo: VariantPhoto) -> Example:
    """The detector on the variant, decoded as the API decodes uploads, boxes in variant pixels."""
    decoded = decode_image(photo.data, draft_size=detector.decode_size)
    prediction = detector.predict(decoded.image)
    sx, sy = decoded.scale
    candidates = tuple(
        Detection(d.brand, d.score, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
        for d in prediction.candidates
    )
    return Example(photo.item, Prediction(decoded.width, decoded.height, candidates))


def variant_examples(
    detector: Detector,
    items: Sequence[tuple[Item, Path]],
    variants: Sequence[str] = VARIANTS,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[Example]]:
    """Predictions for every variant of every item, keyed by variant."""
    partners = collage_partners(items)
    results: dict[str, list[Example]] = {}
    for variant in variants:
        examples = []
        for item, root in items:
            pool = [p for p in partners if p[0].sha256 != item.sha256]
            examples.append(predict_variant(detector, make_variant(variant, item, root, pool, seed)))
            if progress is not None:
                progress(1)
        results[variant] = examples
    return results
