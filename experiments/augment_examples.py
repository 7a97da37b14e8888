"""Before/after pictures of the augmentation pipeline, for the README.

Usage: python -m experiments.augment_examples [--strength default] [--out docs/augmentation.png]
Applies the albumentations list and Ultralytics-style geometry (random affine via
albumentations' Affine with the same ranges) to a few synthetic photos and draws the boxes,
so a reader sees that boxes follow the image and that marks stay readable.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import albumentations as A
import numpy as np
from PIL import Image, ImageDraw

from training.augment import geometric_hyperparameters, photometric_transforms
from training.synth.compose import SyntheticGenerator
from training.synth.procedural import write_scenes


def _pipeline(strength: str) -> A.Compose:
    geometry = geometric_hyperparameters(strength)
    affine = A.Affine(
        scale=(1 - geometry["scale"], 1 + geometry["scale"]),
        translate_percent=(-geometry["translate"], geometry["translate"]),
        rotate=(-geometry["degrees"], geometry["degrees"]),
        p=1.0,
    )
    return A.Compose(
        [affine, *photometric_transforms(strength)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.3),
    )


def _draw(image: np.ndarray, boxes: list, labels: list) -> Image.Image:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for box, label in zip(boxes, labels, strict=True):
        draw.rectangle(box, outline=(255, 0, 0), width=3)
        draw.text((box[0], max(0, box[1] - 12)), label, fill=(255, 0, 0))
    picture.thumbnail((360, 360))
    return picture


def make_sheet(strength: str, out: Path, seed: int = 0, rows: int = 4) -> Path:
    scenes = write_scenes(out.parent / ".augment-scenes", rows * 2, seed=seed)
    generator = SyntheticGenerator("train", seed)
    pipeline = _pipeline(strength)
    rng_state = np.random.default_rng(seed)
    pairs = []
    index = 0
    while len(pairs) < rows and index < 50:
        drawn = generator.generate(scenes[index % len(scenes)])
        index += 1
        if not drawn.boxes:
            continue
        image = np.asarray(Image.open(io.BytesIO(drawn.image_bytes)).convert("RGB"))
        boxes = [list(b.box) for b in drawn.boxes]
        labels = [b.label for b in drawn.boxes]
        pipeline.set_random_seed(int(rng_state.integers(1 << 30)))
        result = pipeline(image=image, bboxes=boxes, labels=labels)
        pairs.append((_draw(image, boxes, labels), _draw(result["image"], result["bboxes"], result["labels"])))
    width = max(p.width for pair in pairs for p in pair)
    height = max(p.height for pair in pairs for p in pair)
    sheet = Image.new("RGB", (width * 2 + 10, (height + 10) * len(pairs)), "white")
    for row, (before, after) in enumerate(pairs):
        sheet.paste(before, (0, row * (height + 10)))
        sheet.paste(after, (width + 10, row * (height + 10)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strength", default="default", choices=["light", "default", "strong"])
    parser.add_argument("--out", type=Path, default=Path("docs/augmentation.png"))
    args = parser.parse_args()
    print(make_sheet(args.strength, args.out))


if __name__ == "__main__":
    main()
