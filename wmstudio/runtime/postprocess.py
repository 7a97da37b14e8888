"""Decode YOLO outputs: score filtering and class-agnostic non-maximum suppression.

NMS is class-agnostic on purpose: one mark is one brand, so two overlapping boxes of
different brands are the model hesitating, and only the more confident one is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_DETECTIONS = 100  # per photo, after NMS


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x0,y0,x1,y1 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two x0,y0,x1,y1 boxes: :func:`iou_matrix` for one pair, so there is one IoU to trust."""
    return float(iou_matrix(np.asarray([a[:4]], dtype=float), np.asarray([b[:4]], dtype=float))[0, 0])


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of kept boxes, highest score first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlaps = iou_matrix(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode_yolo(
    output: np.ndarray, score_threshold: float, iou_threshold: float = 0.5, max_detections: int = MAX_DETECTIONS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1, 4 + C, N) raw output -> boxes (K, 4) in input pixels, scores (K,), classes (K,)."""
    predictions = output[0].T  # (N, 4 + C)
    class_scores = predictions[:, 4:]
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(classes)), classes]
    mask = scores >= score_threshold
    if not mask.any():
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)
    cx, cy, w, h = predictions[mask, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    scores, classes = scores[mask], classes[mask]
    keep = nms(boxes, scores, iou_threshold)[:max_detections]
    return boxes[keep], scores[keep], classes[keep]
