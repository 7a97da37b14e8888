"""Detection and classification metrics in NumPy (COCO-style AP, image-level P/R/F1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wmstudio.runtime.postprocess import iou_matrix

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass(frozen=True)
class ScoredBox:
    image: int
    score: float
    box: tuple[float, float, float, float]


def by_score(detections: list[ScoredBox]) -> list[ScoredBox]:
    """Highest score first, ties in input order: the order :func:`match_detections` reports in."""
    return sorted(detections, key=lambda d: -d.score)


def match_detections(
    detections: list[ScoredBox], truths: dict[int, np.ndarray], iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy COCO matching: each detection's image, score and whether it hit an unused truth.

    Matching never crosses images and runs in descending score order within one, so an image's
    hits do not depend on which other images are evaluated with it; that is what lets a bootstrap
    resample images without matching again (:mod:`experiments.bootstrap`).
    """
    used = {image: np.zeros(len(t), dtype=bool) for image, t in truths.items()}
    ordered = by_score(detections)
    hits = np.zeros(len(ordered), dtype=bool)
    for index, det in enumerate(ordered):
        gts = truths.get(det.image, np.zeros((0, 4)))
        if len(gts):
            ious = iou_matrix(np.asarray([det.box]), gts)[0]
            ious[used[det.image]] = -1
            best = int(ious.argmax())
            if ious[best] >= iou_threshold:
                used[det.image][best] = True
                hits[index] = True
    images = np.array([d.image for d in ordered], dtype=int)
    scores = np.array([d.score for d in ordered], dtype=float)
    return images, scores, hits


def ap_from_matches(scores: np.ndarray, hits: np.ndarray, total_truths: int) -> float:
    """COCO 101-point interpolated AP from matched detections (NaN without truths)."""
    if total_truths == 0:
        return float("nan")
    if len(hits) == 0:
        return 0.0
    hits = np.asarray(hits, dtype=bool)[np.argsort(-np.asarray(scores), kind="stable")]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / total_truths
    precision = tp / np.maximum(tp + fp, 1e-9)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(sampled.mean())


def average_precision(detections: list[ScoredBox], truths: dict[int, np.ndarray], iou_threshold: float) -> float:
    """COCO 101-point interpolated AP of one class at one IoU threshold (NaN without truths)."""
    _, scores, hits = match_detections(detections, truths, iou_threshold)
    return ap_from_matches(scores, hits, sum(len(t) for t in truths.values()))


def matched_ious(detections: list[ScoredBox], truths: dict[int, np.ndarray], iou_threshold: float = 0.5) -> list[float]:
    """IoU of each truth with its best reported detection, for pairs matched at the threshold."""
    values = []
    by_image: dict[int, list[ScoredBox]] = {}
    for det in detections:
        by_image.setdefault(det.image, []).append(det)
    for image, gts in truths.items():
        dets = by_image.get(image, [])
        if len(gts) == 0 or not dets:
            continue
        ious = iou_matrix(gts, np.asarray([d.box for d in dets]))
        values += [float(v) for v in ious.max(axis=1) if v >= iou_threshold]
    return values


def precision_recall_f1(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def pr_curve(truth: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> dict[str, list[float]]:
    precisions, recalls = [], []
    for threshold in thresholds:
        result = precision_recall_f1(truth, scores >= threshold)
        precisions.append(result["precision"])
        recalls.append(result["recall"])
    return {"threshold": [float(t) for t in thresholds], "precision": precisions, "recall": recalls}
