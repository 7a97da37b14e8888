"""Prediction records in the shape every consumer shares (CLI ``predict``, API, bulk scan)."""

from __future__ import annotations

from wmstudio.imaging import DecodedImage
from wmstudio.runtime import Detection, Detector


def to_original_pixels(detections: list[Detection], decoded: DecodedImage) -> list[Detection]:
    """Rescale boxes found on a draft-decoded image to the original's pixels."""
    sx, sy = decoded.scale
    if sx == 1 and sy == 1:
        return detections
    return [
        Detection(d.brand, d.score, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy)) for d in detections
    ]


def prediction_record(detector: Detector, decoded: DecodedImage, min_score: float | None = None) -> dict:
    """``{"watermarked", "detections", "model_version"}`` for one decoded image."""
    detections = to_original_pixels(detector.detect(decoded.image, min_score), decoded)
    return {
        "watermarked": bool(detections),
        "detections": [d.to_dict() for d in detections],
        "model_version": detector.version,
    }
