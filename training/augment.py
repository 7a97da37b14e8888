"""Photometric augmentation with albumentations, on top of Ultralytics' geometric ones.

Geometry (mosaic, scale/crop, translation, small rotations) is done by Ultralytics because it
must move the boxes consistently with its mosaic; albumentations adds what real uploads do to
a mark: sensor noise, colour shifts, blur and repeated JPEG compression. Horizontal flips are
off for the detector: a mirrored wordmark is not a real watermark, and teaching the model that
it is would make it fire on mirrored text. Flips are applied to synthetic *backgrounds*
instead, before the mark is drawn.
"""

from __future__ import annotations

import albumentations as A

STRENGTHS = ("light", "default", "strong")


def photometric_transforms(strength: str = "default") -> list[A.BasicTransform]:
    """The albumentations list passed to Ultralytics as ``augmentations``."""
    if strength not in STRENGTHS:
        raise ValueError(f"augmentation strength must be one of {STRENGTHS}")
    scale = {"light": 0.5, "default": 1.0, "strong": 1.5}[strength]
    return [
        A.ImageCompression(quality_range=(max(10, int(95 - 60 * scale)), 95), p=min(1.0, 0.4 * scale)),
        A.GaussNoise(std_range=(0.01, 0.03 * scale), p=0.2 * scale),
        A.ColorJitter(brightness=0.2 * scale, contrast=0.2 * scale, saturation=0.3 * scale, hue=0.03, p=0.3),
        A.RandomBrightnessContrast(p=0.2 * scale),
        A.Blur(blur_limit=(3, 3), p=0.1 * scale),
        A.ToGray(p=0.05),
        A.CLAHE(p=0.02),
    ]


def geometric_hyperparameters(strength: str = "default") -> dict[str, float]:
    """Ultralytics' own augmentation settings matching the photometric strength.

    Mosaic is not here: it does not scale with the strength, and a run sets it through
    ``TrainRecipe.mosaic`` (the long-wordmark ablation turns it off).
    """
    scale = {"light": 0.5, "default": 1.0, "strong": 1.5}[strength]
    return {
        "fliplr": 0.0,
        "flipud": 0.0,
        "degrees": 3.0 * scale,
        "translate": 0.1 * scale,
        "scale": min(0.9, 0.4 * scale),
        "mixup": 0.0,
        "hsv_h": 0.015,
        "hsv_s": 0.5 * scale,
        "hsv_v": 0.3 * scale,
    }
